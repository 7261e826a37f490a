"""The timing model on the tensor-core GEMM: cycles of one thread block per num_stages.

For each machine preset and num_stages 1..6 (1: the program as written, no pipelining),
the GEMM is planned from num_stages, pipelined and costed. The table shows the model's
cycles, the bound max(memory time, compute time), how far from the bound the block runs,
the shared memory the pipeline allocates, and the median wall time of the model itself.

    python3 benchmarks/timing_model.py [--m 256 --n 256 --k 4096] [--memory l2|dram]
                                       [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from tilepipe.kernels.gemm import gemm
from tilepipe.kernels.tuning import pipelined, with_num_stages
from tilepipe.sim.timing import MACHINES, estimate
from tilepipe.transform.pipeline.planning import shared_memory_bytes

STAGES = range(1, 7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=256)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--k", type=int, default=4096)
    parser.add_argument("--memory", choices=["l2", "dram"], default="l2",
                        help="where global reads are served from (default l2)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    base = gemm(args.m, args.n, args.k)
    print(f"GEMM {args.m}x{args.n}x{args.k}, fp16 -> fp32, 128x128x32 block tiles, 4 warps; "
          f"one thread block, global reads from {args.memory.upper()}")
    header = (f"{'machine':<8}{'stages':>7}{'cycles':>11}{'bound':>11}{'of bound':>10}"
              f"{'copy %':>8}{'tensor %':>9}{'shared B':>10}{'model s':>9}")
    print(header)
    print("-" * len(header))
    for name, machine in MACHINES.items():
        for num_stages in STAGES:
            program = pipelined(with_num_stages(base, num_stages), machine)
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                report = estimate(program, machine, memory=args.memory)
                times.append(time.perf_counter() - started)
            copy_lane = "tma" if machine.has_tma and num_stages > 1 else "copy"
            print(f"{name:<8}{num_stages:>7}{report.total_cycles:>11,.0f}"
                  f"{report.bound_cycles:>11,.0f}{100 * report.efficiency:>9.1f}%"
                  f"{100 * report.utilization(copy_lane):>7.0f}%"
                  f"{100 * report.utilization('tensor'):>8.0f}%"
                  f"{shared_memory_bytes(program):>10,}{statistics.median(times):>9.3f}")
        print()


if __name__ == "__main__":
    main()
