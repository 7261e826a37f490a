"""CUDA emission of the tensor-core intrinsics: ``ldmatrix`` and ``mma.sync.m16n8k16``.

In the IR these are warp-collective operations on 2-D tiles of ``warp``-scope fragment
buffers (see :mod:`tilepipe.sim.tensor_core` for their meaning). On the GPU a fragment
buffer is spread over the 32 lanes of a warp, each holding ``size // 32`` elements in
registers, in the layout the PTX fragments use, extended to any tile of whole 8x8 blocks:

* a buffer's trailing two dimensions ``(rows, columns)`` form its tiles (multiples of 8);
  its leading dimensions number the tiles;
* a tile is cut into 8x8 blocks, enumerated column-major (block ``(r, c)`` has number
  ``c * rows // 8 + r``), each block taking two consecutive elements of each lane;
* element ``(i, j)`` of a block lives in lane ``4 * (i % 8) + (j % 8) // 2``, at position
  ``j % 2`` of the block's pair.

With this layout the registers ``ldmatrix`` fills for a 16x16 tile are, in order, the
``a0a1 .. a6a7`` of an m16n8k16 A operand, an 8x16 ``(n, k)`` tile gives ``b0b1, b2b3`` of
the B operand, and a 16x8 fp32 tile gives ``c0 .. c3`` of the accumulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...arith import Analyzer
from ...errors import LoweringError
from ...ir import EQ, Buffer, BufferRegion, Call, Cast, FloatImm, IntImm, PrimExpr, as_int
from .intrinsics import register_intrinsic

if TYPE_CHECKING:
    from .codegen import CudaEmitter

WARP_SIZE = 32
BLOCK = 8  # the 8x8 blocks of ldmatrix and of the mma fragments
FRAGMENT_SCOPE = "warp"
LANE = "tilepipe_lane"
LANE_DECLARATION = (f"unsigned {LANE}; "
                     f'asm("mov.u32 %0, %%laneid;" : "=r"({LANE}));')


# The fragment layout ------------------------------------------------------------------
def ldmatrix_lane_source_text(rows: int, columns: int, transpose: bool) -> tuple[str, str]:
    """The ``(row, column)`` of the source tile whose 16-byte row each lane addresses when
    ``ldmatrix`` fills a ``rows x columns`` destination tile, as C++ expressions of the
    lane: lane ``l`` gives row ``l % 8`` of matrix ``l // 8``, the matrices being the
    destination's 8x8 blocks in slot order (each the transpose of a source block when
    ``transpose``)."""
    matrices = rows * columns // (BLOCK * BLOCK)
    matrix = f"(({LANE} / {BLOCK}) % {matrices})"
    block_row = f"({matrix} % {rows // BLOCK})"
    block_column = f"({matrix} / {rows // BLOCK})"
    if transpose:  # destination block (r, c) is the transpose of source block (c, r)
        block_row, block_column = block_column, block_row
    return f"({BLOCK} * {block_row} + {LANE} % {BLOCK})", f"({BLOCK} * {block_column})"


# Regions of the IR ----------------------------------------------------------------------
@dataclass(frozen=True)
class Tile:
    """A 2-D tile of a buffer: its element offset and its shape."""

    region: BufferRegion
    offset: PrimExpr  # flat index of the tile's first element (leading index for fragments)
    rows: int
    columns: int

    @property
    def buffer(self) -> Buffer:
        return self.region.buffer


def _constant_shape(buffer: Buffer) -> tuple[int, ...]:
    shape = tuple(as_int(extent) for extent in buffer.shape)
    if any(extent is None for extent in shape):
        raise LoweringError(f"buffer '{buffer.name}' needs a constant shape here, "
                            f"got {buffer.shape}", buffer.span)
    return shape


def _tile(call: Call, position: int, what: str, analyzer: Analyzer) -> Tile:
    """Argument ``position`` of ``call`` as a 2-D tile, checked."""
    if position >= len(call.args) or not isinstance(call.args[position], BufferRegion):
        raise LoweringError(f"T.{call.op} expects a buffer region as its {what}", call.span)
    region = call.args[position]
    extents = [analyzer.simplify(range_.extent) for range_ in region.region]
    constant = [as_int(extent) for extent in extents]
    if len(constant) < 2 or any(extent is None for extent in constant):
        raise LoweringError(
            f"T.{call.op}: the {what} '{region.buffer.name}' needs a 2-D region of constant "
            f"extents", call.span)
    if any(extent != 1 for extent in constant[:-2]):
        raise LoweringError(
            f"T.{call.op}: the {what} '{region.buffer.name}' must be a 2-D tile: its leading "
            f"dimensions need extent 1, got extents {constant}", call.span)
    shape = _constant_shape(region.buffer)
    offset: PrimExpr = IntImm(0)
    for extent, range_ in zip(shape, region.region):
        offset = offset * extent + range_.min
    return Tile(region, analyzer.simplify(offset), constant[-2], constant[-1])


def _fragment_tile(call: Call, position: int, what: str, dtype: str,
                   analyzer: Analyzer) -> Tile:
    tile = _tile(call, position, what, analyzer)
    buffer = tile.buffer
    if buffer.scope != FRAGMENT_SCOPE or buffer.dtype != dtype:
        raise LoweringError(
            f"T.{call.op}: the {what} '{buffer.name}' must be a {dtype} buffer in "
            f"'{FRAGMENT_SCOPE}' scope, got {buffer.dtype} in '{buffer.scope}'", call.span)
    if tile.rows % BLOCK or tile.columns % BLOCK:
        raise LoweringError(
            f"T.{call.op}: the {what} '{buffer.name}' must be whole 8x8 blocks, got a "
            f"{tile.rows}x{tile.columns} tile", call.span)
    return tile


def _require_shape(call: Call, tile: Tile, rows: int, columns: int, what: str) -> None:
    if (tile.rows, tile.columns) != (rows, columns):
        raise LoweringError(
            f"T.{call.op}: the {what} '{tile.buffer.name}' must be a {rows}x{columns} tile, "
            f"got {tile.rows}x{tile.columns}", call.span)


def block_slots(tile: Tile, analyzer: Analyzer) -> list[PrimExpr]:
    """The first register slot of each 8x8 block of a fragment tile, column-major."""
    shape = _constant_shape(tile.buffer)
    rows, columns = shape[-2], shape[-1]
    ranges = tile.region.region
    tile_index: PrimExpr = IntImm(0)
    for extent, range_ in zip(shape[:-2], ranges[:-2]):
        tile_index = tile_index * extent + range_.min
    first_row, first_column = ranges[-2].min, ranges[-1].min
    for start, what in ((first_row, "row"), (first_column, "column")):
        if not analyzer.can_prove(EQ(start % BLOCK, IntImm(0))):
            raise LoweringError(
                f"the {what} where the tile of fragment '{tile.buffer.name}' starts must be "
                f"a multiple of {BLOCK}: {start}", tile.region.span)
    slots = []
    for block_column in range(tile.columns // BLOCK):
        for block_row in range(tile.rows // BLOCK):
            block = ((first_column // BLOCK + block_column) * (rows // BLOCK)
                     + first_row // BLOCK + block_row)
            slots.append(analyzer.simplify(
                tile_index * (rows * columns // WARP_SIZE) + block * 2))
    return slots


# Emission -----------------------------------------------------------------------------
def _fragment_word(emitter: "CudaEmitter", buffer: Buffer, slot: PrimExpr) -> str:
    """The 32-bit register holding fp16 slots ``slot, slot + 1`` of a fragment."""
    return (f"reinterpret_cast<unsigned*>({emitter.name_of(buffer)})"
            f"[({emitter.expr(slot)}) / 2]")


def _fragment_float(emitter: "CudaEmitter", buffer: Buffer, slot: PrimExpr) -> str:
    return f"{emitter.name_of(buffer)}[{emitter.expr(slot)}]"


def _boolean_argument(call: Call, position: int, what: str) -> bool:
    value = call.args[position] if position < len(call.args) else None
    constant = as_int(value) if isinstance(value, PrimExpr) else None
    if constant not in (0, 1):
        raise LoweringError(f"T.{call.op} expects True or False as its {what}", call.span)
    return bool(constant)


def _check_arity(call: Call, count: int, form: str) -> None:
    if len(call.args) != count:
        raise LoweringError(f"T.{call.op} takes {count} arguments: T.{form}", call.span)


@register_intrinsic("ldmatrix")
def emit_ldmatrix(call: Call, emitter: "CudaEmitter") -> str:
    """``ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16``: each lane addresses one
    16-byte source row and receives its elements of every 8x8 matrix."""
    _check_arity(call, 3, "ldmatrix(fragment, shared, transpose)")
    analyzer = emitter.analyzer
    destination = _fragment_tile(call, 0, "destination", "float16", analyzer)
    source = _tile(call, 1, "source", analyzer)
    transpose = _boolean_argument(call, 2, "transpose flag")
    if source.buffer.scope not in ("shared", "shared.dyn") or source.buffer.dtype != "float16":
        raise LoweringError(
            f"T.ldmatrix reads a float16 buffer in shared memory; '{source.buffer.name}' is "
            f"{source.buffer.dtype} in '{source.buffer.scope}'", call.span)
    expected = ((destination.columns, destination.rows) if transpose
                else (destination.rows, destination.columns))
    _require_shape(call, source, *expected, "source")
    matrices = destination.rows * destination.columns // (BLOCK * BLOCK)
    if matrices not in (1, 2, 4):
        raise LoweringError(
            f"T.ldmatrix loads one, two or four 8x8 matrices, not a "
            f"{destination.rows}x{destination.columns} tile", call.span)
    row_stride = _constant_shape(source.buffer)[-1]
    if row_stride % BLOCK or not analyzer.can_prove(EQ(source.offset % BLOCK, IntImm(0))):
        raise LoweringError(
            f"T.ldmatrix reads 16-byte aligned rows: the rows of '{source.buffer.name}' need "
            f"a length that is a multiple of {BLOCK} and the tile a start that is one",
            call.span)
    lane_row, lane_column = ldmatrix_lane_source_text(destination.rows,
                                                      destination.columns, transpose)
    address = (f"{emitter.name_of(source.buffer)} + ({emitter.expr(source.offset)})"
               f" + {lane_row} * {row_stride} + {lane_column}")
    registers = [_fragment_word(emitter, destination.buffer, slot)
                 for slot in block_slots(destination, analyzer)]
    operands = ", ".join(f"%{position}" for position in range(matrices))
    outputs = ", ".join(f'"=r"({register})' for register in registers)
    instruction = (f"ldmatrix.sync.aligned.m8n8.x{matrices}{'.trans' if transpose else ''}"
                   f".shared.b16")
    return (f"{{ {LANE_DECLARATION}\n"
            f'  asm volatile("{instruction} {{{operands}}}, [%{matrices}];\\n"\n'
            f"    : {outputs}\n"
            f'    : "r"(static_cast<unsigned>(__cvta_generic_to_shared({address})))); }}')


@register_intrinsic("mma_sync")
def emit_mma_sync(call: Call, emitter: "CudaEmitter") -> str:
    """``mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32``, accumulating in place."""
    _check_arity(call, 3, "mma_sync(accumulator, a, b)")
    analyzer = emitter.analyzer
    accumulator = _fragment_tile(call, 0, "accumulator", "float32", analyzer)
    a = _fragment_tile(call, 1, "A operand", "float16", analyzer)
    b = _fragment_tile(call, 2, "B operand", "float16", analyzer)
    _require_shape(call, accumulator, 16, 8, "accumulator")
    _require_shape(call, a, 16, 16, "A operand")
    _require_shape(call, b, 8, 16, "B operand")
    c_registers = []
    for slot in block_slots(accumulator, analyzer):
        c_registers += [_fragment_float(emitter, accumulator.buffer, slot),
                        _fragment_float(emitter, accumulator.buffer, slot + 1)]
    a_registers = [_fragment_word(emitter, a.buffer, slot) for slot in block_slots(a, analyzer)]
    b_registers = [_fragment_word(emitter, b.buffer, slot) for slot in block_slots(b, analyzer)]
    outputs = ", ".join(f'"+f"({register})' for register in c_registers)
    inputs = ", ".join(f'"r"({register})' for register in a_registers + b_registers)
    return ('asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "\n'
            '    "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\\n"\n'
            f"    : {outputs}\n"
            f"    : {inputs})")


def lane_pairs_text(tile: Tile) -> list[tuple[str, str]]:
    """Row and column (C++ expressions of the lane) of the first element of each pair a
    lane holds of a tile, one pair per 8x8 block, column-major as the slots."""
    pairs = []
    for block_column in range(tile.columns // BLOCK):
        for block_row in range(tile.rows // BLOCK):
            pairs.append((f"{BLOCK * block_row} + {LANE} / 4",
                          f"{BLOCK * block_column} + 2 * ({LANE} % 4)"))
    return pairs


@register_intrinsic("mma_fill")
def emit_mma_fill(call: Call, emitter: "CudaEmitter") -> str:
    """Each lane sets its registers of an accumulator tile."""
    _check_arity(call, 2, "mma_fill(accumulator, value)")
    analyzer = emitter.analyzer
    accumulator = _fragment_tile(call, 0, "accumulator", "float32", analyzer)
    value = call.args[1]
    if not isinstance(value, PrimExpr):
        raise LoweringError("T.mma_fill expects a number as its second argument", call.span)
    if isinstance(value, IntImm):
        value = FloatImm(float(value.value), "float32")
    elif value.dtype != "float32":
        value = Cast("float32", value)
    text = emitter.expr(value)
    statements = []
    for slot in block_slots(accumulator, analyzer):
        for offset in (0, 1):
            statements.append(
                f"{_fragment_float(emitter, accumulator.buffer, slot + offset)} = {text};")
    return "{ " + " ".join(statements) + " }"


@register_intrinsic("mma_store")
def emit_mma_store(call: Call, emitter: "CudaEmitter") -> str:
    """Each lane writes its pairs of accumulator elements as ``float2``."""
    _check_arity(call, 2, "mma_store(destination, accumulator)")
    analyzer = emitter.analyzer
    destination = _tile(call, 0, "destination", analyzer)
    accumulator = _fragment_tile(call, 1, "accumulator", "float32", analyzer)
    _require_shape(call, destination, accumulator.rows, accumulator.columns, "destination")
    if destination.buffer.dtype != "float32" or destination.buffer.scope not in (
            "global", "shared", "shared.dyn"):
        raise LoweringError(
            f"T.mma_store writes a float32 buffer in global or shared memory; "
            f"'{destination.buffer.name}' is {destination.buffer.dtype} in "
            f"'{destination.buffer.scope}'", call.span)
    row_stride = _constant_shape(destination.buffer)[-1]
    if row_stride % 2 or not analyzer.can_prove(EQ(destination.offset % 2, IntImm(0))):
        raise LoweringError(
            f"T.mma_store writes aligned pairs of elements: the rows of "
            f"'{destination.buffer.name}' need an even length and the tile an even start",
            call.span)
    base = f"{emitter.name_of(destination.buffer)} + ({emitter.expr(destination.offset)})"
    statements = [LANE_DECLARATION]
    slots = block_slots(accumulator, analyzer)
    for (row, column), slot in zip(lane_pairs_text(accumulator), slots):
        first = _fragment_float(emitter, accumulator.buffer, slot)
        second = _fragment_float(emitter, accumulator.buffer, slot + 1)
        statements.append(
            f"*reinterpret_cast<float2*>({base} + ({row}) * {row_stride} + {column}) = "
            f"make_float2({first}, {second});")
    return "{ " + "\n  ".join(statements) + " }"
