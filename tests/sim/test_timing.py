"""The timing model: hand-derived cycle counts, pipelining against the bound, presets."""

from dataclasses import replace

import pytest
from hypothesis import given, settings, strategies as st

from tilepipe.ir import (
    AsyncCommitQueue, AsyncScope, AsyncWaitQueue, Block, Buffer, BufferLoad, BufferStore, Call,
    Cast, Evaluate, For, ForKind, IntImm, PrimFunc, Var, seq,
)
from tilepipe.sim.timing import A100, H100, ModelError, estimate, machine_named

# Round numbers so that expected cycles can be worked out by hand: a 2 KiB tile moves in
# 128 cycles and lands 100 later; a 64x64x16 tile product (131,072 flops) takes 512.
ROUND = replace(A100, name="round", sm_clock_ghz=1.0, num_sms=1, l2_bytes_per_clock=16.0,
                tensor_tflops=0.256, fp32_tflops=0.128, l2_latency=100, issue_cycles=4)
TILE, DEPTH = 64, 16  # the copied tile: 64 x 16 fp16 = 2 KiB
COPY, LATENCY, ISSUE = 128, 100, 4
COMPUTE = 2 * TILE * TILE * DEPTH // 256


def tile_loop(n: int, stages: int) -> PrimFunc:
    """``C += A_tile @ W`` over n tiles of A copied into shared memory: as written when
    ``stages`` is 1, else pipelined by hand as the pipeline pass would (a ring of
    ``stages`` buffers, ``stages - 1`` asynchronous copies in flight)."""
    A = Buffer("A", (IntImm(n * TILE), IntImm(DEPTH)), "float16", "global")
    W = Buffer("W", (IntImm(DEPTH), IntImm(TILE)), "float16", "local")
    C = Buffer("C", (IntImm(TILE), IntImm(TILE)), "float32", "local")
    ring = Buffer("A_shared", (IntImm(stages), IntImm(TILE), IntImm(DEPTH)), "float16",
                  "shared")

    def copy(k):
        row, column = Var("row"), Var("column")
        store = BufferStore(ring, BufferLoad(A, (k * TILE + row, column)),
                            (k % stages, row, column))
        return For(row, IntImm(0), IntImm(TILE), ForKind.SERIAL,
                   For(column, IntImm(0), IntImm(DEPTH), ForKind.VECTORIZED, store))

    def compute(k):
        i, j, r = Var("i"), Var("j"), Var("r")
        value = C[i, j] + Cast("float32", BufferLoad(ring, (k % stages, i, r))) * Cast(
            "float32", W[r, j])
        return For(i, IntImm(0), IntImm(TILE), ForKind.SERIAL, For(
            j, IntImm(0), IntImm(TILE), ForKind.SERIAL, For(
                r, IntImm(0), IntImm(DEPTH), ForKind.SERIAL, BufferStore(C, value, (i, j)))))

    if stages == 1:
        k = Var("k")
        body = For(k, IntImm(0), IntImm(n), ForKind.SERIAL, seq(copy(k), compute(k)))
    else:
        p, i, e = Var("p"), Var("i"), Var("e")
        body = seq(
            For(p, IntImm(0), IntImm(stages - 1), ForKind.UNROLLED,
                AsyncCommitQueue(0, AsyncScope(copy(p)))),
            For(i, IntImm(0), IntImm(n - stages + 1), ForKind.SERIAL, seq(
                AsyncCommitQueue(0, AsyncScope(copy(i + (stages - 1)))),
                AsyncWaitQueue(0, IntImm(stages - 1), compute(i)))),
            For(e, IntImm(0), IntImm(stages - 1), ForKind.UNROLLED,
                AsyncWaitQueue(0, IntImm(stages - 2) - e, compute(e + (n - stages + 1)))),
        )
    return PrimFunc("tile_loop", (A,), Block("root", body, alloc_buffers=(ring, W, C)))


def test_single_buffer_serializes_copy_latency_and_compute():
    # Tile 0 is issued (4), transferred (128) and lands 100 later; its compute (512)
    # starts then. The next copy overwrites the one shared buffer, so it waits for that
    # compute to end; and so on: nothing overlaps (the seeds' "serialized" picture).
    report = estimate(tile_loop(3, 1), ROUND)
    assert COMPUTE == 512
    assert report.total_cycles == ISSUE + 3 * (COPY + LATENCY + COMPUTE)
    assert report.memory_cycles == 3 * COPY
    assert report.compute_cycles == 3 * COMPUTE
    assert report.busy["tensor"] == 3 * COMPUTE
    stalls = [interval for interval in report.intervals if interval.kind == "wait"]
    assert stalls[0].start == 2 * ISSUE and stalls[0].end == ISSUE + COPY + LATENCY


def test_latency_bound_loop_is_serial_without_pipelining():
    fast = replace(ROUND, tensor_tflops=16.384)
    compute = 2 * TILE * TILE * DEPTH / 16384
    report = estimate(tile_loop(4, 1), fast)
    assert report.total_cycles == ISSUE + 4 * (COPY + LATENCY + compute)
    assert report.bound_cycles == 4 * COPY


def test_pipelined_loop_reaches_the_bound_and_unpipelined_does_not():
    fast = replace(ROUND, tensor_tflops=16.384)
    n = 64
    serial = estimate(tile_loop(n, 1), fast)
    cycles = [estimate(tile_loop(n, stages), fast).total_cycles for stages in range(2, 7)]
    assert serial.total_cycles > 1.5 * serial.bound_cycles
    assert all(later <= earlier for earlier, later in zip(cycles, cycles[1:]))
    deep = estimate(tile_loop(n, 6), fast)
    assert deep.total_cycles <= 1.05 * deep.bound_cycles
    # The copy engine never idles in the steady state: transfers are back to back.
    assert deep.busy["copy"] == n * COPY


def test_wait_blocks_until_the_named_groups_land():
    report = estimate(tile_loop(2, 2), ROUND)
    waits = [interval for interval in report.intervals if interval.kind == "wait"]
    # The first wait (in flight 1, two groups committed) waits for tile 0 to land:
    # tile 0 lands at issue + transfer + latency.
    assert waits[0].end == ISSUE + COPY + LATENCY
    phases = {interval.phase for interval in report.intervals}
    assert phases == {"prologue", "body", "epilogue"}
    assert report.body_start == ISSUE


def test_thread_loops_scale_the_work_of_their_body():
    A = Buffer("A", (IntImm(1024),), "float16", "global")
    S = Buffer("S", (IntImm(1024),), "float16", "shared")
    tx, v = Var("tx"), Var("v")
    store = BufferStore(S, BufferLoad(A, (tx * 8 + v,)), (tx * 8 + v,))
    threaded = For(tx, IntImm(0), IntImm(128), ForKind.THREAD_BINDING,
                   For(v, IntImm(0), IntImm(8), ForKind.VECTORIZED, store),
                   thread_tag="threadIdx.x")
    w = Var("w")
    flat = For(w, IntImm(0), IntImm(1024), ForKind.SERIAL,
               BufferStore(S, BufferLoad(A, (w,)), (w,)))
    cost = [estimate(PrimFunc("copy", (A,), Block("root", body, alloc_buffers=(S,))), ROUND)
            for body in (threaded, flat)]
    assert cost[0].global_bytes == cost[1].global_bytes == 2048
    assert cost[0].total_cycles == cost[1].total_cycles == ISSUE + COPY + LATENCY


def test_warp_collective_mma_counts_once_per_warp():
    C = Buffer("C_warp", (IntImm(16), IntImm(8)), "float32", "warp")
    A = Buffer("A_warp", (IntImm(16), IntImm(16)), "float16", "warp")
    B = Buffer("B_warp", (IntImm(8), IntImm(16)), "float16", "warp")
    call = Call("handle", "mma_sync", (C[0:16, 0:8], A[0:16, 0:16], B[0:8, 0:16]))
    warp, lane = Var("warp"), Var("lane")
    body = For(warp, IntImm(0), IntImm(4), ForKind.THREAD_BINDING, For(
        lane, IntImm(0), IntImm(32), ForKind.THREAD_BINDING, Evaluate(call),
        thread_tag="threadIdx.x"), thread_tag="threadIdx.y")
    report = estimate(PrimFunc("mma", (), Block("root", body, alloc_buffers=(A, B, C))), ROUND)
    assert report.flops == 4 * 2 * 16 * 8 * 16


def test_presets_follow_the_public_specifications():
    assert A100.tensor_flops_per_cycle == pytest.approx(2048, rel=0.01)
    assert H100.tensor_flops_per_cycle == pytest.approx(4096, rel=0.01)
    assert A100.fp32_flops_per_cycle == pytest.approx(128, rel=0.01)
    assert A100.global_path("dram") == (pytest.approx(13.4, rel=0.01), A100.dram_latency)
    assert A100.global_path("l2") == (pytest.approx(47.4, rel=0.01), A100.l2_latency)
    assert machine_named("h100") is H100 and H100.has_tma and not A100.has_tma


def test_dram_reads_are_slower_than_l2_reads():
    l2, dram = (estimate(tile_loop(8, 1), A100, memory=level) for level in ("l2", "dram"))
    assert dram.memory_cycles == pytest.approx(l2.memory_cycles * 47.4 / 13.4, rel=0.01)
    assert dram.total_cycles > l2.total_cycles
    assert dram.memory == "dram" and "global reads from DRAM" in dram.format()


def test_tma_lane_on_machines_with_tma():
    report = estimate(tile_loop(4, 3), H100)
    lanes = {interval.unit for interval in report.intervals if interval.asynchronous}
    assert "tma" in lanes and "copy" not in lanes


def test_unknown_machine_and_unbound_size_are_reported():
    with pytest.raises(ModelError, match="unknown machine 'B300'"):
        estimate(tile_loop(2, 1), "B300")
    with pytest.raises(ModelError, match="unknown memory level 'hbm'"):
        estimate(tile_loop(2, 1), memory="hbm")
    n = Var("n")
    A = Buffer("A", (n,), "float32", "global")
    i = Var("i")
    loop = For(i, IntImm(0), n, ForKind.SERIAL, BufferStore(A, A[i] + 1.0, (i,)))
    with pytest.raises(ModelError, match="bind n with --dim"):
        estimate(PrimFunc("f", (A,), loop))
    assert estimate(PrimFunc("f", (A,), loop), dims={"n": 8}).flops == 0


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 24), stages=st.integers(1, 4), machine=st.sampled_from([A100, H100]))
def test_no_schedule_beats_the_bound(n, stages, machine):
    stages = min(stages, n)
    report = estimate(tile_loop(n, stages), machine)
    assert report.total_cycles >= report.bound_cycles
    for unit in report.busy:
        assert 0 <= report.utilization(unit) <= 1


def test_registers_are_read_when_an_mma_starts():
    # ldmatrix -> mma -> ldmatrix into the same fragment: the mma waits for the first
    # load to land; the second load may overwrite the fragment once the mma has started
    # (its operands are read then), so it runs as soon as it is issued.
    A_shared = Buffer("A_shared", (IntImm(16), IntImm(16)), "float16", "shared")
    A = Buffer("A_warp", (IntImm(16), IntImm(16)), "float16", "warp")
    B = Buffer("B_warp", (IntImm(8), IntImm(16)), "float16", "warp")
    C = Buffer("C_warp", (IntImm(16), IntImm(8)), "float32", "warp")
    load = Evaluate(Call("handle", "ldmatrix", (A[0:16, 0:16], A_shared[0:16, 0:16])))
    mma = Evaluate(Call("handle", "mma_sync", (C[0:16, 0:8], A[0:16, 0:16], B[0:8, 0:16])))
    lane = Var("lane")
    body = For(lane, IntImm(0), IntImm(32), ForKind.THREAD_BINDING, seq(load, mma, load),
               thread_tag="threadIdx.x")
    func = PrimFunc("fragments", (), Block("root", body, alloc_buffers=(A_shared, A, B, C)))
    report = estimate(func, ROUND)
    first, second = [i for i in report.intervals if i.kind == "shared"]
    (compute,) = [i for i in report.intervals if i.kind == "compute"]
    assert first.end - first.start == 16 * 16 * 2 / 128
    assert compute.start == first.end
    assert second.start == 3 * ISSUE < compute.end  # issued, not held back by the mma


TMA_LOOP = """
from tilepipe import script as T


@T.prim_func
def tma_loop(A: T.Buffer((1024, 64), "float16")):
    for tx in T.thread_binding(128, thread="threadIdx.x"):
        with T.block("root"):
            ring = T.alloc_buffer((2, 64, 64), "float16", scope="shared.dyn")
            full = T.alloc_buffer((2,), "uint64", scope="shared")
            acc = T.alloc_buffer((32,), "float32", scope="local")
            for k in T.serial(17):
                if k < 16:
                    if tx == 0:
                        T.mbarrier_arrive_expect_tx(full, k % 2, 8192)
                        T.tma_load(ring[k % 2, 0:64, 0:64], A[k * 64:k * 64 + 64, 0:64], full, k % 2)
                if k >= 1:
                    T.mbarrier_wait_parity(full, (k - 1) % 2, (k - 1) // 2 % 2)
                    T.wgmma(acc[0:32], ring[(k - 1) % 2, 0:64, 0:64], ring[(k - 1) % 2, 0:64, 0:64], 1)
"""


def test_tma_copies_complete_on_their_mbarrier_slot():
    from tilepipe.script import parse

    machine = replace(ROUND, has_tma=True, tensor_tflops=1.024)
    report = estimate(parse(TMA_LOOP), machine)
    transfers = [i for i in report.intervals if i.kind == "transfer"]
    assert {i.unit for i in transfers} == {"tma"} and len(transfers) == 16
    assert all(i.end - i.start == 8192 / 16 for i in transfers)  # one issue per tile
    waits = [i for i in report.intervals if i.label == "mbarrier full"]
    # Tile 0 is issued at 4 (the arrive costs nothing), lands 512 + 100 later.
    assert waits[0].end == ISSUE + 512 + LATENCY
    # One 64 x 64 x 64 warpgroup MMA per tile (the accumulator is 32 registers x 128).
    assert report.flops == 16 * 2 * 64 * 64 * 64
    assert report.body_start is not None and report.total_cycles >= report.bound_cycles
    # Copies stream back to back while the previous tile is multiplied.
    assert report.total_cycles < 16 * 512 + LATENCY + 4 * 512


def test_branches_that_split_the_threads_are_refused():
    from tilepipe.ir import IfThenElse

    A = Buffer("A", (IntImm(128),), "float32", "global")
    tx = Var("tx")
    split = IfThenElse(tx < 64, BufferStore(A, A[tx] + 1.0, (tx,)),
                       BufferStore(A, A[tx] * 2.0, (tx,)))
    body = For(tx, IntImm(0), IntImm(128), ForKind.THREAD_BINDING, split,
               thread_tag="threadIdx.x")
    with pytest.raises(ModelError, match="warp specialization"):
        estimate(PrimFunc("roles", (A,), body))
