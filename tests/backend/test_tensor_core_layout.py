"""The per-lane fragment layout of the tensor-core emitters, checked against a model of
the hardware written from the PTX ISA's descriptions of ``ldmatrix`` and of the
``mma.m16n8k16`` fragments: loading tiles with the emitted lane addresses and registers,
multiplying with the documented operand layouts and storing with the emitted lane
positions must compute the tile-level ``C += A @ B``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilepipe.arith import Analyzer
from tilepipe.backend.cuda.tensor_core import (
    LANE, Tile, block_slots, lane_pairs_text, ldmatrix_lane_source_text,
)
from tilepipe.ir import Buffer, BufferRegion, IntImm, Range, as_int

LANES = range(32)


def _evaluate_lane_text(text: str, lane: int) -> int:
    """Evaluate an emitted C++ integer expression of the lane (non-negative operands)."""
    return eval(text.replace("/", "//"), {LANE: lane})  # noqa: S307 - our own C text


def _region(buffer: Buffer, starts: tuple[int, ...], extents: tuple[int, ...]) -> BufferRegion:
    return BufferRegion(buffer, tuple(Range(IntImm(start), IntImm(extent))
                                      for start, extent in zip(starts, extents)))


def _tile(buffer: Buffer, starts: tuple[int, ...], rows: int, columns: int) -> Tile:
    extents = (1,) * (len(starts) - 2) + (rows, columns)
    region = _region(buffer, starts, extents)
    offset = 0
    for extent, start in zip((as_int(e) for e in buffer.shape), starts):
        offset = offset * extent + start
    return Tile(region, IntImm(offset), rows, columns)


def _slots(tile: Tile) -> list[int]:
    return [as_int(slot) for slot in block_slots(tile, Analyzer())]


def _hardware_ldmatrix(shared: np.ndarray, tile_start: tuple[int, int], rows: int,
                       columns: int, transpose: bool) -> np.ndarray:
    """Registers ``[lane, matrix, 2]`` that ldmatrix gives, from the lanes' row addresses:
    thread t gets elements 2(t%4), 2(t%4)+1 of row t//4 of each 8x8 matrix, or with .trans
    element t//4 of rows 2(t%4), 2(t%4)+1."""
    row_text, column_text = ldmatrix_lane_source_text(rows, columns, transpose)
    addresses = [(tile_start[0] + _evaluate_lane_text(row_text, lane),
                  tile_start[1] + _evaluate_lane_text(column_text, lane)) for lane in LANES]
    matrices = rows * columns // 64
    registers = np.zeros((32, matrices, 2), shared.dtype)
    for thread in LANES:
        for matrix in range(matrices):
            for element in range(2):
                if transpose:
                    row, column = addresses[8 * matrix + 2 * (thread % 4) + element]
                    registers[thread, matrix, element] = shared[row, column + thread // 4]
                else:
                    row, column = addresses[8 * matrix + thread // 4]
                    registers[thread, matrix, element] = shared[
                        row, column + 2 * (thread % 4) + element]
    return registers


def _store_registers(fragment: np.ndarray, slots: list[int], registers: np.ndarray) -> None:
    for matrix, slot in enumerate(slots):
        fragment[:, slot:slot + 2] = registers[:, matrix, :]


def _hardware_mma(accumulator: np.ndarray, c_slots, a: np.ndarray, a_slots, b: np.ndarray,
                  b_slots) -> None:
    """m16n8k16 with the PTX fragment layouts (groupID = lane // 4, t = lane % 4):
    a_i at row groupID + 8 (i//2 % 2), column 2t + i%2 + 8 (i//4); b_i at k row
    2t + i%2 + 8 (i//2), column groupID; c_i at row groupID + 8 (i//2), column 2t + i%2."""
    a_values = np.concatenate([a[:, slot:slot + 2] for slot in a_slots], axis=1)
    b_values = np.concatenate([b[:, slot:slot + 2] for slot in b_slots], axis=1)
    c_values = np.concatenate([accumulator[:, slot:slot + 2] for slot in c_slots], axis=1)
    matrix_a = np.zeros((16, 16), np.float32)
    matrix_b = np.zeros((16, 8), np.float32)
    matrix_c = np.zeros((16, 8), np.float32)
    for lane in LANES:
        group, thread = lane // 4, lane % 4
        for i in range(8):
            matrix_a[group + 8 * (i // 2 % 2), 2 * thread + i % 2 + 8 * (i // 4)] = \
                a_values[lane, i]
        for i in range(4):
            matrix_b[2 * thread + i % 2 + 8 * (i // 2), group] = b_values[lane, i]
            matrix_c[group + 8 * (i // 2), 2 * thread + i % 2] = c_values[lane, i]
    result = matrix_a @ matrix_b + matrix_c
    for lane in LANES:
        group, thread = lane // 4, lane % 4
        for i in range(4):
            slot = c_slots[i // 2] + i % 2
            accumulator[lane, slot] = result[group + 8 * (i // 2), 2 * thread + i % 2]


def _hardware_store(destination: np.ndarray, start: tuple[int, int], tile: Tile,
                    accumulator: np.ndarray) -> None:
    for (row_text, column_text), slot in zip(lane_pairs_text(tile), _slots(tile)):
        for lane in LANES:
            row = start[0] + _evaluate_lane_text(row_text, lane)
            column = start[1] + _evaluate_lane_text(column_text, lane)
            destination[row, column:column + 2] = accumulator[lane, slot:slot + 2]


def fragment_elements(buffer: Buffer) -> int:
    """Each lane holds a 32nd of a fragment buffer."""
    return int(np.prod([as_int(extent) for extent in buffer.shape])) // 32


def test_slots_enumerate_blocks_column_major():
    a_warp = Buffer("A_warp", (IntImm(2), IntImm(16), IntImm(16)), "float16", "warp")
    # Tile 1 starts after tile 0's 8 elements per lane; blocks (0,0), (1,0), (0,1), (1,1).
    assert _slots(_tile(a_warp, (1, 0, 0), 16, 16)) == [8, 10, 12, 14]
    # The lower 8x16 half: blocks (1, 0) and (1, 1) of the 16x16 tile.
    assert _slots(_tile(a_warp, (0, 8, 0), 8, 16)) == [2, 6]


@pytest.mark.parametrize("a_tile_index,b_half", [(0, 0), (1, 1), (2, 0)])
def test_ldmatrix_mma_store_compute_the_tile_product(a_tile_index, b_half):
    random = np.random.default_rng(a_tile_index * 2 + b_half)
    # Shared tiles with padded rows, as the GEMM kernel lays them out.
    a_shared = random.standard_normal((48, 40)).astype(np.float16)   # rows m, columns k
    b_shared = random.standard_normal((16, 40)).astype(np.float16)   # rows k, columns n
    a_start, b_start = (16 * a_tile_index, 8), (0, 16)
    a_warp = Buffer("A_warp", (IntImm(3), IntImm(16), IntImm(16)), "float16", "warp")
    b_warp = Buffer("B_warp", (IntImm(2), IntImm(16), IntImm(16)), "float16", "warp")
    c_warp = Buffer("C_warp", (IntImm(2), IntImm(16), IntImm(8)), "float32", "warp")
    a_fragment = np.zeros((32, fragment_elements(a_warp)), np.float16)
    b_fragment = np.zeros((32, fragment_elements(b_warp)), np.float16)
    c_fragment = np.zeros((32, fragment_elements(c_warp)), np.float32)

    a_tile = _tile(a_warp, (a_tile_index, 0, 0), 16, 16)
    _store_registers(a_fragment, _slots(a_tile),
                     _hardware_ldmatrix(a_shared, a_start, 16, 16, transpose=False))
    b_tile = _tile(b_warp, (1, 0, 0), 16, 16)   # (n, k): the transpose of b_shared's tile
    _store_registers(b_fragment, _slots(b_tile),
                     _hardware_ldmatrix(b_shared, b_start, 16, 16, transpose=True))
    c_tile = _tile(c_warp, (1, 0, 0), 16, 8)
    c_fragment[:, _slots(c_tile)[0]:_slots(c_tile)[0] + 4] = 1.0  # what mma_fill writes
    b_operand = _tile(b_warp, (1, 8 * b_half, 0), 8, 16)
    _hardware_mma(c_fragment, _slots(c_tile), a_fragment, _slots(a_tile), b_fragment,
                  _slots(b_operand))
    output = np.zeros((32, 32), np.float32)
    _hardware_store(output, (8, 16), c_tile, c_fragment)

    a = a_shared[a_start[0]:a_start[0] + 16, a_start[1]:a_start[1] + 16].astype(np.float32)
    b = b_shared[b_start[0]:b_start[0] + 16,
                 b_start[1] + 8 * b_half:b_start[1] + 8 * b_half + 8].astype(np.float32)
    expected = np.zeros((32, 32), np.float32)
    expected[8:24, 16:24] = a @ b + 1.0
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-5)


@st.composite
def _fragment_loads(draw):
    """A fragment buffer, a tile of one, two or four 8x8 blocks placed anywhere in it on
    8-element boundaries, and whether ldmatrix transposes."""
    rows, columns = draw(st.sampled_from([(8, 8), (16, 8), (8, 16), (16, 16)]))
    buffer_rows = draw(st.sampled_from([16, 24, 32]))
    buffer_columns = draw(st.sampled_from([16, 24, 32]))
    tiles = draw(st.integers(1, 3))
    start = (draw(st.integers(0, tiles - 1)),
             8 * draw(st.integers(0, (buffer_rows - rows) // 8)),
             8 * draw(st.integers(0, (buffer_columns - columns) // 8)))
    return (tiles, buffer_rows, buffer_columns), start, rows, columns, draw(st.booleans())


@settings(max_examples=40, deadline=None)
@given(_fragment_loads())
def test_ldmatrix_places_every_element_where_the_layout_says(load):
    """Element (i, j) of a fragment buffer lives in lane 4 (i % 8) + (j % 8) // 2, at slot
    tile * rows * columns / 32 + 2 * block + j % 2, blocks numbered column-major."""
    shape, start, rows, columns, transpose = load
    buffer = Buffer("F", tuple(IntImm(extent) for extent in shape), "float16", "warp")
    shared = np.arange(32 * 32, dtype=np.float16).reshape(32, 32)
    source_start = (8, 16)
    tile = _tile(buffer, start, rows, columns)
    fragment = np.zeros((32, fragment_elements(buffer)), np.float16)
    _store_registers(fragment, _slots(tile),
                     _hardware_ldmatrix(shared, source_start, rows, columns, transpose))
    source_rows, source_columns = (columns, rows) if transpose else (rows, columns)
    source = shared[source_start[0]:source_start[0] + source_rows,
                    source_start[1]:source_start[1] + source_columns]
    expected = source.T if transpose else source
    tiles, buffer_rows, buffer_columns = shape
    for i in range(rows):
        for j in range(columns):
            row, column = start[1] + i, start[2] + j
            block = (column // 8) * (buffer_rows // 8) + row // 8
            slot = start[0] * buffer_rows * buffer_columns // 32 + 2 * block + column % 2
            lane = 4 * (row % 8) + (column % 8) // 2
            assert fragment[lane, slot] == expected[i, j]
