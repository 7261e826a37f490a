"""What the barrier lowering accepts as a TMA copy and where it says no: a copy in which
each thread copies its own part is one tile copy of the union, issued by one thread; a
copy that moves elements to other places, a loop inside another loop and a statement
whose threads write what its other threads access are rejected with a message."""

import numpy as np
import pytest
from hopper_programs import FORMS

from tilepipe import parse
from tilepipe.errors import PipelineError
from tilepipe.sim import random_inputs, simulate, verify
from tilepipe.transform.barriers import lower_to_barriers

PER_THREAD = '''
from tilepipe import script as T

@T.prim_func
def per_thread(A: T.Buffer((4, 6), "float32"), C: T.Buffer((4, 6), "float32")):
    for tx in T.thread_binding(4, thread="threadIdx.x"):
        with T.block("root"):
            S = T.alloc_buffer((4, 1), "float32", scope="shared")
            for i in T.serial(6, annotations={"software_pipeline_stage": [0, 1],
                                              "software_pipeline_order": [0, 1],
                                              "software_pipeline_async_stages": [0]}):
                S[tx, 0] = A[tx, i]
                C[tx, i] = S[(tx + 1) % 4, 0] + T.float32(1)
'''

@pytest.mark.parametrize("form", sorted(FORMS))
def test_copy_of_one_element_per_thread_becomes_one_tile_copy(form):
    func = parse(PER_THREAD)
    lowered = FORMS[form](func)
    assert "T.tma_load(S[i % 2, 0:4, 0], A[0:4, i], full, i % 2)" in lowered.script()
    inputs = random_inputs(func, seed=2)
    for schedule in ("eager", "lazy", "random:3"):
        np.testing.assert_array_equal(simulate(lowered, inputs, schedule=schedule)["C"],
                                      simulate(func, inputs)["C"])
    assert verify(lowered).ok


def test_copy_that_moves_elements_is_not_a_tma_copy():
    text = PER_THREAD.replace("S[tx, 0] = A[tx, i]", "S[tx, 0] = A[3 - tx, i]")
    with pytest.raises(PipelineError, match="does not copy each element of the A tile to "
                                            "the same place in the S tile"):
        lower_to_barriers(parse(text))


def test_pipelined_loop_inside_another_loop_is_rejected_naming_the_forms_that_nest():
    text = PER_THREAD.replace("            for i in T.serial(6,", "            for j in T.serial(2):\n"
                              "             for i in T.serial(6,")
    with pytest.raises(PipelineError, match="pipelined loop 'i' is inside loop 'j'.*"
                                            "--sync counts"):
        lower_to_barriers(parse(text))


def test_statement_writing_what_its_other_threads_access_is_rejected():
    text = PER_THREAD.replace(
        '            S = T.alloc_buffer((4, 1), "float32", scope="shared")\n',
        '            S = T.alloc_buffer((4, 1), "float32", scope="shared")\n'
        '            R = T.alloc_buffer((4, 1), "float32", scope="shared")\n').replace(
        "                C[tx, i] = S[(tx + 1) % 4, 0] + T.float32(1)\n",
        "                R[tx, 0] = S[tx, 0] + R[(tx + 1) % 4, 0]\n")
    with pytest.raises(PipelineError, match="statement 1 writes R and accesses it where "
                                            "other threads write it"):
        lower_to_barriers(parse(text))
