"""``verify``: run a function once under the checker and report every race.

A report names the kind of race, the buffer and element, and the two statements that
conflict, each with its source line, thread and loop iterations. One report is made
per kind and pair of statements (with the number of times it occurred).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import RaceError, Span
from ..ir import PrimFunc
from .checker import (
    DIVERGENT_BARRIER, IN_FLIGHT_AT_END, KIND_MEANINGS, Checker, Conflict, leaf_of,
)
from .memory import THREAD, WARP
from .simulate import random_inputs, run


@dataclass(frozen=True)
class Access:
    """One side of a race: what a statement did, where, by which thread, when."""

    action: str                      # "read", "write", "async read", "async write"
    span: Span | None
    thread: int                      # linear thread index within its block
    block: int
    iterations: tuple[tuple[str, int], ...]

    def format(self) -> str:
        where = f"line {self.span.line}" if self.span is not None else "unknown line"
        text = f": {self.span.text.strip()}" if self.span is not None and self.span.text else ""
        loops = ", ".join(f"{name}={value}" for name, value in self.iterations)
        block = f" of block {self.block}" if self.block else ""
        return (f"{self.action} at {where}{text}\n      by thread {self.thread}{block}"
                + (f", iteration {loops}" if loops else ""))


@dataclass(frozen=True)
class Race:
    kind: str
    buffer: str | None
    element: tuple[int, ...]
    first: Access | None
    second: Access
    occurrences: int

    def format(self) -> str:
        lines = [f"race ({self.kind}): {KIND_MEANINGS[self.kind]}"]
        if self.buffer is not None:
            lines.append(f"  buffer {self.buffer}, element {list(self.element)}"
                         + (f" ({self.occurrences} times)" if self.occurrences > 1 else ""))
        if self.first is not None:
            lines.append(f"  first:  {self.first.format()}")
            lines.append(f"  then:   {self.second.format()}")
        else:
            label = "issued" if self.kind == IN_FLIGHT_AT_END else "at"
            lines.append(f"  {label}: {self.second.format()}")
        return "\n".join(lines)


@dataclass(frozen=True)
class VerifyReport:
    """``stopped``: the synchronization error that ended the run before its end (a
    deadlock, an mbarrier race or misuse found by :mod:`tilepipe.sim.mbarrier`)."""

    function: str
    races: list[Race]
    stopped: RaceError | None = None

    @property
    def ok(self) -> bool:
        return not self.races and self.stopped is None

    def format(self) -> str:
        if self.ok:
            return f"{self.function}: no race"
        if self.stopped is not None:
            return f"{self.function}: the run stopped: {self.stopped}"
        header = f"{self.function}: {len(self.races)} race(s)"
        return "\n".join([header] + [race.format() for race in self.races])


def check(func: PrimFunc, dims=None, seed: int = 0) -> Checker:
    """Run ``func`` on seeded random inputs under a fresh :class:`Checker`."""
    checker = Checker()
    run(func, random_inputs(func, seed=seed, dims=dims), dims, observer=checker)
    return checker


def verify(func: PrimFunc, dims=None) -> VerifyReport:
    """Whether ``func`` is race-free under the asynchronous model, with a report of each
    race found. ``verify.max_safe_counts`` checks its waits."""
    try:
        checker = check(func, dims)
    except RaceError as error:  # a deadlock or barrier error ends the run
        return VerifyReport(func.name, [], error)
    races = [_race(checker, conflict) for conflict in checker.conflicts.values()]
    return VerifyReport(func.name, races)


def _race(checker: Checker, conflict: Conflict) -> Race:
    buffer, element = None, ()
    if conflict.storage is not None:
        index = np.unravel_index(conflict.element, conflict.storage.array.shape)
        if conflict.storage.owner in (THREAD, WARP):
            index = index[1:]
        buffer, element = conflict.storage.buffer.name, tuple(int(value) for value in index)
    first = None
    if conflict.first_instance is not None and conflict.first_instance >= 0:
        first = _access(checker, conflict.first_instance, conflict.first_thread,
                        conflict.first_write)
    second = _access(checker, conflict.second_instance, conflict.second_thread,
                     conflict.second_write, conflict.kind == DIVERGENT_BARRIER)
    return Race(conflict.kind, buffer, element, first, second, conflict.occurrences)


def _access(checker: Checker, instance_id: int, thread: int, is_write: bool,
            is_barrier: bool = False) -> Access:
    instance = checker.instances[instance_id]
    action = ("async " if instance.is_async else "") + ("write" if is_write else "read")
    if is_barrier:
        action = "barrier"
    lane = int(np.searchsorted(instance.threads, thread))
    iterations = []
    for var, value in instance.env.items():
        if isinstance(value, np.ndarray) and value.ndim == 1:
            value = value[lane] if lane < len(value) else value[0]
        iterations.append((var.name, int(value)))
    return Access(action, leaf_of(instance.node).span, thread % checker.num_threads,
                  thread // checker.num_threads, tuple(iterations))
