"""Tile-level semantics of the tensor-core intrinsics (``ldmatrix``, ``mma.sync``).

The intrinsics are warp-collective operations on buffer regions. A ``warp``-scope buffer
holds fragments: one copy per warp, spread over the lanes' registers on the GPU, but here
a plain array of its logical shape. Each call runs once per warp on whole tiles; every
region is a 2-D tile (its leading dimensions, such as the ring version the pipeline
transform adds, have extent 1):

=====================================================  ===================================
``T.ldmatrix(fragment, shared, transpose)``            ``fragment = shared`` (or its
                                                       transpose): one, two or four 8x8
                                                       fp16 matrices
``T.mma_sync(accumulator, a, b)``                      ``accumulator += a @ b^T`` with
                                                       ``accumulator`` 16x8 fp32, ``a``
                                                       16x16 fp16 (m, k), ``b`` 8x16 fp16
                                                       (n, k): ``mma.m16n8k16.row.col``
``T.mma_fill(accumulator, value)``                     every element set to ``value``
``T.mma_store(destination, accumulator)``              ``destination = accumulator``
=====================================================  ===================================

A warp's lanes must agree on every argument. The fp16 products are exact in fp32 and
the sums are taken in fp32, as on the tensor core (the order of the additions may
differ: compare within a tolerance).
"""

from __future__ import annotations

import numpy as np

from ..errors import TilepipeError
from ..ir import BufferRegion, Call
from .context import is_lanes
from .intrinsics import register

FRAGMENT_SCOPE = "warp"
MMA_SHAPES = {"accumulator": (16, 8), "A operand": (16, 16), "B operand": (8, 16)}
LDMATRIX_SHAPES = ((8, 8), (16, 8), (8, 16), (16, 16))


class TensorCoreError(TilepipeError):
    """A tensor-core intrinsic applied to tiles of the wrong shape, dtype or scope."""


def tile_shape(shape: tuple[int, ...], what: str, span=None) -> tuple[int, int]:
    """The 2-D shape of a region whose leading dimensions have extent 1."""
    if len(shape) < 2 or any(extent != 1 for extent in shape[:-2]):
        raise TensorCoreError(
            f"{what} must be a 2-D tile (leading dimensions of extent 1), "
            f"got a region of shape {tuple(shape)}", span)
    return tuple(shape[-2:])


def as_tile(region: np.ndarray, what: str, span=None) -> np.ndarray:
    """The 2-D view of a region whose leading dimensions have extent 1."""
    return region.reshape(tile_shape(region.shape, what, span))


def _check_shape(tile: np.ndarray, expected: tuple[int, int], what: str, span) -> None:
    if tuple(tile.shape) != tuple(expected):
        raise TensorCoreError(
            f"{what} must be a {expected[0]}x{expected[1]} tile, got "
            f"{tile.shape[0]}x{tile.shape[1]}", span)


def _check_buffer(region: BufferRegion, scopes: tuple[str, ...], dtype: str, what: str,
                  span) -> None:
    buffer = region.buffer
    if buffer.scope not in scopes or buffer.dtype != dtype:
        raise TensorCoreError(
            f"{what} '{buffer.name}' must be a {dtype} buffer in {' or '.join(scopes)} "
            f"scope, got {buffer.dtype} in '{buffer.scope}'", span)


def _region_argument(call: Call, args, position: int, what: str) -> BufferRegion:
    if position >= len(args) or not isinstance(args[position], BufferRegion):
        raise TensorCoreError(f"T.{call.op} expects a buffer region as its {what}", call.span)
    return args[position]


def _warps(context):
    """One context per warp, with the variables its lanes agree on made scalars, so that
    a warp-collective operation sees the warp's uniform region bounds as one value."""
    for warp in context.per_warp():
        env = {}
        for var, value in warp.env.items():
            if is_lanes(value) and len(value) and (value == value[0]).all():
                value = value[0].item()
            env[var] = value
        yield warp.copy(env=env)


def _uniform(warp, value, what: str, call: Call):
    """The one value every lane of a warp gives for a warp-collective argument."""
    values = np.unique(warp.lanes(value))
    if len(values) != 1:
        raise TensorCoreError(
            f"T.{call.op}: the lanes of a warp disagree on the {what} ({values.tolist()})",
            call.span)
    return values[0].item()


def _region_shape(warp, region: BufferRegion, call: Call) -> tuple[int, ...]:
    return tuple(int(_uniform(warp, warp.evaluate(range_.extent), "region extents", call))
                 for range_ in region.region)


def _check_arity(call: Call, args, count: int, form: str) -> None:
    if len(args) != count:
        raise TensorCoreError(f"T.{call.op} takes {count} arguments: T.{form}", call.span)


def ldmatrix_values(source: np.ndarray, transpose: bool, span=None) -> np.ndarray:
    """The fragment tile ``ldmatrix`` loads from a shared tile of one, two or four 8x8
    fp16 matrices."""
    tile = as_tile(source, "the ldmatrix source", span)
    if tuple(tile.shape) not in LDMATRIX_SHAPES:
        raise TensorCoreError(
            "the ldmatrix source must be 8x8, 8x16, 16x8 or 16x16 (one, two or four 8x8 "
            f"matrices), got {tile.shape[0]}x{tile.shape[1]}", span)
    return tile.T if transpose else tile


def mma_values(accumulator: np.ndarray, a: np.ndarray, b: np.ndarray,
               span=None) -> np.ndarray:
    """``accumulator + a @ b^T`` for one m16n8k16 tile, products and sums in fp32."""
    tiles = [as_tile(region, f"the mma {name}", span)
             for region, name in zip((accumulator, a, b), MMA_SHAPES)]
    for tile, (name, shape) in zip(tiles, MMA_SHAPES.items()):
        _check_shape(tile, shape, f"the mma {name}", span)
    accumulator_tile, a_tile, b_tile = tiles
    return accumulator_tile.astype(np.float32) + \
        a_tile.astype(np.float32) @ b_tile.astype(np.float32).T


# Registered semantics -------------------------------------------------------------------
@register("ldmatrix")
def _ldmatrix(call: Call, args, context) -> int:
    """``T.ldmatrix(fragment, shared, transpose)``."""
    _check_arity(call, args, 3, "ldmatrix(fragment, shared, transpose)")
    fragment = _region_argument(call, args, 0, "destination fragment")
    shared = _region_argument(call, args, 1, "shared source")
    _check_buffer(fragment, (FRAGMENT_SCOPE,), "float16", "the ldmatrix destination",
                  call.span)
    _check_buffer(shared, ("shared", "shared.dyn"), "float16", "the ldmatrix source",
                  call.span)
    for warp in _warps(context):
        transpose = bool(_uniform(warp, args[2], "transpose flag", call))
        values = ldmatrix_values(warp.read_region(shared, call.span), transpose, call.span)
        shape = _region_shape(warp, fragment, call)
        if tile_shape(shape, "the ldmatrix destination", call.span) != values.shape:
            raise TensorCoreError(
                f"the ldmatrix destination must be a {values.shape[0]}x{values.shape[1]} "
                f"tile to hold its source{' transposed' if transpose else ''}, got a region "
                f"of shape {shape}", call.span)
        warp.write_region(fragment, values.reshape(shape), call.span)
    return 0


@register("mma_sync")
def _mma_sync(call: Call, args, context) -> int:
    """``T.mma_sync(accumulator, a, b)``."""
    _check_arity(call, args, 3, "mma_sync(accumulator, a, b)")
    regions = [_region_argument(call, args, position, what) for position, what in
               enumerate(("accumulator", "A operand", "B operand"))]
    for region, dtype, what in zip(regions, ("float32", "float16", "float16"),
                                   ("accumulator", "A operand", "B operand")):
        _check_buffer(region, (FRAGMENT_SCOPE,), dtype, f"the mma {what}", call.span)
    for warp in _warps(context):
        accumulator, a, b = (warp.read_region(region, call.span) for region in regions)
        result = mma_values(accumulator, a, b, call.span)
        warp.write_region(regions[0], result.reshape(accumulator.shape), call.span)
    return 0


@register("mma_fill")
def _mma_fill(call: Call, args, context) -> int:
    """``T.mma_fill(accumulator, value)``."""
    _check_arity(call, args, 2, "mma_fill(accumulator, value)")
    accumulator = _region_argument(call, args, 0, "accumulator")
    _check_buffer(accumulator, (FRAGMENT_SCOPE,), "float32", "the mma_fill destination",
                  call.span)
    for warp in _warps(context):
        value = _uniform(warp, args[1], "fill value", call)
        shape = _region_shape(warp, accumulator, call)
        tile_shape(shape, "the mma_fill destination", call.span)
        warp.write_region(accumulator, np.full(shape, value, np.float32), call.span)
    return 0


@register("mma_store")
def _mma_store(call: Call, args, context) -> int:
    """``T.mma_store(destination, accumulator)``."""
    _check_arity(call, args, 2, "mma_store(destination, accumulator)")
    destination = _region_argument(call, args, 0, "destination")
    accumulator = _region_argument(call, args, 1, "accumulator")
    _check_buffer(accumulator, (FRAGMENT_SCOPE,), "float32", "the mma_store source",
                  call.span)
    for warp in _warps(context):
        values = as_tile(warp.read_region(accumulator, call.span), "the mma_store source",
                         call.span)
        shape = _region_shape(warp, destination, call)
        if tile_shape(shape, "the mma_store destination", call.span) != values.shape:
            raise TensorCoreError(
                f"the mma_store destination must be a {values.shape[0]}x{values.shape[1]} "
                f"tile like its accumulator, got a region of shape {shape}", call.span)
        warp.write_region(destination, values.reshape(shape), call.span)
    return 0

