"""The tensor-core GEMM of the seeds: ``C = A @ B``, fp16 inputs, fp32 accumulation.

A thread block computes a ``block_m x block_n`` tile of C with ``(block_m // warp_m) *
(block_n // warp_n)`` warps (``threadIdx.y``), each owning a ``warp_m x warp_n`` part held
in ``mma.sync.m16n8k16`` accumulator fragments. The reduction loop over ``block_k``-wide
slices of K is pipelined as the RFC's nested GEMM:

* outer loop ``ko``: asynchronous copies of the A and B tiles into ``num_stages``-deep
  shared ring buffers (stage 0, async), then the inner loop;
* inner loop ``ki`` over 16-wide k slices: ``ldmatrix`` of A and B fragments into
  double-buffered warp registers (stage 0) and the ``mma`` of the previous slice
  (stage 1); unrolled, so that registers are addressed by constants;
* the outer annotation counts the inner pipeline as its prologue, body and epilogue:
  stages ``[0, 0, S - 2, S - 1, S - 1]`` for ``S = num_stages`` (the RFC's
  ``[0, 0, 2, 3, 3]`` at the default 4), orders ``[0, 1, 3, 2, 4]``, async stages ``[0]``.

Shared rows are padded by 8 elements so that the eight 16-byte rows an ``ldmatrix``
gathers fall in distinct banks. The tensor-core intrinsics (``T.ldmatrix``,
``T.mma_sync``, ``T.mma_fill``, ``T.mma_store``) are warp-collective operations on tiles
of ``warp``-scope fragment buffers; see :mod:`tilepipe.sim.tensor_core`.
"""

from __future__ import annotations

from .. import script as T
from ..arith import infer_regions
from ..errors import TilepipeError
from ..ir import (
    Block, Buffer, BufferRegion, BufferStore, For, ForKind, IntImm, IRMutator, PrimExpr,
    PrimFunc, Range, SeqStmt, Var, post_order_visit,
)

MMA_M, MMA_N, MMA_K = 16, 8, 16
WARP_SIZE = 32
VECTOR_ELEMENTS = 8  # fp16 elements in one 16-byte cp.async
SHARED_PADDING = 8

OUTER_ORDER = [0, 1, 3, 2, 4]
INNER_STAGES = [0, 0, 1]
INNER_ORDER = [0, 1, 2]


def outer_stages(num_stages: int) -> list[int]:
    """The outer loop's stages: copies, copies, inner prologue, inner body, inner epilogue."""
    return [0, 0, num_stages - 2, num_stages - 1, num_stages - 1]


class KernelConfigError(TilepipeError):
    """Problem sizes or tile sizes that the kernel cannot be built for."""


def _check_multiple(name: str, value: int, divisor_name: str, divisor: int) -> None:
    if value <= 0 or value % divisor != 0:
        raise KernelConfigError(
            f"gemm: {name} = {value} must be a positive multiple of {divisor_name} = {divisor}"
        )


def gemm(M: int, N: int, K: int, block_m: int = 128, block_n: int = 128, block_k: int = 32,
         warp_m: int = 64, warp_n: int = 64, num_stages: int = 4) -> PrimFunc:
    """The pipelined tensor-core GEMM for ``A: (M, K)``, ``B: (K, N)``, ``C: (M, N)``.

    Tiles must divide the problem (no boundary predicates): ``block_m | M``,
    ``block_n | N``, ``block_k | K``, ``warp_m | block_m`` and ``warp_n | block_n``, with
    warp tiles multiples of 16 and ``block_k`` a multiple of 16. ``num_stages`` (at
    least 2) is the depth of the shared-memory ring: copies run ``num_stages - 1`` outer
    iterations ahead of the mma.
    """
    _check_multiple("warp_m", warp_m, "the mma tile height", MMA_M)
    _check_multiple("warp_n", warp_n, "the ldmatrix tile width", 16)
    _check_multiple("block_m", block_m, "warp_m", warp_m)
    _check_multiple("block_n", block_n, "warp_n", warp_n)
    _check_multiple("block_k", block_k, "the mma depth", MMA_K)
    _check_multiple("M", M, "block_m", block_m)
    _check_multiple("N", N, "block_n", block_n)
    _check_multiple("K", K, "block_k", block_k)
    if num_stages < 2:
        raise KernelConfigError(f"gemm: num_stages = {num_stages} must be at least 2")
    warps_n = block_n // warp_n
    warps = (block_m // warp_m) * warps_n
    threads = warps * WARP_SIZE
    a_vectors_per_row = block_k // VECTOR_ELEMENTS
    b_vectors_per_row = block_n // VECTOR_ELEMENTS
    a_copies = block_m * a_vectors_per_row // threads
    b_copies = block_k * b_vectors_per_row // threads
    if a_copies * threads != block_m * a_vectors_per_row or a_copies == 0:
        raise KernelConfigError(
            f"gemm: the {block_m}x{block_k} A tile does not split into 16-byte copies "
            f"over {threads} threads"
        )
    if b_copies * threads != block_k * b_vectors_per_row or b_copies == 0:
        raise KernelConfigError(
            f"gemm: the {block_k}x{block_n} B tile does not split into 16-byte copies "
            f"over {threads} threads"
        )
    a_row_length = block_k + SHARED_PADDING
    b_row_length = block_n + SHARED_PADDING
    tiles_m = warp_m // MMA_M
    tiles_n = warp_n // 16
    mma_n = warp_n // MMA_N
    grid_m = M // block_m
    grid_n = N // block_n
    k_outer = K // block_k
    k_inner = block_k // MMA_K
    stages = outer_stages(num_stages)

    @T.prim_func
    def gemm_kernel(a: T.handle, b: T.handle, c: T.handle):
        # Buffers matched in the body, where the sizes are closure constants of gemm().
        A = T.match_buffer(a, (M, K), "float16")
        B = T.match_buffer(b, (K, N), "float16")
        C = T.match_buffer(c, (M, N), "float32")
        for by in T.thread_binding(grid_m, thread="blockIdx.y"):
            for bx in T.thread_binding(grid_n, thread="blockIdx.x"):
                for warp in T.thread_binding(warps, thread="threadIdx.y"):
                    for lane in T.thread_binding(WARP_SIZE, thread="threadIdx.x"):
                        with T.block("gemm"):
                            T.reads(A[by * block_m:by * block_m + block_m, 0:K],
                                    B[0:K, bx * block_n:bx * block_n + block_n])
                            T.writes(C[by * block_m:by * block_m + block_m,
                                       bx * block_n:bx * block_n + block_n])
                            C_warp = T.alloc_buffer((tiles_m, mma_n, 16, 8), "float32",
                                                    scope="warp")
                            for mi in T.unroll(tiles_m):
                                for ni in T.unroll(mma_n):
                                    T.evaluate(T.mma_fill(C_warp[mi, ni, 0:16, 0:8],
                                                          T.float32(0)))
                            for ko in T.serial(k_outer, annotations={
                                    "software_pipeline_stage": stages,
                                    "software_pipeline_order": OUTER_ORDER,
                                    "software_pipeline_async_stages": [0]}):
                                with T.block("k_outer"):
                                    # The pipeline rings the buffers its loop body allocates;
                                    # the tile copies into them come first (_with_tile_copies).
                                    A_shared = T.alloc_buffer((block_m, a_row_length),
                                                              "float16", scope="shared.dyn")
                                    B_shared = T.alloc_buffer((block_k, b_row_length),
                                                              "float16", scope="shared.dyn")
                                    for ki in T.unroll(k_inner, annotations={
                                            "software_pipeline_stage": INNER_STAGES,
                                            "software_pipeline_order": INNER_ORDER}):
                                        with T.block("k_inner"):
                                            A_warp = T.alloc_buffer((tiles_m, 16, 16), "float16",
                                                                    scope="warp")
                                            B_warp = T.alloc_buffer((tiles_n, 16, 16), "float16",
                                                                    scope="warp")
                                            with T.block("A_fragment_load"):
                                                T.reads(A_shared[
                                                    warp // warps_n * warp_m:
                                                    warp // warps_n * warp_m + warp_m,
                                                    ki * MMA_K:ki * MMA_K + MMA_K,
                                                ])
                                                T.writes(A_warp[0:tiles_m, 0:16, 0:16])
                                                for mi in T.unroll(tiles_m):
                                                    T.evaluate(T.ldmatrix(
                                                        A_warp[mi, 0:16, 0:16],
                                                        A_shared[
                                                            warp // warps_n * warp_m + mi * 16:
                                                            warp // warps_n * warp_m + mi * 16
                                                            + 16,
                                                            ki * MMA_K:ki * MMA_K + MMA_K,
                                                        ],
                                                        False,
                                                    ))
                                            with T.block("B_fragment_load"):
                                                T.reads(B_shared[
                                                    ki * MMA_K:ki * MMA_K + MMA_K,
                                                    warp % warps_n * warp_n:
                                                    warp % warps_n * warp_n + warp_n,
                                                ])
                                                T.writes(B_warp[0:tiles_n, 0:16, 0:16])
                                                for nj in T.unroll(tiles_n):
                                                    T.evaluate(T.ldmatrix(
                                                        B_warp[nj, 0:16, 0:16],
                                                        B_shared[
                                                            ki * MMA_K:ki * MMA_K + MMA_K,
                                                            warp % warps_n * warp_n + nj * 16:
                                                            warp % warps_n * warp_n + nj * 16
                                                            + 16,
                                                        ],
                                                        True,
                                                    ))
                                            with T.block("mma"):
                                                T.reads(C_warp[0:tiles_m, 0:mma_n, 0:16, 0:8],
                                                        A_warp[0:tiles_m, 0:16, 0:16],
                                                        B_warp[0:tiles_n, 0:16, 0:16])
                                                T.writes(C_warp[0:tiles_m, 0:mma_n, 0:16, 0:8])
                                                for mi in T.unroll(tiles_m):
                                                    for ni in T.unroll(mma_n):
                                                        T.evaluate(T.mma_sync(
                                                            C_warp[mi, ni, 0:16, 0:8],
                                                            A_warp[mi, 0:16, 0:16],
                                                            B_warp[ni // 2,
                                                                   ni % 2 * 8:ni % 2 * 8 + 8,
                                                                   0:16],
                                                        ))
                            for mi in T.unroll(tiles_m):
                                for ni in T.unroll(mma_n):
                                    T.evaluate(T.mma_store(
                                        C[
                                            by * block_m + warp // warps_n * warp_m + mi * 16:
                                            by * block_m + warp // warps_n * warp_m + mi * 16
                                            + 16,
                                            bx * block_n + warp % warps_n * warp_n + ni * 8:
                                            bx * block_n + warp % warps_n * warp_n + ni * 8 + 8,
                                        ],
                                        C_warp[mi, ni, 0:16, 0:8],
                                    ))

    return _with_tile_copies(gemm_kernel, block_m, block_n, block_k, threads, a_copies,
                             b_copies)


def _with_tile_copies(kernel: PrimFunc, block_m: int, block_n: int, block_k: int,
                      threads: int, a_copies: int, b_copies: int) -> PrimFunc:
    """``kernel`` with the copies of step ``ko``'s A and B tiles into ``A_shared`` and
    ``B_shared`` first in its ``k_outer`` block, both made by :func:`_tile_copy`."""
    loop_vars = {}
    post_order_visit(kernel.body, lambda node: isinstance(node, For) and loop_vars.setdefault(
        node.loop_var.name, node.loop_var))
    by, bx, ko, warp, lane = (loop_vars[name] for name in ("by", "bx", "ko", "warp", "lane"))
    A, B = (param for param in kernel.params if param.name in ("A", "B"))

    class _Prepender(IRMutator):
        def visit_block(self, node: Block):
            node = super().visit_block(node)
            if node.name != "k_outer":
                return node
            A_shared, B_shared = node.alloc_buffers
            body = SeqStmt((
                _tile_copy("A_shared_copy", A, A_shared, by * block_m, ko * block_k, block_m,
                           block_k, a_copies, threads, warp, lane),
                _tile_copy("B_shared_copy", B, B_shared, ko * block_k, bx * block_n, block_k,
                           block_n, b_copies, threads, warp, lane),
                node.body))
            reads, writes = infer_regions(body, node.alloc_buffers)
            return Block(node.name, body, reads, writes, node.alloc_buffers, node.predicate,
                         node.annotations, node.span)

    return kernel.with_body(_Prepender().visit(kernel.body))


def _tile_copy(name: str, source: Buffer, target: Buffer, row_start: PrimExpr,
               column_start: PrimExpr, rows: int, columns: int, copies: int, threads: int,
               warp: Var, lane: Var) -> Block:
    """The block copying the ``rows x columns`` tile of ``source`` at ``(row_start,
    column_start)`` into ``target`` in 16-byte vectors: in copy ``c`` thread ``(warp,
    lane)`` moves vector ``c * threads + warp * WARP_SIZE + lane`` of the tile, row-major."""
    copy, element = Var("c"), Var("v")
    vectors_per_row = columns // VECTOR_ELEMENTS
    vector = copy * threads + warp * WARP_SIZE + lane
    row = vector // vectors_per_row
    column = vector % vectors_per_row * VECTOR_ELEMENTS
    store = BufferStore(target, source[row_start + row, column_start + column + element],
                        (row, column + element))
    body = For(copy, IntImm(0), IntImm(copies), ForKind.UNROLLED,
               For(element, IntImm(0), IntImm(VECTOR_ELEMENTS), ForKind.VECTORIZED, store))
    read = BufferRegion(source, (Range(row_start, IntImm(rows)),
                                 Range(column_start, IntImm(columns))))
    write = BufferRegion(target, (Range(IntImm(0), IntImm(rows)),
                                  Range(IntImm(0), IntImm(columns))))
    return Block(name, body, (read,), (write,))


def gemm_small() -> PrimFunc:
    """A 64x64x128 GEMM with 32x32 block tiles and four 16x16 warps: the same program
    structure as :func:`gemm`, small enough for the simulator to verify quickly."""
    return gemm(64, 64, 128, block_m=32, block_n=32, block_k=32, warp_m=16, warp_n=16)
