"""The seed's GEMM annotations on a GEMM-shaped program: shared copies of A and B tiles,
an inner loop with register copies and a compute.

The seed checks the wait counts at fixed places of the output (prologue, body,
epilogue); so do these tests, and the simulator checks outputs, races and exactness.
"""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_helpers import annotate, program

from tilepipe.ir import AsyncCommitQueue, AsyncWaitQueue, Block, For, ForKind, SeqStmt
from tilepipe.script import parse
from tilepipe.sim import max_safe_counts, random_inputs, simulate, verify
from tilepipe.transform import inject_software_pipeline

GEMM = '''
@T.prim_func
def gemm(A: T.Buffer((16, 64), "float32"), B: T.Buffer((16, 64), "float32"), C: T.Buffer((16, 1), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        for k0 in T.serial(8):
            with T.block():
                A_shared = T.alloc_buffer((16, 8), dtype="float32", scope="shared")
                B_shared = T.alloc_buffer((16, 8), dtype="float32", scope="shared")
                with T.block():
                    for kk in T.serial(8):
                        A_shared[tx, kk] = A[tx, k0 * 8 + kk]
                with T.block():
                    for kk in T.serial(8):
                        B_shared[tx, kk] = B[tx, k0 * 8 + kk]
                for k1 in T.serial(2):
                    with T.block():
                        A_local = T.alloc_buffer((4,), dtype="float32", scope="local")
                        B_local = T.alloc_buffer((4,), dtype="float32", scope="local")
                        with T.block():
                            for kk in T.serial(4):
                                A_local[kk] = A_shared[tx, k1 * 4 + kk]
                        with T.block():
                            for kk in T.serial(4):
                                B_local[kk] = B_shared[tx, k1 * 4 + kk]
                        with T.block():
                            for kk in T.serial(4):
                                C[tx, 0] = C[tx, 0] + A_local[kk] * B_local[kk]
'''


def gemm_simple():
    return annotate(program(GEMM), "k0", stage=[0, 0, 3], order=[0, 1, 2], async_stages=[0])


def gemm_ideal():
    func = annotate(program(GEMM), "k0", stage=[0, 0, 2, 3, 3], order=[0, 1, 3, 2, 4],
                    async_stages=[0])
    return annotate(func, "k1", stage=[0, 0, 1], order=[0, 1, 2])


def sections(func):
    """The prologue, body and epilogue blocks of the outer pipeline."""
    outer = func.body.body  # for tx: the pipeline's block
    assert isinstance(outer, Block) and isinstance(outer.body, SeqStmt)
    return outer.body.stmts


def loop_statements(section):
    loop = section.body
    assert isinstance(loop, For)
    return loop, loop.body.stmts if isinstance(loop.body, SeqStmt) else (loop.body,)


def wait_of(block):
    wait = block.body
    assert isinstance(wait, AsyncWaitQueue)
    return wait


def semantic_check(func):
    pipelined = parse(inject_software_pipeline(func).script())
    assert verify(pipelined).ok
    counts = max_safe_counts(pipelined)
    assert counts and all(count.exact for count in counts), [c.format() for c in counts]
    inputs = random_inputs(func, seed=3)
    expected = simulate(func, {name: value.copy() for name, value in inputs.items()})
    actual = simulate(pipelined, {name: value.copy() for name, value in inputs.items()})
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5)


def test_simple_annotation_counts():
    """Seed: two copies in one commit group, 3 in the body, ``2 - k`` in the epilogue."""
    prologue, body, epilogue = sections(inject_software_pipeline(gemm_simple()))
    loop, (group, compute) = loop_statements(body)
    assert isinstance(group.body, AsyncCommitQueue) and group.body.queue == 0
    assert len(group.body.body.stmts) == 2
    assert repr(wait_of(compute).in_flight) == "3"
    loop, (compute,) = loop_statements(epilogue)
    assert loop.kind is ForKind.UNROLLED
    assert repr(wait_of(compute).in_flight) == "2 - k0"


def test_ideal_annotation_counts():
    """Seed: 2 in the prologue and the body. In the epilogue the seed waits for
    ``1 - k``, which is -1 in copy 2 where the inner body still reads the last shared
    tile (a negative count waits for nothing there: a race); the exact counts are 1, 0, 0,
    that is ``max(1 - k, 0)``."""
    prologue, body, epilogue = sections(inject_software_pipeline(gemm_ideal()))
    loop, (group, inner_prologue) = loop_statements(prologue)
    assert len(group.body.body.stmts) == 2
    assert repr(wait_of(inner_prologue).in_flight) == "2"
    loop, (group, inner_body, inner_prologue, inner_epilogue) = loop_statements(body)
    assert len(group.body.body.stmts) == 2
    assert repr(wait_of(inner_body).in_flight) == "2"
    loop, (inner_body, inner_prologue, inner_epilogue) = loop_statements(epilogue)
    assert repr(wait_of(inner_body).in_flight) == "T.max(1 - k0, 0)"


def test_ideal_annotation_versions():
    """Four shared versions for the outer pipeline, two register versions from the inner
    one, not versioned again by the outer one (its next write does not overlap)."""
    outer = inject_software_pipeline(gemm_ideal()).body.body
    shapes = {buffer.name: [extent.value for extent in buffer.shape]
              for buffer in outer.alloc_buffers}
    assert shapes == {"A_shared": [4, 16, 8], "B_shared": [4, 16, 8], "A_local": [2, 4],
                      "B_local": [2, 4]}


@pytest.mark.parametrize("make", [gemm_simple, gemm_ideal], ids=["simple", "ideal"])
def test_gemm_semantics(make):
    semantic_check(make())
