"""Warpgroup MMA: tile semantics, asynchronous groups, and the GEMM consumer pipelined
with TMA copies and mbarriers (one role, and warp-specialized with overlapped wgmma)."""

import numpy as np
import pytest

from tilepipe import parse
from tilepipe.errors import RaceError
from tilepipe.sim import random_inputs, simulate, verify
from tilepipe.sim.mbarrier import BarrierError, wgmma_accumulator_position
from tilepipe.transform.barriers import lower_to_barriers
from tilepipe.transform.warp_specialize import warp_specialize

SCHEDULES = ("eager", "lazy", "random:3")

GEMM = '''
from tilepipe import script as T

@T.prim_func
def small_gemm(A: T.Buffer((64, KSIZE), "float16"), B: T.Buffer((NSIZE, KSIZE), "float16"),
               C: T.Buffer((64, NSIZE), "float32")):
    for tx in T.thread_binding(128, thread="threadIdx.x"):
        with T.block("root"):
            A_shared = T.alloc_buffer((64, BK), "float16", scope="shared")
            B_shared = T.alloc_buffer((NSIZE, BK), "float16", scope="shared")
            acc = T.alloc_buffer((NHALF,), "float32", scope="local")
            for r in T.serial(NHALF):
                acc[r] = T.float32(0)
            for k in T.serial(KTILES, annotations={"software_pipeline_stage": [0, 0, STAGE],
                                                  "software_pipeline_order": [0, 1, 2],
                                                  "software_pipeline_async_stages": [0]}):
                with T.block("copy_a"):
                    T.reads(A[0:64, k * BK:k * BK + BK])
                    T.writes(A_shared[0:64, 0:BK])
                    for i, j in T.grid(64, BK):
                        A_shared[i, j] = A[i, k * BK + j]
                with T.block("copy_b"):
                    T.reads(B[0:NSIZE, k * BK:k * BK + BK])
                    T.writes(B_shared[0:NSIZE, 0:BK])
                    for i, j in T.grid(NSIZE, BK):
                        B_shared[i, j] = B[i, k * BK + j]
                T.evaluate(T.wgmma(acc[0:NHALF], A_shared[0:64, 0:BK], B_shared[0:NSIZE, 0:BK], 1))
            for r in T.serial(NHALF):
                C[16 * (tx // 32) + tx % 32 // 4 + 8 * (r // 2 % 2),
                  8 * (r // 4) + 2 * (tx % 4) + r % 2] = acc[r]
'''


def gemm(k_tiles: int, n: int = 16, stage: int = 2, block_k: int = 32):
    """One warpgroup's 64 x n tile of A @ B^T over ``k_tiles`` slices of ``block_k``."""
    text = GEMM
    for name, value in (("KSIZE", max(k_tiles, 1) * block_k), ("NSIZE", n),
                        ("NHALF", n // 2), ("KTILES", k_tiles), ("STAGE", stage),
                        ("BK", block_k)):
        text = text.replace(name, str(value))
    return parse(text)


def expected(inputs, k_tiles, block_k=32):
    a = inputs["A"].astype(np.float32)[:, :block_k * k_tiles]
    b = inputs["B"].astype(np.float32)[:, :block_k * k_tiles]
    return a @ b.T


def test_accumulator_layout_covers_the_tile_once():
    threads, registers = np.meshgrid(np.arange(128), np.arange(64), indexing="ij")
    rows, columns = wgmma_accumulator_position(threads, registers)
    assert sorted(zip(rows.ravel(), columns.ravel())) == [
        (row, column) for row in range(64) for column in range(128)]


def test_loop_of_wgmma_is_a_gemm_when_each_runs_at_issue():
    func = gemm(3)
    inputs = random_inputs(func, seed=5)
    outputs = simulate(func, inputs, schedule="eager")
    np.testing.assert_allclose(outputs["C"], expected(inputs, 3), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("k_tiles", [0, 1, 2, 5])
def test_barrier_form_gemm(schedule, k_tiles):
    func = lower_to_barriers(gemm(k_tiles))
    inputs = random_inputs(func, seed=6)
    outputs = simulate(func, inputs, schedule=schedule)
    np.testing.assert_allclose(outputs["C"], expected(inputs, k_tiles), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("k_tiles", [0, 1, 2, 3, 6])
def test_warp_specialized_gemm_overlaps_wgmma(schedule, k_tiles):
    func = warp_specialize(gemm(k_tiles))
    text = func.script()
    assert "T.wgmma_wait_group(1)" in text
    inputs = random_inputs(func, seed=7)
    outputs = simulate(func, inputs, schedule=schedule)
    np.testing.assert_allclose(outputs["C"], expected(inputs, k_tiles), rtol=1e-5, atol=1e-4)


def test_warp_specialized_gemm_is_race_free():
    assert verify(warp_specialize(gemm(4))).ok


def test_one_more_wgmma_group_in_flight_releases_a_slot_still_read():
    """``wait_group 1`` is the largest safe count: with 2 the released slot is still an
    operand of a running wgmma when the producer refills it."""
    loose = warp_specialize(gemm(5)).script().replace(
        "T.wgmma_wait_group(1)", "T.wgmma_wait_group(2)")
    func = parse(loose)
    with pytest.raises(RaceError, match="race on [AB]_shared"):
        simulate(func, random_inputs(func), schedule="lazy")


def test_wgmma_never_waited_is_in_flight_at_the_end():
    func = gemm(2)  # as written: no commit, no wait
    with pytest.raises(BarrierError, match="still in flight when the block ends"):
        simulate(func, random_inputs(func), schedule="lazy")


def test_wgmma_by_part_of_a_warpgroup_is_rejected():
    text = gemm(1).script().replace("T.thread_binding(128", "T.thread_binding(64")
    func = parse(text)
    with pytest.raises(BarrierError, match="all 128 must execute it together"):
        simulate(func, random_inputs(func))
