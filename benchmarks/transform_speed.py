"""Speed of the software pipeline pass on synthetic loops, against Apache TVM's.

Each loop has K producer blocks (a copy of a global tile into a shared buffer of its
own, in stage 0) and a consumer that reads every shared buffer (in the last stage),
flat or as the inner loop of a two-level nest whose outer loop also pipelines a copy;
asynchronous (producers in an async stage) or not. Prints one row per program: the
median wall-clock and CPU time of the pipeline pass
(``tilepipe.transform.pipeline.inject_software_pipeline``; block barriers are a pass of
their own) over repeated runs (parsing excluded).

When Apache TVM 0.27 is installed (``python3 -m pip install -e ".[baseline]"``), the same
program, written in TVM's TVMScript, goes through TVM's C++ ``InjectSoftwarePipeline``
in the same process, measured in turn with ours, and the row adds TVM's median CPU time
and our ratio to it (below 1: faster). (benchmarks/against_tvm.py checks both outputs.)
Without TVM the row gives the issue's reference figures where it has them (TVM's pass on
the reference machine: about 0.3 ms at K=2 to 11.5 ms at K=64 flat async, 20 ms nested).

Run: ``python3 benchmarks/transform_speed.py [--repeats N] [--sizes 2,8,64]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

from tilepipe.script import parse
from tilepipe.transform.pipeline import inject_software_pipeline
from tvm_baseline import load_tvm


def synthetic(producers: int, stages: int, asynchronous: bool, nested: bool) -> str:
    """The program text: ``producers`` copies then one consumer, ``stages`` stages."""
    last = stages - 1
    annotation = (f'{{"software_pipeline_stage": {[0] * producers + [last]}, '
                  f'"software_pipeline_order": {list(range(producers + 1))}'
                  + (', "software_pipeline_async_stages": [0]' if asynchronous else "") + "}")
    indent = " " * 20 if nested else " " * 12
    allocs = "".join(f'{indent}    S{k} = T.alloc_buffer((32, 4), "float32", scope="shared")\n'
                     for k in range(producers))
    copies = "".join(f"{indent}    for e in T.serial(4):\n"
                     f"{indent}        S{k}[tx, e] = A[tx, (i * {producers} + {k}) * 4 + e]\n"
                     for k in range(producers))
    total = " + ".join(f"S{k}[tx, e]" for k in range(producers))
    consumer = (f"{indent}    for e in T.serial(4):\n"
                f"{indent}        C[tx, e] = C[tx, e] + {total}\n")
    inner = (f"{indent[:-4]}for i in T.serial(32, annotations={annotation}):\n"
             f"{indent}with T.block():\n{allocs}{copies}{consumer}")
    if nested:
        outer_annotation = ('{"software_pipeline_stage": [0, 1, 1, 1], '
                            '"software_pipeline_order": [0, 1, 2, 3]'
                            + (', "software_pipeline_async_stages": [0]' if asynchronous
                               else "") + "}")
        inner = (f"        for o in T.serial(4, annotations={outer_annotation}):\n"
                 f"            with T.block():\n"
                 f'                O = T.alloc_buffer((32, 4), "float32", scope="shared")\n'
                 f"                for e in T.serial(4):\n"
                 f"                    O[tx, e] = A[tx, o * 4 + e]\n"
                 + inner.replace("C[tx, e] = C[tx, e] +", "C[tx, e] = C[tx, e] + O[tx, e] +"))
    return f'''from tilepipe import script as T


@T.prim_func
def synthetic(A: T.Buffer((32, {max(32 * producers * 4, 16)}), "float32"), C: T.Buffer((32, 4), "float32")):
    for tx in T.thread_binding(32, thread="threadIdx.x"):
{inner}'''


# Apache TVM's C++ pass on the reference machine, CPU ms: (shape, asynchronous, K) -> ms,
# shown when TVM is not installed here.
TVM_MS = {("flat", True, 2): 0.3, ("flat", True, 64): 11.5, ("nested", True, 64): 20.0}

def median_seconds(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall-clock and median CPU seconds of one run (CPU time is what a busy
    machine does not inflate)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def interleaved(first: Callable[[], object], second: Callable[[], object], repeats: int,
                rounds: int = 5) -> list[tuple[float, float]]:
    """``median_seconds`` of two passes measured in turn, ``rounds`` times each (the
    median over the rounds), so that a machine slowing down affects both alike."""
    first(), second()  # warm up
    rounds_of: list[list[tuple[float, float]]] = [[], []]
    for _ in range(rounds):
        for run, measured in zip((first, second), rounds_of):
            measured.append(median_seconds(run, repeats))
    return [(statistics.median(wall for wall, _ in measured),
             statistics.median(cpu for _, cpu in measured)) for measured in rounds_of]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sizes", default="2,4,8,16,32,64")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    baseline = load_tvm()
    print(f"TVM {baseline.version}: measured in this process" if baseline else
          "TVM not installed: TVM ms are the issue's reference figures")
    print(f"{'shape':<8} {'async':<6} {'stages':>6} {'K':>4} {'wall ms':>8} {'cpu ms':>8} "
          f"{'cpu ms / K':>10} {'TVM ms':>7} {'/ TVM':>6}")
    for nested in (False, True):
        for asynchronous in (True, False):
            for stages in (2, 4) if nested else (1, 2, 3, 4):
                for producers in sizes:
                    source = synthetic(producers, stages, asynchronous, nested)
                    func = parse(source)
                    shape = "nested" if nested else "flat"
                    if baseline is not None:
                        module = baseline.module(source)
                        (wall, cpu), (_, reference) = interleaved(
                            lambda: inject_software_pipeline(func),
                            lambda: baseline.run(module), args.repeats)
                        reference *= 1e3
                    else:
                        wall, cpu = median_seconds(lambda: inject_software_pipeline(func),
                                                   args.repeats)
                        reference = TVM_MS.get((shape, asynchronous, producers))
                    versus = (f"{reference:>7.2f} {cpu * 1e3 / reference:>6.2f}"
                              if reference else f"{'':>7} {'':>6}")
                    print(f"{shape:<8} {str(asynchronous):<6} {stages:>6} {producers:>4} "
                          f"{wall * 1e3:>8.2f} {cpu * 1e3:>8.2f} {cpu * 1e3 / producers:>10.3f} "
                          f"{versus}", flush=True)


if __name__ == "__main__":
    main()
