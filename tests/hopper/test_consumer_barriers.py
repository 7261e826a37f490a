"""Block barriers around a warp-specialized loop: run by the consumer threads only, they
become named barriers of those threads (``bar.sync 1, consumers``), which the simulator
runs with their own semantics (only the participants wait and are ordered); a block
barrier left in the consumers' branch is reported, since the producer never reaches it."""

import re

import numpy as np
import pytest

from tilepipe import parse
from tilepipe.backend.cuda import codegen
from tilepipe.backend.cuda.compiler import compile_source, find_nvcc
from tilepipe.backend.cuda.sass import disassemble, find_cuobjdump
from tilepipe.errors import LoweringError, PipelineError, RaceError
from tilepipe.sim import random_inputs, simulate, verify
from tilepipe.sim.mbarrier import BarrierError, BarrierRace
from tilepipe.transform.warp_specialize import warp_specialize

SCHEDULES = ("eager", "lazy", "random:5")

# Before the loop the threads share a bias row through shared memory; after it they
# exchange their first results through shared memory: both need a barrier of the
# consumer threads.
PROGRAM = '''
from tilepipe import script as T

@T.prim_func
def exchange(A: T.Buffer((12, 64), "float32"), bias: T.Buffer((128,), "float32"),
             C: T.Buffer((12, 64), "float32"), D: T.Buffer((128,), "float32")):
    for tx in T.thread_binding(THREADS, thread="threadIdx.x"):
        with T.block("root"):
            A_shared = T.alloc_buffer((2, 64), "float32", scope="shared")
            bias_shared = T.alloc_buffer((128,), "float32", scope="shared")
            exchanged = T.alloc_buffer((128,), "float32", scope="shared")
            bias_shared[tx] = bias[tx]
            T.tvm_storage_sync("shared")
            for k in T.serial(6, annotations={"software_pipeline_stage": [0, 2],
                                              "software_pipeline_order": [0, 1],
                                              "software_pipeline_async_stages": [0]}):
                with T.block("copy"):
                    T.reads(A[2 * k:2 * k + 2, 0:64])
                    T.writes(A_shared[0:2, 0:64])
                    for r in T.serial(2):
                        for c in T.serial(64):
                            A_shared[r, c] = A[2 * k + r, c]
                with T.block("compute"):
                    C[2 * k + tx // 64, tx % 64] = \\
                        A_shared[tx // 64, tx % 64] + bias_shared[127 - tx]
            exchanged[tx] = C[tx // 64, tx % 64]
            T.tvm_storage_sync("shared")
            D[tx] = exchanged[127 - tx]
'''


def program(threads=128):
    return parse(PROGRAM.replace("THREADS", str(threads)))


def test_barriers_of_the_consumers_become_named_barriers():
    script = warp_specialize(program()).script()
    assert script.count("T.named_barrier_sync(1, 128)") == 2
    # the only block barrier left is the one after the barrier initialization, which
    # every thread (producer warpgroup included) reaches
    assert script.count('T.tvm_storage_sync("shared")') == 1
    assert '\n            T.tvm_storage_sync("shared")\n' in script  # not under a condition


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_specialized_program_with_consumer_barriers_gives_the_loop_results(schedule):
    func = program()
    specialized = warp_specialize(func)
    inputs = random_inputs(func, seed=6)
    expected = simulate(func, inputs)
    outputs = simulate(specialized, inputs, schedule=schedule)
    for name in ("C", "D"):
        np.testing.assert_array_equal(outputs[name], expected[name])


def test_specialized_program_with_consumer_barriers_is_race_free():
    assert verify(warp_specialize(program())).ok


def test_block_barrier_left_in_the_consumer_branch_is_reported():
    text = warp_specialize(program()).script().replace(
        "T.named_barrier_sync(1, 128)", 'T.tvm_storage_sync("shared")')
    report = verify(parse(text))
    assert not report.ok
    assert "divergent-barrier" in report.format()


def test_without_the_named_barrier_the_exchange_is_a_race():
    text = warp_specialize(program()).script()
    last = text.rindex("T.named_barrier_sync(1, 128)")
    func = parse(text[:last] + "T.evaluate(0)" + text[last + len("T.named_barrier_sync(1, 128)"):])
    with pytest.raises(BarrierRace, match=r"race on exchanged"):
        simulate(func, random_inputs(func))
    assert not verify(func).ok


def test_named_barrier_counting_more_threads_than_arrive_deadlocks():
    text = warp_specialize(program()).script().replace(
        "T.named_barrier_sync(1, 128)", "T.named_barrier_sync(1, 256)")
    func = parse(text)
    with pytest.raises(RaceError, match=r"thread\(s\) 0-127 wait at named barrier 1 .* for "
                                        r"256 threads; only 128 arrived"):
        simulate(func, random_inputs(func))


def test_named_barrier_of_a_part_of_a_warp_is_rejected():
    text = warp_specialize(program()).script().replace(
        "T.named_barrier_sync(1, 128)", "T.named_barrier_sync(1, 100)")
    func = parse(text)
    with pytest.raises(BarrierError, match="positive multiple of 32"):
        simulate(func, random_inputs(func))


def test_consumer_barrier_needs_whole_warps_of_consumers():
    with pytest.raises(PipelineError, match="multiple of 32"):
        warp_specialize(program(threads=112), reallocate_registers=False)


def test_named_barrier_is_emitted_as_bar_sync():
    source = codegen(warp_specialize(program()), "sm_90a")
    assert source.count("tilepipe_hopper::named_barrier_sync<1, 128>();") == 2
    assert 'asm volatile("bar.sync %0, %1;"' in source
    assert source.count("__syncthreads();") == 1


def test_named_barrier_zero_is_not_accepted_by_the_backend():
    text = warp_specialize(program()).script().replace(
        "T.named_barrier_sync(1, 128)", "T.named_barrier_sync(0, 128)")
    with pytest.raises(LoweringError, match="barrier id in 1..15"):
        codegen(parse(text), "sm_90a")


@pytest.mark.nvcc
def test_specialized_program_with_named_barriers_compiles_for_sm90a():
    if find_nvcc() is None or find_cuobjdump() is None:
        pytest.skip("nvcc or cuobjdump is not installed")
    sass = disassemble(compile_source(codegen(warp_specialize(program()), "sm_90a"),
                                      "sm_90a"))
    assert len(re.findall(r"BAR\.SYNC\S* 0x1, 0x80\b", sass)) == 2  # barrier 1, 128 threads
    assert len(re.findall(r"BAR\.SYNC\S* 0x0\b", sass)) == 1  # after barrier initialization
