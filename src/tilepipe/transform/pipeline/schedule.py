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
from typing import Iterable, Mapping, Sequence

from ...arith import Analyzer, infer_regions
from ...errors import PipelineError
from ...ir import (
    AsyncCommitQueue, AsyncWaitQueue, Block, Buffer, BufferRegion, For, IRVisitor, IntImm,
    PrimExpr, Range, Stmt, Var, substitute,
)
from .annotations import ORDER, STAGE, PipelineAnnotation, loop_error

DOUBLE_BUFFER_SCOPE = "double_buffer_scope"


@dataclass(frozen=True, eq=False)
class PipelineStatement:
    """One statement of the loop body with its place in the pipeline.

    ``index`` is its position in the original body, ``position`` in emission order;
    ``reads`` / ``writes`` are its access regions in terms of the original loop variable.
    """

    index: int
    position: int
    stmt: Stmt
    stage: int
    order: int
    is_async: bool
    reads: tuple[BufferRegion, ...]
    writes: tuple[BufferRegion, ...]

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


# Access regions ------------------------------------------------------------------------
class _RegionTest:
    """Decides whether two regions of one buffer may overlap when their loop-variable
    instances are ``distance`` iterations apart; cached, sound (unknown means overlap)."""

    def __init__(self, loop: For):
        self.loop_var = loop.loop_var
        self.analyzer = Analyzer()
        self.cache: dict[tuple[int, int, int], bool] = {}

    def _mentions_loop_var(self, region: BufferRegion) -> bool:
        found = []

        class _Finder(IRVisitor):
            def visit_var(inner, node):
                if node is self.loop_var:
                    found.append(node)

        _Finder().visit(region)
        return bool(found)

    def may_overlap(self, producer: BufferRegion, consumer: BufferRegion, distance: int) -> bool:
        if distance != 0 and not (self._mentions_loop_var(producer)
                                  or self._mentions_loop_var(consumer)):
            distance = 0
        key = (id(producer), id(consumer), distance)
        known = self.cache.get(key)
        if known is None:
            known = self._decide(producer, consumer, distance)
            self.cache[key] = known
        return known

    def _decide(self, producer: BufferRegion, consumer: BufferRegion, distance: int) -> bool:
        if distance:
            producer = substitute(producer, {self.loop_var: self.loop_var - distance})
        for left, right in zip(producer.region, consumer.region):
            if _constant_disjoint(left, right):
                return False
        for left, right in zip(producer.region, consumer.region):
            if (self.analyzer.can_prove(left.min + left.extent <= right.min)
                    or self.analyzer.can_prove(right.min + right.extent <= left.min)):
                return False
        return True


def _constant_disjoint(left: Range, right: Range) -> bool:
    values = (left.min, left.extent, right.min, right.extent)
    if not all(isinstance(value, IntImm) for value in values):
        return False
    low_a, ext_a, low_b, ext_b = (value.value for value in values)
    return low_a + ext_a <= low_b or low_b + ext_b <= low_a


# Schedule --------------------------------------------------------------------------------
def _used_queues(stmts: Iterable[Stmt]) -> set[int]:
    queues: set[int] = set()

    class _Finder(IRVisitor):
        def visit_async_commit_queue(self, node: AsyncCommitQueue) -> None:
            queues.add(node.queue)
            super().visit_async_commit_queue(node)

        def visit_async_wait_queue(self, node: AsyncWaitQueue) -> None:
            queues.add(node.queue)
            super().visit_async_wait_queue(node)

    finder = _Finder()
    for stmt in stmts:
        finder.visit(stmt)
    return queues


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


def _regions(stmt: Stmt) -> tuple[tuple[BufferRegion, ...], tuple[BufferRegion, ...]]:
    if isinstance(stmt, Block) and (stmt.reads or stmt.writes):
        return stmt.reads, stmt.writes
    return infer_regions(stmt)


def _check_dependencies(loop: For, statements: Sequence[PipelineStatement]) -> None:
    """A statement must not run before (stage) or ahead of (order, same stage) the
    statement that writes what it reads earlier in the same iteration."""
    last_writer: dict[Buffer, PipelineStatement] = {}
    for statement in sorted(statements, key=lambda item: item.index):
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
                     annotation: PipelineAnnotation) -> Schedule:
    """The schedule of ``loop`` whose body is ``stmts`` (in original order) and whose
    body block allocates ``local_buffers``; raises :class:`PipelineError` when the
    annotation breaks a dependency."""
    emission = sorted(range(len(stmts)), key=lambda index: annotation.orders[index])
    statements = []
    for position, index in enumerate(emission):
        reads, writes = _regions(stmts[index])
        stage = annotation.stages[index]
        statements.append(PipelineStatement(
            index, position, stmts[index], stage, annotation.orders[index],
            stage in annotation.async_stages, reads, writes))
    _check_dependencies(loop, statements)
    regions = _RegionTest(loop)
    versions = _versions(statements, local_buffers, _double_buffered(stmts), regions)
    base = max(_used_queues(stmts), default=-1) + 1
    queues = {stage: base + stage for stage in sorted(annotation.async_stages)}
    groups, group_of = _commit_groups(statements, queues)
    horizon = annotation.max_stage + max(versions.values(), default=1) + 2
    dependencies = _dependencies(statements, versions, regions, horizon)
    consumers: dict[int, list[Dependency]] = {}
    for dependency in dependencies:
        consumers.setdefault(dependency.consumer, []).append(dependency)
    return Schedule(loop, tuple(statements), annotation.max_stage, tuple(local_buffers),
                    versions, queues, groups, group_of, dependencies, horizon,
                    {key: tuple(value) for key, value in consumers.items()})


def _versions(statements: Sequence[PipelineStatement], local_buffers: Sequence[Buffer],
              double_buffered: set[Buffer], regions: _RegionTest) -> dict[Buffer, int]:
    """How many copies of each local buffer the ring needs.

    A value defined in stage ``def`` lives until its last reader's stage ``use`` (one
    stage more when that reader is asynchronous, since its read lasts until a later
    wait), so ``use - def + 1`` copies keep every live value apart. Two copies reduce to
    one when no writer's next instance runs before a reader of the current one is done.
    """
    versions: dict[Buffer, int] = {}
    for buffer in local_buffers:
        writers = [(statement, region) for statement in statements
                   for region in statement.writes if region.buffer is buffer]
        if not writers:
            continue
        readers = [(statement, region) for statement in statements
                   for region in statement.reads if region.buffer is buffer]
        define = min(statement.stage for statement, _ in writers)
        use = max((statement.stage + int(statement.is_async) for statement, _ in readers),
                  default=define)
        count = max(use - define + 1, 1)
        if count == 2 and not any(
                (reader.stage + int(reader.is_async) == writer.stage + 1)
                and (reader.is_async or writer.position < reader.position)
                and regions.may_overlap(write, read, -1)
                for writer, write in writers for reader, read in readers):
            count = 1
        if count == 1 and buffer in double_buffered:
            count = 2
        versions[buffer] = count
    return versions


def _conflicts(first: PipelineStatement, second: PipelineStatement
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

    def close() -> None:
        if current:
            stage = current[0].stage
            groups.append(CommitGroup(queues[stage], stage,
                                      tuple(member.position for member in current)))
            for member in current:
                group_of[member.position] = len(groups) - 1
            current.clear()

    for statement in statements:
        if not statement.is_async:
            close()
            continue
        if current and (current[0].stage != statement.stage or any(
                True for member in current for _ in _conflicts(member, statement))):
            close()
        current.append(statement)
    close()
    return tuple(groups), tuple(group_of)


def _dependencies(statements: Sequence[PipelineStatement], versions: Mapping[Buffer, int],
                  regions: _RegionTest, horizon: int) -> tuple[Dependency, ...]:
    """Every (asynchronous producer, consumer) pair with the distances they conflict at."""
    found = []
    for producer in statements:
        if not producer.is_async:
            continue
        for consumer in statements:
            # The producer's instance j - d precedes the consumer's instance j from here on.
            first = producer.stage - consumer.stage + int(producer.position >= consumer.position)
            for buffer, producer_region, consumer_region, kind in _conflicts(producer, consumer):
                count = versions.get(buffer, 1)
                distances = tuple(
                    distance for distance in range(first, first + horizon)
                    if (count == 1 or distance % count == 0)
                    and (count > 1 or regions.may_overlap(producer_region, consumer_region,
                                                          distance)))
                if distances:
                    found.append(Dependency(producer.position, consumer.position, buffer,
                                            distances, kind))
    return tuple(found)
