"""tilepipe's and Apache TVM's pipeline passes on the same programs, both outputs
checked by tilepipe's simulator.

    python3 benchmarks/against_tvm.py N [--seed S]

Takes the speed benchmark's loops with two producers and the example files, then draws
N producer/consumer programs (tests/pipeline_programs.py: random stages, orders, async
stages, constant or symbolic extents, loop starts, nesting, an async copy before the
loop). Pipelines each with tilepipe and with TVM 0.27's ``InjectSoftwarePipeline``
(``python3 -m pip install -e ".[baseline]"``) and checks each output as
benchmarks/fuzz.py does: no race, the same outputs as the loop under the eager, lazy
and random schedules, every wait exact. TVM's output is read back in tilepipe's
notation (benchmarks/tvm_baseline.py) and gets the same block barriers as tilepipe's.
Prints the outcome per fixed program, a table per kind of drawn program, and for TVM
the first drawn program of each failing kind with its output.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
import traceback
from pathlib import Path

from fuzz import OUTCOMES, check, check_pipelined, for_each_drawn
from tilepipe.errors import TilepipeError
from tilepipe.script import parse
from tilepipe.transform import inject_software_pipeline
from transform_speed import synthetic
from tvm_baseline import TvmBaseline, load_tvm

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

TVM_OUTCOMES = OUTCOMES + ("unreadable",)


def check_tvm(baseline: TvmBaseline, source: str, dims: dict[str, int]) -> tuple[str, str]:
    """The outcome of TVM's pipeline of the program ``source`` (symbolic sizes bound by
    ``dims``), with details when it is not ok."""
    try:
        func = parse(source, source_name="<program>")
        try:
            output = baseline.run(baseline.module(source))
        except Exception as error:  # TVM raises its own error types
            return "rejected", str(error).strip().splitlines()[-1]
        text = baseline.as_tilepipe(output)
        try:
            pipelined = parse(text, source_name="<TVM's output>")
        except TilepipeError as error:
            return "unreadable", f"{error}\n{text}"
        outcome, details = check_pipelined(func, pipelined, dims)
        return outcome, f"{details}\nTVM's output:\n{text}" if outcome != "ok" else ""
    except Exception:  # a crash of any part is what the comparison is for
        return "crash", traceback.format_exc(limit=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="how many programs to draw")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    baseline = load_tvm()
    if baseline is None:
        sys.exit('Apache TVM is not installed: python3 -m pip install -e ".[baseline]"')
    # (kind of program, pass) -> outcome -> programs
    counts: dict[tuple[str, str], collections.Counter] = collections.defaultdict(
        collections.Counter)
    examples: dict[str, tuple] = {}
    start = time.perf_counter()

    def compare(program) -> None:
        kind = _kind(program)
        counts[kind, "tilepipe"][check(program)[0]] += 1
        outcome, details = check_tvm(baseline, program.source, program.dims)
        counts[kind, "TVM"][outcome] += 1
        examples.setdefault(f"{outcome} ({kind})", (program, details))

    for_each_drawn(args.count, args.seed, compare)
    seconds = time.perf_counter() - start
    print(f"{'program':<44} {'tilepipe':<12} TVM")
    for name, source, dims in fixed_programs():
        ours = check_pipelined(parse(source), inject_software_pipeline(parse(source)), dims)
        print(f"{name:<44} {_summary(*ours):<12} {_summary(*check_tvm(baseline, source, dims))}",
              flush=True)
    print()
    kinds = [kind for kind in KINDS if (kind, "TVM") in counts]
    total = sum(sum(counts[kind, "TVM"].values()) for kind in kinds)
    print(f"{total} programs ({seconds:.1f} s, TVM {baseline.version}); per kind of program, "
          "how many pipelines of each pass had each outcome (tilepipe / TVM)")
    print(f"{'outcome':<11}" + "".join(f" {kind:>22}" for kind in kinds))
    print(f"{'programs':<11}" + "".join(f" {sum(counts[kind, 'TVM'].values()):>22}"
                                        for kind in kinds))
    for outcome in TVM_OUTCOMES:
        cells = [f"{counts[kind, 'tilepipe'][outcome]} / {counts[kind, 'TVM'][outcome]}"
                 for kind in kinds]
        print(f"{outcome:<11}" + "".join(f" {cell:>22}" for cell in cells))
    for name, (program, details) in examples.items():
        if not name.startswith("ok "):
            print(f"\nTVM's first {name}: {details}\n{program.describe()}")


def fixed_programs() -> list[tuple[str, str, dict[str, int]]]:
    """The speed benchmark's loops with two producers, and the example files (name,
    text, symbolic sizes)."""
    programs = []
    for nested in (False, True):
        for asynchronous in (True, False):
            for stages in (2, 4) if nested else (1, 2, 3, 4):
                name = (f"transform_speed {'nested' if nested else 'flat'} "
                        f"{'async' if asynchronous else 'sync'} stages={stages} K=2")
                programs.append((name, synthetic(2, stages, asynchronous, nested), {}))
    for name in ("simple_compute_async", "producer_interleaving", "three_stage_two_async",
                 "symbolic_extent"):
        dims = {"n": 6} if name == "symbolic_extent" else {}
        programs.append((f"examples/{name}.py", (EXAMPLES / f"{name}.py").read_text(), dims))
    return programs


def _summary(outcome: str, details: str) -> str:
    """``outcome``, with how many waits are not exact when that is the outcome."""
    if outcome == "inexact":
        return f"inexact: {details.splitlines()[0]}"
    return outcome


KINDS = ("synchronous", "asynchronous", "async copy before loop")


def _kind(program) -> str:
    if program.copies_before_the_loop:
        return KINDS[2]
    return KINDS[1] if program.async_stages else KINDS[0]


if __name__ == "__main__":
    main()
