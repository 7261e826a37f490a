"""Stand-ins for the parameter annotations Python evaluates when it defines a
``@T.prim_func`` function; the parser reads the annotations from the source instead."""

from __future__ import annotations

from typing import Any


class ScalarType:
    """``T.int32`` and the other dtypes, as parameter annotations."""

    def __init__(self, dtype: str):
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"T.{self.dtype}"


class BufferType:
    """``T.Buffer((16, 16), "float32")`` or ``T.Buffer[(16, 16), "float32"]``."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.args = args
        self.kwargs = kwargs

    def __class_getitem__(cls, items: Any) -> "BufferType":
        return cls(*(items if isinstance(items, tuple) else (items,)))

    def __repr__(self) -> str:
        return f"T.Buffer{self.args!r}"


Buffer = BufferType
handle = ScalarType("handle")
bool = ScalarType("bool")  # noqa: A001  (the dtype, as T.bool)
int8, int16, int32, int64 = (ScalarType(f"int{bits}") for bits in (8, 16, 32, 64))
uint8, uint16, uint32, uint64 = (ScalarType(f"uint{bits}") for bits in (8, 16, 32, 64))
float16, float32, float64 = (ScalarType(f"float{bits}") for bits in (16, 32, 64))
bfloat16 = ScalarType("bfloat16")
