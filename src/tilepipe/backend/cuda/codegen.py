"""CUDA C++ code generation from a lowered PrimFunc.

Thread-binding loops become ``threadIdx``/``blockIdx`` reads (the launch shape is the
largest extent bound to each axis), shared buffers become ``__shared__`` arrays (one
dynamic pool when they exceed 48 KB or a buffer asks for ``shared.dyn``), local buffers
become register arrays, vectorized copies become vector loads and stores, async copies
become ``cp.async``, commit groups ``cp.async.commit_group`` and waits
``cp.async.wait_group N``. Intrinsic calls go through :mod:`.intrinsics`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ...arith import Analyzer
from ...errors import LoweringError, Span
from ...ir import (
    EQ, GE, GT, LE, LT, NE, SHARED_SCOPES, Add, And, AsyncCommitQueue, AsyncScope,
    AsyncWaitQueue, AttrStmt, BinaryOp, Block, Buffer, BufferLoad, BufferStore, Call, Cast,
    Div, Evaluate, FloatImm, FloorDiv, FloorMod, For, ForKind, IfThenElse, IntImm, Max, Min,
    Mul, Not, Or, PrimExpr, PrimFunc, Range, Select, SeqStmt, Stmt, StringImm, Sub, Var,
    as_int, dtype_bytes, free_size_vars, is_float_dtype, post_order_visit,
)
from .async_copy import (
    first_lane_indices, flat_offset, is_multiple_of, match_async_copy,
)
from .intrinsics import intrinsic_handler

ARCHES = ("sm_80", "sm_86", "sm_89", "sm_90", "sm_90a")
STATIC_SHARED_LIMIT = 48 * 1024
THREAD_AXES = ("threadIdx.x", "threadIdx.y", "threadIdx.z")
BLOCK_AXES = ("blockIdx.x", "blockIdx.y", "blockIdx.z")

C_TYPES = {
    "float32": "float", "float64": "double", "float16": "half", "bfloat16": "nv_bfloat16",
    "int8": "signed char", "uint8": "unsigned char", "int16": "short",
    "uint16": "unsigned short", "int32": "int", "uint32": "unsigned int",
    "int64": "long long", "uint64": "unsigned long long", "bool": "bool",
}
_VECTOR_TYPES = {4: "unsigned int", 8: "uint2", 16: "uint4"}
_INFIX = {Add: "+", Sub: "-", Mul: "*", Div: "/", EQ: "==", NE: "!=", LT: "<", LE: "<=",
          GT: ">", GE: ">=", And: "&&", Or: "||"}

_PRELUDE = r"""
template <typename T>
__device__ __forceinline__ T floordiv(T a, T b) {
  T q = a / b;
  return (q * b != a && ((a < 0) != (b < 0))) ? q - 1 : q;
}

template <typename T>
__device__ __forceinline__ T floormod(T a, T b) {
  T r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

// cp.async of Bytes (4, 8 or 16) from global to shared memory; 16-byte copies bypass L1.
template <int Bytes>
__device__ __forceinline__ void cp_async(void* shared_destination, const void* global_source) {
  unsigned int destination =
      static_cast<unsigned int>(__cvta_generic_to_shared(shared_destination));
  if constexpr (Bytes == 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n"
                 :: "r"(destination), "l"(global_source) : "memory");
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n"
                 :: "r"(destination), "l"(global_source), "n"(Bytes) : "memory");
  }
}

__device__ __forceinline__ void cp_async_commit_group() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}

template <int InFlight>
__device__ __forceinline__ void cp_async_wait_group() {
  asm volatile("cp.async.wait_group %0;\n" :: "n"(InFlight) : "memory");
}
"""


@dataclass(frozen=True)
class KernelSource:
    """The generated kernel and what launching it needs.

    ``params`` is the kernel's argument order: the function's parameters, then its free
    size variables. ``grid`` and ``block`` are (x, y, z) extents, expressions of those.
    """

    name: str
    source: str
    arch: str
    params: tuple
    grid: tuple[PrimExpr, PrimExpr, PrimExpr]
    block: tuple[PrimExpr, PrimExpr, PrimExpr]
    dynamic_shared_bytes: int
    tensor_maps: tuple = ()  # TMA descriptions (tma.TensorMapSpec), kernel arguments after params


def codegen(func: PrimFunc, arch: str = "sm_80") -> str:
    """CUDA C++ of a lowered function (see :func:`tilepipe.backend.cuda.lower`)."""
    return generate(func, arch).source


def generate(func: PrimFunc, arch: str = "sm_80") -> KernelSource:
    """The kernel source with its launch shape and argument order."""
    if arch not in ARCHES:
        raise LoweringError(f"unknown CUDA architecture '{arch}' (known: {', '.join(ARCHES)})")
    if arch == "sm_90a":
        from .hopper import HopperEmitter

        return HopperEmitter(func, arch).emit()
    return CudaEmitter(func, arch).emit()


def c_identifier(name: str) -> str:
    cleaned = re.sub(r"\W", "_", name)
    return cleaned if cleaned and not cleaned[0].isdigit() else "_" + cleaned


class CudaEmitter:
    """Prints one kernel; also the service object intrinsic handlers receive."""

    def __init__(self, func: PrimFunc, arch: str):
        self.func = func
        self.arch = arch
        self.analyzer = Analyzer()
        self.lines: list[str] = []
        self.libraries: dict[str, str] = {}  # device code of intrinsics, by name, in order
        self.indent = 1
        self.names: dict[object, str] = {}
        self.used_names: set[str] = set(C_TYPES.values()) | {"floordiv", "floormod", "half"}
        self.headers: set[str] = set()
        self.launch: dict[str, PrimExpr] = {}
        self.shared_declarations: list[str] = []
        self.dynamic_shared_bytes = 0
        self.thread_vars: set[Var] = set()
        self.divergence = 0  # how many enclosing conditions depend on the thread

    # Names and types --------------------------------------------------------------------
    def name_of(self, node: Var | Buffer) -> str:
        name = self.names.get(node)
        if name is None:
            base = c_identifier(node.name)
            name, suffix = base, 1
            while name in self.used_names:
                suffix += 1
                name = f"{base}_{suffix}"
            self.used_names.add(name)
            self.names[node] = name
        return name

    def ctype(self, dtype: str) -> str:
        if dtype not in C_TYPES:
            raise LoweringError(f"the CUDA backend has no type for dtype '{dtype}'")
        if dtype == "float16":
            self.headers.add("cuda_fp16.h")
        if dtype == "bfloat16":
            self.headers.add("cuda_bf16.h")
        return C_TYPES[dtype]

    def error(self, node, message: str) -> LoweringError:
        return LoweringError(message, getattr(node, "span", None))

    # Kernel -----------------------------------------------------------------------------
    def emit(self) -> KernelSource:
        func = self.func
        sizes = [var for var in free_size_vars(func)]
        params = tuple(func.params) + tuple(sizes)
        arguments = []
        for param in params:
            if isinstance(param, Buffer):
                if param.scope != "global":
                    raise self.error(param, f"parameter {param.name} must be a global buffer, "
                                            f"not '{param.scope}'")
                arguments.append(f"{self.ctype(param.dtype)}* __restrict__ {self.name_of(param)}")
            else:
                arguments.append(f"{self.ctype(param.dtype)} {self.name_of(param)}")
        self._collect_launch(func.body)
        self._plan_shared(func.body)
        self.stmt(func.body)
        body = self.lines
        block = tuple(self.launch.get(axis, IntImm(1)) for axis in THREAD_AXES)
        grid = tuple(self.launch.get(axis, IntImm(1)) for axis in BLOCK_AXES)
        threads = math.prod(as_int(extent) or 0 for extent in block)
        bounds = self.launch_bounds(threads)
        name = c_identifier(func.name)
        header = [f"// Generated by tilepipe from '{func.name}' for {self.arch}."]
        header += [f"#include <{include}>" for include in sorted(self.headers)]
        arguments += self.extra_parameters()
        signature = f'extern "C" __global__ void {bounds}{name}({", ".join(arguments)}) {{'
        source = "\n".join(header + [_PRELUDE.strip("\n")] + list(self.libraries.values())
                           + ["", signature] + self.shared_declarations + body + ["}", ""])
        return KernelSource(name, source, self.arch, params, grid, block,
                            self.dynamic_shared_bytes, self.tensor_maps())

    # Extension hooks: target emitters (hopper.HopperEmitter) override these -------------
    def launch_bounds(self, threads: int) -> str:
        return f"__launch_bounds__({threads}) " if threads else ""

    def shared_alignment(self, buffer: Buffer) -> int:
        """Bytes to which the start of a shared buffer is aligned."""
        return 16

    def extra_parameters(self) -> list[str]:
        """Kernel parameters after the function's own, declared while emitting the body."""
        return []

    def tensor_maps(self) -> tuple:
        return ()

    def _collect_launch(self, body: Stmt) -> None:
        def visit(node) -> None:
            if isinstance(node, For) and node.kind is ForKind.THREAD_BINDING:
                tag = node.thread_tag
                if tag in THREAD_AXES:
                    self.thread_vars.add(node.loop_var)
                if tag not in THREAD_AXES + BLOCK_AXES:
                    raise self.error(node, f"unknown thread axis '{tag}'")
                extent = node.extent
                previous = self.launch.get(tag)
                if previous is None:
                    self.launch[tag] = extent
                elif as_int(previous) is not None and as_int(extent) is not None:
                    self.launch[tag] = IntImm(max(as_int(previous), as_int(extent)))
                elif not self.analyzer.can_prove(EQ(previous, extent)):
                    raise self.error(node, f"{tag} is bound with different extents "
                                           f"{previous!r} and {extent!r}")

        post_order_visit(body, visit)

    def _plan_shared(self, body: Stmt) -> None:
        shared: list[Buffer] = []

        def visit(node) -> None:
            if isinstance(node, Block):
                shared.extend(b for b in node.alloc_buffers if b.scope in SHARED_SCOPES)

        post_order_visit(body, visit)
        sizes = []
        for buffer in shared:
            count = math.prod(as_int(extent) or -1 for extent in buffer.shape)
            if count < 0:
                raise self.error(buffer, f"shared buffer {buffer.name} needs a constant shape, "
                                         f"not {buffer.shape!r}")
            sizes.append(count * dtype_bytes(buffer.dtype))
        dynamic = sum(sizes) > STATIC_SHARED_LIMIT or any(b.scope == "shared.dyn" for b in shared)
        offset = 0
        alignments = [self.shared_alignment(buffer) for buffer in shared]
        if dynamic and shared:
            self.shared_declarations.append(
                f"  extern __shared__ __align__({max(alignments)}) unsigned char shared_pool[];")
        for buffer, size, alignment in zip(shared, sizes, alignments):
            ctype, name = self.ctype(buffer.dtype), self.name_of(buffer)
            count = size // dtype_bytes(buffer.dtype)
            if dynamic:
                offset = -(-offset // alignment) * alignment
                self.shared_declarations.append(
                    f"  {ctype}* {name} = reinterpret_cast<{ctype}*>(shared_pool + {offset});")
                offset += -(-size // 16) * 16
            else:
                self.shared_declarations.append(
                    f"  __shared__ __align__({alignment}) {ctype} {name}[{count}];")
        self.dynamic_shared_bytes = offset

    # Statements -------------------------------------------------------------------------
    def line(self, text: str) -> None:
        self.lines.append("  " * self.indent + text)

    def nested(self, stmt: Stmt, in_async: bool = False) -> None:
        self.indent += 1
        self.stmt(stmt, in_async)
        self.indent -= 1

    def stmt(self, stmt: Stmt, in_async: bool = False) -> None:
        if isinstance(stmt, SeqStmt):
            for child in stmt.stmts:
                self.stmt(child, in_async)
        elif isinstance(stmt, For):
            self._for(stmt, in_async)
        elif isinstance(stmt, Block):
            self._block(stmt, in_async)
        elif isinstance(stmt, IfThenElse):
            condition = self.analyzer.simplify(stmt.condition)
            if as_int(condition) is not None:  # decided: only the branch taken
                taken = stmt.then_case if as_int(condition) else stmt.else_case
                if taken is not None:
                    self.stmt(taken, in_async)
                return
            divergent = self._divergent(condition)
            self.divergence += divergent
            self.line(f"if ({self.expr(condition)}) {{")
            self.nested(stmt.then_case, in_async)
            if stmt.else_case is not None:
                self.line("} else {")
                self.nested(stmt.else_case, in_async)
            self.line("}")
            self.divergence -= divergent
        elif in_async:
            self._async_copy(stmt)
        elif isinstance(stmt, BufferStore):
            self.line(f"{self._element(stmt.buffer, stmt.indices)} = {self.expr(stmt.value)};")
        elif isinstance(stmt, Evaluate):
            self._evaluate(stmt)
        elif isinstance(stmt, AsyncScope):
            self.stmt(stmt.body, in_async=True)
        elif isinstance(stmt, AsyncCommitQueue):
            if stmt.queue != 0:
                raise self.error(stmt, f"CUDA has one cp.async queue, but a group is committed "
                                       f"to queue {stmt.queue} (run lower() first)")
            self.stmt(stmt.body)
            self.line("cp_async_commit_group();")
        elif isinstance(stmt, AsyncWaitQueue):
            if stmt.queue != 0:
                raise self.error(stmt, f"CUDA has one cp.async queue, but a wait is on queue "
                                       f"{stmt.queue} (run lower() first)")
            self.line(self.wait_group(stmt.in_flight, stmt.span) + ";")
            self.stmt(stmt.body)
        elif isinstance(stmt, AttrStmt):
            self.line(f"// attribute {stmt.key} = {stmt.value!r}")
            self.stmt(stmt.body)
        else:
            raise self.error(stmt, f"the CUDA backend cannot emit {type(stmt).__name__}")

    def wait_group(self, in_flight: PrimExpr | None, span: Span | None) -> str:
        """``cp.async.wait_group`` needs an immediate count."""
        count = None if in_flight is None else as_int(self.analyzer.simplify(in_flight))
        if count is None or count < 0:
            raise LoweringError(f"cp.async.wait_group needs a non-negative constant count, not "
                                f"{in_flight!r} (run lower() first)", span)
        return f"cp_async_wait_group<{count}>()"

    def _for(self, loop: For, in_async: bool) -> None:
        var = self.name_of(loop.loop_var)
        ctype = self.ctype(loop.loop_var.dtype)
        if loop.kind is ForKind.THREAD_BINDING:
            self.analyzer.bind(loop.loop_var, Range(loop.min, loop.extent))
            axis = loop.thread_tag
            start = "" if as_int(loop.min) == 0 else f"{self.expr(loop.min)} + "
            self.line(f"{{  // {axis}")
            self.indent += 1
            self.line(f"{ctype} {var} = {start}static_cast<{ctype}>({axis});")
            guarded = not self.analyzer.can_prove(EQ(loop.extent, self.launch[axis]))
            if guarded:
                self.line(f"if ({var} < {self.expr(loop.min + loop.extent)}) {{")
                self.divergence += axis in THREAD_AXES
                self.nested(loop.body, in_async)
                self.divergence -= axis in THREAD_AXES
                self.line("}")
            else:
                self.stmt(loop.body, in_async)
            self.indent -= 1
            self.line("}")
            return
        if loop.kind is ForKind.VECTORIZED and not in_async and self._vector_copy(loop):
            return
        self.analyzer.bind(loop.loop_var, Range(loop.min, loop.extent))
        if in_async and loop.kind is ForKind.VECTORIZED:
            self._async_copy(loop)
            return
        # Serial loops stay loops (so the SASS mirrors the program); others unroll.
        self.line("#pragma unroll" if loop.kind is not ForKind.SERIAL else "#pragma unroll 1")
        low, high = self.expr(loop.min), self.expr(self.analyzer.simplify(loop.min + loop.extent))
        self.line(f"for ({ctype} {var} = {low}; {var} < {high}; ++{var}) {{")
        self.indent += 1
        self.stmt(loop.body, in_async)
        self.indent -= 1
        self.line("}")

    def _block(self, block: Block, in_async: bool) -> None:
        opened = False
        locals_ = [b for b in block.alloc_buffers if b.scope not in SHARED_SCOPES]
        predicate = None if block.predicate is None else self.analyzer.simplify(block.predicate)
        if predicate is not None and as_int(predicate) == 0:
            return
        divergent = predicate is not None and as_int(predicate) != 1 and self._divergent(
            predicate)
        if predicate is not None and as_int(predicate) != 1:
            self.line(f"if ({self.expr(predicate)}) {{")
            opened = True
        elif locals_:
            self.line("{")
            opened = True
        if opened:
            self.indent += 1
        self.divergence += divergent
        for buffer in locals_:
            if buffer.scope not in ("local", "warp") and not buffer.scope.startswith("wmma"):
                raise self.error(block, f"cannot allocate {buffer.name} in '{buffer.scope}' "
                                        "memory inside a kernel")
            count = math.prod(as_int(extent) or -1 for extent in buffer.shape)
            if count < 0:
                raise self.error(block, f"local buffer {buffer.name} needs a constant shape")
            if buffer.scope == "warp":  # spread over the 32 lanes of a warp
                count = -(-count // 32)
            # aligned so that vectorized copies may read and write it as 16-byte words
            self.line(f"__align__(16) {self.ctype(buffer.dtype)} {self.name_of(buffer)}[{count}];")
        self.stmt(block.body, in_async)
        self.divergence -= divergent
        if opened:
            self.indent -= 1
            self.line("}")

    def _divergent(self, condition: PrimExpr) -> bool:
        """Whether ``condition`` may differ between the threads of a block."""
        found = []
        post_order_visit(condition, lambda node: found.append(node)
                         if node in self.thread_vars else None)
        return bool(found)

    def _evaluate(self, stmt: Evaluate) -> None:
        value = stmt.value
        if isinstance(value, IntImm):
            return
        if (self.divergence and isinstance(value, Call) and value.op == "tvm_storage_sync"):
            raise self.error(stmt, "a block barrier under a condition that depends on the "
                                   "thread would hang the threads that skip it")
        text = self.expr(value)
        self.line(text if text.rstrip().endswith(("}", ";")) else text + ";")

    def _async_copy(self, stmt: Stmt) -> None:
        copy = match_async_copy(stmt, self.analyzer)
        destination = self.address_of(copy.destination.buffer, copy.destination_indices)
        source = self.address_of(copy.source.buffer, copy.source_indices)
        self.line(f"cp_async<{copy.num_bytes}>({destination}, {source});")

    def _vector_copy(self, loop: For) -> bool:
        """Emit ``dst[... + v] = src[... + v]`` over 8 or 16 bytes as one vector access."""
        store = loop.body
        lanes = as_int(loop.extent)
        if not (isinstance(store, BufferStore) and isinstance(store.value, BufferLoad)
                and lanes is not None and store.buffer.dtype == store.value.buffer.dtype):
            return False
        num_bytes = lanes * dtype_bytes(store.buffer.dtype)
        if num_bytes not in (8, 16):
            return False
        self.analyzer.bind(loop.loop_var, Range(loop.min, loop.extent))
        starts = []
        for buffer, indices in ((store.buffer, store.indices),
                                (store.value.buffer, store.value.indices)):
            first = first_lane_indices(indices, loop.loop_var, loop.min, self.analyzer)
            if first is None or not is_multiple_of(flat_offset(buffer.shape, first), lanes,
                                                   self.analyzer):
                return False
            starts.append(first)
        vector = _VECTOR_TYPES[num_bytes]
        destination = self.address_of(store.buffer, starts[0])
        source = self.address_of(store.value.buffer, starts[1])
        self.line(f"*reinterpret_cast<{vector}*>({destination}) = "
                  f"*reinterpret_cast<const {vector}*>({source});")
        return True

    # Expressions ------------------------------------------------------------------------
    def flat_index(self, buffer: Buffer, indices) -> str:
        return self.expr(self.analyzer.simplify(flat_offset(buffer.shape, tuple(indices))))

    def _element(self, buffer: Buffer, indices) -> str:
        return f"{self.name_of(buffer)}[{self.flat_index(buffer, indices)}]"

    def address_of(self, buffer: Buffer, indices) -> str:
        """``&buffer[indices]`` (for intrinsics that take pointers)."""
        return f"&{self._element(buffer, indices)}"

    def expr(self, expr) -> str:
        if isinstance(expr, Var):
            return self.name_of(expr)
        if isinstance(expr, IntImm):
            return _int_literal(expr)
        if isinstance(expr, FloatImm):
            return self._float_literal(expr)
        if isinstance(expr, StringImm):
            return '"' + expr.value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(expr, BufferLoad):
            return self._element(expr.buffer, expr.indices)
        if isinstance(expr, Call):
            handler = intrinsic_handler(expr.op)
            if handler is None:
                raise self.error(expr, f"the CUDA backend has no emitter for T.{expr.op} "
                                       "(register one with register_intrinsic)")
            return handler(expr, self)
        if isinstance(expr, Cast):
            return f"static_cast<{self.ctype(expr.dtype)}>({self.expr(expr.value)})"
        if isinstance(expr, Not):
            return f"!({self.expr(expr.a)})"
        if isinstance(expr, Select):
            return (f"({self.expr(expr.condition)} ? {self.expr(expr.true_value)} : "
                    f"{self.expr(expr.false_value)})")
        if isinstance(expr, (FloorDiv, FloorMod)):
            return self._floor_operator(expr)
        if isinstance(expr, (Min, Max)):
            function = ("fminf" if isinstance(expr, Min) else "fmaxf") if expr.dtype == \
                "float32" else ("min" if isinstance(expr, Min) else "max")
            return f"{function}({self.expr(expr.a)}, {self.expr(expr.b)})"
        if isinstance(expr, BinaryOp):
            return f"({self.expr(expr.a)} {_INFIX[type(expr)]} {self.expr(expr.b)})"
        raise self.error(expr, f"the CUDA backend cannot emit {type(expr).__name__}")

    def _floor_operator(self, expr: FloorDiv | FloorMod) -> str:
        a, b = self.expr(expr.a), self.expr(expr.b)
        if is_float_dtype(expr.dtype):
            if isinstance(expr, FloorDiv):
                return f"floor({a} / {b})"
            return f"({a} - floor({a} / {b}) * {b})"
        divisor = as_int(expr.b)
        if divisor is not None and divisor > 0 and self.analyzer.can_prove(expr.a >= 0):
            return f"({a} {'/' if isinstance(expr, FloorDiv) else '%'} {b})"
        return f"{'floordiv' if isinstance(expr, FloorDiv) else 'floormod'}({a}, {b})"

    def _float_literal(self, expr: FloatImm) -> str:
        value = expr.value
        if math.isnan(value) or math.isinf(value):
            bits = "0x7fc00000" if math.isnan(value) else (
                "0x7f800000" if value > 0 else "0xff800000")
            text = f"__int_as_float({bits})"
        else:
            text = repr(float(value))
            if "e" not in text and "." not in text:
                text += ".0"
            if expr.dtype != "float64":
                text += "f"
        if expr.dtype in ("float16", "bfloat16"):
            return f"static_cast<{self.ctype(expr.dtype)}>({text})"
        return text


def _int_literal(expr: IntImm) -> str:
    if expr.dtype == "bool":
        return "true" if expr.value else "false"
    suffix = {"int64": "LL", "uint64": "ULL", "uint32": "u"}.get(expr.dtype, "")
    return f"{expr.value}{suffix}"
