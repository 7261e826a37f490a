"""The exactness oracle: the largest safe in-flight count of every wait.

For one execution of a wait on queue q, with M groups committed before it (numbered
0..M-1), let g be the newest of them holding an access that conflicts with an access
made after this wait and before its thread's next wait on q; the largest safe count is
M - 1 - g. The end of the program conflicts with every group (nothing may be in flight
then), so the last wait of each queue must complete all groups committed before it. A
wait site (each copy in an unrolled loop separately) is exact when its count equals the
minimum of that number over its executions, or, when its count changes from one
execution to the next, equals it at each execution.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Span
from ..ir import PrimFunc
from .races import check


@dataclass(frozen=True)
class WaitCount:
    """A wait site: its source line, the values of its unrolled loops, the counts it
    used, the largest safe count (None when no execution constrains it) and the
    (used, safe) pair of each execution."""

    site: int | None
    span: Span | None
    queue: int
    unroll: tuple[int, ...]
    used: tuple[int, ...]
    max_safe: int | None
    executions: tuple[tuple[tuple[int, ...], int | None], ...]

    @property
    def exact(self) -> bool:
        if self.max_safe is None:
            return False
        if len(self.used) == 1:
            return self.used[0] == self.max_safe
        return all(safe is None or used == (safe,) for used, safe in self.executions)

    def format(self) -> str:
        return describe_count(f"wait on queue {self.queue}", self.site, self.unroll,
                              self.used, self.max_safe, self.exact)


def describe_count(what: str, site: int | None, unroll: tuple[int, ...],
                   used: tuple[int, ...], max_safe: int | None, exact: bool) -> str:
    """One line on a wait site's count: where it is, the counts it used, the largest
    safe count and whether it is exact."""
    where = f"line {site}" if site is not None else "unknown line"
    copy = f" (unrolled copy {list(unroll)})" if unroll else ""
    counts = "/".join(str(count) for count in used)
    verdict = "exact" if exact else "NOT exact"
    return f"{what} at {where}{copy}: uses {counts}, largest safe {max_safe}: {verdict}"


def max_safe_counts(func: PrimFunc, dims=None) -> list[WaitCount]:
    """Every executed wait site of ``func`` with the count it uses and the largest safe
    count, in order of first execution."""
    checker = check(func, dims)
    sites: dict[tuple, list] = {}
    for execution in checker.executions:
        sites.setdefault((execution.node, execution.unroll), []).append(execution)
    counts = []
    for (node, unroll), executions in sites.items():
        used = tuple(sorted({count for execution in executions for count in execution.used}))
        constrained = [execution.safe for execution in executions if execution.safe is not None]
        counts.append(WaitCount(
            node.span.line if node.span is not None else None, node.span, node.queue, unroll,
            used, min(constrained) if constrained else None,
            tuple((execution.used, execution.safe) for execution in executions)))
    return counts
