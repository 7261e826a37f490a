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
:class:`BlockedWait`; when every thread of a block is blocked the scheduler raises a
:class:`Deadlock` naming each blocked barrier, the phase awaited and what it still lacks.

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

BARRIER_DTYPE = "uint64"

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


class Deadlock(RaceError):
    """Every thread of the block is blocked on an mbarrier that nothing will complete."""

    def __init__(self, blocked: list[BlockedWait]):
        self.blocked = tuple(blocked)
        lines = [blocked_wait.describe() for blocked_wait in blocked]
        super().__init__("deadlock: every thread is blocked:\n  " + "\n  ".join(lines),
                         blocked[0].span if blocked else None)


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
