"""Hopper's asynchronous units in the simulator: mbarriers, TMA copies, warpgroup MMA.

This module registers the semantics of the Hopper intrinsics (see the IR forms below)
in :mod:`tilepipe.sim.intrinsics`: :class:`BarrierFile` is the mbarrier state machine,
:class:`HappensBefore` the race check that follows the order barrier phases create,
:class:`BarrierSystem` the per-block state the handlers share, :class:`WarpgroupQueues`
the asynchronous wgmma groups.

An mbarrier (one element of a ``uint64`` buffer in shared scope) counts down the
arrivals expected in its current phase and the transaction bytes announced by
``arrive.expect_tx`` and delivered by TMA copies. The phase completes when both reach
zero; the arrival count is then reloaded and the phase number advances. A wait names a
parity, not a phase: ``wait_parity(p)`` passes once the latest phase of parity ``p`` is
complete, that is when ``completed_phases % 2 != p``.

Because hardware only sees the parity, a waiter must never let a phase of the parity it
waits for go by unobserved. :class:`BarrierFile` remembers, per thread, the last phase
each thread observed and reports a :class:`PhaseMisuse` when a wait resolves more than
two phases after it (one phase later is the usual wait, two a thread that takes part in
every other phase). A wait that cannot pass is returned to the caller as a
:class:`BlockedWait` (yielded by the blocking intrinsic, so that the interpreter runs
other threads); when no thread of a block can go on, the interpreter reports a deadlock
with each blocked barrier, the phase awaited and what it still lacks.

The IR form (opaque intrinsics, printed and parsed like any ``T.<name>`` call) is::

    T.mbarrier_init(barriers, index, arrival_count)
    T.mbarrier_arrive(barriers, index)                   # one arrival per thread
    T.mbarrier_arrive_expect_tx(barriers, index, bytes)  # expect bytes, then arrive
    T.mbarrier_wait_parity(barriers, index, parity)
    T.tma_load(destination_region, source_region, barriers, index)
    T.wgmma(accumulator_region, a_region, b_region, accumulate)
    T.wgmma_fence(); T.wgmma_commit_group(); T.wgmma_wait_group(in_flight)
    T.setmaxnreg(count, "inc" | "dec")
    T.named_barrier_sync(barrier_id, thread_count)      # bar.sync of some warps only
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import RaceError, Span
from ..ir import BufferRegion, IntImm, Range, dtype_bytes
from .interpreter import Observer
from .intrinsics import register
from .memory import BLOCK
from .wgmma_exactness import WgmmaOracle

BARRIER_DTYPE = "uint64"
WARPGROUP_THREADS = 128

INIT = "mbarrier_init"
ARRIVE = "mbarrier_arrive"
ARRIVE_EXPECT_TX = "mbarrier_arrive_expect_tx"
WAIT_PARITY = "mbarrier_wait_parity"
TMA_LOAD = "tma_load"

# The phase a thread is considered to have observed before its first wait: the phase
# "before phase 0", complete from the start, which is why a producer that waits for an
# empty slot starts on parity 1 and passes at once.
_INITIAL_OBSERVED_PHASE = -1


class BarrierError(RaceError):
    """An mbarrier used against its semantics (uninitialized, over-arrived, ...)."""


class PhaseMisuse(BarrierError):
    """A parity wait that cannot mean the phase the thread is due to observe."""


@dataclass(frozen=True)
class BlockedWait:
    """Threads that wait on ``buffer[index]`` for the phase ``phase`` (of ``parity``)."""

    buffer: str
    index: int
    parity: int
    phase: int
    threads: tuple[int, ...]
    arrivals_missing: int
    bytes_missing: int
    span: Span | None = None

    def describe(self) -> str:
        where = f" at {self.span}" if self.span is not None else ""
        threads = _thread_list(self.threads)
        lacking = []
        if self.arrivals_missing:
            lacking.append(f"{self.arrivals_missing} arrival(s)")
        if self.bytes_missing:
            lacking.append(f"{self.bytes_missing} transaction byte(s)")
        lack = " and ".join(lacking) if lacking else "no arrival of that phase"
        return (f"thread(s) {threads} wait on {self.buffer}[{self.index}] for parity "
                f"{self.parity} (phase {self.phase}){where}; it still lacks {lack}")


def _thread_list(threads: tuple[int, ...]) -> str:
    """``0-127`` for a run of consecutive ids, else a comma list (shortened)."""
    if not threads:
        return "none"
    if list(threads) == list(range(threads[0], threads[-1] + 1)) and len(threads) > 1:
        return f"{threads[0]}-{threads[-1]}"
    shown = ", ".join(str(thread) for thread in threads[:8])
    return shown + (", ..." if len(threads) > 8 else "")


@dataclass
class PendingTransfer:
    """An asynchronous copy that will deliver ``num_bytes`` to ``buffer[index]``."""

    index: int
    num_bytes: int
    land: Callable[[], None]
    span: Span | None = None


@dataclass
class BarrierFile:
    """The mbarriers of one shared ``uint64`` buffer of one thread block.

    Every element is one barrier. ``num_threads`` is the block's thread count; the
    per-thread record of observed phases is what phase-misuse detection needs.
    """

    name: str
    size: int
    num_threads: int
    expected: np.ndarray = field(init=False)
    pending: np.ndarray = field(init=False)
    transaction_bytes: np.ndarray = field(init=False)
    completed: np.ndarray = field(init=False)
    observed: np.ndarray = field(init=False)
    transfers: list[PendingTransfer] = field(init=False, default_factory=list)
    delivered_phase: np.ndarray = field(init=False)
    on_phase_complete: Callable[[int, int], None] | None = None

    def __post_init__(self):
        self.expected = np.zeros(self.size, dtype=np.int64)  # 0: not initialized
        self.pending = np.zeros(self.size, dtype=np.int64)
        self.transaction_bytes = np.zeros(self.size, dtype=np.int64)
        self.completed = np.zeros(self.size, dtype=np.int64)
        self.observed = np.full((self.size, self.num_threads), _INITIAL_OBSERVED_PHASE,
                                dtype=np.int64)
        self.delivered_phase = np.full(self.size, _INITIAL_OBSERVED_PHASE, dtype=np.int64)

    # Checks -------------------------------------------------------------------------
    def _element(self, index: int, span: Span | None) -> int:
        if not 0 <= index < self.size:
            raise BarrierError(
                f"mbarrier index {index} is outside {self.name} (it has {self.size})", span)
        return index

    def _initialized(self, index: int, operation: str, span: Span | None) -> int:
        index = self._element(index, span)
        if self.expected[index] == 0:
            raise BarrierError(
                f"{operation} on {self.name}[{index}] before T.{INIT} initialized it", span)
        return index

    # Operations ---------------------------------------------------------------------
    def init(self, index: int, arrival_count: int, span: Span | None = None) -> None:
        """Set the arrivals each phase expects; the barrier starts in phase 0."""
        index = self._element(index, span)
        if arrival_count < 1:
            raise BarrierError(
                f"T.{INIT} of {self.name}[{index}] needs a positive arrival count, "
                f"got {arrival_count}", span)
        if self.expected[index] != 0 and self.expected[index] != arrival_count:
            raise BarrierError(
                f"{self.name}[{index}] initialized twice with different counts "
                f"({self.expected[index]} and {arrival_count})", span)
        self.expected[index] = arrival_count
        self.pending[index] = arrival_count

    def expect_transaction(self, index: int, num_bytes: int, span: Span | None = None) -> None:
        """Announce ``num_bytes`` that asynchronous copies will deliver in this phase."""
        index = self._initialized(index, ARRIVE_EXPECT_TX, span)
        self.transaction_bytes[index] += num_bytes

    def arrive(self, index: int, count: int = 1, span: Span | None = None) -> None:
        """``count`` arrivals, one after the other; each completed phase reloads."""
        index = self._initialized(index, ARRIVE, span)
        while count > 0:
            if self.pending[index] == 0:
                raise BarrierError(
                    f"too many arrivals on {self.name}[{index}] in phase "
                    f"{self.completed[index]}: all {self.expected[index]} arrived but "
                    f"{self.transaction_bytes[index]} transaction byte(s) are still due",
                    span)
            taken = min(count, int(self.pending[index]))
            self.pending[index] -= taken
            count -= taken
            self._complete_if_done(index)

    def complete_transaction(self, index: int, num_bytes: int) -> None:
        """An asynchronous copy delivered ``num_bytes`` to this barrier's phase."""
        self.transaction_bytes[index] -= num_bytes
        self._complete_if_done(index)

    def _complete_if_done(self, index: int) -> None:
        if self.pending[index] == 0 and self.transaction_bytes[index] == 0:
            if self.on_phase_complete is not None:
                self.on_phase_complete(index, int(self.completed[index]))
            self.completed[index] += 1
            self.pending[index] = self.expected[index]

    def add_transfer(self, transfer: PendingTransfer) -> None:
        self._initialized(transfer.index, TMA_LOAD, transfer.span)
        self.transfers.append(transfer)

    def land(self, index: int | None = None, chooser: Callable[[int], bool] | None = None
             ) -> None:
        """Deliver pending copies (of ``index`` only, if given), oldest first.

        ``chooser(position)`` may keep a copy in flight; without one every copy lands.
        """
        kept = []
        for position, transfer in enumerate(self.transfers):
            if (index is not None and transfer.index != index) or (
                    chooser is not None and not chooser(position)):
                kept.append(transfer)
                continue
            transfer.land()
            self.delivered_phase[transfer.index] = self.completed[transfer.index]
            self.complete_transaction(transfer.index, transfer.num_bytes)
        self.transfers = kept

    def wait(self, index: int, parity: int, threads: np.ndarray,
             span: Span | None = None) -> BlockedWait | None:
        """Let ``threads`` wait for the phase of ``parity``; None when all of them pass.

        As on hardware, the wait resolves to the latest completed phase if it has this
        parity, else to the phase in progress (which blocks). A thread may wait on the
        phase after the last one it observed, on that same phase again, or on the one
        after next (a thread that takes part in every other phase only); a wait that
        resolves further ahead passed a phase of its parity without observing it, which
        parity alone cannot tell apart: a :class:`PhaseMisuse`.
        """
        index = self._initialized(index, WAIT_PARITY, span)
        if parity not in (0, 1):
            raise BarrierError(f"T.{WAIT_PARITY} parity must be 0 or 1, got {parity}", span)
        threads = np.asarray(threads, dtype=np.int64)
        completed = int(self.completed[index])
        passes = (completed - 1) % 2 == parity
        resolved = completed - 1 if passes else completed
        last = self.observed[index, threads]
        skipped = resolved > last + 2
        if skipped.any():
            thread = int(threads[np.argmax(skipped)])
            observed = int(last[np.argmax(skipped)])
            raise PhaseMisuse(
                f"thread {thread} waits on {self.name}[{index}] with parity {parity} after "
                f"observing phase {observed}, but the barrier already completed phase "
                f"{resolved - 2}: the wait now means phase {resolved} and phase "
                f"{resolved - 2} went by unobserved (the barrier ran two phases ahead of "
                "its waiter: a slot reused before it was released?)", span)
        if passes:
            self.observed[index, threads] = resolved
            return None
        return BlockedWait(self.name, index, parity, resolved, tuple(int(t) for t in threads),
                           int(self.pending[index]), int(self.transaction_bytes[index]), span)

    def unobserved(self) -> list[int]:
        """Barriers whose latest delivered copy belongs to a phase no thread waited for."""
        return [int(index) for index in np.flatnonzero(
            self.delivered_phase > self.observed.max(axis=1))]


# Happens-before through barrier phases ---------------------------------------------------
class BarrierRace(RaceError):
    """Two accesses to a shared element that neither a barrier phase nor a block
    barrier orders (on a GPU the threads of a block do not run in lock step)."""


class HappensBefore:
    """Vector clocks of a block's threads and of its TMA copies, checked on every
    access to shared memory.

    Actors are the threads (``0 .. num_threads - 1``) and one copy agent per barrier
    element (the TMA copies completing on it). A thread's arrival joins its clock into
    the barrier's phase; the bytes of a copy join the issuer's clock (and the copy's
    own epoch) when they land; a thread whose wait observes the completed phase joins
    that phase's clock; a block barrier joins every thread. An access is ordered after
    an earlier one by another actor when its actor's clock covers the earlier epoch.
    """

    def __init__(self, num_threads: int):
        self.num_threads = num_threads
        self.clocks = np.eye(num_threads, dtype=np.int64)
        self.agents: dict[tuple[int, int], int] = {}
        self.phase_clocks: dict[tuple[int, int], np.ndarray] = {}
        self.completed_clocks: dict[tuple[int, int, int], np.ndarray] = {}
        self.shadows: dict[int, tuple[object, "_Shadow"]] = {}
        self.spans: list[Span | None] = [None]
        self.span_id = 0

    # Clocks -------------------------------------------------------------------------
    def _fit(self, clock: np.ndarray) -> np.ndarray:
        width = self.clocks.shape[1]
        if len(clock) < width:
            clock = np.concatenate([clock, np.zeros(width - len(clock), np.int64)])
        return clock

    def _agent(self, key: tuple[int, int]) -> int:
        agent = self.agents.get(key)
        if agent is None:
            agent = self.agents[key] = self.clocks.shape[1]
            self.clocks = np.concatenate(
                [self.clocks, np.zeros((self.num_threads, 1), np.int64)], axis=1)
        return agent

    def _tick(self, threads: np.ndarray) -> None:
        self.clocks[threads, threads] += 1

    def arrive(self, key: tuple[int, int], threads: np.ndarray) -> None:
        joined = self.clocks[threads].max(axis=0)
        previous = self.phase_clocks.get(key)
        self.phase_clocks[key] = joined if previous is None else np.maximum(
            self._fit(previous), joined)
        self._tick(threads)

    def phase_completed(self, key: tuple[int, int], phase: int) -> None:
        clock = self.phase_clocks.pop(key, None)
        if clock is not None:
            self.completed_clocks[key + (phase,)] = clock

    def observe(self, key: tuple[int, int], phase: int, threads: np.ndarray) -> None:
        clock = self.completed_clocks.get(key + (phase,))
        if clock is not None:
            self.clocks[threads] = np.maximum(self.clocks[threads], self._fit(clock))

    def synchronize(self, threads: np.ndarray | None = None) -> None:
        """A barrier of ``threads`` (the whole block by default): afterwards each of
        them knows what any of them knew."""
        if threads is None:
            threads = np.arange(self.num_threads)
        self.clocks[threads] = self.clocks[threads].max(axis=0)
        self._tick(threads)

    def statement(self, span: Span | None) -> None:
        self.spans.append(span)
        self.span_id = len(self.spans) - 1

    # TMA copies ---------------------------------------------------------------------
    def issue(self, key: tuple[int, int], issuer: int, storage, flat: np.ndarray,
              span: Span | None) -> np.ndarray:
        """Check and record a copy's writes; the clock its landing will publish."""
        agent = self._agent(key)
        knowledge = self.clocks[issuer].copy()
        epoch = int(self.clocks[:, agent].max()) + 1
        self.statement(span)
        self._write(storage, flat, np.full(len(flat), agent), knowledge[None, :], epoch,
                    "a TMA copy overwrites")
        self._tick(np.array([issuer]))
        knowledge[agent] = epoch
        return knowledge

    def land(self, key: tuple[int, int], knowledge: np.ndarray) -> None:
        previous = self.phase_clocks.get(key)
        self.phase_clocks[key] = knowledge if previous is None else np.maximum(
            self._fit(previous), self._fit(knowledge))

    # Accesses -----------------------------------------------------------------------
    def _shadow(self, storage) -> "_Shadow":
        entry = self.shadows.get(id(storage))
        if entry is None or entry[0] is not storage:
            entry = (storage, _Shadow(storage.array.size, self.num_threads))
            self.shadows[id(storage)] = entry
        return entry[1]

    def access(self, storage, threads: np.ndarray, flat: np.ndarray, is_write: bool) -> None:
        threads = threads % self.num_threads
        if is_write:
            self._write(storage, flat, threads, self.clocks[threads],
                        self.clocks[threads, threads], "writes")
            return
        shadow = self._shadow(storage)
        self._check_write(storage, shadow, flat, threads, self.clocks[threads], "reads")
        shadow.reads[flat, threads] = self.clocks[threads, threads]
        shadow.read_span[flat] = self.span_id

    def _check_write(self, storage, shadow, flat, actors, knowledge, what) -> None:
        writer = shadow.write_actor[flat]
        known = np.take_along_axis(self._widen(knowledge, len(flat)),
                                   np.maximum(writer, 0)[:, None], axis=1)[:, 0]
        unordered = (writer >= 0) & (writer != actors) & (known < shadow.write_epoch[flat])
        if unordered.any():
            lane = int(np.argmax(unordered))
            self._race(storage, int(flat[lane]), what, int(actors[lane]),
                       int(writer[lane]), int(shadow.write_span[flat[lane]]), "wrote")

    def _widen(self, knowledge: np.ndarray, lanes: int) -> np.ndarray:
        width = self.clocks.shape[1]
        if knowledge.shape[1] < width:
            knowledge = np.pad(knowledge, ((0, 0), (0, width - knowledge.shape[1])))
        return np.broadcast_to(knowledge, (lanes, width))

    def _write(self, storage, flat, actors, knowledge, epochs, what) -> None:
        shadow = self._shadow(storage)
        self._check_write(storage, shadow, flat, actors, knowledge, what)
        readers = shadow.reads[flat]
        seen = self._widen(knowledge, len(flat))[:, :self.num_threads]
        unordered = (readers > seen) & (np.arange(self.num_threads)[None, :]
                                        != actors[:, None])
        if unordered.any():
            lane, reader = np.unravel_index(int(np.argmax(unordered)), unordered.shape)
            self._race(storage, int(flat[lane]), what, int(actors[lane]), int(reader),
                       int(shadow.read_span[flat[lane]]), "read")
        shadow.write_actor[flat] = actors
        shadow.write_epoch[flat] = epochs
        shadow.write_span[flat] = self.span_id
        shadow.reads[flat] = 0

    def _actor(self, actor: int) -> str:
        if actor < self.num_threads:
            return f"thread {actor}"
        return "a TMA copy"

    def _race(self, storage, element: int, what: str, actor: int, earlier: int,
              earlier_span: int, earlier_did: str) -> None:
        """``what`` is "reads", "writes" (by thread ``actor``) or "a TMA copy
        overwrites"."""
        index = [int(i) for i in np.unravel_index(element, storage.array.shape)]
        now = what if what.startswith("a TMA") else f"{self._actor(actor)} {what}"
        span = self.spans[self.span_id]
        before = self.spans[earlier_span]
        where = f" at line {before.line}" if before is not None else ""
        raise BarrierRace(
            f"race on {storage.buffer.name}{index}: {now} it, but {self._actor(earlier)} "
            f"{earlier_did} it{where} and nothing orders the two (missing: a wait on the "
            "barrier phase that publishes the data, or a release that the next copy into "
            "the slot waits for)", span)


class _Shadow:
    """Per element of a shared buffer: the last write (actor, epoch, statement) and the
    epoch at which each thread last read it since."""

    def __init__(self, size: int, num_threads: int):
        self.write_actor = np.full(size, -1, np.int64)
        self.write_epoch = np.zeros(size, np.int64)
        self.write_span = np.zeros(size, np.int64)
        self.reads = np.zeros((size, num_threads), np.int32)  # epochs stay far below 2**31
        self.read_span = np.zeros(size, np.int64)


class _Interposed(Observer):
    """Forwards every event to the interpreter's own observer (if any) and shows the
    block's shared accesses, statements and block barriers to :class:`HappensBefore`."""

    def __init__(self, inner: Observer | None, order: HappensBefore):
        self.inner = inner
        self.order = order

    def begin_block(self, block):
        if self.inner is not None:
            self.inner.begin_block(block)

    def end_block(self, block):
        if self.inner is not None:
            self.inner.end_block(block)

    def statement(self, stmt, context):
        self.order.statement(getattr(stmt, "span", None))
        if self.inner is not None:
            self.inner.statement(stmt, context)

    def issue(self, scope, context, queue, groups):
        if self.inner is not None:
            self.inner.issue(scope, context, queue, groups)

    def access(self, context, storage, threads, flat, is_write):
        if storage.owner == BLOCK:
            self.order.access(storage, threads, flat, is_write)
        if self.inner is not None:
            self.inner.access(context, storage, threads, flat, is_write)

    def commit(self, stmt, context, queue):
        if self.inner is not None:
            self.inner.commit(stmt, context, queue)

    def wait(self, stmt, context, queue, in_flight, committed):
        if self.inner is not None:
            self.inner.wait(stmt, context, queue, in_flight, committed)

    def barrier(self, context):
        self.order.synchronize()
        if self.inner is not None:
            self.inner.barrier(context)


# The simulator's view: one BarrierSystem per block, intrinsics as registry handlers ----
class BarrierSystem:
    """The mbarriers, in-flight TMA copies and happens-before order of the block being
    simulated.

    The interpreter calls :meth:`step` before every statement (a ``random`` schedule
    lands some copies there) and :meth:`finish` at the end of the block. Copies land
    at issue under ``eager``; under ``lazy`` only when a wait on their barrier cannot
    pass otherwise. While a copy is in flight its destination holds poison (NaN, or the
    most negative integer), so that reading it too early also shows in the results. The
    system interposes itself as the interpreter's observer for the block (forwarding to
    the observer there was) to check every shared access with :class:`HappensBefore`.
    """

    def __init__(self, machine):
        self.machine = machine
        self.num_threads = machine.launch.num_threads
        self.schedule = machine.schedule
        self.files: dict[object, BarrierFile] = {}
        self.order = HappensBefore(self.num_threads)
        self.observer = machine.observer
        machine.observer = _Interposed(self.observer, self.order)
        if isinstance(self.observer, WgmmaOracle):
            self.observer.order = self.order

    def file(self, buffer, span=None) -> BarrierFile:
        barrier_file = self.files.get(buffer)
        if barrier_file is None:
            if buffer.dtype != BARRIER_DTYPE or not buffer.scope.startswith("shared") or \
                    len(buffer.shape) != 1:
                raise BarrierError(
                    f"mbarriers live in a one-dimensional {BARRIER_DTYPE} buffer in shared "
                    f"memory; {buffer.name} is {buffer.dtype} in '{buffer.scope}' with "
                    f"{len(buffer.shape)} dimension(s)", span)
            size = getattr(buffer.shape[0], "value", None)
            if not isinstance(size, int):
                raise BarrierError(f"the mbarrier buffer {buffer.name} needs a constant size",
                                   span)
            barrier_file = BarrierFile(buffer.name, size, self.num_threads)
            key = id(barrier_file)
            barrier_file.on_phase_complete = (
                lambda index, phase: self.order.phase_completed((key, index), phase))
            self.files[buffer] = barrier_file
        return barrier_file

    def arrive(self, barrier_file: BarrierFile, index: int, threads: np.ndarray,
               num_bytes: int = 0, span=None) -> None:
        """Each of ``threads`` announces ``num_bytes`` (if any) and arrives once."""
        if num_bytes:
            barrier_file.expect_transaction(index, num_bytes * len(threads), span)
        self.order.arrive((id(barrier_file), index), threads)
        barrier_file.arrive(index, len(threads), span)

    def wait(self, barrier_file: BarrierFile, index: int, parity: int, threads: np.ndarray,
             span=None) -> BlockedWait | None:
        """The threads pass (and see what the phase published) or are blocked; a blocked
        phase first gets the copies it still lacks."""
        blocked = barrier_file.wait(index, parity, threads, span)
        if blocked is not None and any(t.index == index for t in barrier_file.transfers):
            barrier_file.land(index)
            blocked = barrier_file.wait(index, parity, threads, span)
        if blocked is None:
            phase = int(barrier_file.observed[index, threads[0]])
            self.order.observe((id(barrier_file), index), phase, threads)
        return blocked

    def step(self, schedule) -> None:
        for barrier_file in self.files.values():
            if barrier_file.transfers:
                chosen = schedule.landing(len(barrier_file.transfers))
                barrier_file.land(chooser=lambda position: bool(chosen[position]))

    def finish(self) -> None:
        """No copy may be left that no thread waited for, landed or not."""
        self.machine.observer = self.observer
        for barrier_file in self.files.values():
            if barrier_file.transfers:
                transfer = barrier_file.transfers[0]
                raise BarrierError(
                    f"a TMA copy completing on {barrier_file.name}[{transfer.index}] is still "
                    "in flight when the block ends: nothing waits for it", transfer.span)
            unobserved = barrier_file.unobserved()
            if unobserved:
                raise BarrierError(
                    f"a TMA copy completing on {barrier_file.name}[{unobserved[0]}] is still "
                    "in flight when the block ends: nothing waits for it")


def _system(context) -> BarrierSystem:
    machine = context.machine
    return context.block_state("mbarrier", lambda: BarrierSystem(machine))


def _oracle(context) -> WgmmaOracle | None:
    """The wgmma exactness oracle, when the interpreter runs under one."""
    observer = context.machine.observer
    if isinstance(observer, _Interposed):
        observer = observer.inner
    return observer if isinstance(observer, WgmmaOracle) else None


def _flat(storage, slices: tuple) -> np.ndarray:
    """Flat indices into ``storage.array`` of the elements ``slices`` select."""
    axes = [np.arange(part.start, part.stop) if isinstance(part, slice) else np.array(
        [part]) for part in slices]
    grids = np.meshgrid(*axes, indexing="ij")
    return np.ravel_multi_index(tuple(grid.ravel() for grid in grids), storage.array.shape)


def _arguments(call, args, count: int, form: str):
    if len(args) != count:
        raise BarrierError(f"T.{call.op} takes {count} arguments: T.{form}", call.span)
    return args


def _groups(context, *values):
    """``(local thread ids, (value, ...))`` for each distinct combination of the
    per-thread ``values`` (numbers or lanes)."""
    columns = [np.asarray(context.lanes(value)).astype(np.int64) for value in values]
    keys = np.stack(columns, axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    for row, combination in enumerate(unique):
        yield context.local[inverse == row], tuple(int(value) for value in combination)


@register(INIT)
def _mbarrier_init(call, args, context):
    barriers, index, count = _arguments(call, args, 3,
                                        "mbarrier_init(barriers, index, arrival_count)")
    barrier_file = _system(context).file(barriers, call.span)
    for _, (element, arrival_count) in _groups(context, index, count):
        barrier_file.init(element, arrival_count, call.span)
    return 0


@register(ARRIVE)
def _mbarrier_arrive(call, args, context):
    barriers, index = _arguments(call, args, 2, "mbarrier_arrive(barriers, index)")
    system = _system(context)
    barrier_file = system.file(barriers, call.span)
    for threads, (element,) in _groups(context, index):
        system.arrive(barrier_file, element, threads, span=call.span)
    return 0


@register(ARRIVE_EXPECT_TX)
def _mbarrier_arrive_expect_tx(call, args, context):
    barriers, index, num_bytes = _arguments(
        call, args, 3, "mbarrier_arrive_expect_tx(barriers, index, bytes)")
    system = _system(context)
    barrier_file = system.file(barriers, call.span)
    for threads, (element, byte_count) in _groups(context, index, num_bytes):
        system.arrive(barrier_file, element, threads, byte_count, call.span)
    return 0


@register(WAIT_PARITY, blocking=True)
def _mbarrier_wait_parity(call, args, context):
    """Pass the threads whose phase is complete; land the copies a blocked phase still
    lacks; yield the :class:`BlockedWait` descriptions until every thread passes."""
    barriers, index, parity = _arguments(call, args, 3,
                                         "mbarrier_wait_parity(barriers, index, parity)")
    system = _system(context)
    barrier_file = system.file(barriers, call.span)
    waiting = list(_groups(context, index, parity))
    while waiting:
        blocked = []
        for threads, (element, wanted) in waiting:
            result = system.wait(barrier_file, element, wanted, threads, call.span)
            if result is not None:
                blocked.append(((threads, (element, wanted)), result))
        waiting = [group for group, _ in blocked]
        if blocked:
            yield tuple(result for _, result in blocked)
    return 0


def _uniform(context, expr, what: str, span) -> int:
    value = context.evaluate(expr)
    values = np.unique(np.asarray(context.lanes(value)))
    if len(values) != 1:
        raise BarrierError(f"the {what} must be the same for all the threads that issue it "
                           f"together, got {values.tolist()}", span)
    return int(values[0])


def _tile(context, region, what: str, span) -> tuple[tuple[slice, ...], tuple[int, ...]]:
    """The slices a region covers, and its extents, evaluated for the issuing thread."""
    slices, extents = [], []
    for range_ in region.region:
        low = _uniform(context, range_.min, f"{what} start", span)
        extent = _uniform(context, range_.extent, f"{what} extent", span)
        slices.append(slice(low, low + extent))
        extents.append(extent)
    return tuple(slices), tuple(extents)


def _concrete(context, region, what: str, span):
    """``region`` with its bounds evaluated to numbers (equal for all of ``context``)."""
    slices, _ = _tile(context, region, what, span)
    return BufferRegion(region.buffer, tuple(
        Range(IntImm(part.start), IntImm(part.stop - part.start)) for part in slices),
        region.span)


def _poison(array: np.ndarray) -> object:
    if array.dtype.kind == "f":
        return np.nan
    if array.dtype.kind in "iu":
        return np.iinfo(array.dtype).min
    return False


def _squeezed(extents: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(extent for extent in extents if extent != 1)


@register(TMA_LOAD)
def _tma_load(call, args, context):
    """Issue one tile copy global -> shared per issuing thread, completing its bytes on
    ``barriers[index]``."""
    destination, source, barriers, index = _arguments(
        call, args, 4, "tma_load(destination, source, barriers, index)")
    if not (hasattr(destination, "region") and hasattr(source, "region")):
        raise BarrierError("T.tma_load copies a buffer region to a buffer region", call.span)
    if source.buffer.scope != "global" or not destination.buffer.scope.startswith("shared"):
        raise BarrierError(
            f"T.tma_load copies global memory to shared memory, not {source.buffer.scope} "
            f"({source.buffer.name}) to {destination.buffer.scope} "
            f"({destination.buffer.name})", call.span)
    if source.buffer.dtype != destination.buffer.dtype:
        raise BarrierError(f"T.tma_load from {source.buffer.dtype} to "
                           f"{destination.buffer.dtype}", call.span)
    system = _system(context)
    barrier_file = system.file(barriers, call.span)
    memory = context.machine.memory
    lanes = context.lanes(index)
    oracle = _oracle(context)
    for position, thread in enumerate(context.local):
        issuer = context.subset(context.local == thread)
        source_slices, source_extents = _tile(issuer, source, "source", call.span)
        target_slices, target_extents = _tile(issuer, destination, "destination", call.span)
        if _squeezed(source_extents) != _squeezed(target_extents):
            raise BarrierError(
                f"T.tma_load copies a {list(source_extents)} tile of {source.buffer.name} "
                f"into a {list(target_extents)} tile of {destination.buffer.name}", call.span)
        values = issuer.read_region(_concrete(issuer, source, "source", call.span), call.span)
        storage = memory.storage(destination.buffer, call.span)
        target = storage.array
        element = int(lanes[position])
        flat = np.ravel_multi_index(
            tuple(grid.ravel() for grid in np.meshgrid(
                *[np.arange(part.start, part.stop) for part in target_slices],
                indexing="ij")), target.shape)
        key = (id(barrier_file), element)
        knowledge = system.order.issue(key, int(thread), storage, flat, call.span)
        if oracle is not None:
            oracle.write(storage, flat, knowledge)

        def land(target=target, slices=target_slices, values=values, shape=target_extents,
                 key=key, knowledge=knowledge):
            system.order.land(key, knowledge)
            target[slices] = np.asarray(values).reshape(shape)

        if system.schedule.defers:
            target[target_slices] = _poison(target)
        num_bytes = int(np.prod(source_extents)) * dtype_bytes(source.buffer.dtype)
        barrier_file.add_transfer(PendingTransfer(element, num_bytes, land, call.span))
    if not system.schedule.defers:
        barrier_file.land()
    return 0


@register("setmaxnreg")
def _setmaxnreg(call, args, context):
    """Register reallocation changes no value; it must be a whole warpgroup's."""
    count, direction = _arguments(call, args, 2, 'setmaxnreg(count, "inc" or "dec")')
    if direction not in ("inc", "dec") or not 24 <= int(count) <= 256 or int(count) % 8:
        raise BarrierError('T.setmaxnreg takes a register count in 24..256, a multiple of 8, '
                           'and "inc" or "dec"', call.span)
    warpgroups, sizes = np.unique(context.local // WARPGROUP_THREADS, return_counts=True)
    if (sizes != WARPGROUP_THREADS).any():
        raise BarrierError(
            f"T.setmaxnreg is executed by {int(sizes.min())} thread(s) of warpgroup "
            f"{int(warpgroups[np.argmin(sizes)])}: every thread of a warpgroup must execute "
            "it together", call.span)
    return 0


# Named barriers: a barrier of some of the block's threads ----------------------------------
NAMED_BARRIER = "named_barrier_sync"
NAMED_BARRIERS = 16
WARP_THREADS = 32


@dataclass(frozen=True)
class BlockedAtNamedBarrier:
    """Threads that wait at named barrier ``barrier_id`` for ``count`` threads."""

    barrier_id: int
    count: int
    threads: tuple[int, ...]
    span: Span | None = None

    def describe(self) -> str:
        where = f" at {self.span}" if self.span is not None else ""
        return (f"thread(s) {_thread_list(self.threads)} wait at named barrier "
                f"{self.barrier_id}{where} for {self.count} threads; only "
                f"{len(self.threads)} arrived")


class NamedBarriers:
    """The named barriers (``bar.sync id, count``) of one block: the threads arriving at
    barrier ``id`` wait until ``count`` threads have arrived; then those threads, and only
    those, go on, each ordered after what the others did before."""

    def __init__(self):
        self.arrived: dict[int, list[np.ndarray]] = {}
        self.generation: dict[int, int] = {}

    def arrive(self, barrier_id: int, count: int, threads: np.ndarray,
               span: Span | None) -> tuple[int, np.ndarray | None]:
        """The generation the threads wait in, and every participant once it is full."""
        arrived = self.arrived.setdefault(barrier_id, [])
        arrived.append(threads)
        total = sum(len(group) for group in arrived)
        generation = self.generation.get(barrier_id, 0)
        if total > count:
            raise BarrierError(
                f"{total} threads arrive at named barrier {barrier_id}, which counts "
                f"{count}", span)
        if total < count:
            return generation, None
        self.arrived[barrier_id] = []
        self.generation[barrier_id] = generation + 1
        return generation, np.concatenate(arrived)

    def waiting(self, barrier_id: int) -> tuple[int, ...]:
        return tuple(sorted(int(thread) for group in self.arrived.get(barrier_id, [])
                            for thread in group))


def _constant_argument(context, value, what: str, call) -> int:
    values = np.unique(np.asarray(context.lanes(value)))
    if len(values) != 1:
        raise BarrierError(f"T.{call.op}: the {what} must be the same for every thread, "
                           f"got {values.tolist()}", call.span)
    return int(values[0])


@register(NAMED_BARRIER, blocking=True)
def _named_barrier_sync(call, args, context):
    """``T.named_barrier_sync(barrier_id, thread_count)``: whole warps arrive; when
    ``thread_count`` threads have, they go on together (the shared-memory order joins only
    them; the race checker's barrier interval advances for the block)."""
    barrier_id, count = _arguments(call, args, 2,
                                   "named_barrier_sync(barrier_id, thread_count)")
    barrier_id = _constant_argument(context, barrier_id, "barrier id", call)
    count = _constant_argument(context, count, "thread count", call)
    if not 1 <= barrier_id < NAMED_BARRIERS or count <= 0 or count % WARP_THREADS:
        raise BarrierError(
            f"T.{NAMED_BARRIER} takes a barrier id in 1..{NAMED_BARRIERS - 1} (0 is the "
            f"block barrier) and a thread count, a positive multiple of {WARP_THREADS}; got "
            f"{barrier_id} and {count}", call.span)
    warps, sizes = np.unique(context.local // WARP_THREADS, return_counts=True)
    if (sizes != WARP_THREADS).any():
        raise BarrierError(
            f"T.{NAMED_BARRIER} is executed by {int(sizes.min())} thread(s) of warp "
            f"{int(warps[np.argmin(sizes)])}: a warp arrives at a barrier as a whole",
            call.span)
    barriers = context.block_state("named barriers", NamedBarriers)
    generation, participants = barriers.arrive(barrier_id, count, context.local, call.span)
    if participants is not None:
        _system(context).order.synchronize(participants)
        context.machine.interval += 1
        return 0
    while barriers.generation.get(barrier_id, 0) == generation:
        yield BlockedAtNamedBarrier(barrier_id, count, barriers.waiting(barrier_id),
                                    call.span)
    return 0


# Warpgroup MMA: asynchronous groups per warpgroup -----------------------------------------
WGMMA = "wgmma"
WGMMA_FENCE = "wgmma_fence"
WGMMA_COMMIT = "wgmma_commit_group"
WGMMA_WAIT = "wgmma_wait_group"
WGMMA_M = 64
WGMMA_K = 16


def wgmma_accumulator_position(thread: np.ndarray, register: np.ndarray):
    """Row and column of a warpgroup's 64 x n fp32 accumulator that ``thread`` (0..127
    within the warpgroup) holds in fragment ``register``: warp ``w`` owns rows
    ``16 w .. 16 w + 15``; lane ``l`` holds rows ``l // 4`` and ``l // 4 + 8`` and two
    adjacent columns ``2 (l % 4)`` of every 8-column group."""
    warp, lane = thread // 32, thread % 32
    row = 16 * warp + lane // 4 + 8 * ((register // 2) % 2)
    column = 8 * (register // 4) + 2 * (lane % 4) + register % 2
    return row, column


class WarpgroupQueues:
    """The wgmma operations of each warpgroup: issued into the group being formed,
    committed in order, run (in issue order) at issue under ``eager``, when
    ``T.wgmma_wait_group`` forces their group under ``lazy``, and at random statements in
    between under ``random``."""

    def __init__(self, machine):
        self.schedule = machine.schedule
        self.forming: dict[int, list] = {}
        self.committed: dict[int, list[list]] = {}
        self.commits: dict[int, int] = {}  # groups committed so far
        self.pending: dict[int, list] = {}  # not yet run, in issue order

    def issue(self, warpgroup: int, operation) -> None:
        self.forming.setdefault(warpgroup, []).append(operation)
        self.pending.setdefault(warpgroup, []).append(operation)
        if not self.schedule.defers:
            self._run_until(warpgroup, operation)

    def commit(self, warpgroup: int) -> None:
        self.committed.setdefault(warpgroup, []).append(self.forming.pop(warpgroup, []))
        self.commits[warpgroup] = self.commits.get(warpgroup, 0) + 1

    def wait(self, warpgroup: int, in_flight: int) -> None:
        groups = self.committed.get(warpgroup, [])
        while len(groups) > in_flight:
            group = groups.pop(0)
            if group:
                self._run_until(warpgroup, group[-1])

    def _run_until(self, warpgroup: int, operation) -> None:
        pending = self.pending[warpgroup]
        while operation in pending:
            pending.pop(0)()

    def step(self, schedule) -> None:
        for warpgroup, pending in self.pending.items():
            if pending and schedule.landing(1)[0]:
                pending.pop(0)()

    def finish(self) -> None:
        for warpgroup in sorted(self.pending):
            if self.pending[warpgroup]:
                raise BarrierError(
                    f"wgmma operations of warpgroup {warpgroup} are still in flight when the "
                    "block ends: T.wgmma_commit_group and T.wgmma_wait_group(0) are missing")


def _warpgroups(context, call):
    """One context per warpgroup executing ``call``; each must be whole."""
    groups = context.local // WARPGROUP_THREADS
    for warpgroup in np.unique(groups):
        lanes = groups == warpgroup
        if lanes.sum() != WARPGROUP_THREADS:
            raise BarrierError(
                f"T.{call.op} is executed by {int(lanes.sum())} thread(s) of warpgroup "
                f"{int(warpgroup)}: all {WARPGROUP_THREADS} must execute it together",
                call.span)
        yield int(warpgroup), lanes, context.subset(lanes)


def _wgmma_queues(context) -> WarpgroupQueues:
    machine = context.machine
    return context.block_state("wgmma", lambda: WarpgroupQueues(machine))


def _matrix(context, region, what: str, call) -> np.ndarray:
    tile = np.asarray(context.read_region(_concrete(context, region, what, call.span),
                                          call.span))
    shape = _squeezed(tile.shape)
    if len(shape) != 2:
        raise BarrierError(f"T.wgmma: the {what} must be a 2-D tile, got extents "
                           f"{list(tile.shape)}", call.span)
    return tile.reshape(shape).astype(np.float32)


@register(WGMMA)
def _wgmma(call, args, context):
    """``T.wgmma(accumulator, a, b, accumulate)``: each warpgroup issues
    ``D (+)= A @ B^T`` with A a 64 x k and B an n x k fp16 tile in shared memory and D
    its 64 x n fp32 accumulator, held as ``n / 2`` fragment registers per thread in the
    ``local`` region ``accumulator``."""
    accumulator, a, b, accumulate = _arguments(
        call, args, 4, "wgmma(accumulator, a, b, accumulate)")
    if accumulator.buffer.scope != "local" or accumulator.buffer.dtype != "float32":
        raise BarrierError("T.wgmma accumulates into a float32 buffer in local scope",
                           call.span)
    for region, what in ((a, "A operand"), (b, "B operand")):
        if not region.buffer.scope.startswith("shared") or region.buffer.dtype != "float16":
            raise BarrierError(f"T.wgmma reads its {what} as float16 from shared memory",
                               call.span)
    if len(accumulator.region) != 1:
        raise BarrierError("T.wgmma accumulates into a one-dimensional region of registers",
                           call.span)
    if context.async_queue is not None:  # an async stage of a count pipeline defers it
        return _land_async_wgmma(call, accumulator, a, b, accumulate, context)
    queues = _wgmma_queues(context)
    storage = context.machine.memory.storage(accumulator.buffer, call.span)
    oracle = _oracle(context)
    if oracle is not None:
        _system(context)  # the happens-before order the oracle reads

    def storage_of(region):
        return context.machine.memory.storage(region.buffer, call.span)

    flags = np.asarray(context.lanes(accumulate))
    for warpgroup, lanes, members in _warpgroups(context, call):
        start, count, flag = _wgmma_registers(members, accumulator, flags[lanes], call)
        queues.issue(warpgroup, lambda members=members, start=start, count=count, flag=flag:
                     _wgmma_update(members, storage, a, b, start, count, flag, call))
        if oracle is not None:
            operands = [(storage_of(region), _flat(storage_of(region), _tile(
                members, region, what, call.span)[0])) for region, what in
                ((a, "A operand"), (b, "B operand"))]
            oracle.wgmma(warpgroup, queues.commits.get(warpgroup, 0), operands,
                         (storage, _flat(storage, (members.local, slice(start, start + count)))))
    return 0


def _wgmma_registers(members, accumulator, flags, call) -> tuple[int, int, int]:
    """The first accumulator register, their number and the accumulate flag (``flags``:
    its value in each thread of ``members``) of one warpgroup's ``T.wgmma``, each the
    same for all its threads."""
    (region,) = accumulator.region
    start = _uniform(members, region.min, "accumulator start", call.span)
    count = _uniform(members, region.extent, "accumulator extent", call.span)
    flags = np.unique(flags)
    if len(flags) != 1:
        raise BarrierError("T.wgmma: the accumulate flag differs within a warpgroup",
                           call.span)
    return start, count, int(flags[0])


def _wgmma_update(members, storage, a, b, start, count, flag, call) -> tuple:
    """``D (+)= A @ B^T`` now, with the operands as they are, for the threads of
    ``members`` (whole warpgroups, or a part of one landing its share); returns the
    accumulator elements written, as (thread, register) index arrays."""
    left, right = _matrix(members, a, "A operand", call), _matrix(members, b, "B operand", call)
    if left.shape[0] != WGMMA_M or left.shape[1] % WGMMA_K or \
            right.shape[1] != left.shape[1] or count * 2 != right.shape[0]:
        raise BarrierError(
            f"T.wgmma multiplies a {WGMMA_M} x k tile by an n x k tile (k a multiple of "
            f"{WGMMA_K}) into n / 2 registers per thread; got {list(left.shape)}, "
            f"{list(right.shape)} and {count} registers", call.span)
    threads = members.local
    registers = np.arange(count)[None, :]
    rows, columns = wgmma_accumulator_position((threads % WARPGROUP_THREADS)[:, None],
                                               registers)
    places = (threads[:, None], start + registers)
    product = (left @ right.T)[rows, columns]
    storage.array[places] = product + storage.array[places] if flag else product
    return places


def _land_async_wgmma(call, accumulator, a, b, accumulate, context) -> int:
    """Land ``T.wgmma`` of an asynchronous stage for the threads of ``context`` (any part
    of a warpgroup: its threads may land their parts at different moments), with the
    operands as they are now; the accumulator update is reported to the race checker as
    a write of each thread's own registers."""
    machine = context.machine
    storage = machine.memory.storage(accumulator.buffer, call.span)
    flags = np.asarray(context.lanes(accumulate))
    warpgroups = context.local // WARPGROUP_THREADS
    for warpgroup in np.unique(warpgroups):
        lanes = warpgroups == warpgroup
        members = context if lanes.all() else context.subset(lanes)
        start, count, flag = _wgmma_registers(members, accumulator, flags[lanes], call)
        places = _wgmma_update(members, storage, a, b, start, count, flag, call)
        if machine.observer is not None:
            flat = np.ravel_multi_index(np.broadcast_arrays(*places), storage.array.shape)
            owners = np.broadcast_to(members.threads[:, None], flat.shape)
            machine.observer.access(members, storage, owners.ravel(), flat.ravel(), True)
    return 0


@register(WGMMA_FENCE)
def _wgmma_fence(call, args, context):
    """Orders the warpgroup's register accesses before the wgmma that follows."""
    _arguments(call, args, 0, "wgmma_fence()")
    list(_warpgroups(context, call))  # checks that whole warpgroups execute it
    return 0


@register(WGMMA_COMMIT)
def _wgmma_commit_group(call, args, context):
    _arguments(call, args, 0, "wgmma_commit_group()")
    queues = _wgmma_queues(context)
    for warpgroup, _, _ in _warpgroups(context, call):
        queues.commit(warpgroup)
    return 0


@register(WGMMA_WAIT)
def _wgmma_wait_group(call, args, context):
    (in_flight,) = _arguments(call, args, 1, "wgmma_wait_group(in_flight)")
    if not isinstance(in_flight, (int, np.integer)) or in_flight < 0:
        raise BarrierError("T.wgmma_wait_group needs a non-negative constant count",
                           call.span)
    queues = _wgmma_queues(context)
    oracle = _oracle(context)
    unroll = tuple(int(context.env[var]) for var in context.unrolled)
    for warpgroup, _, members in _warpgroups(context, call):
        if oracle is not None:
            _system(context)
            oracle.wgmma_wait((call, unroll), call.span, warpgroup, members.local,
                              int(in_flight), queues.commits.get(warpgroup, 0))
        queues.wait(warpgroup, int(in_flight))
    return 0
