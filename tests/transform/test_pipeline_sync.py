"""Before/after pairs of the synchronous pipeline behaviours, and the loop shapes:
extent 1, extents shorter than the stages, symbolic extents, starts other than zero,
nested pipelines, ``double_buffer_scope``. Every pair is also checked in the simulator
(same outputs, no race, exact waits)."""

from __future__ import annotations

import dataclasses

import pytest
from pipeline_helpers import annotate, check_pipeline, producer_consumer, program, seed, waits

from tilepipe.ir import IfThenElse, assert_structural_equal
from tilepipe.transform import inject_software_pipeline


def check(func, expected_text: str, dims=None) -> None:
    pipelined = check_pipeline(func, dims)
    expected = program(expected_text)
    assert_structural_equal(pipelined, dataclasses.replace(expected, name=pipelined.name),
                            compare_regions=False)


THREE_STAGE = '''
@T.prim_func
def three_stage_compute(A: T.Buffer((16, 16), "float32"), D: T.Buffer((16, 16), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        with T.block():
            B = T.alloc_buffer((2, 16, 1), dtype="float32", scope="shared")
            C = T.alloc_buffer((2, 16, 1), dtype="float32", scope="shared")
            with T.block():
                for i in T.unroll(2):
                    with T.block():
                        T.where(i < 16)
                        B[i % 2, tx, 0] = A[tx, i] * T.float32(2)
                    with T.block():
                        T.where(1 <= i and i - 1 < 16)
                        C[(i - 1) % 2, tx, 0] = B[(i - 1) % 2, tx, 0] + T.float32(2)
            with T.block():
                for i in T.serial(14):
                    with T.block():
                        T.where(i + 2 < 16)
                        B[(i + 2) % 2, tx, 0] = A[tx, i + 2] * T.float32(2)
                    with T.block():
                        T.where(i + 2 - 1 < 16)
                        C[(i - 1 + 2) % 2, tx, 0] = B[(i - 1 + 2) % 2, tx, 0] + T.float32(2)
                    with T.block():
                        T.where(i + 2 - 2 < 16)
                        D[tx, i - 2 + 2] = C[(i - 2 + 2) % 2, tx, 0] + T.float32(1)
            with T.block():
                for i in T.unroll(2):
                    with T.block():
                        T.where(i + 16 - 1 < 16)
                        C[(i - 1 + 16) % 2, tx, 0] = B[(i - 1 + 16) % 2, tx, 0] + T.float32(2)
                    with T.block():
                        T.where(i + 16 - 2 < 16)
                        D[tx, i - 2 + 16] = C[(i - 2 + 16) % 2, tx, 0] + T.float32(1)
'''


def test_three_stage_compute():
    """Two versions of B and C; the middle stage is predicated in the prologue and the
    epilogue; TVM's expected program."""
    check(seed("three_stage_compute"), THREE_STAGE)


SHORT_LOOP = '''
@T.prim_func
def short(A: T.Buffer((16, 16), "float32"), C: T.Buffer((16, 16), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        for i in T.serial(EXT):
            with T.block():
                B = T.alloc_buffer((16, 1), dtype="float32", scope="shared")
                B[tx, 0] = A[tx, i] * T.float32(2)
                C[tx, i] = B[tx, 0] + T.float32(1)
'''

EXTENT_ONE = '''
@T.prim_func
def short(A: T.Buffer((16, 16), "float32"), C: T.Buffer((16, 16), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        with T.block():
            B = T.alloc_buffer((2, 16, 1), dtype="float32", scope="shared")
            with T.block():
                B[0, tx, 0] = A[tx, 0] * T.float32(2)
            with T.block():
                C[tx, 0] = B[0, tx, 0] + T.float32(1)
'''


def test_extent_one():
    """One iteration: a one-slot prologue and epilogue, no body loop."""
    check(annotate(program(SHORT_LOOP.replace("EXT", "1")), "i", stage=[0, 1], order=[0, 1]),
          EXTENT_ONE)


SHORTER_THAN_STAGES = '''
@T.prim_func
def short(A: T.Buffer((16, 16), "float32"), C: T.Buffer((16, 16), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        with T.block():
            B = T.alloc_buffer((4, 16, 1), dtype="float32", scope="shared")
            with T.block():
                for i in T.unroll(3):
                    with T.block():
                        T.where(i < 2)
                        with T.attr(0, "async_commit_queue_scope", 0):
                            with T.attr(0, "async_scope", 1):
                                B[i % 4, tx, 0] = A[tx, i] * T.float32(2)
            with T.block():
                for i in T.unroll(2):
                    with T.block():
                        T.where(i + 3 - 3 < 2)
                        with T.attr(0, "async_wait_queue_scope", 0):
                            with T.attr(0, "async_wait_inflight_count", 1 - i):
                                C[tx, i - 3 + 3] = B[(i - 3 + 3) % 4, tx, 0] + T.float32(1)
'''


def test_extent_shorter_than_the_stages():
    """Two iterations, consumer three stages behind: the prologue issues both copies
    (its third slot runs nothing), there is no body, and the epilogue starts after the
    prologue (at slot 3, not 2) so that nothing runs twice; the counts follow the two
    groups actually committed."""
    func = annotate(program(SHORT_LOOP.replace("EXT", "2")), "i", stage=[0, 3], order=[0, 1],
                    async_stages=[0])
    check(func, SHORTER_THAN_STAGES)


NESTED = '''
@T.prim_func
def nested(A: T.Buffer((16, 2, 16), "float32"), C: T.Buffer((16, 2, 16), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        for i in T.serial(2, annotations={"software_pipeline_stage": [0, 1, 1, 1], "software_pipeline_order": [0, 1, 2, 3]}):
            with T.block():
                A_shared = T.alloc_buffer((16, 1, 16), dtype="float32", scope="shared")
                for j in T.serial(16):
                    A_shared[tx, 0, j] = A[tx, i, j]
                for j in T.serial(16, annotations={"software_pipeline_stage": [0, 1], "software_pipeline_order": [0, 1]}):
                    with T.block():
                        B = T.alloc_buffer((16, 1, 1), dtype="float32", scope="shared")
                        with T.block():
                            B[tx, 0, 0] = A_shared[tx, 0, j] * T.float32(2)
                        with T.block():
                            C[tx, i, j] = B[tx, 0, 0] + T.float32(1)
'''

NESTED_SIMPLE = '''
@T.prim_func
def nested(A: T.Buffer((16, 2, 16), "float32"), C: T.Buffer((16, 2, 16), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        with T.block():
            A_shared = T.alloc_buffer((2, 16, 1, 16), dtype="float32", scope="shared")
            B = T.alloc_buffer((2, 16, 1, 1), dtype="float32", scope="shared")
            with T.block():
                for j in T.serial(16):
                    A_shared[0, tx, 0, j] = A[tx, 0, j]
            with T.block():
                with T.block():
                    for j in T.serial(16):
                        A_shared[1, tx, 0, j] = A[tx, 1, j]
                with T.block():
                    B[0, tx, 0, 0] = A_shared[0, tx, 0, 0] * T.float32(2)
                with T.block():
                    for j in T.serial(15):
                        with T.block():
                            T.where(j + 1 < 16)
                            B[(j + 1) % 2, tx, 0, 0] = A_shared[0, tx, 0, j + 1] * T.float32(2)
                        with T.block():
                            T.where(j + 1 - 1 < 16)
                            C[tx, 0, j - 1 + 1] = B[(j - 1 + 1) % 2, tx, 0, 0] + T.float32(1)
                with T.block():
                    C[tx, 0, 15] = B[1, tx, 0, 0] + T.float32(1)
            with T.block():
                with T.block():
                    B[0, tx, 0, 0] = A_shared[1, tx, 0, 0] * T.float32(2)
                with T.block():
                    for j in T.serial(15):
                        with T.block():
                            T.where(j + 1 < 16)
                            B[(j + 1) % 2, tx, 0, 0] = A_shared[1, tx, 0, j + 1] * T.float32(2)
                        with T.block():
                            T.where(j + 1 - 1 < 16)
                            C[tx, 1, j - 1 + 1] = B[(j - 1 + 1) % 2, tx, 0, 0] + T.float32(1)
                with T.block():
                    C[tx, 1, 15] = B[1, tx, 0, 0] + T.float32(1)
'''


def test_nested_pipeline_simple():
    """The inner pipeline's prologue, body and epilogue are three statements of the outer
    one; its B is hoisted and not versioned again by the outer pipeline."""
    check(program(NESTED), NESTED_SIMPLE)


def _nested(stages, orders, async_stages=()):
    annotation = (f'"software_pipeline_stage": {stages}, "software_pipeline_order": {orders}'
                  + (f', "software_pipeline_async_stages": {list(async_stages)}'
                     if async_stages else ""))
    return program(NESTED.replace(
        '"software_pipeline_stage": [0, 1, 1, 1], "software_pipeline_order": [0, 1, 2, 3]',
        annotation))


def test_nested_pipeline_prefetching_the_inner_prologue():
    """The inner prologue in stage 0 with the copy: the next tile's first element is
    transformed while the current tile is consumed, so the outer pipeline versions the
    inner pipeline's B once more."""
    pipelined = check_pipeline(_nested([0, 0, 1, 1], [0, 1, 2, 3]))
    shapes = {buffer.name: [extent.value for extent in buffer.shape]
              for buffer in pipelined.body.body.alloc_buffers}
    assert shapes == {"A_shared": [2, 16, 1, 16], "B": [2, 2, 16, 1, 1]}
    assert "B[1, 0, tx, 0, 0] = A_shared[1, tx, 0, 0]" in pipelined.script()


def test_nested_pipeline_interleaved_and_asynchronous():
    """Outer stage 0 (the copy and the inner prologue) asynchronous, the inner body
    ordered between them: it waits for the whole queue (count 0) since the copy it needs
    was committed last."""
    pipelined = check_pipeline(_nested([0, 0, 1, 1], [0, 2, 1, 3], [0]))
    assert waits(pipelined) == [(0, "0"), (0, "0"), (0, "0")]


DOUBLE_BUFFER = '''
@T.prim_func
def double(A: T.Buffer((16, 8), "float32"), C: T.Buffer((16, 8), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        for i in T.serial(8, annotations={"software_pipeline_stage": [0, 0], "software_pipeline_order": [0, 1]}):
            with T.block():
                B = T.alloc_buffer((16, 1), dtype="float32", scope="shared")
                with T.block():
                    T.reads(A[tx, i])
                    T.writes(B[tx, 0])
                    T.block_attr({"double_buffer_scope": 0})
                    B[tx, 0] = A[tx, i] * T.float32(2)
                with T.block():
                    T.reads(B[tx, 0])
                    T.writes(C[tx, i])
                    C[tx, i] = B[tx, 0] + T.float32(1)
'''


def test_double_buffer_scope_forces_two_versions():
    pipelined = check_pipeline(program(DOUBLE_BUFFER))
    (buffer,) = pipelined.body.body.alloc_buffers
    assert [extent.value for extent in buffer.shape] == [2, 16, 1]
    without = program(DOUBLE_BUFFER.replace('T.block_attr({"double_buffer_scope": 0})', ""))
    (buffer,) = check_pipeline(without).body.body.alloc_buffers
    assert [extent.value for extent in buffer.shape] == [16, 1]


def test_symbolic_extent_is_guarded():
    """``if n >= E`` around the pipeline whose constant counts hold for every such n
    (E: one more than the prologue, so that the body runs), then one pipeline per
    shorter extent."""
    func = producer_consumer(1, False, [0, 2], [0, 1], [0], 0, None)
    pipelined = inject_software_pipeline(func)
    guard = pipelined.body.body.body
    assert isinstance(guard, IfThenElse)
    assert repr(guard.condition) == "0 + n >= 3"
    assert repr(guard.else_case.condition) == "0 + n == 2"
    assert repr(guard.else_case.else_case.condition) == "0 + n == 1"
    assert guard.else_case.else_case.else_case is None
    for n in range(0, 6):
        check_pipeline(func, {"n": n})


@pytest.mark.parametrize("start", [1, 5])
def test_loop_start_other_than_zero(start):
    func = producer_consumer(2, True, [0, 1, 1, 2], [0, 1, 2, 3], [0], start, 7)
    pipelined = check_pipeline(func)
    assert f"T.unroll({start}, {start + 2})" in pipelined.script()


OPAQUE_CALLS = '''
@T.prim_func
def calls(A: T.Buffer((16, 64), "float32"), C: T.Buffer((16, 64), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        for i in T.serial(16, annotations={"software_pipeline_stage": [0, 1], "software_pipeline_order": [0, 1], "software_pipeline_async_stages": [0]}):
            with T.block():
                S = T.alloc_buffer((16, 4), dtype="float32", scope="shared")
                with T.block():
                    T.reads(A[tx, i * 4:i * 4 + 4])
                    T.writes(S[tx, 0:4])
                    T.evaluate(T.tile_copy(S[tx, 0:4], A[tx, i * 4:i * 4 + 4]))
                with T.block():
                    T.reads(S[tx, 0:4])
                    T.writes(C[tx, i * 4:i * 4 + 4])
                    T.evaluate(T.tile_consume(C[tx, i * 4:i * 4 + 4], S, S[tx, 0]))
'''


def test_ring_index_in_opaque_call_arguments():
    """Buffer regions, whole buffers and loads given to an intrinsic all get the ring
    index of the iteration they work on."""
    text = inject_software_pipeline(program(OPAQUE_CALLS)).script()
    assert "T.tile_copy(S[(i + 1) % 2, tx, 0:4], A[tx, (i + 1) * 4:(i + 1) * 4 + 4])" in text
    assert ("T.tile_consume(C[tx, (i - 1 + 1) * 4:(i - 1 + 1) * 4 + 4], "
            "S[(i - 1 + 1) % 2, 0:16, 0:4], S[(i - 1 + 1) % 2, tx, 0])") in text
    assert "T.tile_consume(C[tx, 60:64], S[1, 0:16, 0:4], S[1, tx, 0])" in text
