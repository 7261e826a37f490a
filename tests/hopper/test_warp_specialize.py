"""Warp specialization: the producer warpgroup and consumer roles, their results under
every schedule over generated pipelines (roles run until they block), register
reallocation, trip counts below the slot count or zero, deadlocks across roles."""

import numpy as np
import pytest
from hopper_programs import pipeline_source, pipelines, scaled_rows_source
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tilepipe import parse
from tilepipe.errors import PipelineError, RaceError
from tilepipe.ir import assert_structural_equal
from tilepipe.sim import random_inputs, simulate, verify
from tilepipe.transform.warp_specialize import register_split, warp_specialize

AFTER = '''
from tilepipe import script as T

@T.prim_func
def scaled_rows(A: T.Buffer((12, 64), "float32"), C: T.Buffer((12, 64), "float32")):
    for tx in T.thread_binding(256, thread="threadIdx.x"):
        with T.block("root"):
            A_shared = T.alloc_buffer((3, 2, 64), "float32", scope="shared")
            full = T.alloc_buffer((3,), "uint64", scope="shared")
            empty = T.alloc_buffer((3,), "uint64", scope="shared")
            if tx == 0:
                for slot in T.serial(3):
                    T.mbarrier_init(full, slot, 1)
                    T.mbarrier_init(empty, slot, 128)
            T.tvm_storage_sync("shared")
            if tx < 128:
                for k in T.serial(6):
                    T.mbarrier_wait_parity(full, k % 3, k // 3)
                    with T.block("compute"):
                        C[2 * k + tx // 64, tx % 64] = \\
                            A_shared[k % 3, tx // 64, tx % 64] * T.float32(3)
                    T.mbarrier_arrive(empty, k % 3)
                C[tx // 64, tx % 64] = C[tx // 64, tx % 64] + T.float32(1)
            else:
                if tx == 128:
                    for k in T.serial(6):
                        T.mbarrier_wait_parity(empty, k % 3, (k // 3 + 1) % 2)
                        T.mbarrier_arrive_expect_tx(full, k % 3, 512)
                        T.tma_load(A_shared[k % 3, 0:2, 0:64], A[k * 2:k * 2 + 2, 0:64],
                                   full, k % 3)
'''


def source(extent: int) -> str:
    return scaled_rows_source(stages=(0, 2), extent=extent, then_add_one=True)


def test_roles_producer_warpgroup_and_consumers():
    assert_structural_equal(warp_specialize(parse(source(6))), parse(AFTER),
                            compare_regions=False)


@pytest.mark.parametrize("extent", [0, 1, 2, 3, 7])
@pytest.mark.parametrize("schedule", ["eager", "lazy", "random:2"])
def test_any_trip_count_gives_the_loop_results(extent, schedule):
    func = parse(source(extent))
    specialized = warp_specialize(func)
    inputs = random_inputs(func, seed=4)
    expected = simulate(func, inputs)
    outputs = simulate(specialized, inputs, schedule=schedule)
    np.testing.assert_array_equal(outputs["C"], expected["C"])


def test_specialized_program_is_race_free():
    assert verify(warp_specialize(parse(source(5)))).ok


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines(), st.sampled_from(["eager", "lazy", "random:9"]))
def test_generated_pipelines_specialize_to_the_same_results(config, schedule):
    func = parse(pipeline_source(**config))
    specialized = warp_specialize(func)
    inputs = random_inputs(func, seed=2)
    expected = simulate(func, inputs)
    outputs = simulate(specialized, inputs, schedule=schedule)
    first, last = (config["start"] * config["rows"],
                   (config["start"] + config["extent"]) * config["rows"])
    for name in ("C", "D"):
        if name in expected:
            np.testing.assert_array_equal(outputs[name][first:last], expected[name][first:last])


def test_consumer_that_never_releases_deadlocks_both_roles():
    text = warp_specialize(parse(source(6))).script().replace(
        "T.mbarrier_arrive(empty, k % 3)", "T.evaluate(0)")
    func = parse(text)
    with pytest.raises(RaceError, match="deadlock") as caught:
        simulate(func, random_inputs(func))
    message = str(caught.value)
    assert "thread(s) 0-127 wait on full[0] for parity 1 (phase 1)" in message
    assert "thread(s) 128 wait on empty[0] for parity 0 (phase 0)" in message


def test_register_split_gives_consumers_what_the_producer_leaves():
    assert register_split(256) == (40, 232)  # 384 threads start with 168 each
    assert register_split(512) == (40, 112)  # (65536 - 128 * 40) // 512 = 118
    assert register_split(256, consumer=200) == (40, 200)
    assert register_split(128) is None  # 256 threads already start with 256 each


def test_two_consumer_warpgroups_take_the_producer_registers():
    text = source(4).replace("T.thread_binding(128", "T.thread_binding(256").replace(
        "tx // 64", "tx // 64 % 2").replace("A_shared[0:2, 0:64]", "A_shared[0:2, 0:64]")
    specialized = warp_specialize(parse(text))
    script = specialized.script()
    assert 'T.setmaxnreg(232, "inc")' in script and 'T.setmaxnreg(40, "dec")' in script
    assert "T.thread_binding(384" in script
    func = parse(text)
    inputs = random_inputs(func, seed=3)
    np.testing.assert_array_equal(simulate(specialized, inputs)["C"],
                                  simulate(func, inputs)["C"])


def test_register_reallocation_needs_whole_consumer_warpgroups():
    text = source(4).replace("T.thread_binding(128", "T.thread_binding(320").replace(
        "tx // 64", "tx // 64 % 2")
    with pytest.raises(PipelineError, match="multiple of 128"):
        warp_specialize(parse(text))
    specialized = warp_specialize(parse(text), reallocate_registers=False)
    assert "setmaxnreg" not in specialized.script()


def test_pipelined_loop_inside_a_serial_loop_is_rejected():
    text = source(4).replace(
        "            for k in T.serial(4, annotations",
        "            for outer in T.serial(2):\n             for k in T.serial(4, annotations")
    with pytest.raises(PipelineError, match="pipelined loop 'k' is inside loop 'outer'"):
        warp_specialize(parse(text))
