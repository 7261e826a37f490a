"""Warp specialization: a pipelined loop split into a producer warpgroup issuing TMA
copies and the original threads consuming, synchronized only through mbarriers.

The barrier plan is the one of :mod:`tilepipe.transform.barriers` (one ``full`` and one
``empty`` barrier per ring slot and stage of copies). The block gains one warpgroup of
``PRODUCER_THREADS`` threads after the original ones; the statements around the loop
stay with the original threads (those after it join the consumers' branch, so that
accumulators are not live in the producer's); a block barrier among them, which the
producer warpgroup would never reach, becomes a named barrier of the consumer threads
(``T.named_barrier_sync(CONSUMER_BARRIER, consumers)``, PTX ``bar.sync 1, consumers``). One elected producer thread runs every
instance of the loop, waiting for a slot to be released before refilling it; the
consumers run every instance of the loop body in the order of the body, waiting for the
data before its first use and releasing the slot after its last. A consumer issuing
``T.wgmma`` keeps one wgmma group in flight (``T.wgmma_wait_group(1)``) and releases the
previous instance's slots, the last ones after the loop. Where it pays (see
:func:`register_split`) the producer gives registers back
(``T.setmaxnreg(producer, "dec")``) and the consumers take them (``"inc"``). Each role
runs exactly the loop's trip count, so a trip count below the number of slots, or zero,
needs no special tail. Statements of the loop that share shared memory across threads
are ordered by named barriers of the consumers (whole warps of them).
"""

from __future__ import annotations

from ..arith import Analyzer
from ..errors import PipelineError
from ..ir import (
    EQ, LT, Block, Call, Evaluate, For, ForKind, IfThenElse, IntImm, IRMutator, PrimExpr,
    PrimFunc, Range, SeqStmt, Stmt, StringImm, Var, as_int, post_order_visit, seq,
    substitute,
)
from .barriers import (
    BarrierEmitter, BarrierLowering, BarrierPlan, ThreadScope, barrier_sync, call,
    is_thread_loop,
)
from .pipeline.annotations import is_pipelined, other_annotations
from .pipeline.wgmma import issues_wgmma

PRODUCER_THREADS = 128  # one warpgroup: setmaxnreg reallocates per warpgroup
WARPGROUP_THREADS = 128
REGISTER_FILE = 65536  # 32-bit registers of an SM, for one block
MAX_THREAD_REGISTERS = 256
PRODUCER_REGISTERS = 40
AXES_SLOWEST_FIRST = ("threadIdx.z", "threadIdx.y", "threadIdx.x")
CONSUMER_BARRIER = 1  # named barrier id of the consumer threads (0 is __syncthreads')
WARP_THREADS = 32
BLOCK_BARRIER_SCOPES = ("shared", "shared.dyn", "global")


class _RoleSplit:
    """The statement that replaced the pipelined loop, and the thread scope around it."""

    def __init__(self, stmt: Stmt, threads: ThreadScope):
        self.stmt = stmt
        self.threads = threads


def _roles(plan: BarrierPlan, threads: ThreadScope, analyzer: Analyzer,
           registers: tuple[int, int] | None) -> Stmt:
    """Barrier initialization, then the producer and consumer roles of ``plan``."""
    loop = plan.loop
    emitter = BarrierEmitter(plan, analyzer, run_order=lambda position: position)
    consumers = threads.num_threads
    if plan.synchronized and consumers % WARP_THREADS:
        raise PipelineError(
            f"warp specialization of {consumers} consumer threads orders the TMA copies, "
            "not synchronous statements across threads: those need a named barrier of the "
            f"consumers, which counts whole warps (a multiple of {WARP_THREADS} threads); "
            "the one-role barrier form (--sync barriers) uses a block barrier", loop.span)
    linear = threads.linear_index()
    instance_var = Var(loop.loop_var.name, loop.loop_var.dtype)
    analyzer.bind(instance_var, Range(loop.min, loop.extent))
    instance = emitter.instance(instance_var)
    produce = [emitter.produce(group, instance) for group in plan.groups]
    producer_loop = For(instance_var, loop.min, loop.extent, ForKind.SERIAL, seq(*produce),
                        None, {}, loop.span)
    copied = {copy.position for group in plan.groups for copy in group.copies}
    positions = [position for position in range(len(plan.statements)) if position not in copied]
    consume = [seq(barrier_sync() if position in plan.synchronized else None,
                   emitter.consume(position, instance, overlap_mma=True))
               for position in positions]
    last = emitter.instance(loop.min + loop.extent - 1)
    drains = [emitter.release_last(position, last) for position in positions
              if issues_wgmma(plan.statements[position])]
    consumer_var = Var(loop.loop_var.name, loop.loop_var.dtype)
    consumer_loop = seq(For(consumer_var, loop.min, loop.extent, ForKind.SERIAL,
                            _rename(seq(*consume), instance_var, consumer_var), None,
                            other_annotations(loop.annotations), loop.span), *drains)
    producer = IfThenElse(EQ(linear, IntImm(consumers)), producer_loop)
    consumer = consumer_barriers(consumer_loop, consumers)
    if registers is not None:
        registers = register_split(consumers, *registers)
    if registers is not None:
        if consumers % WARPGROUP_THREADS:
            raise PipelineError(
                f"setmaxnreg reallocates registers per warpgroup: the {consumers} consumer "
                f"threads must be a multiple of {WARPGROUP_THREADS} (or pass "
                "reallocate_registers=False)", loop.span)
        producer_registers, consumer_registers = registers
        producer = seq(call("setmaxnreg", IntImm(producer_registers), StringImm("dec")),
                       producer)
        consumer = seq(call("setmaxnreg", IntImm(consumer_registers), StringImm("inc")),
                       consumer)
    split = IfThenElse(LT(linear, IntImm(consumers)), consumer, producer)
    return seq(emitter.initialize(EQ(linear, IntImm(0)), consumers), split)


def _rename(stmt: Stmt, old: Var, new: Var) -> Stmt:
    return substitute(stmt, {old: new})


class _Specializer(BarrierLowering):
    """Lowers each pipelined loop to roles, widens the slowest thread axis around it by
    a producer warpgroup and keeps every other statement with the original threads."""

    def __init__(self, registers: tuple[int, int | None] | None):
        super().__init__(lambda plan, threads, analyzer: _roles(plan, threads, analyzer,
                                                                 registers))
        self.splits: list[_RoleSplit] = []

    def visit_for(self, node: For) -> Stmt:
        if is_thread_loop(node):
            outermost = not self.thread_loops
            result = super().visit_for(node)
            if outermost and self.splits:
                return self._widen(node, result)
            return result
        if is_pipelined(node):
            if not self.thread_loops:
                raise PipelineError("warp specialization needs the pipelined loop inside "
                                    "threadIdx bindings", node.span)
            stmt = self.lower_pipelined(node)
            self.splits.append(_RoleSplit(stmt, ThreadScope(list(self.thread_loops))))
            return stmt
        return super().visit_for(node)

    def _widen(self, outermost: For, lowered: For) -> Stmt:
        """Add the producer warpgroup on the slowest bound axis; guard the rest."""
        if len(self.splits) != 1:
            raise PipelineError("warp specialization handles one pipelined loop per kernel",
                                outermost.span)
        split = self.splits.pop()
        scope = split.threads
        consumers = scope.num_threads
        if self.copies_before and consumers % WARP_THREADS:
            raise PipelineError(
                f"warp specialization of {consumers} consumer threads: an asynchronous "
                "statement outside the pipelined loop is waited for after a named barrier "
                "of the consumers (its mbarrier initialized), which counts whole warps (a "
                f"multiple of {WARP_THREADS} threads); the one-role barrier form (--sync "
                "barriers) uses a block barrier", self.copies_before[0].span)
        slowest = min(scope.loops, key=lambda loop: AXES_SLOWEST_FIRST.index(loop.thread_tag))
        faster = consumers // as_int(slowest.extent)
        if PRODUCER_THREADS % faster:
            raise PipelineError(
                f"the producer warpgroup ({PRODUCER_THREADS} threads) does not fit whole "
                f"rows of {slowest.thread_tag} ({faster} threads each)", slowest.span)
        widened = IntImm(as_int(slowest.extent) + PRODUCER_THREADS // faster)
        return _guard_outside(lowered, split.stmt, consumers, scope.linear_index(), slowest,
                              widened)


def _guard_outside(stmt: Stmt, split: Stmt, consumers: int, linear: PrimExpr,
                   widened_loop: For, extent: IntImm) -> Stmt:
    """``stmt`` with the widened loop's extent and every statement that does not lead to
    ``split`` run only by the original threads (the first ``consumers`` by ``linear``)."""
    if stmt is split:
        return stmt
    if not _contains(stmt, split):
        return IfThenElse(LT(linear, IntImm(consumers)), consumer_barriers(stmt, consumers))
    if isinstance(stmt, SeqStmt):
        children = list(stmt.stmts)
        if split in children:  # what follows the loop joins the consumers' branch
            position = children.index(split)
            tail = consumer_barriers(seq(*children[position + 1:]), consumers)
            children = children[:position] + [_with_consumer_tail(split, tail)]
            split = children[-1]
        return seq(*[_guard_outside(child, split, consumers, linear, widened_loop, extent)
                     for child in children])
    if isinstance(stmt, Block):
        return Block(stmt.name, _guard_outside(stmt.body, split, consumers, linear,
                                               widened_loop, extent), stmt.reads, stmt.writes,
                     stmt.alloc_buffers, stmt.predicate, stmt.annotations, stmt.span)
    if isinstance(stmt, For) and stmt.kind is ForKind.THREAD_BINDING:
        body = _guard_outside(stmt.body, split, consumers, linear, widened_loop, extent)
        new_extent = extent if stmt.loop_var is widened_loop.loop_var else stmt.extent
        return For(stmt.loop_var, stmt.min, new_extent, stmt.kind, body, stmt.thread_tag,
                   stmt.annotations, stmt.span)
    raise PipelineError(
        "warp specialization needs the pipelined loop directly inside blocks under the "
        f"thread bindings, not inside a {type(stmt).__name__}", getattr(stmt, "span", None))


def _with_consumer_tail(split: Stmt, tail: Stmt) -> Stmt:
    """The roles with ``tail`` run by the consumers after their loop, so that what the
    consumers keep in registers (accumulators) is not live in the producer's branch."""
    if isinstance(tail, SeqStmt) and not tail.stmts:
        return split
    *initialization, roles = split.stmts
    return seq(*initialization, IfThenElse(roles.condition, seq(roles.then_case, tail),
                                           roles.else_case, roles.span))


class _ConsumerBarriers(IRMutator):
    """Block barriers become named barriers of the first ``consumers`` threads."""

    def __init__(self, consumers: int):
        self.consumers = consumers

    def visit_evaluate(self, node: Evaluate) -> Stmt:
        if not _is_block_barrier(node.value):
            return super().visit_evaluate(node)
        if self.consumers % WARP_THREADS:
            raise PipelineError(
                f"a block barrier run by the {self.consumers} consumer threads only becomes "
                f"a named barrier, which counts whole warps: the consumer threads must be a "
                f"multiple of {WARP_THREADS}", node.span)
        return Evaluate(Call("handle", "named_barrier_sync",
                             (IntImm(CONSUMER_BARRIER), IntImm(self.consumers)), node.span),
                        node.span)


def _is_block_barrier(value: PrimExpr) -> bool:
    if not (isinstance(value, Call) and value.op == "tvm_storage_sync"):
        return False
    scope = value.args[0] if value.args else StringImm("shared")
    return isinstance(scope, StringImm) and scope.value in BLOCK_BARRIER_SCOPES


def consumer_barriers(stmt: Stmt, consumers: int) -> Stmt:
    """``stmt``, run by the consumer threads only, with its block barriers (which the
    producer warpgroup would never reach: a hang) turned into named barriers of the
    consumers."""
    return _ConsumerBarriers(consumers).visit(stmt)


def _contains(stmt: Stmt, target: Stmt) -> bool:
    found = []
    post_order_visit(stmt, lambda node: found.append(True) if node is target else None)
    return bool(found)


def register_split(consumers: int, producer: int = PRODUCER_REGISTERS,
                   consumer: int | None = None) -> tuple[int, int] | None:
    """``(producer, consumer)`` registers per thread for ``setmaxnreg``, or None when
    the consumers would not gain any over the even split the block starts with.

    A block (one per SM) of ``consumers + 128`` threads starts with the register file
    shared evenly; the producer warpgroup keeps ``producer`` and the consumers share the
    rest (``consumer``, if given, caps it), in multiples of 8 as ``setmaxnreg`` needs.
    """
    threads = consumers + PRODUCER_THREADS
    start = min(MAX_THREAD_REGISTERS, REGISTER_FILE // threads) // 8 * 8
    share = (REGISTER_FILE - PRODUCER_THREADS * producer) // consumers
    granted = min(MAX_THREAD_REGISTERS, share if consumer is None else consumer) // 8 * 8
    if granted <= start or producer >= start:
        return None
    return producer, granted


def warp_specialize(func: PrimFunc, reallocate_registers: bool = True,
                    producer_registers: int = PRODUCER_REGISTERS,
                    consumer_registers: int | None = None) -> PrimFunc:
    """Every pipelined loop of ``func`` as a producer warpgroup and consumer threads.

    With ``reallocate_registers`` the roles exchange registers with ``setmaxnreg`` where
    :func:`register_split` finds a gain (the consumer threads must then be whole
    warpgroups); ``consumer_registers`` caps what the consumers take.
    """
    registers = (producer_registers, consumer_registers) if reallocate_registers else None
    return _Specializer(registers).run(func)
