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

from typing import Any, Mapping, Sequence

from ...ir import (
    LE, LT, Add, And, AsyncCommitQueue, AsyncScope, AsyncWaitQueue, Block, Buffer, BufferLoad,
    BufferRegion, BufferStore, Call, EQ, Evaluate, FloorDiv, FloorMod, For, ForKind, IntImm,
    IRMutator, Max, Mul, Or, PrimExpr, Range, Select, Stmt, Sub, Var, seq,
)
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
class RingIndex(IRMutator):
    """Gives every access to a multi-versioned buffer the leading index
    ``loop_var % versions``, including buffer arguments of opaque calls. Accesses of one
    version count share one index expression, and what holds no such access is kept."""

    def __init__(self, loop_var: Var, remap: Mapping[Buffer, tuple[Buffer, int]]):
        self.loop_var = loop_var
        self.remap = remap
        self.indices: dict[int, PrimExpr] = {}  # version count -> its ring index

    def _index(self, buffer: Buffer) -> tuple[Buffer, PrimExpr] | None:
        entry = self.remap.get(buffer)
        if entry is None:
            return None
        new, versions = entry
        index = self.indices.get(versions)
        if index is None:
            index = FloorMod(self.loop_var, IntImm(versions, self.loop_var.dtype))
            self.indices[versions] = index
        return new, index

    def visit_buffer_load(self, node: BufferLoad) -> PrimExpr:
        ring = self._index(node.buffer)
        if ring is None:
            return super().visit_buffer_load(node)
        indices = tuple(self.visit(index) for index in node.indices)
        return BufferLoad(ring[0], (ring[1],) + indices, node.span)

    def visit_buffer_store(self, node: BufferStore) -> Stmt:
        ring = self._index(node.buffer)
        if ring is None:
            return super().visit_buffer_store(node)
        value = self.visit(node.value)
        indices = tuple(self.visit(index) for index in node.indices)
        return BufferStore(ring[0], value, (ring[1],) + indices, node.span)

    def visit_buffer_region(self, node: BufferRegion) -> BufferRegion:
        ring = self._index(node.buffer)
        if ring is None:
            return super().visit_buffer_region(node)
        region = tuple(self.visit(range_) for range_ in node.region)
        return BufferRegion(ring[0], (Range(ring[1], IntImm(1)),) + region, node.span)

    def visit_call(self, node: Call) -> PrimExpr:
        if not any(isinstance(arg, Buffer) and arg in self.remap for arg in node.args):
            return super().visit_call(node)
        args = []
        for arg in node.args:
            ring = self._index(arg) if isinstance(arg, Buffer) else None
            if ring is not None:
                args.append(BufferRegion(ring[0], (Range(ring[1], IntImm(1)),) + tuple(
                    Range(IntImm(0), extent) for extent in arg.shape)))
            elif isinstance(arg, Buffer):
                args.append(arg)
            else:
                args.append(self.visit(arg))
        return Call(node.dtype, node.op, tuple(args), node.span)


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
        ring = RingIndex(self.loop.loop_var, self.remap)
        self.bodies = [ring.visit(statement.stmt) for statement in schedule.statements]
        self.substituters = [_LoopVarSubstituter(body, self.loop.loop_var)
                             for body in self.bodies]

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
        stmts: list[Stmt] = []
        pending_group: list[tuple[PipelineStatement, Stmt, PrimExpr | None]] = []
        predicates: dict[tuple[int, Sequence[bool]], PrimExpr | None] = {}
        iterations: dict[int, PrimExpr] = {}

        def flush() -> None:
            if not pending_group:
                return
            statement, _, predicate = pending_group[0]
            group = self.schedule.groups[self.schedule.group_of[statement.position]]
            body = AsyncCommitQueue(group.queue, seq(*(body for _, body, _ in pending_group)))
            stmts.append(Block("", body, predicate=predicate))
            pending_group.clear()

        for statement in self.schedule.statements:
            pattern = section_plan.runs[statement.position]
            if not any(pattern):
                continue
            # Statements of one stage share their iteration and, running alike, predicate.
            key = (statement.stage, pattern)
            if key in predicates:
                predicate = predicates[key]
            else:
                predicate = predicates[key] = self._predicate(
                    statement, pattern, iterator, delta, is_unit)
            iteration = iterations.get(statement.stage)
            if iteration is None:
                iteration = iterations[statement.stage] = self._iteration(
                    statement, iterator, delta, is_unit)
            body = self.substituters[statement.position].apply(iteration)
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
            stmts.append(self._sync_block(body, predicate, inside, iterator))
        flush()
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

    def _sync_block(self, body: Stmt, predicate: PrimExpr | None, waits: Sequence[Wait],
                    iterator: PrimExpr) -> Block:
        """A synchronous statement's instance: its block (or a new one), predicated, with
        its waits around the body."""
        if isinstance(body, Block):
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


class _LoopVarSubstituter(IRMutator):
    """Replaces the loop variable in one statement, again and again. The first
    application learns which subtrees do not mention the variable; later ones keep those
    as they are without walking them. A subtree met twice (the ring index that every
    access of a ring buffer shares) is replaced once per application."""

    def __init__(self, stmt: Stmt, loop_var: Var):
        self.stmt = stmt
        self.loop_var = loop_var
        self.plain: set[int] = set()  # ids of nodes without the loop variable
        self.done: dict[int, Any] = {}  # id of a node -> its replacement, this application
        self.uses = 0  # occurrences of the loop variable met so far
        self.replacement: PrimExpr = loop_var

    def apply(self, replacement: PrimExpr) -> Stmt:
        self.replacement = replacement
        self.done.clear()
        return self.visit(self.stmt)

    def visit(self, node):
        key = id(node)
        if key in self.plain:
            return node
        result = self.done.get(key)
        if result is not None:
            self.uses += 1
            return result
        uses = self.uses
        method = self._table.get(type(node))
        if method is None:
            method = self._lookup(node)
        result = method(self, node)
        if self.uses == uses:
            self.plain.add(key)
            return node
        self.done[key] = result
        return result

    def visit_var(self, node: Var) -> PrimExpr:
        if node is self.loop_var:
            self.uses += 1
            return self.replacement
        return node

    def visit_buffer_load(self, node: BufferLoad) -> PrimExpr:
        plain = self.plain
        indices = tuple(index if id(index) in plain else self.visit(index)
                        for index in node.indices)
        return BufferLoad(node.buffer, indices, node.span)

    _FOLD = {Add: lambda a, b: a + b, Sub: lambda a, b: a - b, Mul: lambda a, b: a * b,
             FloorDiv: lambda a, b: a // b, FloorMod: lambda a, b: a % b}

    def visit_binary_op(self, node):
        """Folds integer arithmetic that the replacement made constant (``15 % 2`` is
        ``1`` in a one-slot section)."""
        plain = self.plain
        a = node.a if id(node.a) in plain else self.visit(node.a)
        b = node.b if id(node.b) in plain else self.visit(node.b)
        if a is not node.a or b is not node.b:
            node = type(node)(a, b, node.span)
        if isinstance(node, Add) and isinstance(node.a, IntImm) and node.a.value == 0 \
                and node.a.dtype == node.b.dtype:
            return node.b
        fold = self._FOLD.get(type(node))
        if fold is not None and isinstance(node.a, IntImm) and isinstance(node.b, IntImm) \
                and node.a.dtype == node.b.dtype and node.a.dtype != "bool" \
                and not (type(node) in (FloorDiv, FloorMod) and node.b.value == 0):
            return IntImm(fold(node.a.value, node.b.value), node.a.dtype)
        return node


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
