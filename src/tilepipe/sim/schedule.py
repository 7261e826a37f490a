"""When the element accesses of asynchronous statements happen in a simulation.

``eager``: at issue, as if synchronous. ``lazy``: only when a wait forces the group (or
at the end). ``random:SEED``: at issue, at a wait that forces it, or before any
statement in between, chosen per thread by a seeded generator. A program that is
race-free gives the same results under all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TilepipeError

EAGER, LAZY, RANDOM = "eager", "lazy", "random"

# The chance that a pending asynchronous access lands before a given statement.
LANDING_CHANCE = 0.25


class ScheduleError(TilepipeError):
    """A schedule name that is not eager, lazy or random:SEED."""


@dataclass
class Schedule:
    kind: str
    generator: np.random.Generator | None = None

    @property
    def defers(self) -> bool:
        """Whether asynchronous statements wait to run until later."""
        return self.kind != EAGER

    def landing(self, count: int) -> np.ndarray:
        """Which of ``count`` pending lanes land before the next statement."""
        if self.kind != RANDOM:
            return np.zeros(count, dtype=bool)
        return self.generator.random(count) < LANDING_CHANCE

    def issue_now(self, count: int) -> np.ndarray:
        """Which of ``count`` newly issued lanes run at once."""
        if self.kind == EAGER:
            return np.ones(count, dtype=bool)
        return self.landing(count)


def parse_schedule(text: str | Schedule) -> Schedule:
    """``"eager"``, ``"lazy"`` or ``"random:SEED"`` (``"random"`` is seed 0)."""
    if isinstance(text, Schedule):
        return text
    name, _, seed = str(text).partition(":")
    if name in (EAGER, LAZY) and not seed:
        return Schedule(name)
    if name == RANDOM:
        try:
            value = int(seed) if seed else 0
        except ValueError:
            value = None
        if value is not None:
            return Schedule(RANDOM, np.random.default_rng(value))
    raise ScheduleError(f"unknown schedule {text!r}: use eager, lazy or random:SEED")
