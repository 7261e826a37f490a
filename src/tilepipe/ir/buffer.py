"""Buffers, ranges and buffer regions."""

from __future__ import annotations

from dataclasses import field

from ..errors import Span
from .expr import IntImm, PrimExpr, convert
from .node import Node, node

SCOPES = ("global", "shared", "shared.dyn", "local", "warp", "wmma.matrix_a",
          "wmma.matrix_b", "wmma.accumulator")
SHARED_SCOPES = ("shared", "shared.dyn")  # the block's shared memory, static or dynamic
REGISTER_SCOPES = ("local", "warp", "wmma.matrix_a", "wmma.matrix_b", "wmma.accumulator")


@node
class Buffer(Node):
    """A multi-dimensional array in one memory scope. Identity matters.

    ``shape`` entries are expressions (immediates or symbolic size variables).
    """

    name: str
    shape: tuple[PrimExpr, ...]
    dtype: str = "float32"
    scope: str = "global"
    span: Span | None = field(default=None, compare=False)

    def __getitem__(self, indices) -> "BufferRegion | PrimExpr":
        """``A[i, j]`` builds a load; with slices it builds a :class:`BufferRegion`."""
        from .expr import BufferLoad

        if not isinstance(indices, tuple):
            indices = (indices,)
        if any(isinstance(index, slice) for index in indices):
            ranges = []
            for index in indices:
                if isinstance(index, slice):
                    start = convert(index.start if index.start is not None else 0)
                    stop = convert(index.stop)
                    ranges.append(Range(start, stop - start))
                else:
                    ranges.append(Range(convert(index), IntImm(1)))
            return BufferRegion(self, tuple(ranges))
        return BufferLoad(self, tuple(convert(index) for index in indices))

    def __repr__(self) -> str:
        return f"Buffer({self.name}, {self.shape!r}, {self.dtype!r}, {self.scope!r})"


@node
class Range(Node):
    """The half-open integer interval ``[min, min + extent)``."""

    min: PrimExpr
    extent: PrimExpr
    span: Span | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        return f"Range({self.min!r}, {self.extent!r})"


@node
class BufferRegion(Node):
    """A rectangular part of a buffer, one :class:`Range` per dimension."""

    buffer: Buffer
    region: tuple[Range, ...]
    span: Span | None = field(default=None, compare=False)

    @staticmethod
    def full(buffer: Buffer) -> "BufferRegion":
        return BufferRegion(buffer, tuple(Range(IntImm(0), extent) for extent in buffer.shape))

    def __repr__(self) -> str:
        return f"BufferRegion({self.buffer.name}, {list(self.region)!r})"
