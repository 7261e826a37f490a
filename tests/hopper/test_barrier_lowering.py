"""Barrier lowering: the expected program for a two-stage pipeline, the same results as
the program before lowering under every schedule (no race, no deadlock, no misuse) over
generated pipelines, and the errors for loops that cannot become TMA + mbarriers."""

import numpy as np
import pytest
from hopper_programs import pipeline_source, pipelines, scaled_rows_source
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tilepipe import parse
from tilepipe.errors import PipelineError
from tilepipe.ir import assert_structural_equal
from tilepipe.sim import random_inputs, simulate
from tilepipe.transform.barriers import lower_to_barriers, plan_barrier_pipeline

BEFORE = scaled_rows_source(threads=64)

AFTER = '''
from tilepipe import script as T

@T.prim_func
def scaled_rows(A: T.Buffer((12, 64), "float32"), C: T.Buffer((12, 64), "float32")):
    for tx in T.thread_binding(64, thread="threadIdx.x"):
        with T.block("root"):
            A_shared = T.alloc_buffer((2, 2, 32), "float32", scope="shared")
            full = T.alloc_buffer((2,), "uint64", scope="shared")
            empty = T.alloc_buffer((2,), "uint64", scope="shared")
            if tx == 0:
                for slot in T.serial(2):
                    T.mbarrier_init(full, slot, 1)
                    T.mbarrier_init(empty, slot, 64)
            T.tvm_storage_sync("shared")
            for k in T.serial(7):
                if k < 6:
                    if tx == 0:
                        T.mbarrier_wait_parity(empty, k % 2, (k // 2 + 1) % 2)
                        T.mbarrier_arrive_expect_tx(full, k % 2, 256)
                        T.tma_load(A_shared[k % 2, 0:2, 0:32], A[k * 2:k * 2 + 2, 0:32],
                                   full, k % 2)
                if k >= 1:
                    T.mbarrier_wait_parity(full, (k + 1) % 2, (k - 1) // 2 % 2)
                    with T.block("compute"):
                        T.reads(A_shared[(k + 1) % 2, tx // 32, tx % 32])
                        T.writes(C[(k - 1) * 2 + tx // 32, tx % 32])
                        C[2 * (k - 1) + tx // 32, tx % 32] = \\
                            A_shared[(k + 1) % 2, tx // 32, tx % 32] * T.float32(3)
                    T.mbarrier_arrive(empty, (k + 1) % 2)
'''


def test_two_stage_pipeline_lowers_to_full_and_empty_barriers():
    assert_structural_equal(lower_to_barriers(parse(BEFORE)), parse(AFTER),
                            compare_regions=False)


def test_lowered_program_prints_and_parses_back():
    lowered = lower_to_barriers(parse(BEFORE))
    assert_structural_equal(parse(lowered.script()), lowered)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines(), st.sampled_from(["eager", "lazy", "random:5"]))
def test_barrier_form_computes_what_the_loop_computes(config, schedule):
    func = parse(pipeline_source(**config))
    lowered = lower_to_barriers(func)
    inputs = random_inputs(func, seed=1)
    expected = simulate(func, inputs)
    outputs = simulate(lowered, inputs, schedule=schedule)
    extent_rows = (config["start"] + config["extent"]) * config["rows"]
    first_row = config["start"] * config["rows"]
    for name in ("C", "D"):
        if name in expected:
            np.testing.assert_array_equal(outputs[name][first_row:extent_rows],
                                          expected[name][first_row:extent_rows])


def test_slots_cover_the_distance_to_the_last_consumer():
    config = dict(threads=32, rows=2, start=0, extent=5, stages=[0, 1, 3], orders=[0, 1, 2],
                  two_buffers=False, second_consumer=True)
    loop = _loop(parse(pipeline_source(**config)))
    (group,) = plan_barrier_pipeline(loop).groups
    assert group.num_slots == 4 and group.consumers == [1, 2]


@pytest.mark.parametrize("stages, orders, slots", [([0, 1], [0, 1], 2), ([0, 2], [1, 0], 3),
                                                   ([0, 3], [0, 1], 4)])
def test_rings_have_one_slot_per_stage_the_data_lives(stages, orders, slots):
    """The pipeline schedule's buffer versions: consumer stage - producer stage + 1."""
    config = dict(threads=32, rows=2, start=0, extent=5, stages=stages, orders=orders,
                  two_buffers=False, second_consumer=False)
    (group,) = plan_barrier_pipeline(_loop(parse(pipeline_source(**config)))).groups
    assert group.num_slots == slots


def _loop(func):
    from tilepipe.ir import For, post_order_visit

    loops = []
    post_order_visit(func.body, lambda node: loops.append(node)
                     if isinstance(node, For) and node.annotations else None)
    return loops[0]


def test_async_statement_that_is_not_a_copy_is_rejected():
    text = BEFORE.replace("A_shared[r, c] = A[2 * k + r, c]",
                          "A_shared[r, c] = A[2 * k + r, c] * T.float32(2)")
    with pytest.raises(PipelineError, match="not a tile copy from global to shared"):
        lower_to_barriers(parse(text))


def test_consumer_in_an_earlier_stage_is_rejected():
    text = BEFORE.replace('"software_pipeline_stage": [0, 1]',
                          '"software_pipeline_stage": [1, 0]').replace(
        '"software_pipeline_async_stages": [0]', '"software_pipeline_async_stages": [1]')
    with pytest.raises(PipelineError, match="schedules statement 1 .* before statement 0"):
        lower_to_barriers(parse(text))


@pytest.mark.parametrize("trips", [0, 1, 2, 3, 7])
def test_symbolic_trip_count_bound_at_run_time(trips):
    from tilepipe.transform.warp_specialize import warp_specialize

    func = parse(scaled_rows_source(stages=(0, 2), extent=None))
    lowered = lower_to_barriers(func)
    assert "for k in T.serial(n + 2):" in lowered.script()
    dims = {"n": trips, "rows": max(2 * trips, 2)}
    inputs = random_inputs(func, seed=3, dims=dims)
    expected = simulate(func, inputs, dims=dims)["C"][:2 * trips]
    for program in (lowered, warp_specialize(func)):
        for schedule in ("eager", "lazy"):
            outputs = simulate(program, inputs, dims=dims, schedule=schedule)
            np.testing.assert_array_equal(outputs["C"][:2 * trips], expected)
