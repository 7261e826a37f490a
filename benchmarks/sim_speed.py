"""Speed of the reference interpreter and of the race checker.

Prints a table: simulated leaf statements per second (thread-vectorized: one statement
executed by all the threads of a block counts once) under each schedule, and the time
to verify (race check and exactness oracle) a 64x64x64 tiled GEMM with 128 threads and
a 4-stage cp.async-style pipeline. Each figure is the median of repeated runs.

    python benchmarks/sim_speed.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from tilepipe.script import parse
from tilepipe.sim import max_safe_counts, random_inputs, simulate, verify
from tilepipe.sim.simulate import run

# C = A @ B with 64x64x8 block tiles (8 of them along K): 128 threads each copy 4
# elements of the A tile and 4 of the B tile per stage (asynchronously, into a 4-slot
# ring) and compute an 8x4 patch of C. Prologue: tiles 0-2 in flight; body: tile i + 3
# issued, tile i computed; epilogue: the last 3 tiles computed. A barrier after each wait
# publishes the copies to the other threads; one after each compute in the body frees
# the slot that the next iteration's copy overwrites.
GEMM = '''
from tilepipe import script as T


@T.prim_func
def gemm(A: T.Buffer((64, 64), "float32"), B: T.Buffer((64, 64), "float32"),
         C: T.Buffer((64, 64), "float32")):
    for tid in T.thread_binding(128, thread="threadIdx.x"):
        with T.block("gemm"):
            A_shared = T.alloc_buffer((4, 64, 8), "float32", scope="shared")
            B_shared = T.alloc_buffer((4, 8, 64), "float32", scope="shared")
            C_local = T.alloc_buffer((8, 4), "float32", scope="local")
            for r in T.serial(8):
                for c in T.serial(4):
                    C_local[r, c] = T.float32(0)
            for i in T.unroll(3):
                with T.attr(0, "async_commit_queue_scope", 0):
                    with T.attr(0, "async_scope", 1):
                        for v in T.serial(4):
                            A_shared[i, tid // 2, tid % 2 * 4 + v] = A[tid // 2, i * 8 + tid % 2 * 4 + v]
                    with T.attr(0, "async_scope", 1):
                        for v in T.serial(4):
                            B_shared[i, tid // 16, tid % 16 * 4 + v] = B[i * 8 + tid // 16, tid % 16 * 4 + v]
            for i in T.serial(5):
                with T.attr(0, "async_commit_queue_scope", 0):
                    with T.attr(0, "async_scope", 1):
                        for v in T.serial(4):
                            A_shared[(i + 3) % 4, tid // 2, tid % 2 * 4 + v] = A[tid // 2, (i + 3) * 8 + tid % 2 * 4 + v]
                    with T.attr(0, "async_scope", 1):
                        for v in T.serial(4):
                            B_shared[(i + 3) % 4, tid // 16, tid % 16 * 4 + v] = B[(i + 3) * 8 + tid // 16, tid % 16 * 4 + v]
                with T.attr(0, "async_wait_queue_scope", 0):
                    with T.attr(0, "async_wait_inflight_count", 3):
                        T.tvm_storage_sync("shared")
                        for kk in T.serial(8):
                            for r in T.serial(8):
                                for c in T.serial(4):
                                    C_local[r, c] = C_local[r, c] + A_shared[i % 4, tid // 16 * 8 + r, kk] * B_shared[i % 4, kk, tid % 16 * 4 + c]
                T.tvm_storage_sync("shared")
            for i in T.unroll(3):
                with T.attr(0, "async_wait_queue_scope", 0):
                    with T.attr(0, "async_wait_inflight_count", 2 - i):
                        T.tvm_storage_sync("shared")
                        for kk in T.serial(8):
                            for r in T.serial(8):
                                for c in T.serial(4):
                                    C_local[r, c] = C_local[r, c] + A_shared[(i + 5) % 4, tid // 16 * 8 + r, kk] * B_shared[(i + 5) % 4, kk, tid % 16 * 4 + c]
            for r in T.serial(8):
                for c in T.serial(4):
                    C[tid // 16 * 8 + r, tid % 16 * 4 + c] = C_local[r, c]
'''


def gemm_program():
    return parse(GEMM, source_name="<gemm benchmark>")


def _median(function, repeat: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds (the CPU time is what counts on a loaded
    machine)."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    func = gemm_program()
    inputs = random_inputs(func)
    reference = inputs["A"].astype(np.float64) @ inputs["B"].astype(np.float64)
    rows = []
    for schedule in ("eager", "lazy", "random:0"):
        interpreter, arrays = run(func, inputs, schedule=schedule)
        result = {buffer.name: array for buffer, array in arrays.items()}["C"]
        if not np.allclose(result, reference, rtol=1e-4, atol=1e-4):
            raise SystemExit(f"the GEMM is wrong under the {schedule} schedule")
        seconds = _median(lambda: simulate(func, inputs, schedule=schedule), args.repeat)
        rows.append((f"simulate GEMM ({schedule})", seconds,
                     f"{interpreter.statements_executed / seconds[1]:,.0f} statements/s "
                     f"(CPU), each run by {interpreter.num_threads} threads"))
    report = verify(func)
    if not report.ok:
        raise SystemExit(report.format())
    rows.append(("verify GEMM (race check)", _median(lambda: verify(func), args.repeat), "no race"))
    waits = max_safe_counts(func)
    exact = all(wait.exact for wait in waits)
    rows.append(("max_safe_counts GEMM", _median(lambda: max_safe_counts(func), args.repeat),
                 f"{len(waits)} wait sites, {'all exact' if exact else 'NOT all exact'}"))
    width = max(len(name) for name, _, _ in rows)
    print(f"{'measurement':<{width}}  {'wall s':>7}  {'CPU s':>7}  note")
    for name, (wall, cpu), note in rows:
        print(f"{name:<{width}}  {wall:7.3f}  {cpu:7.3f}  {note}")


if __name__ == "__main__":
    main()
