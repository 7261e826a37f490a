"""The schedule of a software pipeline: stages, buffer versions, commit groups, queues and
the producer -> consumer dependencies of asynchronous statements.

The schedule says *what* runs where; it knows nothing of IR emission nor of how the
dependencies are enforced. :func:`compute_schedule` is the public entry: the count-based
synchronization (:mod:`.sync`) and barrier-based lowerings read the same
:class:`Dependency` records.

Time model. The pipelined loop runs *slots* ``t = 0, 1, ...`` (relative to the loop's
start); in slot ``t`` the statements run in emission order (``software_pipeline_order``)
and the statement of stage ``s`` works on iteration ``j = t - s`` when ``0 <= j < n``.
A dependency with distance ``d`` says that the consumer's instance at iteration ``j``
must not start before the producer's instance at iteration ``j - d`` has completed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from operator import attrgetter, itemgetter
from typing import Iterable, Mapping, Sequence

from ...arith import Analyzer, infer_regions
from ...ir import (
    AsyncCommitQueue, AsyncWaitQueue, BinaryOp, Block, Buffer, BufferRegion, FloatImm, For,
    IntImm, IRVisitor, PrimExpr, Range, Stmt, StringImm, Var, substitute,
)
from . import wgmma
from .annotations import ORDER, STAGE, PipelineAnnotation, loop_error


DOUBLE_BUFFER_SCOPE = "double_buffer_scope"


@dataclass(frozen=True, eq=False)
class PipelineStatement:
    """One statement of the loop body with its place in the pipeline.

    ``index`` is its position in the original body, ``position`` in emission order;
    ``reads`` / ``writes`` are its access regions in terms of the original loop variable;
    ``issues_wgmma`` whether it issues a warpgroup MMA.
    """

    index: int
    position: int
    stmt: Stmt
    stage: int
    order: int
    is_async: bool
    reads: tuple[BufferRegion, ...]
    writes: tuple[BufferRegion, ...]
    issues_wgmma: bool

    @property
    def line(self) -> str:
        span = getattr(self.stmt, "span", None)
        return f" (line {span.line})" if span is not None else ""


@dataclass(frozen=True)
class CommitGroup:
    """Asynchronous statements (emission positions, consecutive) committed together."""

    queue: int
    stage: int
    members: tuple[int, ...]


@dataclass(frozen=True)
class Dependency:
    """The consumer (an emission position) must wait for the asynchronous producer.

    ``distances`` are, ascending, the iteration distances ``d`` at which the producer's
    instance ``j - d`` precedes and conflicts with the consumer's instance ``j``: the
    newest existing one is the first ``d`` with ``0 <= j - d < n``. ``kind`` is
    ``"read"`` (the consumer reads what the producer writes), ``"write"`` (it overwrites
    what the producer reads or writes).
    """

    producer: int
    consumer: int
    buffer: Buffer
    distances: tuple[int, ...]
    kind: str


@dataclass(frozen=True, eq=False)
class PreloopProducer:
    """An asynchronous statement before the loop, committed as a group of its own on
    ``queue`` before the prologue; ``consumers`` are the loop statements (emission
    positions) whose accesses conflict with it, with the kind of conflict."""

    stmt: Stmt
    queue: int
    reads: tuple[BufferRegion, ...]
    writes: tuple[BufferRegion, ...]
    consumers: tuple[tuple[int, str], ...]


@dataclass(frozen=True, eq=False)
class Schedule:
    """Everything the emission and the synchronization need to know about a loop."""

    loop: For
    statements: tuple[PipelineStatement, ...]  # in emission order
    max_stage: int
    local_buffers: tuple[Buffer, ...]
    versions: Mapping[Buffer, int]
    queues: Mapping[int, int]  # asynchronous stage -> queue
    groups: tuple[CommitGroup, ...]
    group_of: tuple[int | None, ...]  # emission position -> index into groups
    dependencies: tuple[Dependency, ...]
    horizon: int
    consumers: Mapping[int, tuple[Dependency, ...]] = field(default_factory=dict)
    preloop: tuple[PreloopProducer, ...] = ()

    def waited_queues(self, position: int) -> tuple[int, ...]:
        """The queues (ascending) the statement at ``position`` may have to wait on."""
        return self._waited[position]

    @cached_property
    def _waited(self) -> tuple[tuple[int, ...], ...]:
        """``waited_queues`` of every position, found once (each plan asks for each)."""
        waited: dict[int, set[int]] = {}  # only the positions that wait on some queue
        for position, dependencies in self.consumers.items():
            waited[position] = {self.groups[self.group_of[dependency.producer]].queue
                                for dependency in dependencies}
        for producer in self.preloop:
            for position, _ in producer.consumers:
                waited.setdefault(position, set()).add(producer.queue)
        return tuple(tuple(sorted(waited[position])) if position in waited else ()
                     for position in range(len(self.statements)))


# Access regions ------------------------------------------------------------------------
class _RegionTest:
    """Decides whether two accesses to one buffer may overlap when their statements'
    instances are ``distance`` iterations apart: constant indices that differ never
    overlap; accesses that move with the loop variable are compared over their relaxed
    regions by the analyzer. Sound: what is not proved disjoint overlaps. Cached."""

    def __init__(self, loop: For):
        self.loop_var = loop.loop_var
        self.relaxed: dict[int, dict[Buffer, BufferRegion]] = {}
        self.moving: dict[BufferRegion, bool] = {}
        self.cache: dict[tuple[int, int, int], bool] = {}

    def _moves(self, region: BufferRegion) -> bool:
        known = self.moving.get(region)
        if known is None:
            known = False
            for range_ in region.region:
                if mentions(range_.min, self.loop_var) or mentions(range_.extent,
                                                                  self.loop_var):
                    known = True
                    break
            self.moving[region] = known
        return known

    def may_overlap(self, producer: "PipelineStatement", producer_region: BufferRegion,
                    consumer: "PipelineStatement", consumer_region: BufferRegion,
                    distance: int) -> bool:
        moving = self._moves(producer_region) or self._moves(consumer_region)
        if not moving:
            return not _constant_disjoint_regions(producer_region, consumer_region)
        if distance == 0:
            return True
        key = (id(producer_region), id(consumer_region), distance)
        known = self.cache.get(key)
        if known is None:
            known = self._relaxed_overlap(producer, consumer, producer_region.buffer, distance)
            self.cache[key] = known
        return known

    @cached_property
    def analyzer(self) -> Analyzer:
        """Built on first use: most loops need no relaxed region."""
        return Analyzer()

    def overlapping(self, producer: "PipelineStatement", producer_region: BufferRegion,
                    consumer: "PipelineStatement", consumer_region: BufferRegion,
                    distances: range) -> Sequence[int]:
        """The ``distances`` (ascending) at which the two accesses may overlap (all or
        none of them when neither moves with the loop variable)."""
        if not (self._moves(producer_region) or self._moves(consumer_region)):
            return () if _constant_disjoint_regions(producer_region, consumer_region) \
                else distances
        return tuple(distance for distance in distances
                     if self.may_overlap(producer, producer_region, consumer, consumer_region,
                                         distance))

    def _relaxed_region(self, statement: "PipelineStatement", buffer: Buffer
                        ) -> BufferRegion | None:
        table = self.relaxed.get(id(statement))
        if table is None:
            reads, writes = infer_regions(statement.stmt)
            table = {}
            for region in reads + writes:
                table.setdefault(region.buffer, region)
            self.relaxed[id(statement)] = table
        return table.get(buffer)

    def _relaxed_overlap(self, producer: "PipelineStatement", consumer: "PipelineStatement",
                         buffer: Buffer, distance: int) -> bool:
        left = self._relaxed_region(producer, buffer)
        right = self._relaxed_region(consumer, buffer)
        if left is None or right is None:
            return True
        left = substitute(left, {self.loop_var: self.loop_var - distance})
        for first, second in zip(left.region, right.region):
            if _constant_disjoint(first, second):
                return False
            if (self.analyzer.can_prove(first.min + first.extent <= second.min)
                    or self.analyzer.can_prove(second.min + second.extent <= first.min)):
                return False
        return True


class _VarFinder(IRVisitor):
    def __init__(self, var: Var):
        self.var = var
        self.found = False

    def visit_var(self, node: Var) -> None:
        if node is self.var:
            self.found = True


def mentions(node, var: Var) -> bool:
    """Whether ``var`` occurs in ``node``."""
    if isinstance(node, Var):
        return node is var
    if isinstance(node, IntImm):
        return False
    if isinstance(node, BinaryOp):
        # Index arithmetic, the common case, needs no visitor.
        return mentions(node.a, var) or mentions(node.b, var)
    finder = _VarFinder(var)
    finder.visit(node)
    return finder.found


def _constant_disjoint_regions(left: BufferRegion, right: BufferRegion) -> bool:
    for first, second in zip(left.region, right.region):
        if _constant_disjoint(first, second):
            return True
    return False


def _constant_disjoint(left: Range, right: Range) -> bool:
    if not (isinstance(left.min, IntImm) and isinstance(left.extent, IntImm)
            and isinstance(right.min, IntImm) and isinstance(right.extent, IntImm)):
        return False
    return (left.min.value + left.extent.value <= right.min.value
            or right.min.value + right.extent.value <= left.min.value)


# Schedule --------------------------------------------------------------------------------
def _double_buffered(stmts: Iterable[Stmt]) -> set[Buffer]:
    """Buffers that a ``double_buffer_scope`` block attribute asks to keep two versions of."""
    chosen: set[Buffer] = set()
    for stmt in stmts:
        if isinstance(stmt, Block) and DOUBLE_BUFFER_SCOPE in stmt.annotations:
            index = stmt.annotations[DOUBLE_BUFFER_SCOPE]
            index = index.value if isinstance(index, IntImm) else index
            if isinstance(index, int) and 0 <= index < len(stmt.writes):
                chosen.add(stmt.writes[index].buffer)
    return chosen


_LEAVES = (Var, IntImm, FloatImm, StringImm)


class _Accesses(IRVisitor):
    """One walk of a statement giving what the schedule asks of it: every access as a
    region of single elements (loop variables of the statement left free), in order,
    where a block that declares its regions gives those; whether it issues a warpgroup
    MMA; the queues that its inner pipelines commit to or wait on. Accesses are recorded
    outside declared blocks only (``recording``).

    One walker serves every statement of a loop: ``points``, which maps an index
    expression to its single-element range, is shared since most indices (``tx``, ``e``)
    recur, and ``queues`` gathers the queues of all statements walked."""

    def __init__(self) -> None:
        self.reads: list[BufferRegion] = []
        self.writes: list[BufferRegion] = []
        self.issues_wgmma = False
        self.queues: set[int] = set()
        self.recording = True
        self.points: dict[PrimExpr, Range] = {}

    def walk(self, stmt: Stmt
             ) -> tuple[tuple[BufferRegion, ...], tuple[BufferRegion, ...], bool]:
        """The reads and writes of ``stmt`` and whether it issues a warpgroup MMA."""
        self.reads, self.writes, self.issues_wgmma = [], [], False
        self.visit(stmt)
        return tuple(self.reads), tuple(self.writes), self.issues_wgmma

    def _element(self, buffer: Buffer, indices: tuple[PrimExpr, ...]) -> BufferRegion:
        """The single element ``buffer[indices]``, after walking its indices (a load in
        an index is an access of its own, recorded before this one)."""
        points = self.points
        ranges = []
        for index in indices:
            if not isinstance(index, _LEAVES):
                self.visit(index)
            range_ = points.get(index)
            if range_ is None:
                range_ = points[index] = Range(index, IntImm(1, index.dtype))
            ranges.append(range_)
        return BufferRegion(buffer, tuple(ranges))

    def _visit_indices(self, indices: tuple[PrimExpr, ...]) -> None:
        for index in indices:
            if not isinstance(index, _LEAVES):
                self.visit(index)

    def _visit_unrecorded(self, node) -> None:
        """Walks ``node`` for wgmma calls and queues only."""
        recording, self.recording = self.recording, False
        self.visit(node)
        self.recording = recording

    # Variables and constants hold nothing to find: the walk does not call on them.
    def visit_binary_op(self, node) -> None:
        if not isinstance(node.a, _LEAVES):
            self.visit(node.a)
        if not isinstance(node.b, _LEAVES):
            self.visit(node.b)

    def visit_buffer_load(self, node) -> None:
        if self.recording:
            self.reads.append(self._element(node.buffer, node.indices))
        else:
            self._visit_indices(node.indices)

    def visit_buffer_store(self, node) -> None:
        if not isinstance(node.value, _LEAVES):
            self.visit(node.value)
        if self.recording:
            self.writes.append(self._element(node.buffer, node.indices))
        else:
            self._visit_indices(node.indices)

    def visit_for(self, node: For) -> None:
        if not isinstance(node.min, _LEAVES):
            self.visit(node.min)
        if not isinstance(node.extent, _LEAVES):
            self.visit(node.extent)
        self.visit(node.body)

    def visit_call(self, node) -> None:
        if node.op == wgmma.WGMMA:
            self.issues_wgmma = True
        if not self.recording:
            super().visit_call(node)
            return
        known = wgmma.call_accesses(node)
        if known is not None:
            self.reads.extend(known[0])
            self.writes.extend(known[1])
            self._visit_unrecorded(node)
            return
        # An opaque call may read or write any buffer it is given.
        for arg in node.args:
            region = BufferRegion.full(arg) if isinstance(arg, Buffer) else arg
            if isinstance(region, BufferRegion):
                self.reads.append(region)
                self.writes.append(region)
                self._visit_unrecorded(arg)
            elif isinstance(arg, PrimExpr):
                self.visit(arg)

    def visit_block(self, node: Block) -> None:
        if self.recording and (node.reads or node.writes):
            self.reads.extend(node.reads)
            self.writes.extend(node.writes)
            self._visit_unrecorded(node)
        else:
            super().visit_block(node)

    def visit_async_commit_queue(self, node: AsyncCommitQueue) -> None:
        self.queues.add(node.queue)
        super().visit_async_commit_queue(node)

    def visit_async_wait_queue(self, node: AsyncWaitQueue) -> None:
        self.queues.add(node.queue)
        super().visit_async_wait_queue(node)


def outside_statement(stmt: Stmt, index: int = -1, is_async: bool = True
                      ) -> PipelineStatement:
    """A statement before the loop as the schedule sees one of the loop's: stage 0, no
    emission position; ``index`` is its place among the statements before the loop."""
    return PipelineStatement(index, -1, stmt, 0, -1, is_async, *_Accesses().walk(stmt))


def _check_dependencies(loop: For, statements: Sequence[PipelineStatement]) -> None:
    """A statement must not run before (stage) or ahead of (order, same stage) the
    statement that writes what it reads earlier in the same iteration."""
    last_writer: dict[Buffer, PipelineStatement] = {}
    for statement in sorted(statements, key=attrgetter("index")):
        for region in statement.reads:
            writer = last_writer.get(region.buffer)
            if writer is None:
                continue
            if writer.stage > statement.stage:
                raise loop_error(
                    loop, STAGE,
                    f"schedules statement {statement.index}{statement.line} (stage "
                    f"{statement.stage}) before statement {writer.index}{writer.line} (stage "
                    f"{writer.stage}) that produces '{region.buffer.name}' for it")
            if writer.stage == statement.stage and writer.order > statement.order:
                raise loop_error(
                    loop, ORDER,
                    f"puts statement {statement.index}{statement.line} before statement "
                    f"{writer.index}{writer.line} in stage {statement.stage}, but it reads "
                    f"'{region.buffer.name}' that the other writes first")
        for region in statement.writes:
            last_writer[region.buffer] = statement


def compute_schedule(loop: For, stmts: Sequence[Stmt], local_buffers: Sequence[Buffer],
                     annotation: PipelineAnnotation, preloop: Sequence[Stmt] = ()) -> Schedule:
    """The schedule of ``loop`` whose body is ``stmts`` (in original order) and whose
    body block allocates ``local_buffers``; ``preloop`` are asynchronous statements
    before the loop. Raises :class:`PipelineError` when the annotation breaks a
    dependency."""
    orders, stages = annotation.orders, annotation.stages
    emission = sorted(range(len(stmts)), key=orders.__getitem__)
    statements = []
    accesses = _Accesses()
    for position, index in enumerate(emission):
        stage = stages[index]
        statements.append(PipelineStatement(
            index, position, stmts[index], stage, orders[index],
            stage in annotation.async_stages, *accesses.walk(stmts[index])))
    _check_dependencies(loop, statements)
    wgmma.check_stages(loop, statements)
    regions = _RegionTest(loop)
    versions = _versions(statements, local_buffers, _double_buffered(stmts), regions)
    base = max(accesses.queues, default=-1) + 1  # past the queues of inner pipelines
    queues = {stage: base + stage for stage in sorted(annotation.async_stages)}
    groups, group_of = _commit_groups(statements, queues)
    horizon = annotation.max_stage + max(versions.values(), default=1) + 2
    dependencies = _dependencies(statements, versions, regions, horizon)
    consumers: dict[int, list[Dependency]] = {}
    for dependency in dependencies:
        consumers.setdefault(dependency.consumer, []).append(dependency)
    preloop_queue = queues[min(queues)] if queues else base
    producers = tuple(_preloop_producer(stmt, preloop_queue, statements) for stmt in preloop)
    return Schedule(loop, tuple(statements), annotation.max_stage, tuple(local_buffers),
                    versions, queues, groups, group_of, dependencies, horizon,
                    {key: tuple(value) for key, value in consumers.items()}, producers)


def _preloop_producer(stmt: Stmt, queue: int, statements: Sequence[PipelineStatement]
                      ) -> PreloopProducer:
    producer = outside_statement(stmt)
    consumers = []
    for statement in statements:
        kinds = {kind for _, _, _, kind in conflicts(producer, statement)}
        if kinds:
            consumers.append((statement.position, "read" if "read" in kinds else "write"))
    return PreloopProducer(stmt, queue, producer.reads, producer.writes, tuple(consumers))


def _versions(statements: Sequence[PipelineStatement], local_buffers: Sequence[Buffer],
              double_buffered: set[Buffer], regions: _RegionTest) -> dict[Buffer, int]:
    """How many copies of each local buffer the ring needs.

    A value defined in stage ``def`` lives until its last reader's stage ``use`` (one
    stage more when that reader is asynchronous, since its read lasts until a later
    wait), so ``use - def + 1`` copies keep every live value apart. Two copies reduce to
    one when no writer's next instance runs before a reader of the current one is done.
    """
    writers: dict[Buffer, list[tuple[PipelineStatement, BufferRegion]]] = {
        buffer: [] for buffer in local_buffers}
    readers: dict[Buffer, list[tuple[PipelineStatement, BufferRegion]]] = {
        buffer: [] for buffer in local_buffers}
    for statement in statements:
        for region in statement.writes:
            if region.buffer in writers:
                writers[region.buffer].append((statement, region))
        for region in statement.reads:
            if region.buffer in readers:
                readers[region.buffer].append((statement, region))
    versions: dict[Buffer, int] = {}
    for buffer in local_buffers:
        written = writers[buffer]
        if not written:
            continue
        read = readers[buffer]
        define = min(statement.stage for statement, _ in written)
        use = max((statement.stage + int(statement.is_async) for statement, _ in read),
                  default=define)
        count = max(use - define + 1, 1)
        if count == 2 and not _next_write_meets_read(written, read, regions):
            count = 1
        if count == 1 and buffer in double_buffered:
            count = 2
        versions[buffer] = count
    return versions


def _next_write_meets_read(written: Sequence[tuple[PipelineStatement, BufferRegion]],
                           read: Sequence[tuple[PipelineStatement, BufferRegion]],
                           regions: _RegionTest) -> bool:
    """Whether a writer's next instance may run before a reader of the current one is
    done with what it overwrites (then one copy is not enough)."""
    for writer, write in written:
        for reader, region in read:
            if ((reader.stage + int(reader.is_async) == writer.stage + 1)
                    and (reader.is_async or writer.position < reader.position)
                    and regions.may_overlap(writer, write, reader, region, -1)):
                return True
    return False


def conflicts(first: PipelineStatement, second: PipelineStatement
               ) -> Iterable[tuple[Buffer, BufferRegion, BufferRegion, str]]:
    """Pairs of regions of one buffer where ``first`` and ``second`` may conflict."""
    for write in first.writes:
        for read in second.reads:
            if read.buffer is write.buffer:
                yield write.buffer, write, read, "read"
        for other in second.writes:
            if other.buffer is write.buffer:
                yield write.buffer, write, other, "write"
    for read in first.reads:
        if read.buffer.scope == "global":
            continue  # an asynchronous read of global memory races with nothing here
        for write in second.writes:
            if write.buffer is read.buffer:
                yield read.buffer, read, write, "write"


def _commit_groups(statements: Sequence[PipelineStatement], queues: Mapping[int, int]
                   ) -> tuple[tuple[CommitGroup, ...], tuple[int | None, ...]]:
    """Runs of consecutive asynchronous statements of one stage, split where a member
    touches what an earlier member of the run writes or reads asynchronously."""
    groups: list[CommitGroup] = []
    group_of: list[int | None] = [None] * len(statements)
    current: list[PipelineStatement] = []
    written: set[Buffer] = set()
    read: set[Buffer] = set()

    def close() -> None:
        if current:
            stage = current[0].stage
            groups.append(CommitGroup(queues[stage], stage,
                                      tuple(member.position for member in current)))
            for member in current:
                group_of[member.position] = len(groups) - 1
            current.clear()
            written.clear()
            read.clear()

    for statement in statements:
        if not statement.is_async:
            close()
            continue
        reads = {region.buffer for region in statement.reads}
        writes = {region.buffer for region in statement.writes}
        if current and (current[0].stage != statement.stage or not written.isdisjoint(reads)
                        or not written.isdisjoint(writes) or not read.isdisjoint(writes)):
            close()
        current.append(statement)
        written.update(writes)
        read.update(buffer for buffer in reads if buffer.scope != "global")
    close()
    return tuple(groups), tuple(group_of)


# A statement's access to a buffer: the statement, the region, whether it writes.
_Access = tuple[PipelineStatement, BufferRegion, bool]
# A possible conflict: producer region, consumer, consumer region, "read" or "write".
_Conflict = tuple[BufferRegion, PipelineStatement, BufferRegion, str]


def _dependencies(statements: Sequence[PipelineStatement], versions: Mapping[Buffer, int],
                  regions: _RegionTest, horizon: int) -> tuple[Dependency, ...]:
    """Every (asynchronous producer, consumer) pair with the distances they conflict at."""
    accesses: dict[Buffer, list[_Access]] = {}
    for statement in statements:
        for region in statement.reads:
            accesses.setdefault(region.buffer, []).append((statement, region, False))
        for region in statement.writes:
            accesses.setdefault(region.buffer, []).append((statement, region, True))
    found = []
    for producer in statements:
        if not producer.is_async:
            continue
        # (consumer position, buffer, kind) -> distances, ascending (as found, or merged
        # where two pairs of regions share a key)
        distances: dict[tuple[int, Buffer, str], Sequence[int]] = {}
        for region, consumer, other, kind in _conflicting_accesses(producer, accesses):
            # The producer's instance j - d precedes the consumer's instance j from here on.
            first = producer.stage - consumer.stage + int(producer.position >= consumer.position)
            count = versions.get(region.buffer, 1)
            if count > 1:
                # Instances in one copy of the ring are taken to overlap, in two never.
                chosen = range(first + (-first) % count, first + horizon, count)
            else:
                chosen = regions.overlapping(producer, region, consumer, other,
                                             range(first, first + horizon))
            key = (consumer.position, region.buffer, kind)
            known = distances.get(key)
            distances[key] = chosen if known is None else sorted({*known, *chosen})
        for key in sorted(distances, key=itemgetter(0)):  # by consumer, stable
            chosen = distances[key]
            if chosen:
                consumer, buffer, kind = key
                found.append(Dependency(producer.position, consumer, buffer, tuple(chosen),
                                        kind))
    return tuple(found)


def _conflicting_accesses(producer: PipelineStatement, accesses: Mapping[Buffer, list[_Access]]
                          ) -> Iterable[_Conflict]:
    """(producer region, consumer, consumer region, kind) for each access of the loop
    that may conflict with an access of the asynchronous ``producer``."""
    for region in producer.writes:
        for consumer, other, writes in accesses[region.buffer]:
            if not (producer.issues_wgmma and wgmma.in_order(producer, consumer)):
                yield region, consumer, other, "write" if writes else "read"
    for region in producer.reads:
        if region.buffer.scope == "global":
            continue  # an asynchronous read of global memory races with nothing here
        for consumer, other, writes in accesses[region.buffer]:
            if writes and not (producer.issues_wgmma and wgmma.in_order(producer, consumer)):
                yield region, consumer, other, "write"

