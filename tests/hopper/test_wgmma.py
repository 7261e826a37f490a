"""Warpgroup MMA: tile semantics, asynchronous groups, and the GEMM consumer pipelined
with TMA copies and mbarriers (one role, and warp-specialized with overlapped wgmma)."""

import numpy as np
import pytest
from hopper_programs import gemm

from tilepipe import parse
from tilepipe.errors import RaceError
from tilepipe.sim import random_inputs, simulate, verify
from tilepipe.sim.mbarrier import BarrierError, wgmma_accumulator_position
from tilepipe.transform.barriers import lower_to_barriers
from tilepipe.transform.warp_specialize import warp_specialize

SCHEDULES = ("eager", "lazy", "random:3")

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
