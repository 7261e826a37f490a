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
from dataclasses import fields
from typing import Any, Callable, Mapping, Sequence

from ...ir import (
    BINARY_OPS, EQ, LE, LT, Add, And, AsyncCommitQueue, AsyncScope, AsyncWaitQueue, AttrStmt,
    BinaryOp, Block, Buffer, BufferLoad, BufferRegion, BufferStore, Call, Cast, Evaluate,
    FloatImm, FloorDiv, FloorMod, For, ForKind, IfThenElse, IntImm, Max, Mul, Not, Or, PrimExpr,
    Range, Select, SeqStmt, Stmt, StringImm, Sub, Var, seq,
)
from .regions import MovingRegions, RegionTable, declared, inner_loops, relaxed
from .schedule import PipelineStatement, Schedule
from .sync import BODY, SectionPlan, SyncPlan, Wait


# Folding as TVM's operators do, so that the output keeps the seeds' shape ----------------
def fold_add(left: PrimExpr | int, right: PrimExpr | int) -> PrimExpr:
    left, right = _expr(left), _expr(right)
    if isinstance(left, IntImm) and isinstance(right, IntImm):
        return IntImm(left.value + right.value, left.dtype)
    if isinstance(right, IntImm) and right.value == 0:
        return left
    if isinstance(left, IntImm) and left.value == 0:
        return right
    return Add(left, right)


def fold_sub(left: PrimExpr | int, right: PrimExpr | int) -> PrimExpr:
    left, right = _expr(left), _expr(right)
    if isinstance(left, IntImm) and isinstance(right, IntImm):
        return IntImm(left.value - right.value, left.dtype)
    if isinstance(right, IntImm) and right.value == 0:
        return left
    return Sub(left, right)


def _expr(value: PrimExpr | int) -> PrimExpr:
    return IntImm(value) if isinstance(value, int) else value


def _fold_less(left: PrimExpr, right: PrimExpr) -> PrimExpr:
    if isinstance(left, IntImm) and isinstance(right, IntImm):
        return IntImm(int(left.value < right.value), "bool")
    return LT(left, right)


# Ring buffers ---------------------------------------------------------------------------
def versioned_buffers(schedule: Schedule) -> dict[Buffer, tuple[Buffer, int]]:
    """Each buffer with more than one version -> (its ring buffer, the version count)."""
    remap = {}
    for buffer, count in schedule.versions.items():
        if count > 1:
            ring = Buffer(buffer.name, (IntImm(count),) + tuple(buffer.shape), buffer.dtype,
                          buffer.scope, buffer.span)
            remap[buffer] = (ring, count)
    return remap


# Sections -------------------------------------------------------------------------------
class Emitter:
    """Builds the IR of one pipelined loop from its schedule and synchronization."""

    def __init__(self, schedule: Schedule, extent: PrimExpr):
        self.schedule = schedule
        self.loop = schedule.loop
        self.extent = extent
        self.remap = versioned_buffers(schedule)
        loop_var = self.loop.loop_var
        rings = {buffer: (ring, FloorMod(loop_var, IntImm(count, loop_var.dtype)))
                 for buffer, (ring, count) in self.remap.items()}
        self.templates = [_Template(statement.stmt, loop_var, rings)
                          for statement in schedule.statements]
        # Each statement's own regions (reads, writes), per instance and in terms of the
        # loop variable.
        self.region_instances = []
        for statement, template in zip(schedule.statements, self.templates):
            loops, allocated = inner_loops(statement.stmt)
            own = (relaxed(statement.reads, loops, allocated),
                   relaxed(statement.writes, loops, allocated))
            self.region_instances.append(template.part(own))
        self.own_regions = []
        for instance in self.region_instances:
            reads, writes = instance(loop_var)
            self.own_regions.append((MovingRegions(reads, loop_var),
                                     MovingRegions(writes, loop_var)))

    def with_extent(self, extent: PrimExpr) -> "Emitter":
        """This emitter for another trip count: the same ring buffers and statements, so
        that every section of one loop allocates and uses the same buffers."""
        other = copy.copy(self)
        other.extent = extent
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
            reads, writes = declared(last)
            emitted.append(Block("", seq(last, *drains), reads.regions(), writes.regions()))
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
        stmts: list[Stmt] = []
        pending_group: list[tuple[PipelineStatement, Stmt, PrimExpr | None]] = []

        def flush() -> None:
            if not pending_group:
                return
            statement, _, predicate = pending_group[0]
            group = self.schedule.groups[self.schedule.group_of[statement.position]]
            body = AsyncCommitQueue(group.queue, seq(*(body for _, body, _ in pending_group)))
            instances = [self._instance_regions(member, iterator, delta, is_unit)
                         for member, _, _ in pending_group]
            stmts.append(Block("", body, tuple(region for reads, _ in instances
                                               for region in reads),
                               tuple(region for _, writes in instances for region in writes),
                               predicate=predicate))
            pending_group.clear()

        reads, writes = RegionTable(), RegionTable()
        for statement in self.schedule.statements:
            pattern = section_plan.runs[statement.position]
            if not any(pattern):
                continue
            self._relax_regions(statement, pattern, delta, length, reads, writes)
            predicate = self._predicate(statement, pattern, iterator, delta, is_unit)
            body = self._instance(statement, iterator, delta, is_unit)
            group_index = self.schedule.group_of[statement.position]
            own = waits.get(statement.position, ())
            inside = [wait for wait in own if not wait.standalone]
            alone = [self._standalone_wait(wait, iterator) for wait in own if wait.standalone]
            if statement.is_async:
                inner = self._wrap_waits(AsyncScope(_unwrap(body)), inside, iterator)
                if pending_group and self.schedule.group_of[pending_group[0][0].position] \
                        != group_index:
                    flush()
                pending_group.append((statement, seq(*alone, inner), predicate))
                if statement.position == self.schedule.groups[group_index].members[-1]:
                    flush()
                continue
            flush()
            stmts.extend(alone)
            stmts.append(self._sync_block(statement, body, predicate, inside, iterator, delta,
                                          is_unit))
        flush()
        if not stmts:
            return None
        if is_unit:
            if len(stmts) == 1 and isinstance(stmts[0], Block) and stmts[0].predicate is None:
                return stmts[0]
            return Block("", seq(*stmts), reads.regions(), writes.regions())
        kind = loop.kind if section.kind == BODY else ForKind.UNROLLED
        annotations = dict(body_annotations) if section.kind == BODY else {}
        return Block("", For(iterator, loop.min, length, kind, seq(*stmts), loop.thread_tag,
                             annotations, loop.span), reads.regions(), writes.regions())

    # Statement instances ----------------------------------------------------------------
    def _iteration(self, statement: PipelineStatement, iterator: PrimExpr, delta: PrimExpr,
                   is_unit: bool) -> PrimExpr:
        if is_unit:
            return fold_sub(iterator, statement.stage)
        return fold_add(fold_sub(iterator, statement.stage), delta)

    def _instance(self, statement: PipelineStatement, iterator: PrimExpr, delta: PrimExpr,
                  is_unit: bool) -> Stmt:
        iteration = self._iteration(statement, iterator, delta, is_unit)
        return self.templates[statement.position].apply(iteration)

    def _instance_regions(self, statement: PipelineStatement, iterator: PrimExpr,
                          delta: PrimExpr, is_unit: bool
                          ) -> tuple[tuple[BufferRegion, ...], tuple[BufferRegion, ...]]:
        """The statement's own regions at the iteration one instance works on."""
        iteration = self._iteration(statement, iterator, delta, is_unit)
        return self.region_instances[statement.position](iteration)

    def _relax_regions(self, statement: PipelineStatement, pattern: Sequence[bool],
                       delta: PrimExpr, length: PrimExpr, reads: RegionTable,
                       writes: RegionTable) -> None:
        """Adds the statement's own regions over the iterations it runs in a section
        (the copies ``pattern`` marks, or every slot of the body) to the tables."""
        low = self.loop.min
        iterations = None
        if isinstance(low, IntImm) and isinstance(delta, IntImm) \
                and isinstance(length, IntImm):
            if len(pattern) == length.value:
                first = pattern.index(True)
                last = len(pattern) - 1 - pattern[::-1].index(True)
            else:  # the body, replayed shortened: every slot runs every statement
                first, last = 0, length.value - 1
            offset = low.value + delta.value - statement.stage
            iterations = (first + offset, last + offset)
        ranges = {self.loop.loop_var: iterations}
        own_reads, own_writes = self.own_regions[statement.position]
        own_reads.add_to(reads, ranges)
        own_writes.add_to(writes, ranges)

    def _predicate(self, statement: PipelineStatement, pattern: Sequence[bool],
                   iterator: PrimExpr, delta: PrimExpr, is_unit: bool) -> PrimExpr | None:
        loop = self.loop
        if is_unit:
            skewed = fold_sub(iterator, statement.stage)
        else:
            skewed = fold_sub(fold_add(iterator, delta), statement.stage)
        upper = _fold_less(skewed, fold_add(loop.min, self.extent))
        conditions = []
        if not all(pattern) and not is_unit and isinstance(delta, IntImm):
            first = next(copy for copy, running in enumerate(pattern) if running)
            if first > 0:
                conditions.append(LE(fold_add(loop.min, first), iterator))
        if not (isinstance(upper, IntImm) and upper.value == 1):
            conditions.append(upper)
        if not conditions:
            return None
        return conditions[0] if len(conditions) == 1 else And(conditions[0], conditions[1])

    def _sync_block(self, statement: PipelineStatement, body: Stmt,
                    predicate: PrimExpr | None, waits: Sequence[Wait], iterator: PrimExpr,
                    delta: PrimExpr, is_unit: bool) -> Block:
        """A synchronous statement's instance: its block (or a new one declaring the
        instance's regions), predicated, with its waits around the body."""
        if isinstance(body, Block):
            inner = self._wrap_waits(body.body, waits, iterator)
            if body.predicate is not None:
                predicate = body.predicate if predicate is None else And(predicate, body.predicate)
            return Block(body.name, inner, body.reads, body.writes, body.alloc_buffers,
                         predicate, body.annotations, body.span)
        reads, writes = self._instance_regions(statement, iterator, delta, is_unit)
        return Block("", self._wrap_waits(body, waits, iterator), reads, writes,
                     predicate=predicate)

    def _copy(self, iterator: PrimExpr) -> PrimExpr:
        """The unrolled copy index of ``iterator``."""
        return iterator if isinstance(iterator, IntImm) else fold_sub(iterator, self.loop.min)

    def _wrap_waits(self, body: Stmt, waits: Sequence[Wait], iterator: PrimExpr) -> Stmt:
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


_FOLD = {Add: lambda a, b: a + b, Sub: lambda a, b: a - b, Mul: lambda a, b: a * b,
         FloorDiv: lambda a, b: a // b, FloorMod: lambda a, b: a % b}

Builder = Callable[[PrimExpr], Any]


class _Template:
    """One statement with the loop variable as a hole, instantiated again and again.

    Every access to a multi-versioned buffer gets the leading ring index
    ``loop_var % versions`` (also a buffer argument of an opaque call). The statement is
    compiled once into builders along the paths from the root to the loop variable's
    occurrences, so that an instance rebuilds only those paths and shares every other
    subtree; integer arithmetic that the replacement makes constant is folded (``15 %
    2`` is ``1`` in a one-slot section). What is rebuilt is what the mutator
    (:class:`~tilepipe.ir.IRMutator`) visits.
    """

    def __init__(self, stmt: Stmt, loop_var: Var,
                 rings: Mapping[Buffer, tuple[Buffer, PrimExpr]]):
        self.stmt = stmt
        self.loop_var = loop_var
        self.rings = rings
        # id of a compiled expression -> (the expression, its builder)
        self.compiled: dict[int, tuple[PrimExpr, Builder | None]] = {}
        self.build = self._compile(stmt)

    def apply(self, replacement: PrimExpr) -> Stmt:
        return self.stmt if self.build is None else self.build(replacement)

    def part(self, node: Any) -> Builder:
        """The instance of ``node``, made of this statement's expressions (the regions
        of its accesses), as a function of the replacement."""
        builder = self._compile(node)
        return (lambda value: node) if builder is None else builder

    def _compile(self, node: Any) -> Builder | None:
        """The builder of ``node``'s instance, or None when the instance is ``node``."""
        if isinstance(node, PrimExpr):
            known = self.compiled.get(id(node))
            if known is not None and known[0] is node:
                return known[1]
        method = self._methods.get(type(node))
        if method is not None:
            builder = method(self, node)
        elif isinstance(node, BinaryOp):
            builder = self._binary(node)
        elif isinstance(node, (IntImm, FloatImm, StringImm, Buffer)):
            return None
        elif isinstance(node, (Not, Select, Cast, Evaluate, IfThenElse, AttrStmt)):
            builder = self._fields(node)
        else:
            raise TypeError(f"cannot instantiate {type(node).__name__}")
        if isinstance(node, PrimExpr):
            self.compiled[id(node)] = (node, builder)
        return builder

    def _var(self, node: Var) -> Builder | None:
        return _identity if node is self.loop_var else None

    def _leaf(self, node: Any) -> None:
        return None

    def _binary(self, node: BinaryOp) -> Builder | None:
        first, second = node.a, node.b
        left, right = self._compile(first), self._compile(second)
        if left is None and right is None:
            return None
        kind, fold, span = type(node), _FOLD.get(type(node)), node.span
        divides = kind is FloorDiv or kind is FloorMod

        def build(value: PrimExpr) -> PrimExpr:
            a = first if left is None else left(value)
            b = second if right is None else right(value)
            if type(a) is IntImm:
                if kind is Add and a.value == 0 and a.dtype == b.dtype:
                    return b
                if fold is not None and type(b) is IntImm and a.dtype == b.dtype \
                        and a.dtype != "bool" and not (divides and b.value == 0):
                    return IntImm(fold(a.value, b.value), a.dtype)
            return kind(a, b, span)
        return build

    def _indices(self, buffer: Buffer, indices: Sequence[PrimExpr]
                 ) -> tuple[Buffer, Callable[[PrimExpr], tuple] | None]:
        """The buffer an access uses and the builder of its indices, with the ring
        index in front for a multi-versioned buffer."""
        ring = self.rings.get(buffer)
        if ring is not None:
            buffer, index = ring
            indices = (index,) + tuple(indices)
        return buffer, self._tuple(indices)

    def _load(self, node: BufferLoad) -> Builder | None:
        buffer, indices = self._indices(node.buffer, node.indices)
        if indices is None:
            return None
        span = node.span
        return lambda value: BufferLoad(buffer, indices(value), span)

    def _store(self, node: BufferStore) -> Builder | None:
        buffer, indices = self._indices(node.buffer, node.indices)
        stored = self._compile(node.value)
        if stored is None and indices is None:
            return None
        old_value, old_indices, span = node.value, node.indices, node.span
        return lambda value: BufferStore(
            buffer, old_value if stored is None else stored(value),
            old_indices if indices is None else indices(value), span)

    def _region(self, node: BufferRegion) -> Builder | None:
        ring = self.rings.get(node.buffer)
        if ring is None:
            buffer, ranges = node.buffer, self._tuple(node.region)
            if ranges is None:
                return None
        else:
            buffer, index = ring
            ranges = self._tuple((Range(index, IntImm(1)),) + node.region)
        span = node.span
        return lambda value: BufferRegion(buffer, ranges(value), span)

    def _call(self, node: Call) -> Builder | None:
        args = []
        for arg in node.args:
            ring = self.rings.get(arg) if isinstance(arg, Buffer) else None
            if ring is not None:
                arg = BufferRegion(arg, tuple(Range(IntImm(0), extent) for extent in arg.shape))
            args.append(arg)
        arguments = self._tuple(args)
        if arguments is None:
            return None
        dtype, op, span = node.dtype, node.op, node.span
        return lambda value: Call(dtype, op, arguments(value), span)

    def _range(self, node: Range) -> Builder | None:
        first, extent = node.min, node.extent
        low, length = self._compile(first), self._compile(extent)
        if low is None and length is None:
            return None
        span = node.span
        return lambda value: Range(first if low is None else low(value),
                                   extent if length is None else length(value), span)

    def _for(self, node: For) -> Builder | None:
        first, extent, body = node.min, node.extent, node.body
        low, length, inner = self._compile(first), self._compile(extent), self._compile(body)
        if low is None and length is None and inner is None:
            return None
        return lambda value: For(
            node.loop_var, first if low is None else low(value),
            extent if length is None else length(value), node.kind,
            body if inner is None else inner(value), node.thread_tag, node.annotations,
            node.span)

    def _block(self, node: Block) -> Builder | None:
        reads, writes = self._tuple(node.reads), self._tuple(node.writes)
        predicate = None if node.predicate is None else self._compile(node.predicate)
        body = self._compile(node.body)
        if reads is None and writes is None and predicate is None and body is None:
            return None
        return lambda value: Block(
            node.name, node.body if body is None else body(value),
            node.reads if reads is None else reads(value),
            node.writes if writes is None else writes(value), node.alloc_buffers,
            node.predicate if predicate is None else predicate(value), node.annotations,
            node.span)

    def _async(self, node: AsyncScope) -> Builder | None:
        body = self._compile(node.body)
        if body is None:
            return None
        return lambda value: AsyncScope(body(value), node.span)

    def _commit(self, node: AsyncCommitQueue) -> Builder | None:
        body = self._compile(node.body)
        if body is None:
            return None
        return lambda value: AsyncCommitQueue(node.queue, body(value), node.span)

    def _wait(self, node: AsyncWaitQueue) -> Builder | None:
        in_flight, body = self._compile(node.in_flight), self._compile(node.body)
        if in_flight is None and body is None:
            return None
        return lambda value: AsyncWaitQueue(
            node.queue, node.in_flight if in_flight is None else in_flight(value),
            node.body if body is None else body(value), node.span)

    def _seq(self, node: SeqStmt) -> Builder | None:
        stmts = self._tuple(node.stmts)
        if stmts is None:
            return None
        span = node.span
        return lambda value: SeqStmt(stmts(value), span)

    def _tuple(self, nodes: Sequence[Any]) -> Callable[[PrimExpr], tuple] | None:
        builders = [self._compile(node) for node in nodes]
        if all(builder is None for builder in builders):
            return None
        pairs = tuple(zip(nodes, builders))
        return lambda value: tuple([node if builder is None else builder(value)
                                    for node, builder in pairs])

    def _fields(self, node: Any) -> Builder | None:
        """The less frequent nodes, rebuilt field by field (the children the mutator
        visits: expressions, statements, ranges, regions and tuples of those)."""
        parts = []
        for field_ in fields(node):
            child = getattr(node, field_.name)
            if field_.name in ("span", "dtype", "op", "queue", "key", "node"):
                builder = None
            elif isinstance(child, tuple):
                builder = self._tuple(child)
            elif isinstance(child, (PrimExpr, Stmt, Range, BufferRegion)):
                builder = self._compile(child)
            else:
                builder = None
            parts.append((child, builder))
        if all(builder is None for _, builder in parts):
            return None
        kind = type(node)
        return lambda value: kind(*[child if builder is None else builder(value)
                                    for child, builder in parts])

    _methods: dict[type, Callable[["_Template", Any], Builder | None]] = {
        Var: _var, IntImm: _leaf, FloatImm: _leaf, StringImm: _leaf, Buffer: _leaf,
        BufferLoad: _load, BufferStore: _store, BufferRegion: _region, Call: _call,
        For: _for, Block: _block, SeqStmt: _seq, Range: _range, tuple: _tuple,
        AsyncScope: _async, AsyncCommitQueue: _commit, AsyncWaitQueue: _wait,
    }
    _methods.update(dict.fromkeys(BINARY_OPS, _binary))


def _identity(value: PrimExpr) -> PrimExpr:
    return value


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
