"""The exactness oracle of ``T.wgmma_wait_group``: the largest safe count of each wait.

The rule is the one of :mod:`tilepipe.sim.exactness`, with a warpgroup's wgmma groups
for a thread's commit groups. A wgmma reads its operand tiles in shared memory and
writes its accumulator registers at some moment between its issue and the
``wgmma_wait_group`` that forces its group. For one execution of a wait by a warpgroup,
with M groups committed before it (numbered 0..M-1), let g be the newest group holding
a wgmma that an access ordered after this wait (and after no later wait of the
warpgroup) conflicts with; the largest safe count is M - 1 - g. Conflicting accesses
are writes to an operand element (by any thread, or by a TMA copy) and any access to
an accumulator element by the warpgroup's threads; "ordered after" is the
happens-before order of :class:`tilepipe.sim.mbarrier.HappensBefore` (a producer
overwrites a slot after the consumers released it, which they did after some wait).
The end of the block conflicts with every group. A wait site (each copy in an unrolled
loop apart) is exact when its count equals the minimum over its executions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import Span
from ..ir import PrimFunc
from .exactness import describe_count
from .interpreter import Observer
from .schedule import EAGER
from .simulate import random_inputs, run


@dataclass(frozen=True)
class WgmmaWaitCount:
    """A ``wgmma_wait_group`` site: its source line, the values of its unrolled loops,
    the counts it used and the largest safe count (None when nothing constrains it)."""

    site: int | None
    span: Span | None
    unroll: tuple[int, ...]
    used: tuple[int, ...]
    max_safe: int | None

    @property
    def exact(self) -> bool:
        return self.max_safe is not None and self.used == (self.max_safe,)

    def format(self) -> str:
        return describe_count("wgmma_wait_group", self.site, self.unroll, self.used,
                              self.max_safe, self.exact)


@dataclass
class _WaitExecution:
    """One execution of a wait by one warpgroup: what its threads' clocks were."""

    site: tuple
    used: int
    committed: int
    threads: np.ndarray
    clocks: np.ndarray
    safe: int | None = None

    def constrain(self, group: int) -> None:
        bound = self.committed - 1 - group
        self.safe = bound if self.safe is None else min(self.safe, bound)


@dataclass
class _Footprint:
    """Elements of one storage that a wgmma of ``group`` may still touch."""

    warpgroup: int
    group: int
    storage: object
    flat: np.ndarray
    alive: np.ndarray
    is_accumulator: bool


class WgmmaOracle(Observer):
    """Observer that records, while the interpreter runs, the wgmma groups, the waits
    and the accesses conflicting with them; :func:`max_safe_wgmma_counts` runs it.

    The Hopper intrinsics report to it (``wgmma``, ``wgmma_wait``, ``write``; ``wait``
    is a count wait's, which it leaves alone)
    and the block's :class:`~tilepipe.sim.mbarrier.HappensBefore` sets :attr:`order`.
    """

    def __init__(self):
        self.order = None
        self.sites: dict[tuple, list[_WaitExecution]] = {}
        self.spans: dict[tuple, Span | None] = {}

    def begin_block(self, block: int) -> None:
        self.order = None
        self.footprints: list[_Footprint] = []
        self.waits: dict[int, list[_WaitExecution]] = {}
        self.newest: dict[int, int] = {}  # newest group of a warpgroup holding a wgmma

    def end_block(self, block: int) -> None:
        for warpgroup, group in self.newest.items():
            executions = self.waits.get(warpgroup)
            if executions:
                executions[-1].constrain(group)

    # What the intrinsics report ----------------------------------------------------
    def wgmma(self, warpgroup: int, group: int, operands, accumulator) -> None:
        """A wgmma of ``group`` reads ``operands`` and writes ``accumulator`` (each a
        ``(storage, flat indices)`` pair)."""
        self.newest[warpgroup] = group
        for (storage, flat), is_accumulator in [(operand, False) for operand in operands] + [
                (accumulator, True)]:
            self.footprints.append(_Footprint(warpgroup, group, storage, flat,
                                              np.ones(len(flat), bool), is_accumulator))

    def wgmma_wait(self, site: tuple, span: Span | None, warpgroup: int,
                   threads: np.ndarray, used: int, committed: int) -> None:
        clocks = self.order.clocks[threads, threads].copy()
        execution = _WaitExecution(site, used, committed, threads, clocks)
        self.waits.setdefault(warpgroup, []).append(execution)
        self.sites.setdefault(site, []).append(execution)
        self.spans.setdefault(site, span)

    def write(self, storage, flat: np.ndarray, knowledge: np.ndarray) -> None:
        """An asynchronous copy, ordered after what ``knowledge`` (a clock) covers,
        writes ``flat`` of ``storage``."""
        self._conflicts(storage, flat, lambda lanes: [knowledge], is_write=True)

    def access(self, context, storage, threads, flat, is_write) -> None:
        if self.order is None or not self.footprints:
            return
        local = threads % self.order.num_threads

        def knowledge(lanes):
            return [self.order.clocks[thread] for thread in np.unique(local[lanes])]

        self._conflicts(storage, flat, knowledge, is_write)

    # The constraints -----------------------------------------------------------------
    def _conflicts(self, storage, flat, knowledge, is_write: bool) -> None:
        for footprint in self.footprints:
            if footprint.storage is not storage or not (is_write or footprint.is_accumulator):
                continue
            hit = np.isin(footprint.flat, flat) & footprint.alive
            if not hit.any():
                continue
            lanes = np.isin(flat, footprint.flat[hit])
            for clock in knowledge(lanes):
                execution = self._latest_wait_before(footprint.warpgroup, clock)
                if execution is not None:
                    execution.constrain(footprint.group)
            footprint.alive &= ~hit
        self.footprints = [footprint for footprint in self.footprints if footprint.alive.any()]

    def _latest_wait_before(self, warpgroup: int, clock: np.ndarray) -> _WaitExecution | None:
        """The latest wait of ``warpgroup`` that an actor knowing ``clock`` is ordered
        after (one of the warpgroup's threads had reached it)."""
        for execution in reversed(self.waits.get(warpgroup, [])):
            if (clock[execution.threads] >= execution.clocks).any():
                return execution
        return None

    def counts(self) -> list[WgmmaWaitCount]:
        result = []
        for site, executions in self.sites.items():
            constrained = [execution.safe for execution in executions
                           if execution.safe is not None]
            span = self.spans[site]
            result.append(WgmmaWaitCount(
                span.line if span is not None else None, span, site[1],
                tuple(sorted({execution.used for execution in executions})),
                min(constrained) if constrained else None))
        return result


def max_safe_wgmma_counts(func: PrimFunc, dims=None) -> list[WgmmaWaitCount]:
    """Every executed ``wgmma_wait_group`` site of ``func`` with the counts it uses and
    the largest safe count, in order of first execution (an eager run on random inputs:
    the order of waits, releases and copies is the program's, whatever the schedule)."""
    oracle = WgmmaOracle()
    run(func, random_inputs(func, dims=dims), dims, EAGER, observer=oracle)
    return oracle.counts()
