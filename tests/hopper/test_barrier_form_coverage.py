"""The barrier forms (one role and warp-specialized) beyond a plain loop of tile copies:
buffers allocated in the loop body, shared data that other threads read, a tile copied
before the loop (seed 002's Q tile), and a pipelined loop nested in the barrier-form one.
Each simulates to the loop's results under every schedule, is race-free, and compiles
for sm_90a."""

import sys
from pathlib import Path

import numpy as np
import pytest

from tilepipe import parse
from tilepipe.backend.cuda import codegen
from tilepipe.backend.cuda.compiler import compile_source, find_nvcc
from tilepipe.errors import PipelineError
from tilepipe.sim import random_inputs, simulate, verify
from tilepipe.transform.barriers import lower_to_barriers
from tilepipe.transform.warp_specialize import warp_specialize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline_programs import COPY_BEFORE_THE_LOOP, QUERY_COPY  # noqa: E402

HEADER = '''
from tilepipe import script as T

'''

# The local R lives from stage 1 to stage 2: two versions in the one-role form.
HOISTED = HEADER + '''
@T.prim_func
def hoisted(A: T.Buffer((6, 32), "float32"), C: T.Buffer((6, 32), "float32")):
    for tx in T.thread_binding(32, thread="threadIdx.x"):
        with T.block("root"):
            for i in T.serial(6, annotations={"software_pipeline_stage": [0, 1, 2],
                                              "software_pipeline_order": [0, 1, 2],
                                              "software_pipeline_async_stages": [0]}):
                with T.block("body"):
                    S = T.alloc_buffer((32,), "float32", scope="shared")
                    R = T.alloc_buffer((1,), "float32", scope="local")
                    S[tx] = A[i, tx]
                    R[0] = S[(tx + 1) % 32] * T.float32(2)
                    C[i, tx] = R[0] + T.float32(1)
'''

# Each thread reads the R element its neighbour wrote, in the same stage or the next.
SHARED = HEADER + '''
@T.prim_func
def shared(A: T.Buffer((6, 32), "float32"), C: T.Buffer((6, 32), "float32")):
    for tx in T.thread_binding(32, thread="threadIdx.x"):
        with T.block("root"):
            S = T.alloc_buffer((32,), "float32", scope="shared")
            for i in T.serial(6, annotations={"software_pipeline_stage": [0, 1, STAGE],
                                              "software_pipeline_order": [0, 1, 2],
                                              "software_pipeline_async_stages": [0]}):
                with T.block("body"):
                    R = T.alloc_buffer((32,), "float32", scope="shared")
                    S[tx] = A[i, tx]
                    R[tx] = S[tx] * T.float32(2)
                    C[i, tx] = R[(tx + 1) % 32]
'''

# The inner loop is a register double buffer; in NESTED_ASYNC it copies asynchronously.
NESTED = HEADER + '''
@T.prim_func
def nested(A: T.Buffer((24, 32), "float32"), C: T.Buffer((6, 32), "float32")):
    for tx in T.thread_binding(32, thread="threadIdx.x"):
        with T.block("root"):
            S = T.alloc_buffer((4, 32), "float32", scope="shared")
            acc = T.alloc_buffer((1,), "float32", scope="local")
            for k in T.serial(6, annotations={"software_pipeline_stage": [0, 1, 1, 1],
                                              "software_pipeline_order": [0, 1, 2, 3],
                                              "software_pipeline_async_stages": [0]}):
                for r, c in T.grid(4, 32):
                    S[r, c] = A[k * 4 + r, c]
                acc[0] = T.float32(0)
                for r in T.serial(4, annotations={"software_pipeline_stage": [0, 1],
                                                  "software_pipeline_order": [0, 1]}):
                    with T.block("step"):
                        fragment = T.alloc_buffer((1,), "float32", scope="local")
                        fragment[0] = S[r, (tx + r) % 32]
                        acc[0] = acc[0] + fragment[0]
                C[k, tx] = acc[0]
'''
NESTED_ASYNC = NESTED.replace(
    '''                                                  "software_pipeline_order": [0, 1]}):''',
    '''                                                  "software_pipeline_order": [0, 1],
                                                  "software_pipeline_async_stages": [0]}):'''
).replace('''                        fragment = T.alloc_buffer((1,), "float32", scope="local")
                        fragment[0] = S[r, (tx + r) % 32]
                        acc[0] = acc[0] + fragment[0]''', '''                        fragment = T.alloc_buffer((32,), "float32", scope="shared")
                        fragment[tx] = A[k * 4 + r, tx]
                        acc[0] = acc[0] + fragment[tx] * S[r, tx]''')

# What each program computes, written without asynchrony.
PROGRAMS = {
    "hoisted": (HOISTED, HOISTED),
    "shared in one stage": (SHARED.replace("STAGE", "1"), SHARED.replace("STAGE", "1")),
    "shared in the next stage": (SHARED.replace("STAGE", "2"), SHARED.replace("STAGE", "2")),
    "copy before the loop": (COPY_BEFORE_THE_LOOP, COPY_BEFORE_THE_LOOP.replace(
        QUERY_COPY, '            Q_shared[tx] = Q[tx]\n            T.tvm_storage_sync("shared")\n')),
    "nested": (NESTED, NESTED),
    "nested asynchronous": (NESTED_ASYNC, NESTED_ASYNC),
}
FORMS = {"barriers": lower_to_barriers,
         "warp-specialized": lambda func: warp_specialize(func, reallocate_registers=False)}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", PROGRAMS)
def test_form_gives_the_loop_results_race_free(name, form):
    text, reference_text = PROGRAMS[name]
    lowered = FORMS[form](parse(text))
    reference = parse(reference_text)
    inputs = random_inputs(reference, seed=4)
    expected = simulate(reference, inputs)["C"]
    for schedule in ("eager", "lazy", "random:3"):
        np.testing.assert_allclose(simulate(lowered, inputs, schedule=schedule)["C"],
                                   expected, rtol=1e-6)
    assert verify(lowered).ok


def test_allocations_move_out_of_the_loop_and_ring_where_values_live_on():
    script = lower_to_barriers(parse(HOISTED)).script()
    assert 'S = T.alloc_buffer((2, 32), dtype="float32", scope="shared")' in script
    assert 'R = T.alloc_buffer((2, 1), dtype="float32", scope="local")' in script
    assert "R[(i + 1) % 2, 0] = S[(i + 1) % 2, (tx + 1) % 32] * T.float32(2)" in script
    assert "C[i - 2, tx] = R[i % 2, 0] + T.float32(1)" in script


def test_shared_data_of_other_threads_gets_block_or_consumer_barriers():
    program = parse(SHARED.replace("STAGE", "1"))
    single = lower_to_barriers(program).script()
    # Before the writer (the previous readers are done) and before the reader.
    assert single.count('T.tvm_storage_sync("shared")') == 3  # with the one after init
    specialized = warp_specialize(program, reallocate_registers=False).script()
    assert specialized.count("T.named_barrier_sync(1, 32)") == 2
    # Without the barriers the neighbour's element is read before it is written.
    stripped = parse(single.replace('                T.tvm_storage_sync("shared")\n', ""))
    assert not verify(stripped).ok


def test_copy_before_the_loop_waits_once_before_its_first_reader():
    for form in FORMS.values():
        script = form(parse(COPY_BEFORE_THE_LOOP)).script()
        assert "T.tma_load(Q_shared[0:32], Q[0:32], Q_shared_full, 0)" in script
        assert script.count("T.mbarrier_wait_parity(Q_shared_full, 0, 0)") == 1
    # The loop's own copies start meanwhile: the wait is in the first consumer instance.
    single = lower_to_barriers(parse(COPY_BEFORE_THE_LOOP)).script()
    assert single.index("T.tma_load(K_shared") < single.index(
        "T.mbarrier_wait_parity(Q_shared_full")


def test_copy_before_the_loop_that_nothing_reads_is_rejected():
    text = COPY_BEFORE_THE_LOOP.replace("Q_shared[(tx + 1) % 32] * ", "")
    with pytest.raises(PipelineError, match="nothing after the asynchronous copy into "
                                            "Q_shared"):
        lower_to_barriers(parse(text))


def test_copy_before_the_loop_must_be_a_tile_copy():
    text = COPY_BEFORE_THE_LOOP.replace("Q_shared[tx] = Q[tx]", "Q_shared[tx] = Q[31 - tx]")
    with pytest.raises(PipelineError, match="asynchronous statement before the pipelined "
                                            "loop does not copy each element"):
        lower_to_barriers(parse(text))


@pytest.mark.nvcc
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", ["hoisted", "shared in the next stage",
                                  "copy before the loop", "nested asynchronous"])
def test_form_compiles_for_sm90a(name, form):
    if find_nvcc() is None:
        pytest.skip("nvcc is not installed")
    source = codegen(FORMS[form](parse(PROGRAMS[name][0])), "sm_90a")
    assert compile_source(source, "sm_90a")


@pytest.mark.parametrize("sync", ["barriers", "warp-specialized"])
def test_commands_verify_and_emit_the_copy_before_the_loop(tmp_path, capsys, sync):
    from tilepipe.cli import main

    path = tmp_path / "before.py"
    path.write_text(COPY_BEFORE_THE_LOOP)
    assert main(["verify", str(path), "--sync", sync]) == 0
    assert "no race" in capsys.readouterr().out
    assert main(["cuda", str(path), "--sync", sync, "--arch", "sm_90a"]) == 0
    source = capsys.readouterr().out
    assert "tilepipe_hopper::mbarrier_wait_parity(reinterpret_cast<uint64_t*>(" \
           "&Q_shared_full[0]), 0)" in source
