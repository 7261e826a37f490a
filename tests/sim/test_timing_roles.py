"""The timing model of the Hopper forms: mbarrier phases, TMA bytes completing them, and
the producer and consumer roles of a warp-specialized program running concurrently."""

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tilepipe.kernels.hopper_gemm import hopper_gemm
from tilepipe.kernels.tuning import with_num_stages
from tilepipe.script import parse
from tilepipe.sim.timing import A100, ModelError, estimate
from tilepipe.transform.barriers import lower_to_barriers
from tilepipe.transform.pipeline.planning import plan_pipeline
from tilepipe.transform.warp_specialize import warp_specialize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline_programs import COPY_BEFORE_THE_LOOP  # noqa: E402

# Round numbers: an 8 KiB tile moves in 512 cycles and lands 100 later; a 64 x 64 x 64
# warpgroup MMA (524,288 flops) takes 512; issuing costs 4, a block barrier 20.
ROUND = replace(A100, name="round", sm_clock_ghz=1.0, num_sms=1, l2_bytes_per_clock=16.0,
                tensor_tflops=1.024, fp32_tflops=0.128, l2_latency=100, issue_cycles=4,
                barrier_cycles=20, has_tma=True)

ROLES = """
from tilepipe import script as T


@T.prim_func
def roles(A: T.Buffer((256, 64), "float16")):
    for tx in T.thread_binding(256, thread="threadIdx.x"):
        with T.block("root"):
            ring = T.alloc_buffer((2, 64, 64), "float16", scope="shared.dyn")
            full = T.alloc_buffer((2,), "uint64", scope="shared")
            empty = T.alloc_buffer((2,), "uint64", scope="shared")
            acc = T.alloc_buffer((32,), "float32", scope="local")
            if tx == 0:
                for s in T.serial(2):
                    T.mbarrier_init(full, s, 1)
                    T.mbarrier_init(empty, s, 128)
            T.tvm_storage_sync("shared")
            if tx < 128:
                for k in T.serial(4):
                    T.mbarrier_wait_parity(full, k % 2, k // 2 % 2)
                    T.wgmma(acc[0:32], ring[k % 2, 0:64, 0:64], ring[k % 2, 0:64, 0:64], 1)
                    T.wgmma_commit_group()
                    T.wgmma_wait_group(0)
                    T.mbarrier_arrive(empty, k % 2)
            else:
                if tx == 128:
                    for k in T.serial(PRODUCED):
                        T.mbarrier_wait_parity(empty, k % 2, (k // 2 + 1) % 2)
                        T.mbarrier_arrive_expect_tx(full, k % 2, 8192)
                        T.tma_load(ring[k % 2, 0:64, 0:64], A[k * 64:k * 64 + 64, 0:64], full, k % 2)
"""


def roles_program(produced: int = 4):
    return parse(ROLES.replace("PRODUCED", str(produced)))


def test_producer_and_consumer_meet_at_mbarrier_phases():
    report = estimate(roles_program(), ROUND)
    waits = {lane: [(i.label, i.start, i.end) for i in report.intervals
                    if i.unit == lane and i.kind == "wait"] for lane in ("producer", "consumer")}
    # The block barrier ends at 20; tile 0 is issued 20-24, moves 24-536, lands at 636;
    # tile 1 moves after it (536-1048) and lands at 1148.
    assert waits["consumer"][0] == ("mbarrier full", 20, 636)
    # The producer refills slot 0 once the consumer has released it: wgmma 0 runs
    # 640-1152, the consumer waits for it (wait_group 0) and arrives on empty[0].
    assert ("mbarrier empty", 28, 1152) in waits["producer"]
    # Tile 2 moves 1156-1668 and lands at 1768; its wgmma (issued 1768-1772) ends at
    # 2284; tile 3 lands at 2284 and its wgmma ends the block at 2288 + 512.
    assert ("mbarrier full", 1668, 1768) in waits["consumer"]
    assert report.total_cycles == 2800
    assert report.flops == 4 * 2 * 64 * 64 * 64
    assert [i.start for i in report.intervals if i.kind == "transfer"] == [24, 536, 1156, 1672]
    # The consumer's four iterations mark the body; the producer's issue on its own lane.
    assert len(report.iteration_starts) == 4
    assert {i.label for i in report.intervals if i.unit == "producer" and i.kind == "issue"} \
        == {"tma_load"}


def test_a_phase_nothing_completes_is_a_deadlock():
    with pytest.raises(ModelError, match="deadlocks.*consumer on full"):
        estimate(roles_program(produced=3), ROUND)


def test_thread_predicates_scale_the_work_under_them():
    program = parse("""
from tilepipe import script as T


@T.prim_func
def half(A: T.Buffer((4,), "float32")):
    for tx in T.thread_binding(128, thread="threadIdx.x"):
        with T.block("root"):
            values = T.alloc_buffer((4,), "float32", scope="local")
            if tx < 32:
                values[0] = values[1] * values[2]
            values[3] = values[1] * values[2]
""")
    assert estimate(program, ROUND).flops == 2 * 32 + 2 * 128


# The Hopper GEMM in both barrier forms -------------------------------------------------
@pytest.fixture(scope="module")
def gemm():
    return hopper_gemm(128, 128, 2048)


def lowered(func, num_stages: int, lowering):
    return lowering(plan_pipeline(with_num_stages(func, num_stages), "sm_90a"))


def test_warp_specialized_gemm_approaches_the_bound_with_enough_slots(gemm):
    as_written = estimate(gemm, "H100")
    reports = [estimate(lowered(gemm, slots, warp_specialize), "H100")
               for slots in range(2, 6)]
    cycles = [report.total_cycles for report in reports]
    assert all(total <= as_written.total_cycles for total in cycles)
    assert all(later <= earlier * 1.001 for earlier, later in zip(cycles, cycles[1:]))
    # Two slots: the wgmma kept in flight holds one, so the copies cannot run ahead.
    assert cycles[0] > 1.1 * cycles[2]
    for report in reports[1:]:
        assert report.bound_cycles <= report.total_cycles <= 1.05 * report.bound_cycles


def test_both_barrier_forms_do_the_same_work(gemm):
    single = estimate(lowered(gemm, 4, lower_to_barriers), "H100")
    specialized = estimate(lowered(gemm, 4, warp_specialize), "H100")
    assert specialized.global_bytes == single.global_bytes == (
        2 * 128 * 2048 * 2 + 128 * 128 * 4)
    assert specialized.flops == single.flops == 2 * 128 * 128 * 2048 + 128 * 128
    assert single.total_cycles <= 1.05 * single.bound_cycles
    lanes = {interval.unit for interval in specialized.intervals}
    assert {"producer", "consumer", "tma", "tensor"} <= lanes
    assert "producer" not in {interval.unit for interval in single.intervals}


@pytest.mark.parametrize("lowering", [lower_to_barriers, lambda func: warp_specialize(
    func, reallocate_registers=False)])
def test_loop_copies_start_while_the_tile_copied_before_the_loop_travels(lowering):
    report = estimate(lowering(parse(COPY_BEFORE_THE_LOOP)), ROUND)
    transfers = [i for i in report.intervals if i.kind == "transfer" and i.unit == "tma"]
    flights = [i for i in report.intervals if i.kind == "flight" and i.unit == "tma"]
    assert len(transfers) == 7  # the Q tile, then six K tiles of 128 bytes
    assert all(i.end - i.start == 128 / 16 for i in transfers)
    assert transfers[1].start < flights[0].end  # K's first copy does not wait for Q
    waits = [i for i in report.intervals if i.label == "mbarrier Q_shared_full"]
    assert len(waits) == 1 and waits[0].end == flights[0].end


def test_nested_thread_predicates_count_the_threads_under_both():
    program = parse("""
from tilepipe import script as T


@T.prim_func
def nested(A: T.Buffer((4,), "float32")):
    for tx in T.thread_binding(128, thread="threadIdx.x"):
        with T.block("root"):
            values = T.alloc_buffer((4,), "float32", scope="local")
            if tx < 64:
                values[3] = values[1] * values[2]
                if tx < 32:
                    values[0] = values[1] * values[2]
""")
    assert estimate(program, ROUND).flops == 2 * 64 + 2 * 32
