"""The pass: find annotated loops (innermost first) and replace each by its pipeline.

A loop's body is its block's statement sequence (or the sequence itself); the block's
buffers are the ones the pipeline may multi-version. A pipeline already produced for an
inner loop contributes its sections (prologue, body, epilogue) as separate statements.

The extent decides the shape. A constant extent gives prologue, body and epilogue, each
left out when empty. A symbolic extent ``n`` gives ``if n >= E`` around the pipeline
(whose waits are then the same for every such ``n``) and, for each shorter positive
extent, the pipeline of that constant extent, so that every wait is exact for every
``n``; nothing runs when ``n <= 0``.
"""

from __future__ import annotations

from typing import Sequence

from ...ir import (
    EQ, GE, AsyncCommitQueue, AsyncScope, AsyncWaitQueue, Block, Buffer, BufferRegion,
    BufferStore, Evaluate, For, IfThenElse, IntImm, IRMutator, PrimExpr, PrimFunc, SeqStmt,
    Stmt, seq,
)
from .annotations import is_pipelined, other_annotations, read_annotation
from .emit import Emitter, fold_sub
from .planning import plan_pipeline
from .schedule import PipelineStatement, Schedule, compute_schedule, conflicts, outside_statement
from .sync import BODY, PROLOGUE, SyncPlan, plan_for_every_extent, plan_synchronization


def inject_software_pipeline(func: PrimFunc, target: str = "sm_80") -> PrimFunc:
    """``func`` with every loop annotated ``software_pipeline_stage`` / ``_order`` (and
    optionally ``_async_stages``) rewritten into an asynchronous software pipeline.

    Loops annotated ``software_pipeline_num_stages`` are planned first (stages, orders
    and async stages chosen for them, shared memory checked against ``target``)."""
    func = plan_pipeline(func, target=target)
    injector = _Injector()
    body = injector.visit(func.body)
    return func if body is func.body else func.with_body(body)


class _Injector(IRMutator):
    """Walks the statements (loops sit only there, never inside expressions, so
    conditions, predicates and loop bounds are not walked) and pipelines annotated
    loops, innermost first."""

    def __init__(self) -> None:
        self.results: set[Block] = set()

    def visit_buffer_store(self, node: BufferStore) -> Stmt:
        return node

    def visit_evaluate(self, node: Evaluate) -> Stmt:
        return node

    def visit_buffer_region(self, node: BufferRegion) -> BufferRegion:
        return node

    def visit_if_then_else(self, node: IfThenElse) -> Stmt:
        then_case = self.visit(node.then_case)
        else_case = None if node.else_case is None else self.visit(node.else_case)
        if then_case is node.then_case and else_case is node.else_case:
            return node
        return IfThenElse(node.condition, then_case, else_case, node.span)

    def visit_block(self, node: Block) -> Stmt:
        body = self.visit(node.body)
        if body is node.body:
            return node
        return Block(node.name, body, node.reads, node.writes, node.alloc_buffers,
                     node.predicate, node.annotations, node.span)

    def visit_for(self, node: For) -> Stmt:
        loop = self._visit_loop(node)
        if not is_pipelined(loop):
            return loop
        result, _ = pipeline_loop(loop, self.results)
        self.results.add(result)
        return result

    def _visit_loop(self, node: For) -> For:
        """``node`` with the loops in its body pipelined."""
        body = self.visit(node.body)
        if body is node.body:
            return node
        return For(node.loop_var, node.min, node.extent, node.kind, body, node.thread_tag,
                   node.annotations, node.span)

    def visit_seq_stmt(self, node: SeqStmt) -> Stmt:
        """Loops in a sequence: asynchronous statements before one are committed as
        groups of its first queue and waited for before the first statement that needs
        them (in between, or in the pipeline whose counts include them)."""
        stmts: list[Stmt] = []
        changed = False
        for child in node.stmts:
            if not (isinstance(child, For) and is_pipelined(child)):
                stmts.append(self.visit(child))
                changed = changed or stmts[-1] is not child
                continue
            loop = self._visit_loop(child)
            preloop = [index for index, stmt in enumerate(stmts) if isinstance(stmt, AsyncScope)]
            result, queue = pipeline_loop(loop, self.results, [stmts[i] for i in preloop])
            self.results.add(result)
            if preloop:
                stmts = _commit_preloop(stmts, preloop, queue)
            stmts.append(result)
            changed = True
        return SeqStmt(tuple(stmts), node.span) if changed else node


def _loop_body(loop: For, results: set[Block]) -> tuple[list[Stmt], list[Buffer]]:
    """The statements of the loop body and the buffers allocated for them."""
    body = loop.body
    local: list[Buffer] = []
    if isinstance(body, Block) and body.predicate is None:
        local.extend(body.alloc_buffers)
        body = body.body
    items = body.stmts if isinstance(body, SeqStmt) else (body,)
    stmts: list[Stmt] = []
    for item in items:
        if item in results and isinstance(item.body, SeqStmt):
            local.extend(item.alloc_buffers)
            stmts.extend(item.body.stmts)
        else:
            stmts.append(item)
    return stmts, local


def pipeline_loop(loop: For, results: set[Block] = frozenset(), preloop: Sequence[Stmt] = ()
                  ) -> tuple[Block, int]:
    """The pipeline of one annotated loop whose inner loops are already pipelined, and
    the queue that the asynchronous statements ``preloop`` before it are committed to."""
    stmts, local = _loop_body(loop, results)
    annotation = read_annotation(loop, len(stmts))
    schedule = compute_schedule(loop, stmts, local, annotation, preloop)
    emitter = Emitter(schedule, loop.extent)
    kept = other_annotations(loop.annotations)
    stages = schedule.max_stage
    if isinstance(loop.extent, IntImm):
        extent = loop.extent.value
        plan = plan_synchronization(schedule, extent, stages)
        body = seq(*emitter.sections(plan, _frames(plan, extent, stages, loop), kept)
                   ) if extent > 0 else _no_iteration(schedule)
    else:
        body = _guarded(schedule, emitter, kept)
    remap = emitter.remap
    allocs = tuple(remap[buffer][0] if buffer in remap else buffer for buffer in local)
    queue = schedule.preloop[0].queue if schedule.preloop else 0
    return Block("", body, alloc_buffers=allocs), queue


def _commit_preloop(stmts: list[Stmt], preloop: Sequence[int], queue: int) -> list[Stmt]:
    """Each asynchronous statement before the loop in a group of its own, and a wait
    before each later statement (before the loop) that touches what a group in flight
    may still access."""
    result: list[Stmt] = []
    groups: list[PipelineStatement] = []  # committed so far, oldest first
    in_flight = 0
    for index, stmt in enumerate(stmts):
        if index in preloop:
            groups.append(outside_statement(stmt, index))
            result.append(AsyncCommitQueue(queue, stmt))
            in_flight += 1
            continue
        if groups:
            statement = outside_statement(stmt, index, is_async=False)
            newest = max((number for number, group in enumerate(groups)
                          if any(True for _ in conflicts(group, statement))), default=None)
            if newest is not None:
                count = len(groups) - 1 - newest
                if in_flight > count:
                    stmt = AsyncWaitQueue(queue, IntImm(count), stmt)
                    in_flight = count
        result.append(stmt)
    return result


def _frames(plan: SyncPlan, extent: PrimExpr | int, prologue_length: int, loop: For
            ) -> list[tuple[PrimExpr, PrimExpr]]:
    """Each section's first slot relative to the loop start and its number of slots, as
    expressions (symbolic in the extent where it is)."""
    dtype = loop.loop_var.dtype
    frames = []
    for section_plan in plan.sections:
        section = section_plan.section
        length: PrimExpr = IntImm(section.length, dtype)
        if section.kind == PROLOGUE:
            delta: PrimExpr = IntImm(0, dtype)
        elif section.kind == BODY:
            delta = IntImm(prologue_length, dtype)
            if not isinstance(extent, int):
                length = fold_sub(extent, prologue_length)
        elif isinstance(extent, int):
            delta = IntImm(max(extent, prologue_length), dtype)
        else:
            delta = extent
        frames.append((delta, length))
    return frames


def _no_iteration(schedule: Schedule) -> Stmt:
    """What a loop that runs no iteration leaves: the drain of the groups committed
    before it, or nothing."""
    if schedule.preloop:
        return AsyncWaitQueue(schedule.preloop[0].queue, IntImm(0), Evaluate(IntImm(0)))
    return Evaluate(IntImm(0))


def _guarded(schedule: Schedule, emitter: Emitter, kept: dict) -> Stmt:
    """``if n >= E: pipeline(n)`` then ``elif n == c: pipeline(c)`` for shorter ``c``."""
    loop = schedule.loop
    prologue_length, least, plan = plan_for_every_extent(schedule)
    general = seq(*emitter.sections(plan, _frames(plan, loop.extent, prologue_length, loop),
                                    kept))
    otherwise: Stmt | None = _no_iteration(schedule) if schedule.preloop else None
    for extent in range(1, least):
        short = plan_synchronization(schedule, extent, schedule.max_stage)
        short_emitter = emitter.with_extent(IntImm(extent, loop.extent.dtype))
        stmt = seq(*short_emitter.sections(
            short, _frames(short, extent, schedule.max_stage, loop), kept))
        otherwise = IfThenElse(EQ(loop.extent, IntImm(extent, loop.extent.dtype)), stmt,
                               otherwise)
    return IfThenElse(GE(loop.extent, IntImm(least, loop.extent.dtype)), general, otherwise)
