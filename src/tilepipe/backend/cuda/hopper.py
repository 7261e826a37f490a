"""Hopper (sm_90a) code generation: mbarrier phases, TMA tile copies, warpgroup MMA.

The ``emit_*`` functions turn the IR intrinsics into calls of small device functions
(inline PTX, namespace ``tilepipe_hopper``) that the kernel source includes once:

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

``T.wgmma(accumulator, a, b, accumulate)`` issues ``D[64, n] (+)= A[64, k] @ B[n, k]^T``
as k / 16 ``wgmma.mma_async.m64n<n>k16`` instructions on the ``n / 2`` fp32 registers
per thread of ``accumulator``, with both operands K-major in shared memory under the
swizzle TMA writes them with (32, 64 or 128 bytes: the operand row), described by matrix
descriptors. :class:`HopperEmitter` is the emitter ``codegen`` uses for ``sm_90a``: it
adds a ``const __grid_constant__ CUtensorMap`` parameter per global buffer that TMA copies
from (``KernelSource.tensor_maps`` says how to encode each at launch, see :mod:`.tma`),
aligns TMA and wgmma tiles to the 1024-byte swizzle atom and asks for one block per SM
when the kernel reallocates registers.
"""

from __future__ import annotations

from ...errors import LoweringError
from ...ir import (
    SHARED_SCOPES, Buffer, BufferLoad, BufferRegion, Call, StringImm, as_int, dtype_bytes,
    post_order_visit,
)
from .async_copy import match_async_copy
from .codegen import CudaEmitter
from .intrinsics import register_intrinsic
from .tma import TensorMapSpec, tensor_map_spec

ARCH = "sm_90a"
BARRIER_DTYPE = "uint64"

# Swizzle widths (bytes of an operand row); a swizzle atom is 8 rows, and tiles are
# aligned to the largest atom.
SWIZZLE_WIDTHS = (32, 64, 128)
TILE_ALIGNMENT = 1024
WGMMA_M = 64
WGMMA_K = 16
WGMMA_N_CHOICES = tuple(range(8, 257, 8))
MAX_TMA_RANK = 5
NAMED_BARRIERS = 16
WARP_THREADS = 32

_LIBRARY_CORE = r"""
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

// Barrier Id of the block for Count threads (whole warps) only: the others go on.
template <int Id, int Count>
__device__ __forceinline__ void named_barrier_sync() {
  asm volatile("bar.sync %0, %1;" :: "n"(Id), "n"(Count) : "memory");
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

// A K-major operand tile whose rows are RowBytes (32, 64 or 128) under the swizzle of that
// width: 8-row atoms 8 * RowBytes apart.
template <int RowBytes>
__device__ __forceinline__ uint64_t wgmma_descriptor(const void* tile) {
  constexpr uint64_t code = RowBytes == 128 ? 1 : RowBytes == 64 ? 2 : 3;
  uint64_t address = shared_address(tile);
  uint64_t descriptor = (address & 0x3FFFF) >> 4;
  descriptor |= static_cast<uint64_t>(1) << 16;                   // leading byte offset
  descriptor |= static_cast<uint64_t>((8 * RowBytes) >> 4) << 32;  // stride byte offset
  descriptor |= code << 62;
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


# Emission -----------------------------------------------------------------------------
def _check_arity(call: Call, count: int, form: str) -> None:
    if len(call.args) != count:
        raise LoweringError(f"T.{call.op} takes {count} arguments: T.{form}", call.span)


def _barrier_pointer(call: Call, position: int, emitter: CudaEmitter) -> str:
    """``&barriers[index]`` as the ``uint64_t*`` the device functions take."""
    barriers, index = call.args[position], call.args[position + 1]
    if not isinstance(barriers, Buffer) or barriers.dtype != BARRIER_DTYPE or \
            barriers.scope not in SHARED_SCOPES or len(barriers.shape) != 1:
        raise LoweringError(
            f"T.{call.op} takes a one-dimensional {BARRIER_DTYPE} buffer in shared memory "
            f"as argument {position + 1}", call.span)
    return f"reinterpret_cast<uint64_t*>({emitter.address_of(barriers, (index,))})"


def _use_library(emitter: CudaEmitter, key: str, text: str) -> None:
    emitter.headers.add("cuda.h")
    emitter.libraries.setdefault(key, text)


def _use_core_library(emitter: CudaEmitter) -> None:
    _use_library(emitter, "hopper", _LIBRARY_CORE)


# The mbarrier intrinsics, each the device function of its name on ``&barriers[index]``
# followed by its third argument (arrival count, bytes, parity) where it has one.
MBARRIER_FORMS = {
    "mbarrier_init": "mbarrier_init(barriers, index, arrival_count)",
    "mbarrier_arrive": "mbarrier_arrive(barriers, index)",
    "mbarrier_arrive_expect_tx": "mbarrier_arrive_expect_tx(barriers, index, bytes)",
    "mbarrier_wait_parity": "mbarrier_wait_parity(barriers, index, parity)",
}


def emit_mbarrier(call: Call, emitter: CudaEmitter) -> str:
    """``tilepipe_hopper::<op>(&barriers[index][, value])`` for an mbarrier intrinsic."""
    form = MBARRIER_FORMS[call.op]
    _check_arity(call, form.count(",") + 1, form)
    _use_core_library(emitter)
    arguments = [_barrier_pointer(call, 0, emitter)] + [
        emitter.expr(argument) for argument in call.args[2:]]
    return f"tilepipe_hopper::{call.op}({', '.join(arguments)})"


for _operation in MBARRIER_FORMS:
    register_intrinsic(_operation)(emit_mbarrier)


@register_intrinsic("named_barrier_sync")
def emit_named_barrier_sync(call: Call, emitter: CudaEmitter) -> str:
    """``bar.sync id, count``: a barrier of ``count`` threads, the others not waiting."""
    _check_arity(call, 2, "named_barrier_sync(barrier_id, thread_count)")
    barrier_id, count = as_int(call.args[0]), as_int(call.args[1])
    if barrier_id is None or not 1 <= barrier_id < NAMED_BARRIERS or count is None or \
            count <= 0 or count % WARP_THREADS:
        raise LoweringError(
            f"T.named_barrier_sync takes a constant barrier id in 1..{NAMED_BARRIERS - 1} "
            f"(0 is __syncthreads') and a constant thread count, a positive multiple of "
            f"{WARP_THREADS}", call.span)
    _use_core_library(emitter)
    return f"tilepipe_hopper::named_barrier_sync<{barrier_id}, {count}>()"


@register_intrinsic("wgmma_fence")
def emit_wgmma_fence(call: Call, emitter: CudaEmitter) -> str:
    _check_arity(call, 0, "wgmma_fence()")
    _use_core_library(emitter)
    return "tilepipe_hopper::wgmma_fence()"


@register_intrinsic("fence_proxy_async")
def emit_fence_proxy_async(call: Call, emitter: CudaEmitter) -> str:
    """Orders the thread's generic-proxy shared writes (``cp.async``) before the async
    proxy's reads (wgmma operands)."""
    _check_arity(call, 0, "fence_proxy_async()")
    return 'asm volatile("fence.proxy.async.shared::cta;" ::: "memory")'


@register_intrinsic("wgmma_commit_group")
def emit_wgmma_commit_group(call: Call, emitter: CudaEmitter) -> str:
    _check_arity(call, 0, "wgmma_commit_group()")
    _use_core_library(emitter)
    return "tilepipe_hopper::wgmma_commit_group()"


@register_intrinsic("wgmma_wait_group")
def emit_wgmma_wait_group(call: Call, emitter: CudaEmitter) -> str:
    _check_arity(call, 1, "wgmma_wait_group(in_flight)")
    count = as_int(call.args[0])
    if count is None or count < 0:
        raise LoweringError("T.wgmma_wait_group needs a non-negative constant count", call.span)
    _use_core_library(emitter)
    return f"tilepipe_hopper::wgmma_wait_group<{count}>()"


@register_intrinsic("setmaxnreg")
def emit_setmaxnreg(call: Call, emitter: CudaEmitter) -> str:
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


@register_intrinsic("tma_load")
def emit_tma_load(call: Call, emitter: CudaEmitter) -> str:
    """``cp.async.bulk.tensor`` of the source tile at its first element's coordinates."""
    _check_arity(call, 4, "tma_load(destination, source, barriers, index)")
    destination, source = call.args[0], call.args[1]
    if not isinstance(emitter, HopperEmitter):
        raise LoweringError("T.tma_load needs the sm_90a target", call.span)
    if not (isinstance(destination, BufferRegion) and isinstance(source, BufferRegion)):
        raise LoweringError("T.tma_load copies a buffer region to a buffer region", call.span)
    map_name = emitter.tensor_map(call, source, destination)
    rank = len(source.region)
    _use_core_library(emitter)
    _use_library(emitter, f"tma_load_{rank}d", tma_load_function(rank))
    coordinates = ", ".join(f"static_cast<int32_t>({emitter.expr(r.min)})"
                            for r in reversed(source.region))
    target = emitter.address_of(destination.buffer, tuple(r.min for r in destination.region))
    return (f"tilepipe_hopper::tma_load_{rank}d({target}, &{map_name}, "
            f"{_barrier_pointer(call, 2, emitter)}, {coordinates})")


def _operand(call: Call, position: int, what: str, emitter: CudaEmitter):
    """A K-major fp16 operand tile: its region, rows and k extent, and row bytes."""
    region = call.args[position]
    if not isinstance(region, BufferRegion) or region.buffer.scope not in SHARED_SCOPES or \
            region.buffer.dtype != "float16":
        raise LoweringError(f"T.wgmma reads its {what} as a float16 region of shared memory",
                            call.span)
    extents = [as_int(emitter.analyzer.simplify(r.extent)) for r in region.region]
    shape = [as_int(extent) for extent in region.buffer.shape]
    if None in extents or None in shape or any(extent != 1 for extent in extents[:-2]):
        raise LoweringError(f"T.wgmma: the {what} must be a 2-D tile of constant extents",
                            call.span)
    rows, depth = extents[-2:]
    row_bytes = shape[-1] * 2
    if extents[-1] != shape[-1] or row_bytes not in SWIZZLE_WIDTHS or depth % WGMMA_K:
        raise LoweringError(
            f"T.wgmma: the {what} {region.buffer.name} must span whole rows of 32, 64 or 128 "
            f"bytes (the TMA swizzle width), k a multiple of {WGMMA_K}; got a "
            f"{rows} x {depth} tile of rows of {row_bytes} bytes", call.span)
    return region, rows, depth, row_bytes


@register_intrinsic("wgmma")
def emit_wgmma(call: Call, emitter: CudaEmitter) -> str:
    """One ``wgmma.mma_async.m64n<n>k16`` per 16-wide slice of k, descriptors advancing
    32 bytes along the (swizzled) operand rows."""
    _check_arity(call, 4, "wgmma(accumulator, a, b, accumulate)")
    accumulator = call.args[0]
    if not isinstance(accumulator, BufferRegion) or accumulator.buffer.scope != "local" or \
            accumulator.buffer.dtype != "float32" or len(accumulator.region) != 1:
        raise LoweringError("T.wgmma accumulates into a float32 region of a local buffer",
                            call.span)
    a, rows, depth, a_row_bytes = _operand(call, 1, "A operand", emitter)
    b, n, b_depth, b_row_bytes = _operand(call, 2, "B operand", emitter)
    registers = as_int(emitter.analyzer.simplify(accumulator.region[0].extent))
    if rows != WGMMA_M or b_depth != depth or registers is None or 2 * registers != n:
        raise LoweringError(
            f"T.wgmma multiplies a {WGMMA_M} x k A tile by an n x k B tile into n / 2 "
            f"registers per thread; got {rows} x {depth}, {n} x {b_depth} and {registers}",
            call.span)
    _use_core_library(emitter)
    _use_library(emitter, f"wgmma_m64n{n}k16", wgmma_function(n))
    pointer = emitter.address_of(accumulator.buffer, (accumulator.region[0].min,))
    accumulate = emitter.expr(call.args[3])
    lines = []
    for step in range(depth // WGMMA_K):
        descriptors = []
        for region, row_bytes in ((a, a_row_bytes), (b, b_row_bytes)):
            first = [r.min for r in region.region]
            first[-1] = first[-1] + step * WGMMA_K
            descriptors.append(f"tilepipe_hopper::wgmma_descriptor<{row_bytes}>("
                               f"{emitter.address_of(region.buffer, tuple(first))})")
        flag = accumulate if step == 0 else "1"
        lines.append(f"tilepipe_hopper::wgmma_m64n{n}k16({pointer}, {descriptors[0]}, "
                     f"{descriptors[1]}, {flag});")
    return "{ " + " ".join(lines) + " }"


class HopperEmitter(CudaEmitter):
    """The sm_90a emitter: tensor-map parameters, aligned TMA/wgmma tiles, and one block
    per SM when warpgroups reallocate registers (``setmaxnreg`` needs the count known)."""

    def __init__(self, func, arch):
        super().__init__(func, arch)
        self.maps: dict[Buffer, TensorMapSpec] = {}
        calls: list[Call] = []
        post_order_visit(func.body, lambda node: calls.append(node)
                         if isinstance(node, Call) else None)
        self.reallocates = any(call.op == "setmaxnreg" for call in calls)
        self.tiles = {call.args[0].buffer for call in calls
                      if call.op == "tma_load" and isinstance(call.args[0], BufferRegion)}
        self.tiles |= {arg.buffer for call in calls if call.op == "wgmma"
                       for arg in call.args[1:3] if isinstance(arg, BufferRegion)}
        self.swizzled = {buffer for buffer in self.tiles if _only_wgmma_reads(buffer, calls,
                                                                              func.body)}

    def _async_copy(self, stmt) -> None:
        """A ``cp.async`` into a swizzled wgmma operand tile writes its 16-byte chunk where
        the swizzle puts it (as TMA would): byte address bits 4.. XOR bits 7.. of the
        tile, whose base is aligned to the swizzle atom."""
        copy = match_async_copy(stmt, self.analyzer)
        buffer = copy.destination.buffer
        if buffer not in self.swizzled:
            super()._async_copy(stmt)
            return
        element_bytes = dtype_bytes(buffer.dtype)
        row_bytes = (as_int(buffer.shape[-1]) or 0) * element_bytes
        if row_bytes not in SWIZZLE_WIDTHS:
            raise LoweringError(f"the wgmma operand {buffer.name} written by cp.async must "
                                "have rows of 32, 64 or 128 bytes (a swizzle width)", stmt.span)
        scale = element_bytes.bit_length() - 1  # log2 of the element size
        offset = self.flat_index(buffer, copy.destination_indices)
        swizzled = (f"({offset}) ^ (((({offset}) >> {7 - scale}) & {row_bytes // 16 - 1}) "
                    f"<< {4 - scale})")
        source = self.address_of(copy.source.buffer, copy.source_indices)
        self.line(f"cp_async<{copy.num_bytes}>(&{self.name_of(buffer)}[{swizzled}], {source});")

    def launch_bounds(self, threads: int) -> str:
        if threads and self.reallocates:
            return f"__launch_bounds__({threads}, 1) "
        return super().launch_bounds(threads)

    def shared_alignment(self, buffer: Buffer) -> int:
        return TILE_ALIGNMENT if buffer in self.tiles else super().shared_alignment(buffer)

    def extra_parameters(self) -> list[str]:
        return [f"const __grid_constant__ CUtensorMap {spec.parameter_name}"
                for spec in self.maps.values()]

    def tensor_maps(self) -> tuple:
        return tuple(self.maps.values())

    def tensor_map(self, call: Call, source: BufferRegion, destination: BufferRegion) -> str:
        """The parameter name of the tensor map that copies ``source`` tiles, checked
        against the earlier copies of the same buffer (one box per buffer)."""
        buffer = source.buffer
        if buffer.scope != "global" or destination.buffer.scope not in SHARED_SCOPES:
            raise LoweringError("T.tma_load copies a global tile into shared memory", call.span)
        shape = [as_int(extent) for extent in buffer.shape]
        box = [as_int(self.analyzer.simplify(r.extent)) for r in source.region]
        if None in shape or None in box:
            raise LoweringError(
                f"T.tma_load of {buffer.name} needs constant buffer and tile shapes", call.span)
        row_bytes = box[-1] * dtype_bytes(buffer.dtype)
        swizzle = f"{row_bytes}B" if destination.buffer in self.swizzled and \
            row_bytes in SWIZZLE_WIDTHS else "none"
        spec = tensor_map_spec(self.name_of(buffer), buffer.dtype, shape, box, swizzle,
                               call.span)
        previous = self.maps.setdefault(buffer, spec)
        if previous != spec:
            raise LoweringError(
                f"TMA copies of {buffer.name} use tiles {list(previous.box)} and {box}: one "
                "tensor map per buffer needs one tile shape", call.span)
        return spec.parameter_name


def _only_wgmma_reads(buffer: Buffer, calls: list[Call], body) -> bool:
    """Whether nothing but wgmma operands reads ``buffer`` (so it may be swizzled)."""
    loads = []
    post_order_visit(body, lambda node: loads.append(node)
                     if isinstance(node, BufferLoad) and node.buffer is buffer else None)
    other_calls = [call for call in calls if call.op not in ("tma_load", "wgmma") and any(
        getattr(arg, "buffer", arg) is buffer for arg in call.args)]
    return not loads and not other_calls


def build_hopper(func):
    """Compile a barrier-form program (already lowered by
    :func:`tilepipe.transform.barriers.lower_to_barriers` or
    :func:`tilepipe.transform.warp_specialize.warp_specialize`) for sm_90a; the result
    launches like :func:`tilepipe.backend.cuda.build`'s, encoding the tensor maps over
    the arguments' device addresses. The CUDA lowering passes (cp.async waits, block
    barriers) do not apply: mbarriers already order everything."""
    from .compiler import compile_source
    from .runtime import CompiledKernel

    kernel = HopperEmitter(func, ARCH).emit()
    return CompiledKernel(func, kernel, compile_source(kernel.source, ARCH))
