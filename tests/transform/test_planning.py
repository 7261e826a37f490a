"""Planning from num_stages: the stages, orders and async stages it writes, the shared
budget, its errors, and (with the pipeline pass and the simulator) exact results."""

import pytest

from tilepipe.errors import PipelineError
from tilepipe.ir import (
    Block, Buffer, BufferLoad, BufferStore, Call, Evaluate, For, ForKind, IntImm, PrimFunc,
    Var, post_order_visit, seq,
)
from tilepipe.transform.pipeline.planning import (
    NUM_STAGES, SHARED_MEMORY_BUDGET, plan_pipeline, shared_memory_bytes,
)

STAGE, ORDER, ASYNC = ("software_pipeline_stage", "software_pipeline_order",
                       "software_pipeline_async_stages")


def simple_compute(num_stages, extent=16, tile=16):
    """The seeds' simple_compute: A -> shared B (a copy), then C = B + 1."""
    A = Buffer("A", (IntImm(extent), IntImm(tile)), "float32", "global")
    C = Buffer("C", (IntImm(extent), IntImm(tile)), "float32", "global")
    B = Buffer("B", (IntImm(tile),), "float32", "shared")
    tx, i = Var("tx"), Var("i")
    copy = Block("copy", BufferStore(B, BufferLoad(A, (i, tx)) * 2.0, (tx,)))
    use = Block("use", BufferStore(C, BufferLoad(B, (tx,)) + 1.0, (i, tx)))
    loop = For(i, IntImm(0), IntImm(extent), ForKind.SERIAL,
               Block("body", seq(copy, use), alloc_buffers=(B,)),
               annotations={NUM_STAGES: num_stages})
    body = For(tx, IntImm(0), IntImm(tile), ForKind.THREAD_BINDING, loop,
               thread_tag="threadIdx.x")
    return PrimFunc("simple_compute", (A, C), body)


def register_gemm(num_stages, tile_m=64, tile_k=32, inner_kind=ForKind.SERIAL):
    """The RFC's GEMM shape: shared copies of A and B, then an inner loop of register
    copies (ldmatrix-like calls) and an mma on the register tiles."""
    A = Buffer("A", (IntImm(1024), IntImm(1024)), "float16", "global")
    B = Buffer("B", (IntImm(1024), IntImm(1024)), "float16", "global")
    A_shared = Buffer("A_shared", (IntImm(tile_m), IntImm(tile_k)), "float16", "shared.dyn")
    B_shared = Buffer("B_shared", (IntImm(tile_k), IntImm(tile_m)), "float16", "shared.dyn")
    A_warp = Buffer("A_warp", (IntImm(16), IntImm(16)), "float16", "warp")
    B_warp = Buffer("B_warp", (IntImm(16), IntImm(16)), "float16", "warp")
    C_warp = Buffer("C_warp", (IntImm(16), IntImm(16)), "float32", "warp")
    ko, ki, r, c = Var("ko"), Var("ki"), Var("r"), Var("c")

    def copy(shared, source, row, column):
        return For(r, IntImm(0), shared.shape[0], ForKind.SERIAL, For(
            c, IntImm(0), shared.shape[1], ForKind.VECTORIZED,
            BufferStore(shared, BufferLoad(source, (row + r, column + c)), (r, c))))

    inner = For(ki, IntImm(0), IntImm(tile_k // 16), inner_kind, seq(
        Evaluate(Call("handle", "ldmatrix", (A_warp[0:16, 0:16],
                                             A_shared[0:16, ki * 16:ki * 16 + 16]))),
        Evaluate(Call("handle", "ldmatrix", (B_warp[0:16, 0:16],
                                             B_shared[ki * 16:ki * 16 + 16, 0:16]))),
        Evaluate(Call("handle", "mma_sync", (C_warp[0:16, 0:16], A_warp[0:16, 0:16],
                                             B_warp[0:16, 0:16]))),
    ))
    outer = For(ko, IntImm(0), IntImm(1024 // tile_k), ForKind.SERIAL, seq(
        copy(A_shared, A, IntImm(0), ko * tile_k), copy(B_shared, B, ko * tile_k, IntImm(0)),
        inner), annotations={NUM_STAGES: num_stages})
    root = Block("root", outer, alloc_buffers=(A_shared, B_shared, A_warp, B_warp, C_warp))
    return PrimFunc("register_gemm", (A, B), root)


def loops_of(func):
    loops = []
    post_order_visit(func.body, lambda node: loops.append(node) if isinstance(node, For) else None)
    return {loop.loop_var.name: loop.annotations for loop in loops}


@pytest.mark.parametrize("num_stages", [2, 3, 5])
def test_copy_goes_to_stage_zero_async_and_its_consumer_to_the_last(num_stages):
    planned = loops_of(plan_pipeline(simple_compute(num_stages)))["i"]
    assert planned == {STAGE: (0, num_stages - 1), ORDER: (0, 1), ASYNC: (0,)}


def test_one_stage_means_no_pipelining():
    planned = loops_of(plan_pipeline(simple_compute(1)))["i"]
    assert planned == {}


def test_without_the_annotation_the_function_is_unchanged():
    func = simple_compute(3)
    loop = func.body.body
    bare = func.with_body(For(func.body.loop_var, func.body.min, func.body.extent,
                              func.body.kind, For(loop.loop_var, loop.min, loop.extent,
                                                  loop.kind, loop.body),
                              func.body.thread_tag))
    assert plan_pipeline(bare) is bare


@pytest.mark.parametrize("num_stages", [3, 4, 6])
def test_register_copy_is_pipelined_between_copies_and_compute(num_stages):
    planned = loops_of(plan_pipeline(register_gemm(num_stages)))
    last = num_stages - 1
    assert planned["ko"] == {STAGE: (0, 0, last - 1, last, last), ORDER: (0, 1, 3, 2, 4),
                             ASYNC: (0,)}
    assert planned["ki"] == {STAGE: (0, 0, 1), ORDER: (0, 1, 2)}


def test_unrolled_inner_loop_is_a_register_pipeline_too():
    planned = loops_of(plan_pipeline(register_gemm(4, inner_kind=ForKind.UNROLLED)))
    assert planned["ko"][STAGE] == (0, 0, 2, 3, 3)
    assert planned["ki"] == {STAGE: (0, 0, 1), ORDER: (0, 1, 2)}


def test_single_slice_inner_loop_is_left_alone():
    # One 16-wide slice: no register double buffer to pipeline; the loop is a consumer.
    planned = loops_of(plan_pipeline(register_gemm(4, tile_k=16)))
    assert planned["ko"] == {STAGE: (0, 0, 3), ORDER: (0, 1, 2), ASYNC: (0,)}
    assert planned["ki"] == {}


def test_two_stages_keep_the_register_pipeline_in_the_consumer_stage():
    planned = loops_of(plan_pipeline(register_gemm(2)))
    assert planned["ko"] == {STAGE: (0, 0, 1, 1, 1), ORDER: (0, 1, 2, 3, 4), ASYNC: (0,)}
    assert planned["ki"] == {STAGE: (0, 0, 1), ORDER: (0, 1, 2)}


def test_shared_budget_counts_every_version():
    # A 64x32 and a 32x64 fp16 tile: 4 KiB each, one version per stage.
    func = register_gemm(4)
    assert shared_memory_bytes(func) == 8192
    tile_bytes = 8192
    largest = SHARED_MEMORY_BUDGET["sm_80"] // tile_bytes
    plan_pipeline(register_gemm(largest), target="sm_80")
    with pytest.raises(PipelineError) as raised:
        plan_pipeline(register_gemm(largest + 1), target="sm_80")
    message = str(raised.value)
    needed = tile_bytes * (largest + 1)
    assert f"needs {needed:,} bytes" in message
    assert f"sm_80 gives a thread block {SHARED_MEMORY_BUDGET['sm_80']:,} bytes" in message
    assert "A_shared 4,096 B x 21" in message
    plan_pipeline(register_gemm(largest + 1), target="sm_90a")


@pytest.mark.parametrize("value", [0, -2, "three", 2.5])
def test_invalid_num_stages_is_reported(value):
    with pytest.raises(PipelineError, match="must be a positive integer"):
        plan_pipeline(simple_compute(value))


def test_num_stages_with_explicit_stages_is_reported():
    func = simple_compute(3)
    loop = func.body.body
    both = For(loop.loop_var, loop.min, loop.extent, loop.kind, loop.body,
               annotations={NUM_STAGES: 3, STAGE: [0, 1]})
    func = func.with_body(For(func.body.loop_var, func.body.min, func.body.extent,
                              func.body.kind, both, func.body.thread_tag))
    with pytest.raises(PipelineError, match="gives both software_pipeline_num_stages and "
                                            "software_pipeline_stage"):
        plan_pipeline(func)


def test_loop_without_a_global_to_shared_copy_is_reported():
    A = Buffer("A", (IntImm(16),), "float32", "global")
    i = Var("i")
    loop = For(i, IntImm(0), IntImm(16), ForKind.SERIAL, BufferStore(A, A[i] + 1.0, (i,)),
               annotations={NUM_STAGES: 3})
    with pytest.raises(PipelineError, match="no copy from global into shared memory"):
        plan_pipeline(PrimFunc("f", (A,), loop))


def test_unknown_target_is_reported():
    with pytest.raises(PipelineError, match="unknown target 'sm_75'"):
        plan_pipeline(simple_compute(2), target="sm_75")


@pytest.mark.parametrize("num_stages", [3, 4, 6])
def test_plan_of_the_gemm_kernel_is_its_authors_annotation(num_stages):
    from tilepipe.kernels.gemm import gemm
    from tilepipe.kernels.tuning import with_num_stages

    written = gemm(256, 256, 1024, num_stages=num_stages)
    planned = plan_pipeline(with_num_stages(written, num_stages))
    assert loops_of(planned) == loops_of(written)
    assert loops_of(with_num_stages(written, num_stages))["ko"] == {NUM_STAGES: num_stages}


def test_oversized_gemm_ring_does_not_fit():
    from tilepipe.kernels.gemm import gemm
    from tilepipe.kernels.tuning import with_num_stages

    # One stage of the 128x128x32 GEMM holds A (128 x 40) and B (32 x 136) fp16 tiles.
    per_stage = (128 * 40 + 32 * 136) * 2
    fits = SHARED_MEMORY_BUDGET["sm_80"] // per_stage
    plan_pipeline(with_num_stages(gemm(256, 256, 1024), fits))
    with pytest.raises(PipelineError, match=f"needs {per_stage * (fits + 1):,} bytes"):
        plan_pipeline(with_num_stages(gemm(256, 256, 1024), fits + 1))
