"""Planning a pipeline from ``num_stages``: the one-knob form of the annotations.

A loop annotated ``software_pipeline_num_stages = S`` (Triton's and TileLang's knob) is
given the three explicit annotations the pipeline pass reads:

* copies from global into shared memory go to stage 0 and are asynchronous;
* everything else (their consumers) goes to stage ``S - 1``, so ``S - 1`` copies are in
  flight while one tile is consumed and the shared ring holds ``S`` tiles;
* where the consumer is an inner loop that first copies shared tiles into registers and
  then computes (the RFC's GEMM), the inner loop is pipelined over double-buffered
  registers (copies in its stage 0, compute in its stage 1) and, from ``S = 3`` on, the
  inner loop's prologue (the first register copy of the next tile) moves to stage
  ``S - 2``, between the shared copies and the compute, so that it overlaps the
  previous tile's last compute.

One stage means no pipelining: the annotation is dropped. The shared memory the planned
pipeline needs (every shared buffer, times its number of versions) is checked against
the target's per-block budget before anything is emitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import PipelineError
from ...ir import (
    REGISTER_SCOPES, SHARED_SCOPES, AttrStmt, Block, Buffer, BufferLoad, BufferRegion,
    BufferStore, For, ForKind, IRMutator, IRVisitor, IntImm, PrimFunc, SeqStmt, Stmt,
    dtype_bytes,
)

NUM_STAGES = "software_pipeline_num_stages"
STAGE = "software_pipeline_stage"
ORDER = "software_pipeline_order"
ASYNC_STAGES = "software_pipeline_async_stages"

SHARED_MEMORY_BUDGET = {
    "sm_80": 163 * 1024,
    "sm_86": 99 * 1024,
    "sm_89": 99 * 1024,
    "sm_90": 227 * 1024,
    "sm_90a": 227 * 1024,
}
"""Bytes of shared memory one thread block may allocate (opt-in maximum) per target."""



class SharedMemoryBudgetError(PipelineError):
    """A planned pipeline needs more shared memory than the target gives a block."""

    def __init__(self, message: str, needed: int, available: int, target: str, span=None):
        self.needed = needed
        self.available = available
        self.target = target
        super().__init__(message, span)



# Accesses ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Accesses:
    reads: frozenset[Buffer]
    writes: frozenset[Buffer]


class _AccessCollector(IRVisitor):
    """Buffers a statement reads and writes. Declared block regions are used where a
    block gives them; an intrinsic call writes its first buffer argument and reads the
    others (``T.ldmatrix(dst, src)``, ``T.mma_sync(C, A, B)`` also reads C)."""

    def __init__(self):
        self.reads: set[Buffer] = set()
        self.writes: set[Buffer] = set()

    def visit_block(self, node: Block) -> None:
        if node.reads or node.writes:
            self.reads.update(region.buffer for region in node.reads)
            self.writes.update(region.buffer for region in node.writes)
            return
        super().visit_block(node)

    def visit_buffer_store(self, node: BufferStore) -> None:
        self.writes.add(node.buffer)
        super().visit_buffer_store(node)

    def visit_buffer_load(self, node: BufferLoad) -> None:
        self.reads.add(node.buffer)
        super().visit_buffer_load(node)

    def visit_call(self, node) -> None:
        buffers = [arg.buffer if isinstance(arg, BufferRegion) else arg
                   for arg in node.args if isinstance(arg, (BufferRegion, Buffer))]
        if buffers:
            self.writes.add(buffers[0])
            self.reads.update(buffers[1:])
            if "mma" in node.op and len(buffers) >= 3:
                self.reads.add(buffers[0])
        super().visit_call(node)

    def visit_buffer(self, node: Buffer) -> None:
        pass


def _accesses(stmt: Stmt) -> _Accesses:
    collector = _AccessCollector()
    collector.visit(stmt)
    return _Accesses(frozenset(collector.reads), frozenset(collector.writes))


def _loop_statements(loop: For) -> list[Stmt]:
    """The statements a pipeline annotation of ``loop`` counts, before nested loops are
    expanded: the body, through one block, split at its sequence."""
    body = loop.body
    if isinstance(body, Block):
        body = body.body
    return list(body.stmts) if isinstance(body, SeqStmt) else [body]


def _is_global_to_shared_copy(accesses: _Accesses) -> bool:
    return (bool(accesses.writes)
            and all(buffer.scope in SHARED_SCOPES for buffer in accesses.writes)
            and bool(accesses.reads)
            and all(buffer.scope == "global" for buffer in accesses.reads))


def _as_loop(stmt: Stmt) -> For | None:
    """``stmt`` as a serial or unrolled loop, looking through wrapping blocks and
    attributes."""
    while isinstance(stmt, (Block, AttrStmt)):
        stmt = stmt.body
    if isinstance(stmt, For) and stmt.kind in (ForKind.SERIAL, ForKind.UNROLLED):
        return stmt
    return None


# Planning one loop -------------------------------------------------------------------
@dataclass(frozen=True)
class LoopPlan:
    """The annotations planned for one loop (and for the inner loop it pipelines)."""

    stages: list[int]
    orders: list[int]
    async_stages: list[int]
    inner_loop: For | None = None
    inner_stages: list[int] | None = None
    inner_orders: list[int] | None = None


def _inner_register_pipeline(loop: For, shared: set[Buffer]) -> list[int] | None:
    """Inner stages ``[0 for register copies, 1 for compute]`` of a loop whose body
    copies ``shared`` tiles into registers and then computes on them; else None."""
    if STAGE in loop.annotations or NUM_STAGES in loop.annotations:
        return None
    if not (isinstance(loop.extent, IntImm) and loop.extent.value >= 2):
        return None  # a prologue, a body and an epilogue need two iterations or more
    statements = _loop_statements(loop)
    stages = []
    registers: set[Buffer] = set()
    for statement in statements:
        accesses = _accesses(statement)
        is_register_copy = (
            accesses.reads and accesses.reads <= shared and accesses.writes
            and all(buffer.scope in REGISTER_SCOPES for buffer in accesses.writes)
        )
        if is_register_copy and not any(stage == 1 for stage in stages):
            stages.append(0)
            registers |= accesses.writes
        else:
            stages.append(1)
    consumers_use_registers = any(
        _accesses(statement).reads & registers
        for statement, stage in zip(statements, stages) if stage == 1
    )
    return stages if 0 in stages and consumers_use_registers else None


def plan_loop(loop: For, num_stages: int) -> LoopPlan:
    """Stages, orders and async stages for ``loop`` pipelined ``num_stages`` deep."""
    last = num_stages - 1
    statements = _loop_statements(loop)
    accesses = [_accesses(statement) for statement in statements]
    copies = [_is_global_to_shared_copy(access) for access in accesses]
    if not any(copies):
        raise PipelineError(
            f"{NUM_STAGES} = {num_stages}: the loop over '{loop.loop_var.name}' has no copy "
            "from global into shared memory to pipeline; annotate its stages explicitly",
            loop.span,
        )
    shared = set().union(*(access.writes for access, copy in zip(accesses, copies) if copy))
    stages: list[int] = []
    inner_plan = None
    for statement, copy in zip(statements, copies):
        if copy:
            stages.append(0)
            continue
        inner = _as_loop(statement)
        found = None if inner is None or inner_plan is not None else (
            _inner_register_pipeline(inner, shared))
        if found is not None:
            inner_plan = (inner, found)
            prologue = num_stages - 2 if num_stages >= 3 else last
            stages.extend([prologue, last, last])  # the inner prologue, body and epilogue
        else:
            stages.append(last)
    orders = list(range(len(stages)))
    if inner_plan is not None and num_stages >= 3:
        # The RFC's order: the inner body of this tile, then the next tile's first
        # register copy, then this tile's last compute.
        start = stages.index(num_stages - 2)
        orders[start], orders[start + 1] = orders[start + 1], orders[start]
    plan = LoopPlan(stages=stages, orders=orders, async_stages=[0])
    if inner_plan is None:
        return plan
    inner, inner_stages = inner_plan
    return LoopPlan(stages, orders, [0], inner, inner_stages, list(range(len(inner_stages))))


# Shared-memory budget ----------------------------------------------------------------
def _shared_buffers(func: PrimFunc) -> list[Buffer]:
    found: list[Buffer] = []

    class _Allocations(IRVisitor):
        def visit_block(self, node: Block) -> None:
            found.extend(b for b in node.alloc_buffers if b.scope in SHARED_SCOPES)
            super().visit_block(node)

    _Allocations().visit(func.body)
    found.extend(b for b in func.buffer_params if b.scope in SHARED_SCOPES)
    return found


def _buffer_bytes(buffer: Buffer, loop: For | None) -> int:
    total = dtype_bytes(buffer.dtype)
    for extent in buffer.shape:
        if not isinstance(extent, IntImm):
            where = "" if loop is None else f" (pipelining '{loop.loop_var.name}')"
            raise PipelineError(
                f"shared buffer '{buffer.name}' has a symbolic size; bind it with --dim so "
                f"that the shared-memory budget can be checked{where}", buffer.span)
        total *= extent.value
    return total


def shared_memory_bytes(func: PrimFunc, versions: dict[Buffer, int] | None = None) -> int:
    """Bytes of shared memory ``func`` allocates, with ``versions`` copies of a buffer."""
    versions = versions or {}
    return sum(_buffer_bytes(buffer, None) * versions.get(buffer, 1)
               for buffer in _shared_buffers(func))


def _plan_versions(loop: For, plan: LoopPlan) -> dict[Buffer, int]:
    """How many versions the pipeline gives each shared buffer the loop writes:
    the last stage that reads it minus the stage that writes it, plus one."""
    statements = _loop_statements(loop)
    expanded: list[_Accesses] = []
    for statement in statements:
        access = _accesses(statement)
        repeat = 3 if plan.inner_loop is not None and _as_loop(statement) is plan.inner_loop else 1
        expanded.extend([access] * repeat)
    versions: dict[Buffer, int] = {}
    for access, stage in zip(expanded, plan.stages):
        for buffer in access.writes:
            if buffer.scope not in SHARED_SCOPES:
                continue
            last_use = max((use_stage for use, use_stage in zip(expanded, plan.stages)
                            if buffer in use.reads), default=stage)
            versions[buffer] = max(versions.get(buffer, 1), last_use - stage + 1)
    return versions


# The pass ----------------------------------------------------------------------------
def _stage_count(loop: For) -> int:
    value = loop.annotations[NUM_STAGES]
    if isinstance(value, IntImm):
        value = value.value
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PipelineError(f"{NUM_STAGES} must be a positive integer, got {value!r}",
                            loop.span)
    explicit = [key for key in (STAGE, ORDER, ASYNC_STAGES) if key in loop.annotations]
    if explicit:
        raise PipelineError(
            f"the loop over '{loop.loop_var.name}' gives both {NUM_STAGES} and "
            f"{', '.join(explicit)}: give one or the other", loop.span)
    return value


class _Annotated(IRVisitor):
    """Collects the loops that carry a stage count; walks the statements only (loops
    never sit inside expressions)."""

    def __init__(self) -> None:
        self.loops: list[For] = []

    def visit_for(self, node: For) -> None:
        if NUM_STAGES in node.annotations:
            self.loops.append(node)
        self.visit(node.body)

    def visit_block(self, node: Block) -> None:
        self.visit(node.body)

    def visit_if_then_else(self, node) -> None:
        self.visit(node.then_case)
        if node.else_case is not None:
            self.visit(node.else_case)

    def visit_buffer_store(self, node: BufferStore) -> None:
        pass

    def visit_evaluate(self, node) -> None:
        pass


class _Annotator(IRMutator):
    def __init__(self, plans: dict[For, LoopPlan | None]):
        self.plans = plans
        self.inner: dict[For, LoopPlan] = {
            plan.inner_loop: plan for plan in plans.values()
            if plan is not None and plan.inner_loop is not None}

    def visit_for(self, node: For) -> Stmt:
        new = super().visit_for(node)
        annotations = dict(new.annotations)
        if node in self.plans:
            plan = self.plans[node]
            del annotations[NUM_STAGES]
            if plan is not None:
                annotations.update({STAGE: tuple(plan.stages), ORDER: tuple(plan.orders),
                                    ASYNC_STAGES: tuple(plan.async_stages)})
        elif node in self.inner:
            plan = self.inner[node]
            annotations.update({STAGE: tuple(plan.inner_stages),
                                ORDER: tuple(plan.inner_orders)})
        else:
            return new
        return For(new.loop_var, new.min, new.extent, new.kind, new.body, new.thread_tag,
                   annotations, new.span)


def plan_pipeline(func: PrimFunc, target: str = "sm_80") -> PrimFunc:
    """``func`` with every ``software_pipeline_num_stages`` annotation replaced by the
    explicit stage, order and async-stage annotations it stands for.

    Raises :class:`PipelineError` for an invalid annotation, a loop with nothing to
    pipeline, or a plan whose shared memory exceeds the ``target``'s per-block budget.
    """
    if target not in SHARED_MEMORY_BUDGET:
        raise PipelineError(f"unknown target '{target}': the known targets are "
                            f"{', '.join(SHARED_MEMORY_BUDGET)}")
    annotated = _Annotated()
    annotated.visit(func.body)
    loops = annotated.loops
    if not loops:
        return func
    plans: dict[For, LoopPlan | None] = {}
    versions: dict[Buffer, int] = {}
    for loop in loops:
        num_stages = _stage_count(loop)
        if num_stages == 1:
            plans[loop] = None
            continue
        plan = plan_loop(loop, num_stages)
        plans[loop] = plan
        for buffer, count in _plan_versions(loop, plan).items():
            versions[buffer] = max(versions.get(buffer, 1), count)
    _check_budget(func, versions, target, loops)
    return func.with_body(_Annotator(plans).visit(func.body))


def _check_budget(func: PrimFunc, versions: dict[Buffer, int], target: str,
                  loops: list[For]) -> None:
    needed = shared_memory_bytes(func, versions)
    available = SHARED_MEMORY_BUDGET[target]
    if needed <= available:
        return
    detail = ", ".join(
        f"{buffer.name} {_buffer_bytes(buffer, None):,} B x {versions.get(buffer, 1)}"
        for buffer in _shared_buffers(func))
    stages = ", ".join(str(_stage_value(loop)) for loop in loops)
    raise SharedMemoryBudgetError(
        f"{NUM_STAGES} = {stages} needs {needed:,} bytes of shared memory ({detail}) but "
        f"{target} gives a thread block {available:,} bytes; use fewer stages or smaller "
        "tiles", needed, available, target, loops[0].span)


def _stage_value(loop: For) -> Any:
    value = loop.annotations[NUM_STAGES]
    return value.value if isinstance(value, IntImm) else value


__all__ = ["NUM_STAGES", "SHARED_MEMORY_BUDGET", "LoopPlan", "SharedMemoryBudgetError",
           "plan_loop", "plan_pipeline", "shared_memory_bytes"]
