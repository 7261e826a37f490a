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

from typing import TYPE_CHECKING

from ...errors import LoweringError
from ...ir import Buffer, Call, StringImm, as_int
from .intrinsics import register_intrinsic

if TYPE_CHECKING:
    from .codegen import CudaEmitter

ARCH = "sm_90a"
BARRIER_DTYPE = "uint64"
SHARED_SCOPES = ("shared", "shared.dyn")
NVCC_GENCODE = "-gencode=arch=compute_90a,code=sm_90a"

# wgmma operands use the 128-byte swizzle: tile rows of 128 bytes, 8-row atoms of 1024
# bytes (shared buffers holding them must be aligned to an atom).
SWIZZLE_BYTES = 128
SWIZZLE_ATOM_BYTES = 1024
WGMMA_M = 64
WGMMA_K = 16
WGMMA_N_CHOICES = tuple(range(8, 257, 8))
WARPGROUP_THREADS = 128
MAX_TMA_RANK = 5

_LIBRARY_CORE = r"""
namespace tilepipe_hopper {

constexpr uint32_t SWIZZLE_ATOM_BYTES = 1024;
constexpr uint64_t SWIZZLE_DESCRIPTOR_CODE = 1;  // 128-byte swizzle

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
  descriptor |= static_cast<uint64_t>(SWIZZLE_DESCRIPTOR_CODE) << 62;
  return descriptor;
}

}  // namespace tilepipe_hopper
"""


def tma_load_function(rank: int) -> str:
    """The wrapper of ``cp.async.bulk.tensor.<rank>d`` (coordinates innermost first)."""
    if not 1 <= rank <= MAX_TMA_RANK:
        raise LoweringError(f"TMA copies have rank 1 to {MAX_TMA_RANK}, got {rank}")
    coordinates = ", ".join(f"int32_t c{axis}" for axis in range(rank))
    placeholders = ", ".join(f"%{axis + 3}" for axis in range(rank))
    operands = ", ".join(f'"r"(c{axis})' for axis in range(rank))
    return f"""
namespace tilepipe_hopper {{

__device__ __forceinline__ void tma_load_{rank}d(void* destination, const CUtensorMap* map,
                                              uint64_t* barrier, {coordinates}) {{
  asm volatile("cp.async.bulk.tensor.{rank}d.shared::cluster.global.tile"
               ".mbarrier::complete_tx::bytes [%0], [%1, {{{placeholders}}}], [%2];"
               :: "r"(shared_address(destination)),
                  "l"(reinterpret_cast<uint64_t>(map)),
                  "r"(shared_address(barrier)), {operands}
               : "memory");
}}

}}  // namespace tilepipe_hopper
"""


def wgmma_function(n: int) -> str:
    """The wrapper of ``wgmma.mma_async.m64n<n>k16.f32.f16.f16`` (both operands K-major)."""
    if n not in WGMMA_N_CHOICES:
        raise LoweringError(f"wgmma needs n in 8, 16, ..., 256, got {n}")
    registers = n // 2
    accumulators = ", ".join(f"%{register}" for register in range(registers))
    outputs = ", ".join(f'"+f"(d[{register}])' for register in range(registers))
    return f"""
namespace tilepipe_hopper {{

__device__ __forceinline__ void wgmma_m64n{n}k16(float* d, uint64_t a, uint64_t b,
                                               int accumulate) {{
  asm volatile("{{\\n\\t.reg .pred p;\\n\\t"
               "setp.ne.b32 p, %{registers + 2}, 0;\\n\\t"
               "wgmma.mma_async.sync.aligned.m64n{n}k16.f32.f16.f16 "
               "{{{accumulators}}}, %{registers}, %{registers + 1}, p, 1, 1, 0, 0;\\n\\t}}"
               : {outputs}
               : "l"(a), "l"(b), "r"(accumulate));
}}

}}  // namespace tilepipe_hopper
"""


def device_library(tma_ranks=(2,), wgmma_widths=()) -> str:
    """The device functions, with TMA copies of the given ranks and wgmma of the widths."""
    parts = ["#include <cuda.h>\n#include <cstdint>\n", _LIBRARY_CORE]
    parts += [tma_load_function(rank) for rank in sorted(set(tma_ranks))]
    parts += [wgmma_function(n) for n in sorted(set(wgmma_widths))]
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


# Emission -----------------------------------------------------------------------------
def _check_arity(call: Call, count: int, form: str) -> None:
    if len(call.args) != count:
        raise LoweringError(f"T.{call.op} takes {count} arguments: T.{form}", call.span)


def _barrier_pointer(call: Call, position: int, emitter: "CudaEmitter") -> str:
    """``&barriers[index]`` as the ``uint64_t*`` the device functions take."""
    barriers, index = call.args[position], call.args[position + 1]
    if not isinstance(barriers, Buffer) or barriers.dtype != BARRIER_DTYPE or \
            barriers.scope not in SHARED_SCOPES or len(barriers.shape) != 1:
        raise LoweringError(
            f"T.{call.op} takes a one-dimensional {BARRIER_DTYPE} buffer in shared memory "
            f"as argument {position + 1}", call.span)
    return f"reinterpret_cast<uint64_t*>({emitter.address_of(barriers, (index,))})"


def _use_library(emitter: "CudaEmitter", key: str, text: str) -> None:
    emitter.headers.add("cuda.h")
    emitter.libraries.setdefault(key, text)


def _use_core_library(emitter: "CudaEmitter") -> None:
    _use_library(emitter, "hopper", _LIBRARY_CORE)


@register_intrinsic("mbarrier_init")
def emit_mbarrier_init(call: Call, emitter: "CudaEmitter") -> str:
    _check_arity(call, 3, "mbarrier_init(barriers, index, arrival_count)")
    _use_core_library(emitter)
    return (f"tilepipe_hopper::mbarrier_init({_barrier_pointer(call, 0, emitter)}, "
            f"{emitter.expr(call.args[2])})")


@register_intrinsic("mbarrier_arrive")
def emit_mbarrier_arrive(call: Call, emitter: "CudaEmitter") -> str:
    _check_arity(call, 2, "mbarrier_arrive(barriers, index)")
    _use_core_library(emitter)
    return f"tilepipe_hopper::mbarrier_arrive({_barrier_pointer(call, 0, emitter)})"


@register_intrinsic("mbarrier_arrive_expect_tx")
def emit_mbarrier_arrive_expect_tx(call: Call, emitter: "CudaEmitter") -> str:
    _check_arity(call, 3, "mbarrier_arrive_expect_tx(barriers, index, bytes)")
    _use_core_library(emitter)
    return (f"tilepipe_hopper::mbarrier_arrive_expect_tx("
            f"{_barrier_pointer(call, 0, emitter)}, {emitter.expr(call.args[2])})")


@register_intrinsic("mbarrier_wait_parity")
def emit_mbarrier_wait_parity(call: Call, emitter: "CudaEmitter") -> str:
    _check_arity(call, 3, "mbarrier_wait_parity(barriers, index, parity)")
    _use_core_library(emitter)
    return (f"tilepipe_hopper::mbarrier_wait_parity({_barrier_pointer(call, 0, emitter)}, "
            f"{emitter.expr(call.args[2])})")


@register_intrinsic("wgmma_fence")
def emit_wgmma_fence(call: Call, emitter: "CudaEmitter") -> str:
    _check_arity(call, 0, "wgmma_fence()")
    _use_core_library(emitter)
    return "tilepipe_hopper::wgmma_fence()"


@register_intrinsic("wgmma_commit_group")
def emit_wgmma_commit_group(call: Call, emitter: "CudaEmitter") -> str:
    _check_arity(call, 0, "wgmma_commit_group()")
    _use_core_library(emitter)
    return "tilepipe_hopper::wgmma_commit_group()"


@register_intrinsic("wgmma_wait_group")
def emit_wgmma_wait_group(call: Call, emitter: "CudaEmitter") -> str:
    _check_arity(call, 1, "wgmma_wait_group(in_flight)")
    count = as_int(call.args[0])
    if count is None or count < 0:
        raise LoweringError("T.wgmma_wait_group needs a non-negative constant count", call.span)
    _use_core_library(emitter)
    return f"tilepipe_hopper::wgmma_wait_group<{count}>()"


@register_intrinsic("setmaxnreg")
def emit_setmaxnreg(call: Call, emitter: "CudaEmitter") -> str:
    _check_arity(call, 2, 'setmaxnreg(count, "inc" or "dec")')
    count = as_int(call.args[0])
    direction = call.args[1].value if isinstance(call.args[1], StringImm) else None
    if count is None or not 24 <= count <= 256 or count % 8 or direction not in ("inc", "dec"):
        raise LoweringError(
            'T.setmaxnreg takes a constant register count in 24..256, a multiple of 8, and '
            '"inc" or "dec"', call.span)
    _use_core_library(emitter)
    function = "setmaxnreg_increase" if direction == "inc" else "setmaxnreg_decrease"
    return f"tilepipe_hopper::{function}<{count}>()"
