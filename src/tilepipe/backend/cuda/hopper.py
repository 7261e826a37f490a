"""Hopper (sm_90a) code generation: mbarrier phases, TMA tile copies, warpgroup MMA.

:func:`device_library` is the C++ (inline PTX) that kernels using these intrinsics
include; the ``emit_*`` functions turn the IR intrinsics into calls of it:

=========================================================  ==============================
IR intrinsic                                               PTX
=========================================================  ==============================
``T.mbarrier_init(barriers, index, arrival_count)``        ``mbarrier.init`` + init fence
``T.mbarrier_arrive(barriers, index)``                     ``mbarrier.arrive``
``T.mbarrier_arrive_expect_tx(barriers, index, bytes)``    ``mbarrier.arrive.expect_tx``
``T.mbarrier_wait_parity(barriers, index, parity)``        ``mbarrier.try_wait.parity`` loop
``T.tma_load(destination, source, barriers, index)``       ``cp.async.bulk.tensor`` with
                                                           ``mbarrier::complete_tx::bytes``
``T.wgmma_fence()`` / ``T.wgmma_commit_group()``           ``wgmma.fence`` / ``commit_group``
``T.wgmma_wait_group(n)``                                  ``wgmma.wait_group n``
``T.setmaxnreg(count, "inc" | "dec")``                     ``setmaxnreg``
=========================================================  ==============================

The warpgroup MMA computes ``D[64, n] (+)= A[64, 16] @ B[n, 16]^T`` with both operands
K-major in shared memory under the 128-byte swizzle that TMA writes (rows of 64 fp16),
described by matrix descriptors; :func:`wgmma_function` generates the instruction
wrapper for one ``n``.
"""

from __future__ import annotations

from ...errors import LoweringError

ARCH = "sm_90a"
NVCC_GENCODE = "-gencode=arch=compute_90a,code=sm_90a"

# Matrix-descriptor swizzle codes (bits 62-63) and the matching shared layout: a tile
# row of 128 bytes, 8 rows (1024 bytes) per swizzle atom.
SWIZZLE_128B_DESCRIPTOR = 1
SWIZZLE_BYTES = 128
SWIZZLE_ATOM_BYTES = 1024
WGMMA_M = 64
WGMMA_K = 16
WGMMA_N_CHOICES = tuple(range(8, 257, 8))
WARPGROUP_THREADS = 128
MAX_TMA_RANK = 5

_LIBRARY_HEAD = r"""
#include <cuda.h>
#include <cstdint>

namespace tilepipe_hopper {

__device__ __forceinline__ uint32_t shared_address(const void* pointer) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

// Set the arrivals each phase expects, and make the barrier visible to the async proxy.
__device__ __forceinline__ void mbarrier_init(uint64_t* barrier, uint32_t arrival_count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;"
               :: "r"(shared_address(barrier)), "r"(arrival_count) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

__device__ __forceinline__ void mbarrier_arrive(uint64_t* barrier) {
  asm volatile("{\n\t.reg .b64 state;\n\t"
               "mbarrier.arrive.shared::cta.b64 state, [%0];\n\t}"
               :: "r"(shared_address(barrier)) : "memory");
}

__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* barrier, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;"
               :: "r"(shared_address(barrier)), "r"(bytes) : "memory");
}

// Block until the phase of the given parity has completed.
__device__ __forceinline__ void mbarrier_wait_parity(uint64_t* barrier, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile("{\n\t.reg .pred complete;\n\t"
                 "mbarrier.try_wait.parity.shared::cta.b64 complete, [%1], %2;\n\t"
                 "selp.u32 %0, 1, 0, complete;\n\t}"
                 : "=r"(done) : "r"(shared_address(barrier)), "r"(parity) : "memory");
  } while (!done);
}

__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
}

__device__ __forceinline__ void wgmma_commit_group() {
  asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}

template <int InFlight>
__device__ __forceinline__ void wgmma_wait_group() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" :: "n"(InFlight) : "memory");
}

template <int Count>
__device__ __forceinline__ void setmaxnreg_increase() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" :: "n"(Count));
}

template <int Count>
__device__ __forceinline__ void setmaxnreg_decrease() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" :: "n"(Count));
}

// A K-major operand tile under the 128-byte swizzle: 8-row atoms 1024 bytes apart.
__device__ __forceinline__ uint64_t wgmma_descriptor(const void* tile) {
  uint64_t address = shared_address(tile);
  uint64_t descriptor = (address & 0x3FFFF) >> 4;
  descriptor |= static_cast<uint64_t>(1) << 16;                    // leading byte offset
  descriptor |= static_cast<uint64_t>(SWIZZLE_ATOM_BYTES >> 4) << 32;  // stride byte offset
  descriptor |= static_cast<uint64_t>(SWIZZLE_128B) << 62;
  return descriptor;
}
"""

_LIBRARY_TAIL = "\n}  // namespace tilepipe_hopper\n"


def _tma_load_function(rank: int) -> str:
    """The wrapper of ``cp.async.bulk.tensor.<rank>d`` (coordinates innermost first)."""
    coordinates = ", ".join(f"int32_t c{axis}" for axis in range(rank))
    placeholders = ", ".join(f"%{axis + 3}" for axis in range(rank))
    operands = ", ".join(f'"r"(c{axis})' for axis in range(rank))
    return f"""
__device__ __forceinline__ void tma_load_{rank}d(void* destination, const CUtensorMap* map,
                                              uint64_t* barrier, {coordinates}) {{
  asm volatile("cp.async.bulk.tensor.{rank}d.shared::cluster.global.tile"
               ".mbarrier::complete_tx::bytes [%0], [%1, {{{placeholders}}}], [%2];"
               :: "r"(shared_address(destination)),
                  "l"(reinterpret_cast<uint64_t>(map)),
                  "r"(shared_address(barrier)), {operands}
               : "memory");
}}
"""


def wgmma_function(n: int) -> str:
    """The wrapper of ``wgmma.mma_async.m64n<n>k16.f32.f16.f16`` (both operands K-major)."""
    if n not in WGMMA_N_CHOICES:
        raise LoweringError(f"wgmma needs n in 8, 16, ..., 256, got {n}")
    registers = n // 2
    accumulators = ", ".join(f"%{register}" for register in range(registers))
    outputs = ", ".join(f'"+f"(d[{register}])' for register in range(registers))
    return f"""
__device__ __forceinline__ void wgmma_m64n{n}k16(float* d, uint64_t a, uint64_t b,
                                               int accumulate) {{
  asm volatile("{{\\n\\t.reg .pred p;\\n\\t"
               "setp.ne.b32 p, %{registers + 2}, 0;\\n\\t"
               "wgmma.mma_async.sync.aligned.m64n{n}k16.f32.f16.f16 "
               "{{{accumulators}}}, %{registers}, %{registers + 1}, p, 1, 1, 0, 0;\\n\\t}}"
               : {outputs}
               : "l"(a), "l"(b), "r"(accumulate));
}}
"""


def device_library(tma_ranks=(2,), wgmma_widths=()) -> str:
    """The device functions for TMA copies of the given ranks and wgmma of the widths."""
    parts = [
        f"#define SWIZZLE_128B {SWIZZLE_128B_DESCRIPTOR}\n"
        f"#define SWIZZLE_ATOM_BYTES {SWIZZLE_ATOM_BYTES}\n",
        _LIBRARY_HEAD,
    ]
    for rank in sorted(set(tma_ranks)):
        if not 1 <= rank <= MAX_TMA_RANK:
            raise LoweringError(f"TMA copies have rank 1 to {MAX_TMA_RANK}, got {rank}")
        parts.append(_tma_load_function(rank))
    for n in sorted(set(wgmma_widths)):
        parts.append(wgmma_function(n))
    parts.append(_LIBRARY_TAIL)
    return "".join(parts)


def accumulator_position(thread: int, register: int) -> tuple[int, int]:
    """Row and column of the 64 x n accumulator held by ``thread`` in ``register``.

    The wgmma f32 accumulator layout: warp ``w`` owns rows ``16 w .. 16 w + 15``; within
    a warp, lane ``l`` holds rows ``l // 4`` and ``l // 4 + 8`` and two adjacent columns
    ``2 (l % 4)`` of every 8-column group.
    """
    warp, lane = divmod(thread, 32)
    row = 16 * warp + lane // 4 + 8 * ((register // 2) % 2)
    column = 8 * (register // 4) + 2 * (lane % 4) + register % 2
    return row, column
