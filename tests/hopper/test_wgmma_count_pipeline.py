"""wgmma as an asynchronous compute stage of the count pipeline: the model (in-order
accumulator updates, asynchronous operand reads), the schedule's dependencies, exact
counts on both queues, the lowering to ``wgmma.fence`` / ``commit_group`` /
``wait_group`` and the sm_90a code nvcc makes of it."""

import re
from collections import Counter

import numpy as np
import pytest

from tilepipe import parse
from tilepipe.backend.cuda import build, codegen, generate, lower
from tilepipe.backend.cuda.compiler import compile_source, find_nvcc
from tilepipe.backend.cuda.sass import disassemble, find_cuobjdump
from tilepipe.backend.cuda.wgmma_queue import lower_wgmma_queues, wgmma_queues
from tilepipe.errors import LoweringError, PipelineError
from tilepipe.ir import (
    AsyncCommitQueue, AsyncScope, AsyncWaitQueue, BufferStore, Call, Evaluate, FloatImm, For,
    IntImm, IRMutator, post_order_visit, seq,
)
from tilepipe.kernels.hopper_gemm import hopper_gemm_count_pipeline
from tilepipe.sim import random_inputs, simulate, verify
from tilepipe.sim.exactness import max_safe_counts
from tilepipe.sim.wgmma_exactness import max_safe_wgmma_counts
from tilepipe.transform import inject_software_pipeline
from tilepipe.transform.pipeline import compute_schedule, read_annotation
from tilepipe.transform.pipeline.inject import _loop_body

SCHEDULES = ("eager", "lazy", "random:3", "random:8")
K_TILES = 5


def small_gemm(k_tiles: int = K_TILES, num_stages: int = 3):
    """One warpgroup's 64 x 16 tile over ``k_tiles`` slices 32 wide."""
    return hopper_gemm_count_pipeline(64, 16, 32 * k_tiles, block_m=64, block_n=16,
                                      block_k=32, num_stages=num_stages)


@pytest.fixture(scope="module")
def pipelined():
    return inject_software_pipeline(small_gemm())


def expected(inputs):
    return inputs["A"].astype(np.float32) @ inputs["B"].astype(np.float32).T


def nodes(func, kind):
    found = []
    post_order_visit(func.body, lambda node: found.append(node)
                     if isinstance(node, kind) else None)
    return found


def calls(func, op):
    return [node for node in nodes(func, Call) if node.op == op]


def loosened(func, wait):
    """``func`` with ``wait`` allowing one more group in flight."""
    class _Loosen(IRMutator):
        def visit_async_wait_queue(self, node):
            body = self.visit(node.body)
            count = node.in_flight + 1 if node is wait else node.in_flight
            return AsyncWaitQueue(node.queue, count, body, node.span)

    return func.with_body(_Loosen().visit(func.body))


# The pipeline -----------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_pipelined_gemm_simulates_to_a_times_b_transposed(pipelined, schedule):
    inputs = random_inputs(pipelined, seed=4)
    outputs = simulate(pipelined, inputs, schedule=schedule)
    np.testing.assert_allclose(outputs["C"], expected(inputs), rtol=1e-5, atol=1e-4)


def test_wgmma_runs_asynchronously_on_its_own_queue(pipelined):
    wgmma_queue = wgmma_queues(pipelined)
    copy_queues = {node.queue for node in nodes(pipelined, AsyncCommitQueue)} - wgmma_queue
    assert len(wgmma_queue) == 1 and len(copy_queues) == 1
    assert {node.queue for node in nodes(pipelined, AsyncWaitQueue)} == \
        wgmma_queue | copy_queues


def test_pipelined_gemm_is_race_free_with_every_count_the_largest_safe(pipelined):
    assert verify(pipelined).ok
    counts = max_safe_counts(pipelined)
    assert counts and all(count.exact for count in counts), \
        "\n".join(count.format() for count in counts)
    (wgmma_queue,) = wgmma_queues(pipelined)
    # The main loop keeps one wgmma group in flight while a copy refills a slot (the
    # classic wgmma.wait_group 1); after the loop the accumulator is drained.
    wgmma_waits = [count for count in counts if count.queue == wgmma_queue]
    assert [count.used for count in wgmma_waits] == [(1,), (0,)]
    assert {count.queue for count in counts} - {wgmma_queue}


def test_each_wait_with_one_more_group_in_flight_is_a_reported_race(pipelined):
    waits = nodes(pipelined, AsyncWaitQueue)
    assert len(waits) == 4
    for wait in waits:
        report = verify(loosened(pipelined, wait))
        assert not report.ok, f"wait on queue {wait.queue} loosened went unnoticed"


def test_a_copy_overwriting_a_slot_an_inflight_wgmma_reads_is_the_race_reported(pipelined):
    (wgmma_queue,) = wgmma_queues(pipelined)
    (main_loop_wait,) = [wait for wait in nodes(pipelined, AsyncWaitQueue)
                         if wait.queue == wgmma_queue and wait.in_flight.value == 1]
    report = verify(loosened(pipelined, main_loop_wait))
    overwrites = [race for race in report.races if race.kind == "pending-overwrite"]
    assert overwrites and overwrites[0].buffer in ("A_shared", "B_shared")
    assert overwrites[0].first.action == "async read"


@pytest.mark.parametrize("num_stages", [2, 4])
def test_other_depths_are_exact_and_compute_the_product(num_stages):
    func = inject_software_pipeline(small_gemm(6, num_stages))
    inputs = random_inputs(func, seed=num_stages)
    outputs = simulate(func, inputs, schedule="random:1")
    np.testing.assert_allclose(outputs["C"], expected(inputs), rtol=1e-5, atol=1e-4)
    assert verify(func).ok
    assert all(count.exact for count in max_safe_counts(func))


def test_loops_shorter_than_the_pipeline_are_exact():
    for k_tiles in (1, 2):
        func = inject_software_pipeline(small_gemm(k_tiles))
        inputs = random_inputs(func, seed=k_tiles)
        np.testing.assert_allclose(simulate(func, inputs, schedule="lazy")["C"],
                                   expected(inputs), rtol=1e-5, atol=1e-4)
        assert verify(func).ok
        assert all(count.exact for count in max_safe_counts(func))


SYMBOLIC = '''
from tilepipe import script as T

@T.prim_func
def symbolic(n: T.int32, A: T.Buffer((64, 16 * n), "float16"),
             B: T.Buffer((16, 16 * n), "float16"), C: T.Buffer((128, 8), "float32")):
    for tx in T.thread_binding(128, thread="threadIdx.x"):
        with T.block("root"):
            acc = T.alloc_buffer((8,), "float32", scope="local")
            for r in T.serial(8):
                acc[r] = T.float32(0)
            for k in T.serial(n, annotations={"software_pipeline_stage": [0, 0, STAGE],
                                              "software_pipeline_order": [0, 1, 2],
                                              "software_pipeline_async_stages": [0, STAGE]}):
                with T.block("body"):
                    A_shared = T.alloc_buffer((64, 16), "float16", scope="shared")
                    B_shared = T.alloc_buffer((16, 16), "float16", scope="shared")
                    for i in T.serial(8):
                        A_shared[tx // 2, tx % 2 * 8 + i] = A[tx // 2, k * 16 + tx % 2 * 8 + i]
                    for i in T.serial(2):
                        B_shared[tx // 8, tx % 8 * 2 + i] = B[tx // 8, k * 16 + tx % 8 * 2 + i]
                    T.evaluate(T.wgmma(acc[0:8], A_shared[0:64, 0:16], B_shared[0:16, 0:16], 1))
            for r in T.serial(8):
                C[tx, r] = acc[r]
'''


def fragments(tile):
    """Each thread's accumulator registers of a 64 x 16 tile, as ``C[thread, register]``."""
    from tilepipe.sim.mbarrier import wgmma_accumulator_position

    threads, registers = np.meshgrid(np.arange(128), np.arange(8), indexing="ij")
    rows, columns = wgmma_accumulator_position(threads, registers)
    return tile[rows, columns]


@pytest.mark.parametrize("stage", [1, 2])
def test_a_symbolic_trip_count_is_exact_for_every_extent(stage):
    func = inject_software_pipeline(parse(SYMBOLIC.replace("STAGE", str(stage))))
    for n in (0, 1, 2, 3, 6):
        dims = {"n": n}
        assert verify(func, dims).ok
        assert all(count.exact for count in max_safe_counts(func, dims))
        inputs = random_inputs(func, seed=n, dims=dims)
        outputs = simulate(func, inputs, dims=dims, schedule="random:5")
        np.testing.assert_allclose(outputs["C"], fragments(expected(inputs)), rtol=1e-5,
                                   atol=1e-4)


# The schedule -----------------------------------------------------------------------------
def gemm_schedule():
    func = small_gemm()
    (loop,) = [node for node in nodes(func, For) if "software_pipeline_stage" in node.annotations]
    stmts, local = _loop_body(loop, set())
    return compute_schedule(loop, stmts, local, read_annotation(loop, len(stmts)))


def test_a_wgmma_stage_reads_its_slots_asynchronously_and_accumulates_in_order():
    schedule = gemm_schedule()
    wgmma = 2  # emission position of the wgmma; the copies are 0 and 1
    # the ring has a slot more than the stages: the one an in-flight wgmma still reads
    assert sorted(schedule.versions.values()) == [4, 4]
    into_wgmma = [d for d in schedule.dependencies if d.consumer == wgmma]
    assert {(d.producer, d.kind) for d in into_wgmma} == {(0, "read"), (1, "read")}
    from_wgmma = [d for d in schedule.dependencies if d.producer == wgmma]
    assert {(d.consumer, d.buffer.name, d.kind) for d in from_wgmma} == {
        (0, "A_shared", "write"), (1, "B_shared", "write")}
    assert all(d.distances[0] == 4 for d in from_wgmma)


MIXED = '''
from tilepipe import script as T

@T.prim_func
def mixed(A: T.Buffer((64, 64), "float16"), B: T.Buffer((16, 64), "float16"),
          C: T.Buffer((64, 16), "float32")):
    for tx in T.thread_binding(128, thread="threadIdx.x"):
        with T.block("root"):
            acc = T.alloc_buffer((8,), "float32", scope="local")
            B_shared = T.alloc_buffer((16, 32), "float16", scope="shared")
            for k in T.serial(2, annotations={"software_pipeline_stage": [0, 0],
                                              "software_pipeline_order": [0, 1],
                                              "software_pipeline_async_stages": [0]}):
                with T.block("body"):
                    A_shared = T.alloc_buffer((64, 32), "float16", scope="shared")
                    for i in T.serial(16):
                        A_shared[tx // 2, tx % 2 * 16 + i] = A[tx // 2, k * 32 + tx % 2 * 16 + i]
                    T.evaluate(T.wgmma(acc[0:8], A_shared[0:64, 0:32], B_shared[0:16, 0:32], 1))
'''


def test_a_stage_mixing_wgmma_and_copies_is_rejected():
    with pytest.raises(PipelineError, match="holds both T.wgmma and other statements"):
        inject_software_pipeline(parse(MIXED))


# The model ----------------------------------------------------------------------------
CHAIN = '''
from tilepipe import script as T

@T.prim_func
def chain(A: T.Buffer((2, 64, 16), "float16"), B: T.Buffer((2, 16, 16), "float16"),
          C: T.Buffer((128, 8), "float32")):
    for tx in T.thread_binding(128, thread="threadIdx.x"):
        with T.block("root"):
            A_shared = T.alloc_buffer((2, 64, 16), "float16", scope="shared")
            B_shared = T.alloc_buffer((2, 16, 16), "float16", scope="shared")
            acc = T.alloc_buffer((8,), "float32", scope="local")
            for s in T.serial(2):
                for i in T.serial(16):
                    A_shared[s, tx // 2, tx % 2 * 8 + i // 2] = A[s, tx // 2, tx % 2 * 8 + i // 2]
                for i in T.serial(2):
                    B_shared[s, tx // 8, tx % 8 * 2 + i] = B[s, tx // 8, tx % 8 * 2 + i]
            T.tvm_storage_sync("shared")
            with T.attr(0, "async_commit_queue_scope", 1):
                with T.attr(0, "async_scope", 1):
                    T.evaluate(T.wgmma(acc[0:8], A_shared[0, 0:64, 0:16], B_shared[0, 0:16, 0:16], 0))
            with T.attr(0, "async_commit_queue_scope", 1):
                with T.attr(0, "async_scope", 1):
                    T.evaluate(T.wgmma(acc[0:8], A_shared[1, 0:64, 0:16], B_shared[1, 0:16, 0:16], 1))
            READ_EARLY
            with T.attr(0, "async_wait_queue_scope", 1):
                with T.attr(0, "async_wait_inflight_count", 0):
                    for r in T.serial(8):
                        C[tx, r] = acc[r]
'''


def chain(read_early: bool = False):
    early = "C[tx, 0] = acc[0]" if read_early else "T.evaluate(0)"
    return parse(CHAIN.replace("READ_EARLY", early))


def chain_expected(inputs):
    a, b = inputs["A"].astype(np.float32), inputs["B"].astype(np.float32)
    return fragments(a[0] @ b[0].T + a[1] @ b[1].T)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_two_inflight_wgmma_into_one_accumulator_land_in_issue_order(schedule):
    # The first overwrites the accumulator (accumulate 0), the second adds to it: landed
    # out of order, a thread would keep only the first product.
    func = chain()
    inputs = random_inputs(func, seed=9)
    outputs = simulate(func, inputs, schedule=schedule)
    np.testing.assert_allclose(outputs["C"], chain_expected(inputs), rtol=1e-5, atol=1e-4)


def test_two_inflight_wgmma_into_one_accumulator_do_not_race():
    assert verify(chain()).ok


def test_reading_the_accumulator_before_the_drain_is_a_race():
    report = verify(chain(read_early=True))
    assert [race.kind for race in report.races] == ["unlanded-read"]
    assert report.races[0].buffer == "acc"


# The lowering ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lowered(pipelined):
    return lower(pipelined)


def test_lowering_turns_the_wgmma_queue_into_wgmma_groups(lowered):
    assert not wgmma_queues(lowered)
    assert {node.queue for node in nodes(lowered, (AsyncCommitQueue, AsyncWaitQueue))} == {0}
    assert len(calls(lowered, "wgmma_fence")) == len(calls(lowered, "wgmma")) == \
        len(calls(lowered, "wgmma_commit_group"))
    assert [call.args[0].value for call in calls(lowered, "wgmma_wait_group")] == [1, 0]
    assert len(calls(lowered, "fence_proxy_async")) == len(nodes(lowered, AsyncWaitQueue))


def test_lowered_gemm_computes_the_product_with_exact_counts_on_both_queues(lowered):
    inputs = random_inputs(lowered, seed=6)
    for schedule in ("eager", "lazy", "random:2"):
        outputs = simulate(lowered, inputs, schedule=schedule)
        np.testing.assert_allclose(outputs["C"], expected(inputs), rtol=1e-5, atol=1e-4)
    assert verify(lowered).ok
    copies = max_safe_counts(lowered)
    assert copies and all(count.exact for count in copies)
    groups = max_safe_wgmma_counts(lowered)
    assert [count.used for count in groups] == [(1,), (0,)]
    assert all(count.exact for count in groups), "\n".join(count.format() for count in groups)


def test_wgmma_on_two_queues_cannot_be_lowered(pipelined):
    (queue,) = wgmma_queues(pipelined)

    class _Split(IRMutator):
        def __init__(self):
            self.seen = 0

        def visit_async_commit_queue(self, node):
            body = self.visit(node.body)
            if node.queue != queue:
                return AsyncCommitQueue(node.queue, body, node.span)
            self.seen += 1
            return AsyncCommitQueue(queue + 10 * (self.seen % 2), body, node.span)

    split = pipelined.with_body(_Split().visit(pipelined.body))
    with pytest.raises(LoweringError, match="a warpgroup has one wgmma queue"):
        lower_wgmma_queues(split)


def test_a_wgmma_queue_statement_that_is_not_one_wgmma_cannot_be_lowered(pipelined):
    (queue,) = wgmma_queues(pipelined)

    class _AddStore(IRMutator):
        def visit_async_scope(self, node):
            if isinstance(node.body, Evaluate) and node.body.value.op == "wgmma":
                accumulator = node.body.value.args[0].buffer
                store = BufferStore(accumulator, FloatImm(0.0, "float32"), (IntImm(0),))
                return AsyncScope(seq(store, node.body), node.span)
            return node

    with pytest.raises(LoweringError, match="must be one T.wgmma call"):
        lower_wgmma_queues(pipelined.with_body(_AddStore().visit(pipelined.body)))


# CUDA ---------------------------------------------------------------------------------------
SASS_INSTRUCTION = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Za-z0-9_.]*)"
                              r"([^;]*);")


@pytest.fixture(scope="module")
def gemm_sass():
    if find_nvcc() is None or find_cuobjdump() is None:
        pytest.skip("nvcc or cuobjdump is not installed")
    program = lower(inject_software_pipeline(hopper_gemm_count_pipeline(
        256, 256, 512, block_m=128, block_n=128, block_k=64, num_stages=3)))
    cubin = compile_source(codegen(program, "sm_90a"), "sm_90a")
    return program, disassemble(cubin)


def test_sass_has_hgmma_and_the_wait_immediates(gemm_sass):
    program, sass = gemm_sass
    instructions = Counter()
    for opcode, operands in SASS_INSTRUCTION.findall(sass):
        if opcode == "WARPGROUP.DEPBAR.LE":
            instructions[("wgmma wait", int(operands.split(",")[-1].strip(), 0))] += 1
        elif opcode.startswith("HGMMA"):
            instructions["HGMMA"] += 1
        elif opcode == "DEPBAR.LE":
            instructions[("cp.async wait", int(operands.split(",")[-1].strip(), 0))] += 1
    # four 16-wide k slices per wgmma: the main loop's and the epilogue's two
    assert instructions["HGMMA"] == 4 * len(calls(program, "wgmma"))
    assert instructions[("wgmma wait", 1)] == 1 and instructions[("wgmma wait", 0)] == 1
    assert instructions[("cp.async wait", 2)] == 1
    assert {("cp.async wait", 1), ("cp.async wait", 0)} <= set(instructions)


@pytest.mark.parametrize("block_k, swizzled_chunk", [
    (64, lambda row, chunk: chunk ^ row % 8),          # 128-byte rows
    (32, lambda row, chunk: chunk ^ row // 2 % 4),     # 64-byte rows
])
def test_cp_async_into_an_operand_tile_writes_the_tma_swizzle(block_k, swizzled_chunk):
    source = generate(lower(inject_software_pipeline(hopper_gemm_count_pipeline(
        128, 128, 4 * block_k, block_m=128, block_n=128, block_k=block_k))), "sm_90a").source
    swizzled = re.findall(r"cp_async<16>\(&A_shared\[\((.+?)\) \^ \(\(\(\(\1\) >> (\d+)\) & "
                          r"(\d+)\) << (\d+)\)\]", source)
    assert swizzled
    shift, mask, low = (int(value) for value in swizzled[0][1:])
    # the 16-byte chunk (8 fp16) c of row r lands in the chunk TMA's swizzle puts it in
    for row in range(16):
        for chunk in range(block_k // 8):
            offset = row * block_k + chunk * 8
            moved = offset ^ (((offset >> shift) & mask) << low)
            assert moved == row * block_k + swizzled_chunk(row, chunk) * 8


@pytest.mark.gpu
def test_pipelined_wgmma_gemm_on_a_hopper_gpu_matches_numpy():
    from tilepipe.backend.cuda.runtime import _present_arch

    if _present_arch() not in ("sm_90", "sm_90a"):
        pytest.skip("needs a Hopper GPU")
    kernel = build(hopper_gemm_count_pipeline(512, 512, 512, num_stages=3), arch="sm_90a")
    inputs = random_inputs(kernel.lowered, seed=0)
    kernel(inputs["A"], inputs["B"], inputs["C"])
    np.testing.assert_allclose(inputs["C"], expected(inputs), rtol=1e-2, atol=1e-2)
