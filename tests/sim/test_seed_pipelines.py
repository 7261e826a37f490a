"""The seeds' examples before and after pipelining: equal outputs under every schedule,
no race, and every wait exact (the seed tests' annotations, with async stages)."""

import numpy as np
import pytest

from tilepipe.script import parse
from tilepipe.sim import max_safe_counts, random_inputs, simulate, verify
from tilepipe.transform import inject_software_pipeline

HEADER = "from tilepipe import script as T\n\n\n"

SIMPLE_COMPUTE = HEADER + '''@T.prim_func
def simple_compute(A: T.Buffer((16, 16), "float32"), C: T.Buffer((16, 16), "float32")):
    for tx in T.thread_binding(0, 16, thread="threadIdx.x"):
        for i in T.serial(0, 16, annotations={"software_pipeline_stage": [0, STAGES],
                                              "software_pipeline_order": [0, 1],
                                              "software_pipeline_async_stages": [0]}):
            with T.block("compute"):
                B = T.alloc_buffer((16, 1), dtype="float32", scope="shared")
                with T.block():
                    B[tx, 0] = A[tx, i] * T.float32(2)
                with T.block():
                    C[tx, i] = B[tx, 0] + T.float32(1)
'''

PRODUCER_INTERLEAVING = HEADER + '''@T.prim_func
def interleaving(A: T.Buffer((16, 16), "float32"), B: T.Buffer((16, 16), "float32"),
                 C: T.Buffer((16, 16), "float32")):
    for tx in T.thread_binding(0, 16, thread="threadIdx.x"):
        for i in T.serial(0, 16, annotations={"software_pipeline_stage": [0, 0, 3],
                                              "software_pipeline_order": [0, 2, 1],
                                              "software_pipeline_async_stages": [0]}):
            with T.block("compute"):
                A_shared = T.alloc_buffer((16, 1), dtype="float32", scope="shared")
                B_shared = T.alloc_buffer((16, 1), dtype="float32", scope="shared")
                with T.block():
                    A_shared[tx, 0] = A[tx, i]
                with T.block():
                    B_shared[tx, 0] = B[tx, i]
                with T.block():
                    C[tx, i] = A_shared[tx, 0] + B_shared[tx, 0]
'''

THREE_STAGE = HEADER + '''@T.prim_func
def three_stage(A: T.Buffer((16, 16), "float32"), D: T.Buffer((16, 16), "float32")):
    for tx in T.thread_binding(0, 16, thread="threadIdx.x"):
        for i in T.serial(0, 16, annotations={"software_pipeline_stage": [0, 1, 2],
                                              "software_pipeline_order": [0, 1, 2],
                                              "software_pipeline_async_stages": [0, 1]}):
            with T.block("compute"):
                B = T.alloc_buffer((16, 1), dtype="float32", scope="shared")
                C = T.alloc_buffer((16, 1), dtype="float32", scope="shared")
                with T.block():
                    B[tx, 0] = A[tx, i] * T.float32(2)
                with T.block():
                    C[tx, 0] = B[tx, 0] + T.float32(2)
                with T.block():
                    D[tx, i] = C[tx, 0] + T.float32(1)
'''

CASES = {
    "simple_compute_1": SIMPLE_COMPUTE.replace("STAGES", "1"),
    "simple_compute_3": SIMPLE_COMPUTE.replace("STAGES", "3"),
    "producer_interleaving": PRODUCER_INTERLEAVING,
    "three_stage_two_async": THREE_STAGE,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_seed_pipeline(name):
    func = parse(CASES[name], source_name=f"<{name}>")
    pipelined = parse(inject_software_pipeline(func).script(), source_name="<pipelined>")
    inputs = random_inputs(func, seed=9)
    expected = simulate(func, inputs)
    for schedule in ("eager", "lazy", "random:2", "random:3"):
        result = simulate(pipelined, inputs, schedule=schedule)
        for buffer, array in expected.items():
            np.testing.assert_array_equal(result[buffer], array, err_msg=schedule)
    report = verify(pipelined)
    assert report.ok, report.format()
    counts = max_safe_counts(pipelined)
    assert counts, "the pipelined program has async stages, hence waits"
    for count in counts:
        assert count.exact, count.format()
