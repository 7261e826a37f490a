"""Fuzz the pipeline transform against the simulator with generated programs.

    python benchmarks/fuzz.py N [--seed S]

Draws N producer/consumer programs (tests/pipeline_programs.py), pipelines each, adds
the CUDA lowering's block barriers, and checks that the result has no race, computes
what the original computes under the eager, lazy and random schedules, and that every
wait is exact. Prints a summary table and the first program of each failing
kind.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
from hypothesis import HealthCheck, given, settings, seed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pipeline_programs import programs  # noqa: E402

from tilepipe.backend.cuda import insert_barriers  # noqa: E402
from tilepipe.errors import TilepipeError  # noqa: E402
from tilepipe.script import parse  # noqa: E402
from tilepipe.sim import max_safe_counts, random_inputs, simulate, verify  # noqa: E402
from tilepipe.transform import inject_software_pipeline  # noqa: E402

SCHEDULES = ("eager", "lazy", "random:1")
OUTCOMES = ("ok", "rejected", "mismatch", "race", "inexact", "crash")


def check(program) -> tuple[str, str]:
    """The outcome for one program, with details when it is not ok."""
    try:
        func = parse(program.source, source_name="<generated>")
        try:
            pipelined = inject_software_pipeline(func)
        except TilepipeError as error:
            return "rejected", str(error)
        return check_pipelined(func, pipelined, program.dims)
    except Exception:  # a crash of any part is what the fuzzer is for
        return "crash", traceback.format_exc(limit=4)


def check_pipelined(func, pipelined, dims: dict[str, int]) -> tuple[str, str]:
    """The outcome for ``pipelined``, a pipeline of ``func`` with symbolic sizes bound
    by ``dims``: with the CUDA lowering's block barriers added, no race, the same
    outputs as ``func`` under every schedule, every wait exact."""
    synchronized = insert_barriers(pipelined)
    report = verify(synchronized, dims=dims)
    if not report.ok:
        return "race", report.format()
    inputs = random_inputs(func, seed=2, dims=dims)
    expected = simulate(func, inputs, dims=dims)
    for schedule in SCHEDULES:
        result = simulate(synchronized, inputs, dims=dims, schedule=schedule)
        for name, array in expected.items():
            if not np.array_equal(result[name], array):
                return "mismatch", f"{name} under schedule {schedule}"
    counts = max_safe_counts(pipelined, dims=dims)
    inexact = [count.format() for count in counts if not count.exact]
    if inexact:
        return "inexact", f"{len(inexact)} of {len(counts)} waits\n" + "\n".join(inexact)
    return "ok", ""


def for_each_drawn(count: int, draw_seed: int, visit: Callable[[object], None]) -> None:
    """Calls ``visit`` on ``count`` programs drawn from the generator with ``draw_seed``."""

    @seed(draw_seed)
    @settings(max_examples=count, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(programs())
    def draw(program) -> None:
        visit(program)

    draw()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="how many programs to draw")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    outcomes: collections.Counter = collections.Counter()
    examples: dict[str, tuple] = {}
    start = time.perf_counter()

    def fuzz(program) -> None:
        outcome, details = check(program)
        outcomes[outcome] += 1
        examples.setdefault(outcome, (program, details))

    for_each_drawn(args.count, args.seed, fuzz)
    seconds = time.perf_counter() - start
    total = sum(outcomes.values())
    print(f"{'programs':<10} {total:>6}   ({seconds:.1f} s)")
    for outcome in OUTCOMES:
        print(f"{outcome:<10} {outcomes[outcome]:>6}")
    for outcome in OUTCOMES[1:]:
        if outcome in examples:
            program, details = examples[outcome]
            print(f"\nfirst {outcome}: {details}\n{program.describe()}")


if __name__ == "__main__":
    main()
