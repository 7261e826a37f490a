"""Emission of a scheduled, synchronized pipeline: prologue, body and epilogue blocks.

Statement instances (:mod:`.instances`) are the original statements with the loop
variable replaced by the iteration they work on (``i - stage + delta``, written the way
TVM folds it, so outputs read like the seeds'), predicated by ``T.where`` when not every
slot runs them, with ring indices ``j % versions`` on every access to a multi-versioned
buffer, asynchronous ones wrapped in ``async_scope`` and grouped into
``async_commit_queue_scope`` blocks, and the waits of :mod:`.sync` right before the
statements that need them.
"""

from __future__ import annotations

import copy

from typing import Mapping, Sequence

from ...ir import (
    EQ, LE, LT, Add, And, AsyncCommitQueue, AsyncScope, AsyncWaitQueue, Block, Buffer, Evaluate,
    For, ForKind, IntImm, Max, Mul, Or, PrimExpr, Select, Stmt, Sub, Var, seq,
)
from .instances import InstanceBuilder
from .schedule import CommitGroup, Schedule
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
        self.stage_constants: dict[int, IntImm] = {}  # stage -> its constant
        compiler = InstanceBuilder(self.loop.loop_var, self.remap)
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
            advanced = iterator  # the iteration of stage 0
        else:
            iterator = Var(loop.loop_var.name, loop.loop_var.dtype)
            advanced = fold_add(iterator, delta)
        waits: dict[int, list[Wait]] = {}
        for wait in section_plan.waits:
            waits.setdefault(wait.position, []).append(wait)
        # The unrolled copy index, which the counts of waits are expressions of.
        copy_index = iterator
        if section_plan.waits and not isinstance(iterator, IntImm):
            copy_index = fold_sub(iterator, loop.min)
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
            stage = statement.stage
            iteration = iterations.get(stage)
            if iteration is None:
                if is_unit:
                    iteration = self._minus_stage(iterator, stage)
                else:
                    iteration = fold_add(self._minus_stage(iterator, stage), delta) \
                        if stage else advanced
                iterations[stage] = iteration
            key = (stage, pattern.index(True))
            predicate = predicates.get(key, _UNKNOWN)
            if predicate is _UNKNOWN:
                # The slot's iteration skewed by the stage: in a one-slot section the
                # iteration itself.
                skewed = iteration if is_unit else self._minus_stage(advanced, stage)
                predicate = predicates[key] = self._predicate(
                    skewed, key[1], iterator, delta, is_unit)
            body = instance(iteration)
            own = waits.get(statement.position)
            inside = alone = ()
            if own is not None:
                inside = [wait for wait in own if not wait.standalone]
                alone = [_standalone_wait(wait, copy_index) for wait in own if wait.standalone]
            if own_group is not None:
                if group is not None and group is not own_group:
                    stmts.append(_commit(group, members, group_predicate))
                    group = None
                if group is None:
                    group, members, group_predicate = own_group, [], predicate
                members.extend(alone)
                members.append(_wrap_waits(AsyncScope(_unwrap(body)), inside, copy_index))
                if statement.position == own_group.members[-1]:
                    stmts.append(_commit(group, members, group_predicate))
                    group = None
                continue
            if group is not None:
                stmts.append(_commit(group, members, group_predicate))
                group = None
            stmts.extend(alone)
            stmts.append(_sync_block(body, predicate, inside, copy_index))
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

    # Iterations and predicates ----------------------------------------------------------
    def _minus_stage(self, expr: PrimExpr, stage: int) -> PrimExpr:
        """``fold_sub(expr, stage)``, the stage's constant built once per emitter."""
        if stage == 0:
            return expr
        if isinstance(expr, IntImm):
            return IntImm(expr.value - stage, expr.dtype)
        constant = self.stage_constants.get(stage)
        if constant is None:
            constant = self.stage_constants[stage] = IntImm(stage)
        return Sub(expr, constant)

    def _predicate(self, skewed: PrimExpr, first: int, iterator: PrimExpr, delta: PrimExpr,
                   is_unit: bool) -> PrimExpr | None:
        """Whether an instance runs: its iteration ``skewed`` lies before the loop's end
        and, in an unrolled section, the copy is not before the ``first`` that runs it."""
        end = self.end
        if isinstance(skewed, IntImm) and isinstance(end, IntImm):
            upper = None if skewed.value < end.value else IntImm(0, "bool")
        else:
            upper = LT(skewed, end)
        if first > 0 and not is_unit and isinstance(delta, IntImm):
            lower = LE(fold_add(self.loop.min, first), iterator)
            return lower if upper is None else And(lower, upper)
        return upper


def _sync_block(body: Stmt, predicate: PrimExpr | None, waits: Sequence[Wait],
                copy: PrimExpr) -> Block:
    """A synchronous statement's instance: its block (or a new one), predicated, with
    its waits around the body."""
    if isinstance(body, Block):
        if predicate is None and not waits:
            return body
        inner = _wrap_waits(body.body, waits, copy)
        if body.predicate is not None:
            predicate = body.predicate if predicate is None else And(predicate, body.predicate)
        return Block(body.name, inner, body.reads, body.writes, body.alloc_buffers,
                     predicate, body.annotations, body.span)
    return Block("", _wrap_waits(body, waits, copy), predicate=predicate)


def _wrap_waits(body: Stmt, waits: Sequence[Wait], copy: PrimExpr) -> Stmt:
    """``body`` inside its waits, the lowest queue outermost; ``copy`` is the unrolled
    copy index."""
    if not waits:
        return body
    for wait in sorted(waits, key=lambda item: item.queue, reverse=True):
        body = AsyncWaitQueue(wait.queue, count_expression(wait.counts, copy), body)
    return body


def _standalone_wait(wait: Wait, copy: PrimExpr) -> Block:
    """A wait of its own, run only by the copies that have something to wait for."""
    waiting = AsyncWaitQueue(wait.queue, count_expression(wait.counts, copy),
                             Evaluate(IntImm(0)))
    return Block("", waiting, predicate=copies_condition(wait.counts, copy))


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
