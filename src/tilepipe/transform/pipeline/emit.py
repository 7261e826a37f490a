"""Emission of a scheduled, synchronized pipeline: prologue, body and epilogue blocks.

Statement instances are the original statements with the loop variable replaced by the
iteration they work on (``i - stage + delta``, written the way TVM folds it, so outputs
read like the seeds'), predicated by ``T.where`` when not every slot runs them, with ring
indices ``j % versions`` on every access to a multi-versioned buffer, asynchronous ones
wrapped in ``async_scope`` and grouped into ``async_commit_queue_scope`` blocks, and the
waits of :mod:`.sync` right before the statements that need them.
"""

from __future__ import annotations

import copy
import operator

from typing import Any, Callable, Mapping, Sequence

from ...ir import (
    BINARY_OPS, EQ, LE, LT, Add, And, AsyncCommitQueue, AsyncScope, AsyncWaitQueue, AttrStmt,
    BinaryOp, Block, Buffer, BufferLoad, BufferRegion, BufferStore, Call, Cast, Evaluate,
    FloatImm, FloorDiv, FloorMod, For, ForKind, IfThenElse, IntImm, Max, Mul, Not, Or, PrimExpr,
    Range, Select, SeqStmt, Stmt, StringImm, Sub, Var, seq,
)
from .schedule import CommitGroup, PipelineStatement, Schedule
from .sync import BODY, SectionPlan, SyncPlan, Wait


# Folding as TVM's operators do, so that the output keeps the seeds' shape ----------------
def fold_add(left: PrimExpr | int, right: PrimExpr | int) -> PrimExpr:
    if isinstance(left, int):
        left = IntImm(left)
    if isinstance(right, int):
        right = IntImm(right)
    if isinstance(left, IntImm):
        if isinstance(right, IntImm):
            return IntImm(left.value + right.value, left.dtype)
        if left.value == 0:
            return right
    elif isinstance(right, IntImm) and right.value == 0:
        return left
    return Add(left, right)


def fold_sub(left: PrimExpr | int, right: PrimExpr | int) -> PrimExpr:
    if isinstance(right, int):
        if right == 0 and not isinstance(left, int):
            return left
        right = IntImm(right)
    if isinstance(left, int):
        left = IntImm(left)
    if isinstance(right, IntImm):
        if isinstance(left, IntImm):
            return IntImm(left.value - right.value, left.dtype)
        if right.value == 0:
            return left
    return Sub(left, right)


def _fold_less(left: PrimExpr, right: PrimExpr) -> PrimExpr:
    if isinstance(left, IntImm) and isinstance(right, IntImm):
        return IntImm(int(left.value < right.value), "bool")
    return LT(left, right)


# Ring buffers ---------------------------------------------------------------------------
def versioned_buffers(schedule: Schedule) -> dict[Buffer, tuple[Buffer, int]]:
    """Each buffer with more than one version -> (its ring buffer, the version count)."""
    remap = {}
    counts: dict[int, IntImm] = {}  # one leading extent per version count
    for buffer, count in schedule.versions.items():
        if count > 1:
            extent = counts.get(count)
            if extent is None:
                extent = counts[count] = IntImm(count)
            ring = Buffer(buffer.name, (extent,) + tuple(buffer.shape), buffer.dtype,
                          buffer.scope, buffer.span)
            remap[buffer] = (ring, count)
    return remap


# Sections -------------------------------------------------------------------------------
_UNKNOWN = object()  # a predicate not computed yet (None is a predicate: always run)


class Emitter:
    """Builds the IR of one pipelined loop from its schedule and synchronization."""

    def __init__(self, schedule: Schedule, extent: PrimExpr):
        self.schedule = schedule
        self.loop = schedule.loop
        self.extent = extent
        self.end = fold_add(self.loop.min, extent)  # the first iteration past the loop
        self.remap = versioned_buffers(schedule)
        compiler = InstanceCompiler(self.loop.loop_var, self.remap)
        # Each statement (in emission order) with its instances and, when asynchronous,
        # its commit group.
        self.statements = [
            (statement, compiler.statement(statement.stmt),
             schedule.groups[schedule.group_of[statement.position]]
             if statement.is_async else None)
            for statement in schedule.statements]

    def with_extent(self, extent: PrimExpr) -> "Emitter":
        """This emitter for another trip count: the same ring buffers and statements, so
        that every section of one loop allocates and uses the same buffers."""
        other = copy.copy(self)
        other.extent = extent
        other.end = fold_add(self.loop.min, extent)
        return other

    def sections(self, plan: SyncPlan, frames: Sequence[tuple[PrimExpr, PrimExpr]],
                 body_annotations: Mapping) -> list[Stmt]:
        """The section blocks, the drains after the loop placed in the last one.

        ``frames`` gives for each section its first slot relative to the loop start
        (``delta``) and its number of slots, as expressions.
        """
        emitted: list[Stmt] = []
        for section_plan, (delta, length) in zip(plan.sections, frames):
            stmt = self._section(section_plan, delta, length, body_annotations)
            if stmt is not None:
                emitted.append(stmt)
        if plan.drains:
            drains = [AsyncWaitQueue(queue, IntImm(count), Evaluate(IntImm(0)))
                      for queue, count in plan.drains]
            last = emitted.pop() if emitted else None
            emitted.append(_block(seq(last, *drains)))
        return emitted

    def _section(self, section_plan: SectionPlan, delta: PrimExpr, length: PrimExpr,
                 body_annotations: Mapping) -> Stmt | None:
        section = section_plan.section
        loop = self.loop
        is_unit = section.length == 1
        if is_unit:
            iterator: PrimExpr = fold_add(loop.min, delta)
        else:
            iterator = Var(loop.loop_var.name, loop.loop_var.dtype)
        waits: dict[int, list[Wait]] = {}
        for wait in section_plan.waits:
            waits.setdefault(wait.position, []).append(wait)
        runs = section_plan.runs
        stmts: list[Stmt] = []
        group: CommitGroup | None = None  # the commit group being filled
        members: list[Stmt] = []  # its statements so far
        group_predicate: PrimExpr | None = None  # its first statement's predicate
        predicates: dict[tuple[int, int], PrimExpr | None] = {}
        iterations: dict[int, PrimExpr] = {}
        for statement, instance, own_group in self.statements:
            pattern = runs[statement.position]
            if True not in pattern:
                continue
            # Statements of one stage share their iteration and, starting in the same
            # copy, their predicate.
            key = (statement.stage, pattern.index(True))
            predicate = predicates.get(key, _UNKNOWN)
            if predicate is _UNKNOWN:
                predicate = predicates[key] = self._predicate(
                    statement, key[1], iterator, delta, is_unit)
            iteration = iterations.get(statement.stage)
            if iteration is None:
                iteration = iterations[statement.stage] = self._iteration(
                    statement, iterator, delta, is_unit)
            body = instance(iteration)
            own = waits.get(statement.position)
            inside = alone = ()
            if own is not None:
                inside = [wait for wait in own if not wait.standalone]
                alone = [self._standalone_wait(wait, iterator) for wait in own
                         if wait.standalone]
            if own_group is not None:
                if group is not None and group is not own_group:
                    stmts.append(_commit(group, members, group_predicate))
                    group = None
                if group is None:
                    group, members, group_predicate = own_group, [], predicate
                members.extend(alone)
                members.append(self._wrap_waits(AsyncScope(_unwrap(body)), inside, iterator))
                if statement.position == own_group.members[-1]:
                    stmts.append(_commit(group, members, group_predicate))
                    group = None
                continue
            if group is not None:
                stmts.append(_commit(group, members, group_predicate))
                group = None
            stmts.extend(alone)
            stmts.append(self._sync_block(body, predicate, inside, iterator))
        if group is not None:
            stmts.append(_commit(group, members, group_predicate))
        if not stmts:
            return None
        if is_unit:
            if len(stmts) == 1 and isinstance(stmts[0], Block) and stmts[0].predicate is None:
                return stmts[0]
            return _block(seq(*stmts))
        kind = loop.kind if section.kind == BODY else ForKind.UNROLLED
        annotations = dict(body_annotations) if section.kind == BODY else {}
        return _block(For(iterator, loop.min, length, kind, seq(*stmts), loop.thread_tag,
                          annotations, loop.span))

    # Statement instances ----------------------------------------------------------------
    def _iteration(self, statement: PipelineStatement, iterator: PrimExpr, delta: PrimExpr,
                   is_unit: bool) -> PrimExpr:
        if is_unit:
            return fold_sub(iterator, statement.stage)
        return fold_add(fold_sub(iterator, statement.stage), delta)

    def _predicate(self, statement: PipelineStatement, first: int, iterator: PrimExpr,
                   delta: PrimExpr, is_unit: bool) -> PrimExpr | None:
        """Whether an instance runs: the iteration lies before the loop's end and, in an
        unrolled section, the copy is not before the ``first`` that runs it."""
        loop = self.loop
        if is_unit:
            skewed = fold_sub(iterator, statement.stage)
        else:
            skewed = fold_sub(fold_add(iterator, delta), statement.stage)
        upper = _fold_less(skewed, self.end)
        conditions = []
        if first > 0 and not is_unit and isinstance(delta, IntImm):
            conditions.append(LE(fold_add(loop.min, first), iterator))
        if not (isinstance(upper, IntImm) and upper.value == 1):
            conditions.append(upper)
        if not conditions:
            return None
        return conditions[0] if len(conditions) == 1 else And(conditions[0], conditions[1])

    def _sync_block(self, body: Stmt, predicate: PrimExpr | None, waits: Sequence[Wait],
                    iterator: PrimExpr) -> Block:
        """A synchronous statement's instance: its block (or a new one), predicated, with
        its waits around the body."""
        if isinstance(body, Block):
            if predicate is None and not waits:
                return body
            inner = self._wrap_waits(body.body, waits, iterator)
            if body.predicate is not None:
                predicate = body.predicate if predicate is None else And(predicate, body.predicate)
            return Block(body.name, inner, body.reads, body.writes, body.alloc_buffers,
                         predicate, body.annotations, body.span)
        return Block("", self._wrap_waits(body, waits, iterator), predicate=predicate)

    def _copy(self, iterator: PrimExpr) -> PrimExpr:
        """The unrolled copy index of ``iterator``."""
        return iterator if isinstance(iterator, IntImm) else fold_sub(iterator, self.loop.min)

    def _wrap_waits(self, body: Stmt, waits: Sequence[Wait], iterator: PrimExpr) -> Stmt:
        if not waits:
            return body
        for wait in sorted(waits, key=lambda item: item.queue, reverse=True):
            count = count_expression(wait.counts, self._copy(iterator))
            body = AsyncWaitQueue(wait.queue, count, body)
        return body

    def _standalone_wait(self, wait: Wait, iterator: PrimExpr) -> Block:
        """A wait of its own, run only by the copies that have something to wait for."""
        copy = self._copy(iterator)
        waiting = AsyncWaitQueue(wait.queue, count_expression(wait.counts, copy),
                                 Evaluate(IntImm(0)))
        return Block("", waiting, predicate=copies_condition(wait.counts, copy))


# Statement instances ---------------------------------------------------------------------
Build = Callable[[PrimExpr], Any]  # the loop variable's replacement -> a node's instance


class InstanceCompiler:
    """Turns each statement of a loop into a function from the loop variable's replacement
    to the statement's instance: every access to a multi-versioned buffer (buffer arguments
    of opaque calls included) gets the leading ring index ``loop_var % versions``, the loop
    variable is replaced, and integer arithmetic that the replacement made constant is
    folded (``15 % 2`` is ``1`` in a one-slot section).

    One walk per statement finds the subtrees that mention the loop variable or a ring
    buffer and makes a builder for each of them (None for every other subtree), so that
    an instance rebuilds only those and shares the rest as it is. The ring index of one
    version count is built once per replacement and shared by every access."""

    def __init__(self, loop_var: Var, remap: Mapping[Buffer, tuple[Buffer, int]]):
        self.loop_var = loop_var
        self.remap = remap
        self.ring_indices: dict[int, Build] = {}  # version count -> its ring index

    def statement(self, stmt: Stmt) -> Callable[[PrimExpr], Stmt]:
        build = self.compile(stmt)
        return (lambda _: stmt) if build is None else build

    def compile(self, node: Any) -> Build | None:
        """The builder of ``node``'s instances, None when every instance is ``node``."""
        kind = type(node)
        if kind in _LEAVES:  # half of all nodes: answered without a dispatch
            return _replacement if node is self.loop_var else None
        method = self._METHODS.get(kind)
        if method is None:
            raise TypeError(f"no instances of {kind.__name__}")
        return method(self, node)

    def _tuple(self, nodes: Sequence[Any]) -> Callable[[PrimExpr], tuple] | None:
        """The builder of a tuple of nodes (indices, regions, statements): only the
        elements that change are rebuilt."""
        compile = self.compile
        changed = []
        for place, node in enumerate(nodes):
            build = compile(node)
            if build is not None:
                changed.append((place, build))
        if not changed:
            return None
        if len(changed) == len(nodes):
            builds = [build for _, build in changed]
            return lambda r: tuple([build(r) for build in builds])
        kept = list(nodes)

        def build_tuple(r: PrimExpr) -> tuple:
            items = kept.copy()
            for place, build in changed:
                items[place] = build(r)
            return tuple(items)
        return build_tuple

    def _ring_index(self, versions: int) -> Build:
        """The builder of ``loop_var % versions``, one for every access."""
        index = self.ring_indices.get(versions)
        if index is None:
            index = self.ring_indices[versions] = _RingIndex(
                IntImm(versions, self.loop_var.dtype))
        return index

    # Expressions ------------------------------------------------------------------------
    def _binary(self, node: BinaryOp) -> Build | None:
        a, b = self.compile(node.a), self.compile(node.b)
        kind, span = type(node), node.span
        if b is None:
            if a is None:
                return None
            right = node.b
            return lambda r: _fold(kind, a(r), right, span)
        if a is None:
            left = node.a
            return lambda r: _fold(kind, left, b(r), span)
        return lambda r: _fold(kind, a(r), b(r), span)

    def _not(self, node: Not) -> Build | None:
        a = self.compile(node.a)
        span = node.span
        return None if a is None else lambda r: Not(a(r), span)

    def _select(self, node: Select) -> Build | None:
        parts = self._tuple((node.condition, node.true_value, node.false_value))
        span = node.span
        return None if parts is None else lambda r: Select(*parts(r), span)

    def _cast(self, node: Cast) -> Build | None:
        value = self.compile(node.value)
        dtype, span = node.dtype, node.span
        return None if value is None else lambda r: Cast(dtype, value(r), span)

    def _buffer_load(self, node: BufferLoad) -> Build | None:
        indices = self._tuple(node.indices)
        ring = self.remap.get(node.buffer)
        span = node.span
        if ring is None:
            if indices is None:
                return None
            buffer = node.buffer
            return lambda r: BufferLoad(buffer, indices(r), span)
        buffer, index = ring[0], self._ring_index(ring[1])
        if indices is None:
            kept = node.indices
            return lambda r: BufferLoad(buffer, (index(r),) + kept, span)
        return lambda r: BufferLoad(buffer, (index(r),) + indices(r), span)

    def _call(self, node: Call) -> Build | None:
        """An opaque call; a ring buffer it takes whole becomes the region of the whole
        buffer, which then gets the ring index like any other region."""
        dtype, op, span = node.dtype, node.op, node.span
        args = self._tuple([_whole(arg) if isinstance(arg, Buffer) and arg in self.remap
                            else arg for arg in node.args])
        return None if args is None else lambda r: Call(dtype, op, args(r), span)

    def _range(self, node: Range) -> Build | None:
        low, extent = self.compile(node.min), self.compile(node.extent)
        if low is None and extent is None:
            return None
        old_low, old_extent, span = node.min, node.extent, node.span
        return lambda r: Range(old_low if low is None else low(r),
                               old_extent if extent is None else extent(r), span)

    def _buffer_region(self, node: BufferRegion) -> Build | None:
        region = self._tuple(node.region)
        ring = self.remap.get(node.buffer)
        span = node.span
        if ring is None:
            if region is None:
                return None
            buffer = node.buffer
            return lambda r: BufferRegion(buffer, region(r), span)
        buffer, index, one = ring[0], self._ring_index(ring[1]), IntImm(1)
        if region is None:
            kept = node.region
            return lambda r: BufferRegion(buffer, (Range(index(r), one),) + kept, span)
        return lambda r: BufferRegion(buffer, (Range(index(r), one),) + region(r), span)

    # Statements -------------------------------------------------------------------------
    def _buffer_store(self, node: BufferStore) -> Build | None:
        value, indices = self.compile(node.value), self._tuple(node.indices)
        ring = self.remap.get(node.buffer)
        old_value, span = node.value, node.span
        if ring is None:
            if value is None and indices is None:
                return None
            buffer, kept = node.buffer, node.indices
            return lambda r: BufferStore(buffer, old_value if value is None else value(r),
                                         kept if indices is None else indices(r), span)
        buffer, index, kept = ring[0], self._ring_index(ring[1]), node.indices
        return lambda r: BufferStore(buffer, old_value if value is None else value(r),
                                     (index(r),) + (kept if indices is None else indices(r)),
                                     span)

    def _evaluate(self, node: Evaluate) -> Build | None:
        value, span = self.compile(node.value), node.span
        return None if value is None else lambda r: Evaluate(value(r), span)

    def _seq_stmt(self, node: SeqStmt) -> Build | None:
        stmts, span = self._tuple(node.stmts), node.span
        return None if stmts is None else lambda r: SeqStmt(stmts(r), span)

    def _if_then_else(self, node: IfThenElse) -> Build | None:
        condition, then_case = self.compile(node.condition), self.compile(node.then_case)
        else_case = None if node.else_case is None else self.compile(node.else_case)
        if condition is None and then_case is None and else_case is None:
            return None
        return lambda r: IfThenElse(
            node.condition if condition is None else condition(r),
            node.then_case if then_case is None else then_case(r),
            node.else_case if else_case is None else else_case(r), node.span)

    def _for(self, node: For) -> Build | None:
        low, extent, body = (self.compile(node.min), self.compile(node.extent),
                             self.compile(node.body))
        if low is None and extent is None and body is None:
            return None
        return lambda r: For(node.loop_var, node.min if low is None else low(r),
                             node.extent if extent is None else extent(r), node.kind,
                             node.body if body is None else body(r), node.thread_tag,
                             node.annotations, node.span)

    def _block(self, node: Block) -> Build | None:
        reads, writes = self._tuple(node.reads), self._tuple(node.writes)
        predicate = None if node.predicate is None else self.compile(node.predicate)
        body = self.compile(node.body)
        if reads is None and writes is None and predicate is None and body is None:
            return None
        return lambda r: Block(
            node.name, node.body if body is None else body(r),
            node.reads if reads is None else reads(r),
            node.writes if writes is None else writes(r), node.alloc_buffers,
            node.predicate if predicate is None else predicate(r), node.annotations,
            node.span)

    def _attr_stmt(self, node: AttrStmt) -> Build | None:
        value = self.compile(node.value) if isinstance(node.value, PrimExpr) else None
        body = self.compile(node.body)
        if value is None and body is None:
            return None
        return lambda r: AttrStmt(node.node, node.key,
                                  node.value if value is None else value(r),
                                  node.body if body is None else body(r), node.span)

    def _async_scope(self, node: AsyncScope) -> Build | None:
        body, span = self.compile(node.body), node.span
        return None if body is None else lambda r: AsyncScope(body(r), span)

    def _async_commit_queue(self, node: AsyncCommitQueue) -> Build | None:
        body, queue, span = self.compile(node.body), node.queue, node.span
        return None if body is None else lambda r: AsyncCommitQueue(queue, body(r), span)

    def _async_wait_queue(self, node: AsyncWaitQueue) -> Build | None:
        in_flight, body = self.compile(node.in_flight), self.compile(node.body)
        if in_flight is None and body is None:
            return None
        return lambda r: AsyncWaitQueue(
            node.queue, node.in_flight if in_flight is None else in_flight(r),
            node.body if body is None else body(r), node.span)

    _METHODS: dict[type, Callable[["InstanceCompiler", Any], Build | None]] = {
        Not: _not, Select: _select, Cast: _cast, BufferLoad: _buffer_load, Call: _call,
        Range: _range, BufferRegion: _buffer_region, BufferStore: _buffer_store,
        Evaluate: _evaluate, SeqStmt: _seq_stmt, IfThenElse: _if_then_else, For: _for,
        Block: _block, AttrStmt: _attr_stmt, AsyncScope: _async_scope,
        AsyncCommitQueue: _async_commit_queue, AsyncWaitQueue: _async_wait_queue,
        **dict.fromkeys(BINARY_OPS, _binary),
    }


_LEAVES = frozenset((Var, IntImm, FloatImm, StringImm, Buffer))


def _whole(buffer: Buffer) -> BufferRegion:
    return BufferRegion(buffer, tuple(Range(IntImm(0), extent) for extent in buffer.shape))


def _replacement(replacement: PrimExpr) -> PrimExpr:
    """The instance of the loop variable."""
    return replacement


class _RingIndex:
    """The ring index ``replacement % versions``, built once for consecutive instances
    with the same replacement, which every access of one statement (and the statements
    of one stage) share."""

    def __init__(self, versions: IntImm):
        self.versions = versions
        self.replacement: PrimExpr | None = None
        self.index: PrimExpr | None = None

    def __call__(self, replacement: PrimExpr) -> PrimExpr:
        if replacement is not self.replacement:
            self.replacement = replacement
            self.index = _fold(FloorMod, replacement, self.versions, None)
        return self.index


_FOLD = {Add: operator.add, Sub: operator.sub, Mul: operator.mul,
         FloorDiv: operator.floordiv, FloorMod: operator.mod}


def _fold(kind: type[BinaryOp], a: PrimExpr, b: PrimExpr, span) -> PrimExpr:
    """``kind(a, b)``, folded as TVM's operators do where the replacement made it
    constant: integer arithmetic of two constants, and ``0 + b``."""
    if isinstance(a, IntImm):
        if kind is Add and a.value == 0 and a.dtype == b.dtype:
            return b
        fold = _FOLD.get(kind)
        if fold is not None and isinstance(b, IntImm) and a.dtype == b.dtype \
                and a.dtype != "bool" and not (kind in (FloorDiv, FloorMod) and b.value == 0):
            return IntImm(fold(a.value, b.value), a.dtype)
    return kind(a, b, span)


def _commit(group: CommitGroup, members: Sequence[Stmt], predicate: PrimExpr | None
            ) -> Block:
    """The block committing ``members`` (statements of ``group``) to its queue."""
    return Block("", AsyncCommitQueue(group.queue, seq(*members)), predicate=predicate)


def _block(body: Stmt) -> Block:
    """An unnamed block around ``body`` (its regions are those of its statements)."""
    return Block("", body)


def _unwrap(body: Stmt) -> Stmt:
    """The statement an asynchronous block stands for (its body, when the block adds
    nothing but declared regions)."""
    if isinstance(body, Block) and not body.alloc_buffers and body.predicate is None \
            and not body.annotations:
        return body.body
    return body


def count_expression(counts: Sequence[int | None], copy: PrimExpr) -> PrimExpr:
    """One expression of the unrolled copy index giving each copy's count (None: that copy
    does not run the wait): a constant, a line ``a + b * copy``, a line clamped from below
    by a constant, or else a choice per copy."""
    known = [(index, value) for index, value in enumerate(counts) if value is not None]
    values = {value for _, value in known}
    if len(values) == 1:
        return IntImm(values.pop())
    line = _line(known)
    if line is not None:
        return _line_expression(*line, copy)
    floor = min(values)
    above = [(index, value) for index, value in known if value > floor]
    lines = [_line(above)] if len(above) > 1 else [
        (above[0][1] + above[0][0], -1), (above[0][1] - above[0][0], 1)]
    for line in lines:
        if line is not None and all(line[0] + line[1] * index <= floor
                                    for index, value in known if value == floor):
            return Max(_line_expression(*line, copy), IntImm(floor))
    result: PrimExpr = IntImm(known[-1][1])
    for (index, value), (next_index, _) in reversed(list(zip(known, known[1:]))):
        if not (isinstance(result, IntImm) and result.value == value):
            result = Select(LT(copy, IntImm(next_index, copy.dtype)), IntImm(value), result)
    return result


def copies_condition(counts: Sequence[int | None], copy: PrimExpr) -> PrimExpr | None:
    """A condition on the copy index that holds exactly for the copies whose count is
    not None (None when that is every copy)."""
    chosen = [index for index, value in enumerate(counts) if value is not None]
    if len(chosen) == len(counts):
        return None
    if chosen == list(range(chosen[0], chosen[-1] + 1)):
        parts = []
        if chosen[0] > 0:
            parts.append(LE(IntImm(chosen[0], copy.dtype), copy))
        if chosen[-1] < len(counts) - 1:
            parts.append(LE(copy, IntImm(chosen[-1], copy.dtype)))
        return parts[0] if len(parts) == 1 else And(parts[0], parts[1])
    condition: PrimExpr = EQ(copy, IntImm(chosen[0], copy.dtype))
    for index in chosen[1:]:
        condition = Or(condition, EQ(copy, IntImm(index, copy.dtype)))
    return condition


def _line(points: Sequence[tuple[int, int]]) -> tuple[int, int] | None:
    if len(points) < 2:
        return None
    (first_index, first_value), (second_index, second_value) = points[0], points[1]
    slope, remainder = divmod(second_value - first_value, second_index - first_index)
    if remainder:
        return None
    intercept = first_value - slope * first_index
    if all(intercept + slope * index == value for index, value in points):
        return intercept, slope
    return None


def _line_expression(intercept: int, slope: int, copy: PrimExpr) -> PrimExpr:
    if slope == 0:
        return IntImm(intercept)
    scaled = copy if abs(slope) == 1 else Mul(copy, IntImm(abs(slope), copy.dtype))
    if slope < 0:
        return Sub(IntImm(intercept, copy.dtype), scaled)
    return fold_add(scaled, intercept)
