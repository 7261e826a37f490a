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

The fp16 products are exact in fp32, and the sums are taken in fp32, as on the tensor
core (the order of the additions may differ: compare within a tolerance).
"""

from __future__ import annotations

import numpy as np

from ..errors import TilepipeError

MMA_SHAPES = {"accumulator": (16, 8), "a": (16, 16), "b": (8, 16)}
LDMATRIX_SHAPES = ((8, 8), (16, 8), (8, 16), (16, 16))


class TensorCoreError(TilepipeError):
    """A tensor-core intrinsic applied to tiles of the wrong shape, dtype or scope."""


def as_tile(region: np.ndarray, what: str, span=None) -> np.ndarray:
    """The 2-D view of a region whose leading dimensions have extent 1."""
    if region.ndim < 2 or any(extent != 1 for extent in region.shape[:-2]):
        raise TensorCoreError(
            f"{what} must be a 2-D tile (leading dimensions of extent 1), "
            f"got a region of shape {tuple(region.shape)}", span)
    return region.reshape(region.shape[-2:])


def _check_shape(tile: np.ndarray, expected: tuple[int, int], what: str, span) -> None:
    if tuple(tile.shape) != expected:
        raise TensorCoreError(
            f"{what} must be a {expected[0]}x{expected[1]} tile, got "
            f"{tile.shape[0]}x{tile.shape[1]}", span)


def ldmatrix(fragment: np.ndarray, shared: np.ndarray, transpose: bool, span=None) -> None:
    """Load one, two or four 8x8 fp16 matrices of ``shared`` into ``fragment``."""
    source = as_tile(shared, "the ldmatrix source", span)
    if tuple(source.shape) not in LDMATRIX_SHAPES:
        raise TensorCoreError(
            "the ldmatrix source must be 8x8, 8x16, 16x8 or 16x16 (one, two or four 8x8 "
            f"matrices), got {source.shape[0]}x{source.shape[1]}", span)
    values = source.T if transpose else source
    destination = as_tile(fragment, "the ldmatrix destination", span)
    _check_shape(destination, tuple(values.shape), "the ldmatrix destination", span)
    destination[...] = values


def mma_sync(accumulator: np.ndarray, a: np.ndarray, b: np.ndarray, span=None) -> None:
    """``accumulator += a @ b^T`` for one m16n8k16 tile, products and sums in fp32."""
    tiles = {"accumulator": as_tile(accumulator, "the mma accumulator", span),
             "a": as_tile(a, "the mma A operand", span),
             "b": as_tile(b, "the mma B operand", span)}
    for name, tile in tiles.items():
        _check_shape(tile, MMA_SHAPES[name], f"the mma {name} operand", span)
    product = tiles["a"].astype(np.float32) @ tiles["b"].astype(np.float32).T
    tiles["accumulator"][...] = tiles["accumulator"].astype(np.float32) + product


def mma_fill(accumulator: np.ndarray, value: float, span=None) -> None:
    """Set every element of an accumulator tile."""
    as_tile(accumulator, "the mma_fill destination", span)[...] = value


def mma_store(destination: np.ndarray, accumulator: np.ndarray, span=None) -> None:
    """Copy an accumulator tile out of the fragment registers."""
    source = as_tile(accumulator, "the mma_store source", span)
    target = as_tile(destination, "the mma_store destination", span)
    _check_shape(target, tuple(source.shape), "the mma_store destination", span)
    target[...] = source
