"""The Hopper GEMM: ``C = A @ B^T`` with TMA tile copies, mbarriers and warpgroup MMA.

``A`` is ``(M, K)`` and ``B`` is ``(N, K)`` (both K-major, fp16; seed 004's layout), ``C``
is ``(M, N)`` fp32. A thread block computes a ``block_m x block_n`` tile with
``block_m / 64`` consumer warpgroups, each accumulating a ``64 x block_n`` part in
``block_n / 2`` registers per thread with ``T.wgmma``. The reduction loop over
``block_k``-wide slices of K carries the pipeline annotation: the two tile copies are
asynchronous stage 0, the wgmma stage ``num_stages - 1``; ``lower`` turns it into the
barrier form (:func:`tilepipe.transform.barriers.lower_to_barriers`) or, by default, the
warp-specialized form (:func:`tilepipe.transform.warp_specialize.warp_specialize`) whose
ring has ``num_stages`` slots. The epilogue stores each thread's accumulator registers
at their places in the wgmma fragment layout.
"""

from __future__ import annotations

from .. import script as T
from ..errors import TilepipeError
from ..ir import PrimFunc
from ..transform.barriers import lower_to_barriers
from ..transform.warp_specialize import warp_specialize

WGMMA_M = 64
WARPGROUP = 128


class HopperGemmError(TilepipeError):
    """Sizes the Hopper GEMM cannot be built for."""


def _check_sizes(M: int, N: int, K: int, block_m: int, block_n: int, block_k: int,
                 num_stages: int) -> None:
    for name, value, divisor in (("block_m", block_m, WGMMA_M), ("block_n", block_n, 8),
                                 ("M", M, block_m), ("N", N, block_n), ("K", K, block_k)):
        if value <= 0 or value % divisor:
            raise HopperGemmError(f"hopper_gemm: {name} = {value} must be a positive "
                                  f"multiple of {divisor}")
    if block_n > 256 or block_k not in (16, 32, 64) or num_stages < 2:
        raise HopperGemmError("hopper_gemm: block_n <= 256, block_k in 16, 32, 64 and "
                              "num_stages >= 2 are needed")


def _tiling(M: int, N: int, K: int, block_m: int, block_n: int, block_k: int,
            num_stages: int) -> tuple[int, int, int, int]:
    """The sizes both GEMM forms derive from the tiles (checked first): consumer
    threads, accumulator registers per thread, K tiles and the wgmma's stage."""
    _check_sizes(M, N, K, block_m, block_n, block_k, num_stages)
    return block_m // WGMMA_M * WARPGROUP, block_n // 2, K // block_k, num_stages - 1


def hopper_gemm(M: int, N: int, K: int, block_m: int = 128, block_n: int = 128,
                block_k: int = 64, num_stages: int = 4) -> PrimFunc:
    """The annotated (not yet lowered) GEMM program for these sizes.

    Tiles must divide the problem; ``block_m`` is a multiple of 64, ``block_n`` a
    multiple of 8 up to 256, ``block_k`` 16, 32 or 64 (an fp16 row of 32, 64 or 128
    bytes: the TMA swizzle width), ``num_stages`` at least 2.
    """
    consumers, registers, k_tiles, last_stage = _tiling(M, N, K, block_m, block_n, block_k,
                                                        num_stages)

    @T.prim_func
    def hopper_gemm_kernel(a: T.handle, b: T.handle, c: T.handle):
        A = T.match_buffer(a, (M, K), "float16")
        B = T.match_buffer(b, (N, K), "float16")
        C = T.match_buffer(c, (M, N), "float32")
        for by in T.thread_binding(M // block_m, thread="blockIdx.y"):
            for bx in T.thread_binding(N // block_n, thread="blockIdx.x"):
                for tx in T.thread_binding(consumers, thread="threadIdx.x"):
                    with T.block("gemm"):
                        A_shared = T.alloc_buffer((block_m, block_k), "float16",
                                                  scope="shared.dyn")
                        B_shared = T.alloc_buffer((block_n, block_k), "float16",
                                                  scope="shared.dyn")
                        accumulator = T.alloc_buffer((registers,), "float32", scope="local")
                        for r in T.unroll(registers):
                            accumulator[r] = T.float32(0)
                        for k in T.serial(k_tiles, annotations={
                                "software_pipeline_stage": [0, 0, last_stage],
                                "software_pipeline_order": [0, 1, 2],
                                "software_pipeline_async_stages": [0]}):
                            with T.block("A_copy"):
                                T.reads(A[by * block_m:by * block_m + block_m,
                                          k * block_k:k * block_k + block_k])
                                T.writes(A_shared[0:block_m, 0:block_k])
                                for i, j in T.grid(block_m, block_k):
                                    A_shared[i, j] = A[by * block_m + i, k * block_k + j]
                            with T.block("B_copy"):
                                T.reads(B[bx * block_n:bx * block_n + block_n,
                                          k * block_k:k * block_k + block_k])
                                T.writes(B_shared[0:block_n, 0:block_k])
                                for i, j in T.grid(block_n, block_k):
                                    B_shared[i, j] = B[bx * block_n + i, k * block_k + j]
                            T.evaluate(T.wgmma(
                                accumulator[0:registers],
                                A_shared[tx // 128 * 64:tx // 128 * 64 + 64, 0:block_k],
                                B_shared[0:block_n, 0:block_k], 1))
                        for r in T.unroll(registers):
                            C[by * block_m + tx // 128 * 64 + tx % 128 // 32 * 16
                              + tx % 32 // 4 + r // 2 % 2 * 8,
                              bx * block_n + r // 4 * 8 + tx % 4 * 2 + r % 2] = accumulator[r]

    return hopper_gemm_kernel


VECTOR = 8  # fp16 elements in one 16-byte cp.async


def hopper_gemm_count_pipeline(M: int, N: int, K: int, block_m: int = 128,
                               block_n: int = 128, block_k: int = 64,
                               num_stages: int = 3) -> PrimFunc:
    """The same GEMM as a count pipeline: ``cp.async`` tile copies (stage 0) and the wgmma
    (stage ``num_stages - 1``) both asynchronous, each on its own queue.

    The pipeline waits for the copies before a wgmma reads their slot, and for a wgmma
    (``wgmma.wait_group``) before a copy overwrites the slot it reads; successive wgmma
    accumulate in order and are drained after the loop. Since a wgmma reads its slot
    until a later wait, the ring has ``num_stages + 1`` slots, which lets one wgmma group
    stay in flight in the main loop. Sizes as for :func:`hopper_gemm`.
    """
    consumers, registers, k_tiles, last_stage = _tiling(M, N, K, block_m, block_n, block_k,
                                                        num_stages)
    vectors = block_k // VECTOR  # 16-byte vectors per tile row
    a_rounds = block_m * vectors // consumers
    b_rounds = -(-block_n * vectors // consumers)

    @T.prim_func
    def hopper_gemm_count_kernel(a: T.handle, b: T.handle, c: T.handle):
        A = T.match_buffer(a, (M, K), "float16")
        B = T.match_buffer(b, (N, K), "float16")
        C = T.match_buffer(c, (M, N), "float32")
        for by in T.thread_binding(M // block_m, thread="blockIdx.y"):
            for bx in T.thread_binding(N // block_n, thread="blockIdx.x"):
                for tx in T.thread_binding(consumers, thread="threadIdx.x"):
                    with T.block("gemm"):
                        accumulator = T.alloc_buffer((registers,), "float32", scope="local")
                        for r in T.unroll(registers):
                            accumulator[r] = T.float32(0)
                        for k in T.serial(k_tiles, annotations={
                                "software_pipeline_stage": [0, 0, last_stage],
                                "software_pipeline_order": [0, 1, 2],
                                "software_pipeline_async_stages": [0, last_stage]}):
                            with T.block("k_loop"):
                                # The pipeline rings the buffers its loop body allocates.
                                A_shared = T.alloc_buffer((block_m, block_k), "float16",
                                                          scope="shared.dyn")
                                B_shared = T.alloc_buffer((block_n, block_k), "float16",
                                                          scope="shared.dyn")
                                with T.block("A_copy"):
                                    T.reads(A[by * block_m:by * block_m + block_m,
                                              k * block_k:k * block_k + block_k])
                                    T.writes(A_shared[0:block_m, 0:block_k])
                                    for round in T.unroll(a_rounds):
                                        for e in T.vectorized(VECTOR):
                                            A_shared[(round * consumers + tx) // vectors,
                                                     (round * consumers + tx) % vectors * VECTOR
                                                     + e] = A[
                                                by * block_m + (round * consumers + tx) // vectors,
                                                k * block_k + (round * consumers + tx) % vectors
                                                * VECTOR + e]
                                with T.block("B_copy"):
                                    T.reads(B[bx * block_n:bx * block_n + block_n,
                                              k * block_k:k * block_k + block_k])
                                    T.writes(B_shared[0:block_n, 0:block_k])
                                    for round in T.unroll(b_rounds):
                                        if round * consumers + tx < block_n * vectors:
                                            for e in T.vectorized(VECTOR):
                                                B_shared[(round * consumers + tx) // vectors,
                                                         (round * consumers + tx) % vectors
                                                         * VECTOR + e] = B[
                                                    bx * block_n + (round * consumers + tx)
                                                    // vectors,
                                                    k * block_k + (round * consumers + tx)
                                                    % vectors * VECTOR + e]
                                T.evaluate(T.wgmma(
                                    accumulator[0:registers],
                                    A_shared[tx // 128 * 64:tx // 128 * 64 + 64, 0:block_k],
                                    B_shared[0:block_n, 0:block_k], 1))
                        for r in T.unroll(registers):
                            C[by * block_m + tx // 128 * 64 + tx % 128 // 32 * 16
                              + tx % 32 // 4 + r // 2 % 2 * 8,
                              bx * block_n + r // 4 * 8 + tx % 4 * 2 + r % 2] = accumulator[r]

    return hopper_gemm_count_kernel


def lower(func: PrimFunc, specialize: bool = True) -> PrimFunc:
    """The program ready for ``codegen(..., "sm_90a")``: warp-specialized, or one role."""
    return warp_specialize(func) if specialize else lower_to_barriers(func)
