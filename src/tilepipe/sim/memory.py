"""Simulated memory: one array per buffer and owner, by scope.

``global`` buffers are shared by every block, ``shared`` ones exist once per block,
``warp`` fragments once per warp and every other scope (``local``, the ``wmma`` scopes)
once per thread: a per-thread buffer is one array with a leading thread axis, a
per-warp one with a leading warp axis. Floating-point buffers that nothing has written
hold NaN, so that reading too early shows in the results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TilepipeError
from ..ir import Buffer

GLOBAL, BLOCK, WARP, THREAD = "global", "block", "warp", "thread"


class AccessError(TilepipeError):
    """An out-of-bounds access or a buffer that was never allocated."""


def owner_of(scope: str) -> str:
    """Who owns one copy of a buffer of ``scope``."""
    if scope == "global":
        return GLOBAL
    if scope.startswith("shared"):
        return BLOCK
    if scope == "warp":
        return WARP
    return THREAD


def numpy_dtype(dtype: str, span=None) -> np.dtype:
    """The NumPy type that holds ``dtype`` (``bfloat16`` is held in ``float32``)."""
    if dtype == "bfloat16":
        return np.dtype(np.float32)
    if dtype == "bool":
        return np.dtype(np.bool_)
    try:
        return np.dtype(dtype)
    except TypeError:
        raise AccessError(f"the simulator cannot hold values of type {dtype}", span) from None


def empty(shape: tuple[int, ...], dtype: str, span=None) -> np.ndarray:
    """An array for a buffer nothing has written yet."""
    numpy_type = numpy_dtype(dtype, span)
    if numpy_type.kind == "f":
        return np.full(shape, np.nan, dtype=numpy_type)
    return np.zeros(shape, dtype=numpy_type)


@dataclass
class Storage:
    """The array of one buffer; ``owner`` says what its leading axis (if any) indexes."""

    buffer: Buffer
    array: np.ndarray
    owner: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __post_init__(self):
        strides = []
        step = 1
        for extent in reversed(self.array.shape):
            strides.append(step)
            step *= extent
        self.element_strides = tuple(reversed(strides))
        """Element (not byte) strides of ``array``: a flat index is their dot product
        with a full index (owner axis included)."""


class Memory:
    """Every buffer's storage; block-owned and thread-owned storage starts afresh per
    block."""

    def __init__(self, num_threads: int, num_warps: int):
        self.num_threads = num_threads
        self.num_warps = num_warps
        self.global_storage: dict[Buffer, Storage] = {}
        self.block_storage: dict[Buffer, Storage] = {}

    def bind_global(self, buffer: Buffer, array: np.ndarray) -> None:
        self.global_storage[buffer] = Storage(buffer, array, GLOBAL, tuple(array.shape))

    def begin_block(self) -> None:
        self.block_storage = {}

    def allocate(self, buffer: Buffer, shape: tuple[int, ...]) -> Storage:
        """The storage of ``buffer`` (created on first allocation, kept after)."""
        storage = self.block_storage.get(buffer) or self.global_storage.get(buffer)
        if storage is not None:
            return storage
        owner = owner_of(buffer.scope)
        leading = {GLOBAL: (), BLOCK: (), WARP: (self.num_warps,),
                   THREAD: (self.num_threads,)}[owner]
        storage = Storage(buffer, empty(leading + shape, buffer.dtype, buffer.span), owner,
                          shape)
        if owner == GLOBAL:
            self.global_storage[buffer] = storage
        else:
            self.block_storage[buffer] = storage
        return storage

    def storage(self, buffer: Buffer, span=None) -> Storage:
        storage = self.block_storage.get(buffer)
        if storage is None:
            storage = self.global_storage.get(buffer)
        if storage is None:
            raise AccessError(
                f"buffer {buffer.name} is used where it is not allocated (neither a "
                "parameter nor allocated by an enclosing block)", span)
        return storage
