"""Hopper mbarrier semantics: arrival counts, transaction bytes, phases and parity waits.

An mbarrier (one element of a ``uint64`` buffer in shared scope) counts down the
arrivals expected in its current phase and the transaction bytes announced by
``arrive.expect_tx`` and delivered by TMA copies. The phase completes when both reach
zero; the arrival count is then reloaded and the phase number advances. A wait names a
parity, not a phase: ``wait_parity(p)`` passes once the latest phase of parity ``p`` is
complete, that is when ``completed_phases % 2 != p``.

Because hardware only sees the parity, a waiter must never fall two phases behind the
barrier. :class:`BarrierFile` remembers, per thread, the last phase each thread observed
and reports a :class:`PhaseMisuse` when a wait resolves against a phase that is not the
one the thread can mean. A wait that cannot pass is returned to the caller as a
:class:`BlockedWait` (yielded by the blocking intrinsic, so that the interpreter runs
other threads); when no thread of a block can go on, the interpreter reports a deadlock
with each blocked barrier, the phase awaited and what it still lacks.

The IR form (opaque intrinsics, printed and parsed like any ``T.<name>`` call) is::

    T.mbarrier_init(barriers, index, arrival_count)
    T.mbarrier_arrive(barriers, index)                   # one arrival per thread
    T.mbarrier_arrive_expect_tx(barriers, index, bytes)  # expect bytes, then arrive
    T.mbarrier_wait_parity(barriers, index, parity)
    T.tma_load(destination_region, source_region, barriers, index)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import RaceError, Span
from .intrinsics import register

BARRIER_DTYPE = "uint64"
DTYPE_BYTES = {"int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "float16": 2, "bfloat16": 2,
               "int32": 4, "uint32": 4, "float32": 4, "int64": 8, "uint64": 8, "float64": 8}

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

    def __post_init__(self):
        self.expected = np.zeros(self.size, dtype=np.int64)  # 0: not initialized
        self.pending = np.zeros(self.size, dtype=np.int64)
        self.transaction_bytes = np.zeros(self.size, dtype=np.int64)
        self.completed = np.zeros(self.size, dtype=np.int64)
        self.observed = np.full((self.size, self.num_threads), _INITIAL_OBSERVED_PHASE,
                                dtype=np.int64)

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
            self.complete_transaction(transfer.index, transfer.num_bytes)
        self.transfers = kept

    def wait(self, index: int, parity: int, threads: np.ndarray,
             span: Span | None = None) -> BlockedWait | None:
        """Let ``threads`` wait for the phase of ``parity``; None when all of them pass.

        Each thread means the first phase of that parity at or after the last phase it
        observed; if the barrier already completed the phase after that one, parity
        alone can no longer tell them apart and the wait is a :class:`PhaseMisuse`.
        """
        index = self._initialized(index, WAIT_PARITY, span)
        if parity not in (0, 1):
            raise BarrierError(f"T.{WAIT_PARITY} parity must be 0 or 1, got {parity}", span)
        threads = np.asarray(threads, dtype=np.int64)
        last = self.observed[index, threads]
        meant = last + (last - parity) % 2  # first phase >= last with this parity
        completed = int(self.completed[index])
        overrun = meant + 2 <= completed
        if overrun.any():
            thread = int(threads[np.argmax(overrun)])
            phase = int(meant[np.argmax(overrun)])
            raise PhaseMisuse(
                f"thread {thread} waits on {self.name}[{index}] with parity {parity} for "
                f"phase {phase}, but the barrier already completed phase {phase + 1}: "
                "the barrier ran two phases ahead of its waiter (a slot reused before it "
                "was released?)", span)
        if completed % 2 != parity:  # then the phase meant is completed - 1
            self.observed[index, threads] = meant
            return None
        phase = completed  # in progress; every thread here means it
        return BlockedWait(self.name, index, parity, phase, tuple(int(t) for t in threads),
                           int(self.pending[index]), int(self.transaction_bytes[index]), span)

    def in_flight(self) -> list[PendingTransfer]:
        return list(self.transfers)


# The simulator's view: one BarrierSystem per block, intrinsics as registry handlers ----
class BarrierSystem:
    """The mbarriers and in-flight TMA copies of the block being simulated.

    The interpreter calls :meth:`step` before every statement (a ``random`` schedule
    lands some copies there) and :meth:`finish` at the end of the block. Copies land
    at issue under ``eager``; under ``lazy`` only when a wait on their barrier cannot
    pass otherwise. While a copy is in flight its destination holds poison (NaN, or the
    most negative integer), so a read before the barrier says the data arrived, or a
    read of a slot the next copy already overwrites, shows in the results.
    """

    def __init__(self, num_threads: int, schedule):
        self.num_threads = num_threads
        self.schedule = schedule
        self.files: dict[object, BarrierFile] = {}

    def file(self, buffer, span=None) -> BarrierFile:
        barrier_file = self.files.get(buffer)
        if barrier_file is None:
            if buffer.dtype != BARRIER_DTYPE or not buffer.scope.startswith("shared") or \
                    len(buffer.shape) != 1:
                raise BarrierError(
                    f"mbarriers live in a one-dimensional {BARRIER_DTYPE} buffer in shared "
                    f"memory; {buffer.name} is {buffer.dtype} in '{buffer.scope}' with "
                    f"{len(buffer.shape)} dimension(s)", span)
            size = int(buffer.shape[0].value) if hasattr(buffer.shape[0], "value") else None
            if size is None:
                raise BarrierError(f"the mbarrier buffer {buffer.name} needs a constant size",
                                   span)
            barrier_file = BarrierFile(buffer.name, size, self.num_threads)
            self.files[buffer] = barrier_file
        return barrier_file

    def step(self, schedule) -> None:
        for barrier_file in self.files.values():
            if barrier_file.transfers:
                chosen = schedule.landing(len(barrier_file.transfers))
                barrier_file.land(chooser=lambda position: bool(chosen[position]))

    def finish(self) -> None:
        for barrier_file in self.files.values():
            if barrier_file.transfers:
                transfer = barrier_file.transfers[0]
                raise BarrierError(
                    f"{len(barrier_file.transfers)} TMA copy(ies) on {barrier_file.name} are "
                    f"still in flight when the block ends (copy into "
                    f"{barrier_file.name}[{transfer.index}]: nothing waits for it)",
                    transfer.span)


def _system(context) -> BarrierSystem:
    machine = context.machine
    return context.block_state(
        "mbarrier", lambda: BarrierSystem(machine.launch.num_threads, machine.schedule))


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
    barrier_file = _system(context).file(barriers, call.span)
    for threads, (element,) in _groups(context, index):
        barrier_file.arrive(element, len(threads), call.span)
    return 0


@register(ARRIVE_EXPECT_TX)
def _mbarrier_arrive_expect_tx(call, args, context):
    barriers, index, num_bytes = _arguments(
        call, args, 3, "mbarrier_arrive_expect_tx(barriers, index, bytes)")
    barrier_file = _system(context).file(barriers, call.span)
    for threads, (element, byte_count) in _groups(context, index, num_bytes):
        barrier_file.expect_transaction(element, byte_count * len(threads), call.span)
        barrier_file.arrive(element, len(threads), call.span)
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
            result = barrier_file.wait(element, wanted, threads, call.span)
            if result is not None and any(t.index == element for t in barrier_file.transfers):
                barrier_file.land(element)
                result = barrier_file.wait(element, wanted, threads, call.span)
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
        raise BarrierError(f"the {what} of a TMA copy must be the same for the issuing "
                           f"thread's whole tile, got {values.tolist()}", span)
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
    for position, thread in enumerate(context.local):
        issuer = context.subset(context.local == thread)
        source_slices, source_extents = _tile(issuer, source, "source", call.span)
        target_slices, target_extents = _tile(issuer, destination, "destination", call.span)
        if _squeezed(source_extents) != _squeezed(target_extents):
            raise BarrierError(
                f"T.tma_load copies a {list(source_extents)} tile of {source.buffer.name} "
                f"into a {list(target_extents)} tile of {destination.buffer.name}", call.span)
        values = issuer.read_region(source, call.span)
        target = memory.storage(destination.buffer, call.span).array

        def land(target=target, slices=target_slices, values=values, shape=target_extents):
            target[slices] = np.asarray(values).reshape(shape)

        if system.schedule.defers:
            target[target_slices] = _poison(target)
        num_bytes = int(np.prod(source_extents)) * DTYPE_BYTES[source.buffer.dtype]
        barrier_file.add_transfer(PendingTransfer(int(lanes[position]), num_bytes, land,
                                                  call.span))
    if not system.schedule.defers:
        barrier_file.land()
    return 0
