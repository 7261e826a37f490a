"""Backend-ready tile programs: the seeds' small examples and a SIMT tiled GEMM.

The seeds' ``simple_compute`` copies one float per thread and scales it inside the async
stage; ``cp.async`` can only copy, 4, 8 or 16 bytes at a time, so here each thread copies
a row of four floats (16 bytes, vectorized) asynchronously and the arithmetic happens in
the consumer stage. The SIMT GEMM (no tensor cores) runs on any CUDA GPU of sm_80 or
later: 64x64 block tiles, 16-deep K tiles copied with 16-byte ``cp.async`` into a
multistage shared-memory ring, 256 threads computing 4x4 outputs each.
"""

from __future__ import annotations

from .. import script as T
from ..ir import PrimFunc


def simple_compute(num_stages: int = 1, async_copy: bool = True) -> PrimFunc:
    """``C[t, 4i + v] = 2 * A[t, 4i + v] + 1`` over 16 threads, the copy of each 16-byte row
    into shared memory pipelined ``num_stages`` iterations ahead (async when asked)."""
    async_stages = [0] if async_copy else []

    @T.prim_func
    def simple_compute(A: T.Buffer((16, 64), "float32"), C: T.Buffer((16, 64), "float32")):
        for tx in T.thread_binding(0, 16, thread="threadIdx.x"):
            for i in T.serial(
                0,
                16,
                annotations={
                    "software_pipeline_stage": [0, num_stages],
                    "software_pipeline_order": [0, 1],
                    "software_pipeline_async_stages": async_stages,
                },
            ):
                with T.block("compute"):
                    B = T.alloc_buffer((16, 4), dtype="float32", scope="shared")
                    with T.block("copy"):
                        for v in T.vectorized(4):
                            B[tx, v] = A[tx, i * 4 + v]
                    with T.block("scale"):
                        for v in T.vectorized(4):
                            C[tx, i * 4 + v] = B[tx, v] * T.float32(2) + T.float32(1)

    return simple_compute


def shared_exchange(num_stages: int = 2) -> PrimFunc:
    """Like :func:`simple_compute`, but each thread reads the row another thread copied
    (``15 - tx``), so the data crosses threads: it needs barriers after the waits and
    before a ring slot is overwritten."""

    @T.prim_func
    def shared_exchange(A: T.Buffer((16, 64), "float32"), C: T.Buffer((16, 64), "float32")):
        for tx in T.thread_binding(0, 16, thread="threadIdx.x"):
            for i in T.serial(
                0,
                16,
                annotations={
                    "software_pipeline_stage": [0, num_stages],
                    "software_pipeline_order": [0, 1],
                    "software_pipeline_async_stages": [0],
                },
            ):
                with T.block("compute"):
                    B = T.alloc_buffer((16, 4), dtype="float32", scope="shared")
                    with T.block("copy"):
                        for v in T.vectorized(4):
                            B[tx, v] = A[tx, i * 4 + v]
                    with T.block("exchange"):
                        for v in T.vectorized(4):
                            C[tx, i * 4 + v] = B[15 - tx, v] + T.float32(1)

    return shared_exchange


def simt_gemm(M: int = 128, N: int = 128, K: int = 128, num_stages: int = 3,
              copy_first: bool = False) -> PrimFunc:
    """``C = A @ B`` in float32 with CUDA cores: 64x64x16 tiles, 256 threads of 4x4
    outputs, the A and B tile copies async and ``num_stages - 1`` K tiles ahead.

    The loop body multiplies the oldest tile and then issues the copies of the newest (as
    CUTLASS does), so one barrier per iteration suffices; ``copy_first`` issues the copies
    first (the seeds' order), which needs a second barrier before them."""
    last = num_stages - 1
    order = [0, 1, 2] if copy_first else [1, 2, 0]

    @T.prim_func
    def simt_gemm(A: T.Buffer((M, K), "float32"), B: T.Buffer((K, N), "float32"),
                  C: T.Buffer((M, N), "float32")):
        for by in T.thread_binding(M // 64, thread="blockIdx.y"):
            for bx in T.thread_binding(N // 64, thread="blockIdx.x"):
                for tx in T.thread_binding(256, thread="threadIdx.x"):
                    with T.block("tile"):
                        accumulator = T.alloc_buffer((4, 4), dtype="float32", scope="local")
                        for ii in T.unroll(4):
                            for jj in T.unroll(4):
                                accumulator[ii, jj] = T.float32(0)
                        for k in T.serial(
                            K // 16,
                            annotations={
                                "software_pipeline_stage": [0, 0, last],
                                "software_pipeline_order": order,
                                "software_pipeline_async_stages": [0],
                            },
                        ):
                            with T.block("stage"):
                                A_shared = T.alloc_buffer((64, 16), dtype="float32",
                                                          scope="shared")
                                B_shared = T.alloc_buffer((16, 64), dtype="float32",
                                                          scope="shared")
                                with T.block("copy_A"):
                                    for v in T.vectorized(4):
                                        A_shared[tx // 4, tx % 4 * 4 + v] = A[
                                            by * 64 + tx // 4, k * 16 + tx % 4 * 4 + v]
                                with T.block("copy_B"):
                                    for v in T.vectorized(4):
                                        B_shared[tx // 16, tx % 16 * 4 + v] = B[
                                            k * 16 + tx // 16, bx * 64 + tx % 16 * 4 + v]
                                with T.block("multiply"):
                                    for kk in T.unroll(16):
                                        for ii in T.unroll(4):
                                            for jj in T.unroll(4):
                                                accumulator[ii, jj] = accumulator[ii, jj] + (
                                                    A_shared[tx // 16 * 4 + ii, kk]
                                                    * B_shared[kk, tx % 16 * 4 + jj])
                        for ii in T.unroll(4):
                            for jj in T.vectorized(4):
                                C[by * 64 + tx // 16 * 4 + ii, bx * 64 + tx % 16 * 4 + jj] = \
                                    accumulator[ii, jj]

    return simt_gemm
