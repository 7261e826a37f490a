"""Speed of the arithmetic layer on the questions the pipeline transform asks.

Prints one row per workload: calls per second and microseconds per call (median of
repeated timed runs, wall clock), and the CPU time per call.
Run: ``python3 benchmarks/arith_speed.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

from tilepipe.arith import Analyzer, infer_regions
from tilepipe.arith import presburger
from tilepipe.ir import (
    Buffer, BufferLoad, BufferStore, For, ForKind, IntImm, Min, Var, seq,
)


def _timed(call: Callable[[], object], calls: int, repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds per call over ``repeats`` runs of ``calls`` calls
    (CPU time is the steadier figure on a shared machine)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            call()
        wall.append((time.perf_counter() - start_wall) / calls)
        cpu.append((time.process_time() - start_cpu) / calls)
    return statistics.median(wall), statistics.median(cpu)


def _workloads():
    i = Var("i")
    n = Var("n")
    k = Var("k")
    bounded = Analyzer()
    bounded.bind(i, (0, 13))
    symbolic = Analyzer()
    symbolic.bind(i, (0, n - 1))
    constrained = Analyzer()
    constrained.bind(i, (0, 3))
    constrained.add_constraint(k >= 3)

    index_expressions = [i + 1 - 1, (i - 3 + 3) % 4, (i + 4) % 4, (4 * i + 2) // 4,
                         Min(i, IntImm(16)), i - 1 + 16 - 3]

    def simplify_indices():
        for expr in index_expressions:
            bounded.simplify(expr)

    fresh = iter(range(10**9))

    def exact_uncached():
        # A new constant each call, so the islpy answer is never cached.
        symbolic.can_prove(i < n + next(fresh))

    A = Buffer("A", (IntImm(16), IntImm(16)))
    B = Buffer("B", (IntImm(4), IntImm(16), IntImm(1)), scope="shared")
    C = Buffer("C", (IntImm(16), IntImm(16)))
    tx = Var("tx")
    stage = For(i, IntImm(0), IntImm(13), ForKind.SERIAL, seq(
        BufferStore(B, BufferLoad(A, (tx, i + 3)), ((i + 3) % 4, tx, IntImm(0))),
        BufferStore(C, BufferLoad(B, ((i - 3 + 3) % 4, tx, IntImm(0))), (tx, i - 3 + 3))))

    return [
        ("simplify: 6 pipeline indices", len(index_expressions), simplify_indices, 300),
        ("can_prove i + 3 < 16 (intervals)", 1, lambda: bounded.can_prove(i + 3 < 16), 2000),
        ("can_prove i < k, k >= 3 (constraint bounds)", 1,
         lambda: constrained.can_prove(i < k), 2000),
        ("can_prove i // 4 * 4 <= i (islpy, cached)", 1,
         lambda: bounded.can_prove(i // 4 * 4 <= i), 2000),
        ("can_prove i < n - 1 (islpy, cached)", 1, lambda: symbolic.can_prove(i < n - 1), 2000),
        ("can_prove i < n + c (islpy, uncached)", 1, exact_uncached, 200),
        ("const_int_bound (i + 3) % 16", 1, lambda: bounded.const_int_bound((i + 3) % 16),
         2000),
        ("infer_regions: one pipelined loop", 1, lambda: infer_regions(stage), 200),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"{'workload':44} {'calls/s':>10} {'us/call':>9} {'cpu us/call':>12}")
    print("-" * 78)
    for name, per_call, call, calls in _workloads():
        call()  # warm caches that every later call would also find warm
        wall, cpu = (seconds / per_call for seconds in _timed(call, calls, args.repeats))
        print(f"{name:44} {1 / wall:10,.0f} {wall * 1e6:9.1f} {cpu * 1e6:12.1f}")
    print(f"\nislpy answers cached: {presburger.cached_answers()}")


if __name__ == "__main__":
    main()
