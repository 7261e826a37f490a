"""Lowering a pipelined loop to mbarrier phases and TMA copies (the Hopper form).

The loop's pipeline annotation (stages, orders, asynchronous stages) is read as for
:func:`tilepipe.transform.inject_software_pipeline`; its asynchronous statements must be
tile copies from global to shared memory. Each becomes a TMA copy
(``T.tma_load(destination, source, barriers, slot)``) into a ring of ``num_slots``
versions of its shared buffer. The producers of one stage share a pair of barriers per
ring slot, derived from the producer -> consumer dependencies:

* ``full[slot]`` (one arrival): the elected thread announces the stage's bytes with
  ``T.mbarrier_arrive_expect_tx`` and issues the copies, which complete on it; the first
  consumer of the data waits on it with parity ``(instance // num_slots) % 2``;
* ``empty[slot]`` (one arrival per consumer thread): every consumer thread arrives after
  the last statement that reads the slot; the producer waits on it before reusing the
  slot, with the opposite parity ``(instance // num_slots + 1) % 2``, which passes at once
  for the first ``num_slots`` instances because the slots start empty.

Instances are numbered from the loop's start, so phases follow from the iteration and
nothing is kept in registers. The result is one loop over ``extent + max_stage``
iterations in which a statement of stage ``s`` runs instance ``i - s`` when that is an
iteration of the original loop: any extent works, including zero and extents below the
number of slots. A consumer that issues ``T.wgmma`` is fenced and committed as a wgmma
group and waits for it (``T.wgmma_wait_group(0)``) before it releases its slots.
:func:`plan_barrier_pipeline` is shared with warp specialization, which emits the same
plan as a producer warpgroup and consumer threads.

Around that core, as the count pipeline does: buffers the loop body allocates move out
of the loop, with one version per stage a value lives (a ring indexed by the instance);
synchronous statements that write shared memory other threads access, and those
accesses, each get a block barrier before them (a named barrier of the consumers when
warp-specialized); a tile copy before the loop becomes a TMA copy on a barrier of its
own, waited for before the first statement that touches the tile (in a pipelined loop:
in that statement's first instance); pipelined loops inside the loop body are pipelined
by wait counts. A pipelined loop inside a plain loop is refused: its barrier phases
follow its own iterations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..arith import Analyzer, infer_regions
from ..errors import PipelineError
from ..ir import (
    EQ, GE, LE, LT, SHARED_SCOPES, And, AsyncScope, Block, Buffer, BufferLoad, BufferRegion,
    BufferStore, Call, Evaluate, For, ForKind, IRMutator, IRVisitor, IfThenElse, IntImm,
    PrimExpr, PrimFunc, Range, SeqStmt, Stmt, StringImm, Var, as_int, const, dtype_bytes, seq,
    substitute,
)
from .pipeline.annotations import is_pipelined, other_annotations, read_annotation
from .pipeline.inject import pipeline_loop
from .pipeline.schedule import compute_schedule, mentions
from .pipeline.wgmma import issues_wgmma

BARRIER_DTYPE = "uint64"


def call(op: str, *args) -> Evaluate:
    """``T.evaluate(T.<op>(*args))``."""
    return Evaluate(Call("handle", op, tuple(args)))


def barrier_sync() -> Evaluate:
    """``T.tvm_storage_sync("shared")`` (an int32 call, as in TVM)."""
    return Evaluate(Call("int32", "tvm_storage_sync", (StringImm("shared"),)))


# The plan ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TileCopy:
    """An asynchronous statement seen as one tile copy ``destination <- source``."""

    position: int
    destination: BufferRegion
    source: BufferRegion
    num_bytes: int


@dataclass
class BarrierGroup:
    """The copies of one stage: one ``full`` and one ``empty`` barrier per ring slot."""

    stage: int
    copies: list[TileCopy]
    num_slots: int = 1
    consumers: list[int] = field(default_factory=list)
    full: Buffer | None = None
    empty: Buffer | None = None

    @property
    def num_bytes(self) -> int:
        return sum(copy.num_bytes for copy in self.copies)

    @property
    def buffers(self) -> list[Buffer]:
        return [copy.destination.buffer for copy in self.copies]


@dataclass
class BarrierPlan:
    """How one pipelined loop lowers to barriers (see the module docstring)."""

    loop: For
    statements: list[Stmt]
    stages: tuple[int, ...]
    orders: tuple[int, ...]
    groups: list[BarrierGroup]
    rings: dict[Buffer, Buffer]
    allocations: list[Buffer] = field(default_factory=list)  # hoisted from the body
    versions: dict[Buffer, int] = field(default_factory=dict)  # ringed, not copied
    synchronized: set[int] = field(default_factory=set)  # positions after a barrier
    copied_before: dict[Buffer, Buffer] = field(default_factory=dict)  # tile -> barrier

    @property
    def max_stage(self) -> int:
        return max(self.stages)

    def group_of(self, position: int) -> BarrierGroup | None:
        for group in self.groups:
            if any(copy.position == position for copy in group.copies):
                return group
        return None

    def pipelined_order(self, position: int) -> tuple[int, int]:
        """When the statement runs an instance in the pipelined loop: stage, then order."""
        return self.stages[position], self.orders[position]


def _loop_statements(loop: For) -> tuple[list[Stmt], list[Buffer]]:
    """The statements of the loop body (inside its block, if it is one block) and the
    buffers that block allocates, which the lowering hoists out of the loop."""
    body = loop.body
    allocations: list[Buffer] = []
    if isinstance(body, Block) and body.predicate is None:
        allocations = list(body.alloc_buffers)
        body = body.body
    return (list(body.stmts) if isinstance(body, SeqStmt) else [body]), allocations


def _buffers_touched(stmt: Stmt) -> tuple[set[Buffer], set[Buffer]]:
    reads, writes = set(), set()

    class _Accesses(IRVisitor):
        def visit_buffer_load(self, node: BufferLoad) -> None:
            reads.add(node.buffer)
            super().visit_buffer_load(node)

        def visit_buffer_store(self, node: BufferStore) -> None:
            writes.add(node.buffer)
            super().visit_buffer_store(node)

        def visit_call(self, node: Call) -> None:
            for arg in node.args:
                if isinstance(arg, BufferRegion):
                    reads.add(arg.buffer)
                elif isinstance(arg, Buffer):
                    reads.add(arg)
            super().visit_call(node)

    _Accesses().visit(stmt)
    return reads, writes


def _tile_copy(loop: For | None, position: int, stmt: Stmt, analyzer: Analyzer,
               thread_loops: Sequence[For] = ()) -> TileCopy:
    """The asynchronous statement as a TMA tile copy, or a PipelineError saying why not.

    One elected thread issues the copy for the whole block, so a statement in which each
    thread copies its part (indices of ``threadIdx``) copies the union over the threads.
    Every element must land at the same offset in the shared tile as in the global one.
    ``loop`` is None for a copy before the pipelined loop.
    """
    if loop is None:
        name = "the barrier lowering"
        statement = asynchronous = "asynchronous statement before the pipelined loop"
        span = getattr(stmt, "span", None)
    else:
        name, statement = f"pipelined loop '{loop.loop_var.name}'", f"statement {position}"
        asynchronous = f"asynchronous {statement}"
        span = getattr(stmt, "span", None) or loop.span
    stores: list[BufferStore] = []

    class _Stores(IRVisitor):
        def visit_buffer_store(self, node: BufferStore) -> None:
            stores.append(node)

        def visit_call(self, node: Call) -> None:
            raise PipelineError(
                f"{name}: {asynchronous} calls T.{node.op}; only tile "
                "copies from global to shared memory lower to TMA", node.span or span)

    _Stores().visit(stmt)
    copies_ok = stores and all(
        isinstance(store.value, BufferLoad) and store.buffer.scope in SHARED_SCOPES
        and store.value.buffer.scope == "global" and store.buffer.dtype ==
        store.value.buffer.dtype for store in stores)
    if not copies_ok:
        raise PipelineError(
            f"{name}: {asynchronous} is not a tile copy from global to "
            "shared memory (each store must be shared[...] = global[...] of one dtype), so "
            "it cannot become a TMA copy", span)
    per_thread = [thread_loop for thread_loop in thread_loops
                  if mentions(stmt, thread_loop.loop_var)]
    if isinstance(stmt, Block) and stmt.reads and stmt.writes and not per_thread:
        reads, writes = stmt.reads, stmt.writes
    else:
        whole = stmt
        for thread_loop in reversed(per_thread):
            whole = For(thread_loop.loop_var, thread_loop.min, thread_loop.extent,
                        ForKind.SERIAL, whole)
        reads, writes = infer_regions(whole, analyzer=analyzer)
    if len(reads) != 1 or len(writes) != 1:
        raise PipelineError(
            f"{name}: {asynchronous} must copy one global tile into one "
            f"shared tile; it reads {len(reads)} and writes {len(writes)} buffers", span)
    source, destination = reads[0], writes[0]
    extents = []
    for region in (source, destination):
        sizes = [as_int(analyzer.simplify(range_.extent)) for range_ in region.region]
        if any(size is None for size in sizes):
            raise PipelineError(
                f"{name}: the tile of {region.buffer.name} copied by {statement} "
                "needs constant extents for a TMA copy", span)
        extents.append([size for size in sizes if size != 1])
    if extents[0] != extents[1]:
        raise PipelineError(
            f"{name}: {statement} copies a {extents[0]} tile of "
            f"{source.buffer.name} into a {extents[1]} tile of {destination.buffer.name}",
            span)
    for store in stores:
        if not _same_offsets(store, destination, source, analyzer):
            raise PipelineError(
                f"{name}: {statement} does not copy each element of the "
                f"{source.buffer.name} tile to the same place in the {destination.buffer.name} "
                "tile, as a TMA copy does", store.span or span)
    num_elements = 1
    for size in extents[0]:
        num_elements *= size
    return TileCopy(position, destination, source,
                    num_elements * dtype_bytes(destination.buffer.dtype))


def _same_offsets(store: BufferStore, destination: BufferRegion, source: BufferRegion,
                  analyzer: Analyzer) -> bool:
    """Whether ``store`` puts ``source``'s element at offset o of the tile at offset o of
    ``destination``'s (dimensions of extent one left out)."""

    def offsets(indices, region: BufferRegion) -> list[PrimExpr]:
        return [index - range_.min for index, range_ in zip(indices, region.region)
                if as_int(analyzer.simplify(range_.extent)) != 1]

    written = offsets(store.indices, destination)
    read = offsets(store.value.indices, source)
    return len(written) == len(read) and all(
        as_int(analyzer.simplify(left - right)) == 0 for left, right in zip(written, read))


def _shared_across_threads(loop: For, statements: list[Stmt], copies: set[int],
                           analyzer: Analyzer) -> set[int]:
    """The statements that need a block barrier before them: those that write shared
    memory that other threads of the loop access, and those that access it.

    With a barrier before each, every access of such data by one statement is ordered
    after every access by another (or by an earlier instance of the same one), as the
    count pipeline's thread synchronization orders them. A statement whose own threads
    write what other threads access in it cannot be ordered by barriers around it.
    """
    regions = [infer_regions(stmt, analyzer=analyzer) for stmt in statements]
    synchronized: set[int] = set()
    for position, (_, writes) in enumerate(regions):
        if position in copies:
            continue
        for written in writes:
            if written.buffer.scope not in SHARED_SCOPES:
                continue
            for other, (reads, other_writes) in enumerate(regions):
                for accessed in reads + other_writes:
                    if accessed.buffer is not written.buffer or _within(
                            accessed, written, analyzer):
                        continue
                    if other == position:
                        raise PipelineError(
                            f"pipelined loop '{loop.loop_var.name}': statement {position} "
                            f"writes {written.buffer.name} and accesses it where other "
                            "threads write it; no barrier around the statement orders "
                            "that (split it into two statements)",
                            getattr(statements[other], "span", None) or loop.span)
                    synchronized.update((position, other))
    return synchronized


def _within(inner: BufferRegion, outer: BufferRegion, analyzer: Analyzer) -> bool:
    return all(
        analyzer.can_prove(GE(small.min, large.min)) and analyzer.can_prove(
            LE(small.min + small.extent, large.min + large.extent))
        for small, large in zip(inner.region, outer.region))


def plan_barrier_pipeline(loop: For, analyzer: Analyzer | None = None,
                          thread_loops: Sequence[For] = ()) -> BarrierPlan:
    """The barrier plan of ``loop`` (inside ``thread_loops``) from its pipeline schedule.

    The schedule (:func:`tilepipe.transform.pipeline.schedule.compute_schedule`, the one
    the count-based synchronization reads) gives the producer -> consumer dependencies
    and the ring depth of every copied buffer; the copies of one stage share barriers.
    Raises :class:`PipelineError` when an asynchronous statement is not a tile copy, the
    annotation breaks a dependency, or a copied buffer is written by another statement.
    """
    analyzer = analyzer or Analyzer()
    statements, allocations = _loop_statements(loop)
    annotation = read_annotation(loop, len(statements))
    analyzer = analyzer.copy()
    analyzer.bind(loop.loop_var, Range(loop.min, loop.extent))
    for thread_loop in thread_loops:
        analyzer.bind(thread_loop.loop_var, Range(thread_loop.min, thread_loop.extent))
    groups: dict[int, BarrierGroup] = {}
    for index, stmt in enumerate(statements):
        if annotation.stages[index] in annotation.async_stages:
            copy = _tile_copy(loop, index, stmt, analyzer, thread_loops)
            groups.setdefault(annotation.stages[index], BarrierGroup(
                annotation.stages[index], [])).copies.append(copy)
    if not groups:
        raise PipelineError(
            f"pipelined loop '{loop.loop_var.name}' has no asynchronous stage: there is no "
            "copy to lower to TMA and mbarriers (mark the copy stages with "
            "software_pipeline_async_stages, or use the wait-count form)", loop.span)
    copied = {copy.destination.buffer: group for group in groups.values()
              for copy in group.copies}
    synchronized = _shared_across_threads(
        loop, statements, {copy.position for group in groups.values()
                           for copy in group.copies}, analyzer)
    local = list(copied) + [buffer for buffer in allocations if buffer not in copied]
    schedule = compute_schedule(loop, statements, local, annotation)
    for dependency in schedule.dependencies:
        producer = schedule.statements[dependency.producer]
        consumer = schedule.statements[dependency.consumer]
        if not producer.is_async or consumer.is_async:
            continue
        # The schedule takes an opaque call as reading and writing its regions; only a
        # store really overwrites what a copy fills.
        if dependency.buffer in _buffers_touched(consumer.stmt)[1]:
            raise PipelineError(
                f"pipelined loop '{loop.loop_var.name}': statement {consumer.index} writes "
                f"{dependency.buffer.name}, which a TMA copy fills",
                getattr(consumer.stmt, "span", None) or loop.span)
        group = copied[dependency.buffer]
        if consumer.index not in group.consumers:
            group.consumers.append(consumer.index)
    plan = BarrierPlan(loop, statements, annotation.stages, annotation.orders, [], {},
                       allocations, synchronized=synchronized)
    for buffer in allocations:
        versions = schedule.versions.get(buffer, 1)
        if buffer not in copied and versions > 1:
            plan.versions[buffer] = versions
            plan.rings[buffer] = _ring(buffer, versions)
    for stage in sorted(groups):
        group = groups[stage]
        if not group.consumers:
            raise PipelineError(
                f"pipelined loop '{loop.loop_var.name}': nothing in the loop reads what "
                f"stage {stage} copies", loop.span)
        group.consumers.sort()
        plan.groups.append(group)
        group.num_slots = max(schedule.versions.get(buffer, 1) for buffer in group.buffers)
        prefix = f"stage{stage}_" if len(groups) > 1 else ""
        group.full = Buffer(f"{prefix}full", (IntImm(group.num_slots),), BARRIER_DTYPE,
                            "shared")
        group.empty = Buffer(f"{prefix}empty", (IntImm(group.num_slots),), BARRIER_DTYPE,
                             "shared")
        for buffer in group.buffers:
            plan.rings[buffer] = _ring(buffer, group.num_slots)
    return plan


def _ring(buffer: Buffer, versions: int) -> Buffer:
    """``buffer`` with a leading dimension of ``versions`` slots."""
    return Buffer(buffer.name, (IntImm(versions),) + tuple(buffer.shape), buffer.dtype,
                  buffer.scope, buffer.span)


# Emission ------------------------------------------------------------------------------
class _RingAccess(IRMutator):
    """Every access of a ringed buffer gets the slot as its leading index."""

    def __init__(self, rings: dict[Buffer, Buffer], slots: dict[Buffer, PrimExpr]):
        self.rings = rings
        self.slots = slots

    def visit_buffer_load(self, node: BufferLoad) -> PrimExpr:
        node = super().visit_buffer_load(node)
        if node.buffer in self.rings:
            return BufferLoad(self.rings[node.buffer], (self.slots[node.buffer],) +
                              node.indices, node.span)
        return node

    def visit_buffer_store(self, node: BufferStore) -> Stmt:
        node = super().visit_buffer_store(node)
        if node.buffer in self.rings:
            return BufferStore(self.rings[node.buffer], node.value,
                               (self.slots[node.buffer],) + node.indices, node.span)
        return node

    def visit_buffer_region(self, node: BufferRegion) -> BufferRegion:
        node = super().visit_buffer_region(node)
        if node.buffer in self.rings:
            return BufferRegion(self.rings[node.buffer],
                                (Range(self.slots[node.buffer], IntImm(1)),) + node.region,
                                node.span)
        return node


@dataclass
class Instance:
    """Instance ``index`` (counted from the loop start) of the original loop body."""

    value: PrimExpr  # the original loop variable's value
    index: PrimExpr  # value - loop.min

    def slot(self, group: BarrierGroup, analyzer: Analyzer) -> PrimExpr:
        return analyzer.simplify(self.index % group.num_slots)

    def parity(self, group: BarrierGroup, analyzer: Analyzer, flipped: bool = False
               ) -> PrimExpr:
        phase = self.index // group.num_slots + (1 if flipped else 0)
        return analyzer.simplify(phase % 2)


class BarrierEmitter:
    """Builds the statements of a plan for one instance: copies, waits, releases.

    ``run_order(position)`` orders the statements as the consumers run one instance:
    the first to run waits for the data, the last releases the slot.
    """

    def __init__(self, plan: BarrierPlan, analyzer: Analyzer, run_order=None):
        self.plan = plan
        self.analyzer = analyzer
        self.run_order = run_order or plan.pipelined_order

    def instance(self, value: PrimExpr) -> Instance:
        loop = self.plan.loop
        return Instance(self.analyzer.simplify(value),
                        self.analyzer.simplify(value - loop.min))

    def produce(self, group: BarrierGroup, instance: Instance) -> Stmt:
        """Wait for the slot to be empty, announce the bytes, issue the copies."""
        slot = instance.slot(group, self.analyzer)
        statements = [
            call("mbarrier_wait_parity", group.empty, slot,
                 instance.parity(group, self.analyzer, flipped=True)),
            call("mbarrier_arrive_expect_tx", group.full, slot, const(group.num_bytes)),
        ]
        loop_var = self.plan.loop.loop_var
        for copy in group.copies:
            destination = substitute(copy.destination, {loop_var: instance.value})
            source = substitute(copy.source, {loop_var: instance.value})
            destination = _RingAccess(self.plan.rings, {copy.destination.buffer: slot}
                                      ).visit(destination)
            source = BufferRegion(source.buffer, tuple(
                Range(self.analyzer.simplify(r.min), self.analyzer.simplify(r.extent))
                for r in source.region), source.span)
            statements.append(call("tma_load", destination, source, group.full, slot))
        return seq(*statements)

    def consume(self, position: int, instance: Instance, overlap_mma: bool = False) -> Stmt:
        """The statement for ``instance`` on its ring slots, with the waits before the
        first consumer of a copy and the releases after the last.

        A statement issuing ``T.wgmma`` is fenced and committed as one wgmma group. It
        waits for its group to finish before releasing its slots (``wait_group 0``);
        with ``overlap_mma`` it lets it run (``wait_group 1``) and releases the slots
        of the previous instance instead, whose group that wait finished (see
        :meth:`release_last`)."""
        plan = self.plan
        before, after, slots = [], [], {}
        mma = issues_wgmma(plan.statements[position])
        previous = Instance(self.analyzer.simplify(instance.value - 1),
                            self.analyzer.simplify(instance.index - 1))
        deferred = []
        for group in plan.groups:
            if position not in group.consumers:
                continue
            slot = instance.slot(group, self.analyzer)
            for buffer in group.buffers:
                slots[buffer] = slot
            if min(group.consumers, key=self.run_order) == position:
                before.append(call("mbarrier_wait_parity", group.full, slot,
                                   instance.parity(group, self.analyzer)))
            if max(group.consumers, key=self.run_order) == position:
                if mma and overlap_mma:
                    deferred.append(call("mbarrier_arrive", group.empty,
                                         previous.slot(group, self.analyzer)))
                else:
                    after.append(call("mbarrier_arrive", group.empty, slot))
        for buffer, versions in plan.versions.items():
            slots[buffer] = self.analyzer.simplify(instance.index % versions)
        touched = _buffers_touched(plan.statements[position])
        for tile, barrier in plan.copied_before.items():
            if tile in touched[0] | touched[1]:
                before.insert(0, self.first(call("mbarrier_wait_parity", barrier, IntImm(0),
                                                 IntImm(0)), instance))
        stmt = substitute(plan.statements[position], {plan.loop.loop_var: instance.value})
        if slots:
            stmt = _RingAccess(plan.rings, slots).visit(stmt)
        if mma:
            stmt = seq(call("wgmma_fence"), stmt, call("wgmma_commit_group"),
                       call("wgmma_wait_group", IntImm(1 if overlap_mma else 0)))
            if deferred:
                after.insert(0, self.guarded(seq(*deferred), previous))
        return seq(*before, stmt, *after)

    def release_last(self, position: int, last: Instance) -> Stmt:
        """After an overlapped wgmma consumer's loop: wait for every group, release the
        slots of the last instance."""
        releases = [call("mbarrier_arrive", group.empty, last.slot(group, self.analyzer))
                    for group in self.plan.groups
                    if position in group.consumers
                    and max(group.consumers, key=self.run_order) == position]
        return seq(call("wgmma_wait_group", IntImm(0)),
                   self.guarded(seq(*releases), last) if releases else None)

    def initialize(self, elected: PrimExpr | None, num_consumers: int) -> Stmt:
        """Barrier initialization by the elected thread, then a block barrier."""
        inits = []
        for group in self.plan.groups:
            slot = Var("slot")
            inits.append(For(slot, IntImm(0), IntImm(group.num_slots), ForKind.SERIAL, seq(
                call("mbarrier_init", group.full, slot, IntImm(1)),
                call("mbarrier_init", group.empty, slot, IntImm(num_consumers)))))
        body = seq(*inits)
        if elected is not None:
            body = IfThenElse(elected, body)
        return seq(body, barrier_sync())

    def first(self, stmt: Stmt, instance: Instance) -> Stmt:
        """``stmt`` only for the first instance of the loop."""
        return IfThenElse(EQ(instance.index, IntImm(0)), stmt)

    def guarded(self, stmt: Stmt, instance: Instance) -> Stmt:
        """``stmt`` only when ``instance`` is an iteration of the original loop."""
        loop = self.plan.loop
        conditions = [GE(instance.index, IntImm(0)), LT(instance.index, loop.extent)]
        kept = [c for c in conditions if not self.analyzer.can_prove(c)]
        if not kept:
            return stmt
        condition = kept[0] if len(kept) == 1 else And(kept[0], kept[1])
        return IfThenElse(self.analyzer.simplify(condition), stmt)


@dataclass
class ThreadScope:
    """The ``threadIdx`` bindings around a loop: who is elected, how many threads."""

    loops: list[For]

    @property
    def num_threads(self) -> int:
        count = 1
        for loop in self.loops:
            extent = as_int(loop.extent)
            if extent is None:
                raise PipelineError("barrier lowering needs constant thread extents",
                                    loop.span)
            count *= extent
        return count

    def linear_index(self) -> PrimExpr:
        """The thread's index in the block, x fastest."""
        index: PrimExpr | None = None
        for loop in sorted(self.loops, key=lambda loop: loop.thread_tag, reverse=True):
            offset = loop.loop_var - loop.min
            index = offset if index is None else index * loop.extent + offset
        return Analyzer().simplify(index) if index is not None else IntImm(0)

    def elected(self) -> PrimExpr | None:
        if not self.loops:
            return None
        condition: PrimExpr | None = None
        for loop in self.loops:
            test = EQ(loop.loop_var, loop.min)
            condition = test if condition is None else And(condition, test)
        return condition


def _single_role_loop(plan: BarrierPlan, threads: ThreadScope, analyzer: Analyzer) -> Stmt:
    """One loop, every thread consuming, the elected thread producing."""
    loop = plan.loop
    emitter = BarrierEmitter(plan, analyzer)
    iteration = Var(loop.loop_var.name, loop.loop_var.dtype)
    extent = analyzer.simplify(loop.extent + plan.max_stage)
    analyzer.bind(iteration, Range(loop.min, extent))
    elected = threads.elected()
    body = []
    for position in sorted(range(len(plan.statements)), key=lambda p: plan.orders[p]):
        instance = emitter.instance(iteration - plan.stages[position])
        group = plan.group_of(position)
        if group is not None:
            if group.copies[0].position != position:
                continue  # emitted with the group's first copy
            stmt = emitter.produce(group, instance)
            if elected is not None:
                stmt = IfThenElse(elected, stmt)
        else:
            stmt = emitter.consume(position, instance)
        if position in plan.synchronized:
            body.append(barrier_sync())
        body.append(emitter.guarded(stmt, instance))
    new_loop = For(iteration, loop.min, extent, ForKind.SERIAL, seq(*body), None,
                   other_annotations(loop.annotations), loop.span)
    return seq(emitter.initialize(elected, threads.num_threads), new_loop)


class BarrierLowering(IRMutator):
    """Replaces every pipelined loop by ``lower_loop(plan, threads, analyzer)`` and then
    allocates the rings and barriers its plans need (:meth:`run`).

    The buffers a loop body allocates move to the block around the loop. An
    asynchronous tile copy before the loop becomes a TMA copy issued by the elected
    thread on a barrier of its own (``<buffer>_full``, one phase), which every thread
    waits for right before the first statement after it that touches the copied tile.
    """

    def __init__(self, lower_loop):
        self.lower_loop = lower_loop
        self.thread_loops: list[For] = []
        self.serial_loops: list[For] = []  # loops around, other than thread bindings
        self.rings: dict[Buffer, Buffer] = {}
        self.barriers: dict[Buffer, list[Buffer]] = {}  # allocated buffer -> barriers
        self.hoisted: list[list[Buffer]] = [[]]  # per enclosing block, innermost last
        self.copied_before: dict[Buffer, tuple[Buffer, Stmt]] = {}  # tile -> barrier, copy
        self.waited_in_loop: dict[Buffer, Buffer] = {}  # for the next loop: tile -> barrier
        self.copies_before: list[AsyncScope] = []  # every copy lowered before a loop
        self.analyzer = Analyzer()

    def lower_pipelined(self, loop: For) -> Stmt:
        if self.serial_loops:
            outer = self.serial_loops[-1]
            raise PipelineError(
                f"pipelined loop '{loop.loop_var.name}' is inside loop "
                f"'{outer.loop_var.name}': its mbarriers are initialized once and their "
                "phases follow the pipelined loop's iterations, so the barrier lowering "
                "needs it outside other loops; pipeline the outer loop (the inner one is "
                "then pipelined by wait counts inside it) or use the wait-count form "
                "(--sync counts, inject_software_pipeline), whose pipelines nest", loop.span)
        loop = _inner_pipelines_by_counts(loop)
        plan = plan_barrier_pipeline(loop, self.analyzer, self.thread_loops)
        plan.copied_before, self.waited_in_loop = self.waited_in_loop, {}
        self.rings.update(plan.rings)
        self.barriers.setdefault(plan.groups[0].buffers[0], []).extend(
            barrier for group in plan.groups for barrier in (group.full, group.empty))
        self.hoisted[-1].extend(plan.allocations)
        return self.lower_loop(plan, ThreadScope(list(self.thread_loops)),
                               self.analyzer.copy())

    def visit_block(self, node: Block) -> Stmt:
        self.hoisted.append([])
        try:
            new = super().visit_block(node)
        finally:
            hoisted = self.hoisted.pop()
        if not hoisted:
            return new
        return Block(new.name, new.body, new.reads, new.writes,
                     tuple(new.alloc_buffers) + tuple(hoisted), new.predicate,
                     new.annotations, new.span)

    def visit_seq_stmt(self, node: SeqStmt) -> Stmt:
        """The statements, each after the waits for the copies before the loop whose
        tiles it is the first to touch; a pipelined loop waits in the first instance of
        each statement that touches them, so that its own copies start meanwhile."""
        stmts: list[Stmt] = []
        for stmt in node.stmts:
            if self.copied_before:
                reads, writes = _buffers_touched(stmt)
                for buffer in [buffer for buffer in self.copied_before
                               if buffer in reads | writes]:
                    barrier, _ = self.copied_before.pop(buffer)
                    if isinstance(stmt, For) and is_pipelined(stmt):
                        self.waited_in_loop[buffer] = barrier
                    else:
                        stmts.append(call("mbarrier_wait_parity", barrier, IntImm(0),
                                          IntImm(0)))
            stmts.append(self.visit(stmt))
        if len(stmts) == len(node.stmts) and all(
                new is old for new, old in zip(stmts, node.stmts)):
            return node
        return SeqStmt(tuple(stmts), node.span)

    def visit_for(self, node: For) -> Stmt:
        if is_thread_loop(node):
            self.thread_loops.append(node)
            try:
                return super().visit_for(node)
            finally:
                self.thread_loops.pop()
        if is_pipelined(node):
            return self.lower_pipelined(node)
        if node.kind is ForKind.THREAD_BINDING:
            return super().visit_for(node)
        self.serial_loops.append(node)
        try:
            return super().visit_for(node)
        finally:
            self.serial_loops.pop()

    def visit_async_scope(self, node: AsyncScope) -> Stmt:
        """A tile copy before the pipelined loop: a TMA copy on a barrier of its own."""
        if self.serial_loops:
            raise PipelineError(
                "an asynchronous statement outside the pipelined loop, inside loop "
                f"'{self.serial_loops[-1].loop_var.name}': the barrier lowering gives such a "
                "copy one barrier phase, so it must run once (before the loop), or belong "
                "to a pipelined loop's stages", node.span)
        analyzer = self.analyzer.copy()
        for thread_loop in self.thread_loops:
            analyzer.bind(thread_loop.loop_var, Range(thread_loop.min, thread_loop.extent))
        copy = _tile_copy(None, 0, node.body, analyzer, self.thread_loops)
        tile = copy.destination.buffer
        if tile in self.copied_before:
            raise PipelineError(
                f"two asynchronous copies before the pipelined loop fill {tile.name} before "
                "anything reads it", node.span)
        barrier = Buffer(f"{tile.name}_full", (IntImm(1),), BARRIER_DTYPE, "shared")
        self.barriers.setdefault(tile, []).append(barrier)
        self.copied_before[tile] = (barrier, node)
        self.copies_before.append(node)
        source = BufferRegion(copy.source.buffer, tuple(
            Range(analyzer.simplify(r.min), analyzer.simplify(r.extent))
            for r in copy.source.region), copy.source.span)
        issue = seq(call("mbarrier_init", barrier, IntImm(0), IntImm(1)),
                    call("mbarrier_arrive_expect_tx", barrier, IntImm(0),
                         const(copy.num_bytes)),
                    call("tma_load", copy.destination, source, barrier, IntImm(0)))
        elected = ThreadScope(list(self.thread_loops)).elected()
        return seq(issue if elected is None else IfThenElse(elected, issue), barrier_sync())

    def run(self, func: PrimFunc) -> PrimFunc:
        body = self.visit(func.body)
        if self.copied_before:
            tile, (_, copy) = next(iter(self.copied_before.items()))
            raise PipelineError(
                f"nothing after the asynchronous copy into {tile.name} before the pipelined "
                "loop touches it: the barrier lowering waits for such a copy before its "
                "first reader", copy.span)
        if self.hoisted[0]:
            body = Block("root", body, alloc_buffers=tuple(self.hoisted[0]))
        if not self.rings and not self.barriers:
            return func.with_body(body) if self.hoisted[0] else func
        _check_rings_confined(body, self.rings)
        allocator = _AllocateRings(self.rings, self.barriers)
        body = allocator.visit(body)
        if allocator.barriers:
            buffer = next(iter(allocator.barriers))
            raise PipelineError(f"{buffer.name}, filled by TMA copies, must be allocated by "
                                "a block around its pipelined loop", buffer.span)
        return func.with_body(body)


def _inner_pipelines_by_counts(loop: For) -> For:
    """``loop`` with the pipelined loops of its body pipelined by commit groups and wait
    counts, innermost first (a pipelined loop nested in a barrier-form one)."""

    class _Inner(IRMutator):
        def visit_for(self, node: For) -> Stmt:
            node = super().visit_for(node)
            return pipeline_loop(node)[0] if is_pipelined(node) else node

    body = _Inner().visit(loop.body)
    if body is loop.body:
        return loop
    return For(loop.loop_var, loop.min, loop.extent, loop.kind, body, loop.thread_tag,
               loop.annotations, loop.span)


def is_thread_loop(loop: For) -> bool:
    return loop.kind is ForKind.THREAD_BINDING and (loop.thread_tag or "").startswith(
        "threadIdx")


class _AllocateRings(IRMutator):
    """Ringed buffers replace their originals where those are allocated; the barriers
    are allocated next to the first buffer their loop rings."""

    def __init__(self, rings: dict[Buffer, Buffer], barriers: dict[Buffer, list[Buffer]]):
        self.rings = rings
        self.barriers = barriers

    def visit_block(self, node: Block) -> Stmt:
        node = super().visit_block(node)
        if not any(buffer in self.rings or buffer in self.barriers
                   for buffer in node.alloc_buffers):
            return node
        allocations = []
        for buffer in node.alloc_buffers:
            allocations.append(self.rings.get(buffer, buffer))
            allocations += self.barriers.pop(buffer, [])
        return Block(node.name, node.body, node.reads, node.writes, tuple(allocations),
                     node.predicate, node.annotations, node.span)


def _check_rings_confined(body: Stmt, rings: dict[Buffer, Buffer]) -> None:
    class _Stray(IRVisitor):
        def visit_buffer_load(self, node: BufferLoad) -> None:
            self._check(node.buffer, node.span)
            super().visit_buffer_load(node)

        def visit_buffer_store(self, node: BufferStore) -> None:
            self._check(node.buffer, node.span)
            super().visit_buffer_store(node)

        def visit_buffer_region(self, node: BufferRegion) -> None:
            self._check(node.buffer, node.span)

        @staticmethod
        def _check(buffer: Buffer, span) -> None:
            if buffer in rings:
                raise PipelineError(
                    f"{buffer.name} is filled by TMA copies of a pipelined loop but also used "
                    "outside that loop", span)

    _Stray().visit(body)


def lower_to_barriers(func: PrimFunc) -> PrimFunc:
    """Every pipelined loop of ``func`` in the mbarrier + TMA form (one role)."""
    return BarrierLowering(_single_role_loop).run(func)
