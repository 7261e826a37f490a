"""Expression nodes: variables, immediates, arithmetic, logic, loads and calls.

Nodes are immutable and compare by identity (``==`` is ``is``); structural comparison is
:func:`tilepipe.ir.structural_equal`. Python operators build nodes, so passes can write
``i + 1`` or ``(i + 1) % versions``; Python numbers are converted to immediates of the
other operand's dtype.
"""

from __future__ import annotations

from dataclasses import field
from typing import TYPE_CHECKING, ClassVar, Union

from ..errors import Span
from .node import Node, node

if TYPE_CHECKING:
    from .buffer import Buffer

INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
DTYPES = INT_DTYPES + FLOAT_DTYPES + ("bool", "handle")


def is_int_dtype(dtype: str) -> bool:
    return dtype in INT_DTYPES


def is_float_dtype(dtype: str) -> bool:
    return dtype in FLOAT_DTYPES


def dtype_bytes(dtype: str) -> int:
    """Bytes of one element of ``dtype`` (bool as one byte, handle as a pointer)."""
    if dtype == "handle":
        return 8
    digits = "".join(ch for ch in dtype if ch.isdigit())
    return int(digits) // 8 if digits else 1


class PrimExpr(Node):
    """Base of expressions. Every expression has a ``dtype`` string."""

    __slots__ = ()
    dtype: str

    # Arithmetic builders -------------------------------------------------------------
    def __add__(self, other):
        return Add(self, convert(other, self.dtype))

    def __radd__(self, other):
        return Add(convert(other, self.dtype), self)

    def __sub__(self, other):
        return Sub(self, convert(other, self.dtype))

    def __rsub__(self, other):
        return Sub(convert(other, self.dtype), self)

    def __mul__(self, other):
        return Mul(self, convert(other, self.dtype))

    def __rmul__(self, other):
        return Mul(convert(other, self.dtype), self)

    def __floordiv__(self, other):
        return FloorDiv(self, convert(other, self.dtype))

    def __rfloordiv__(self, other):
        return FloorDiv(convert(other, self.dtype), self)

    def __mod__(self, other):
        return FloorMod(self, convert(other, self.dtype))

    def __rmod__(self, other):
        return FloorMod(convert(other, self.dtype), self)

    def __truediv__(self, other):
        return Div(self, convert(other, self.dtype))

    def __rtruediv__(self, other):
        return Div(convert(other, self.dtype), self)

    def __neg__(self):
        return Sub(convert(0, self.dtype), self)

    def __lt__(self, other):
        return LT(self, convert(other, self.dtype))

    def __le__(self, other):
        return LE(self, convert(other, self.dtype))

    def __gt__(self, other):
        return GT(self, convert(other, self.dtype))

    def __ge__(self, other):
        return GE(self, convert(other, self.dtype))

    __eq__ = Node.__eq__
    __hash__ = Node.__hash__

    def __bool__(self):
        raise TypeError(
            f"cannot use IR expression {type(self).__name__} as a Python bool; "
            "use structural_equal or the Analyzer"
        )

    def __repr__(self) -> str:
        from .printer import expr_to_str

        return expr_to_str(self)


ExprLike = Union[PrimExpr, int, float, bool]


def convert(value: ExprLike, dtype: str = "int32") -> PrimExpr:
    """Turn a Python number into an immediate (of ``dtype`` where that fits)."""
    if isinstance(value, PrimExpr):
        return value
    if isinstance(value, bool):
        return IntImm(int(value), "bool")
    if isinstance(value, int):
        if is_float_dtype(dtype):
            return FloatImm(float(value), dtype)
        return IntImm(value, dtype if is_int_dtype(dtype) else "int32")
    if isinstance(value, float):
        return FloatImm(value, dtype if is_float_dtype(dtype) else "float32")
    raise TypeError(f"cannot convert {value!r} to an IR expression")


@node
class Var(PrimExpr):
    """A variable: loop index, scalar parameter or symbolic size. Identity matters."""

    name: str
    dtype: str = "int32"
    span: Span | None = field(default=None, compare=False)


@node
class IntImm(PrimExpr):
    """An integer constant; with dtype ``bool`` it is ``True`` (1) or ``False`` (0)."""

    value: int
    dtype: str = "int32"
    span: Span | None = field(default=None, compare=False)


@node
class FloatImm(PrimExpr):
    value: float
    dtype: str = "float32"
    span: Span | None = field(default=None, compare=False)


@node
class StringImm(PrimExpr):
    """A string argument of an intrinsic call, such as ``"shared"``."""

    value: str
    dtype: str = "handle"
    span: Span | None = field(default=None, compare=False)


@node
class BinaryOp(PrimExpr):
    """Base of two-operand nodes; ``symbol`` is the operator's spelling when printed."""

    a: PrimExpr
    b: PrimExpr
    span: Span | None = field(default=None, compare=False)
    symbol: ClassVar[str] = "?"

    @property
    def dtype(self) -> str:
        return self.a.dtype


class Add(BinaryOp):
    __slots__ = ()
    symbol = "+"


class Sub(BinaryOp):
    __slots__ = ()
    symbol = "-"


class Mul(BinaryOp):
    __slots__ = ()
    symbol = "*"


class Div(BinaryOp):
    """True division (floating point)."""

    __slots__ = ()
    symbol = "/"


class FloorDiv(BinaryOp):
    __slots__ = ()
    symbol = "//"


class FloorMod(BinaryOp):
    __slots__ = ()
    symbol = "%"


class Min(BinaryOp):
    __slots__ = ()
    symbol = "T.min"


class Max(BinaryOp):
    __slots__ = ()
    symbol = "T.max"


class CompareOp(BinaryOp):
    __slots__ = ()

    @property
    def dtype(self) -> str:
        return "bool"


class EQ(CompareOp):
    __slots__ = ()
    symbol = "=="


class NE(CompareOp):
    __slots__ = ()
    symbol = "!="


class LT(CompareOp):
    __slots__ = ()
    symbol = "<"


class LE(CompareOp):
    __slots__ = ()
    symbol = "<="


class GT(CompareOp):
    __slots__ = ()
    symbol = ">"


class GE(CompareOp):
    __slots__ = ()
    symbol = ">="


class And(CompareOp):
    __slots__ = ()
    symbol = "and"


class Or(CompareOp):
    __slots__ = ()
    symbol = "or"


@node
class Not(PrimExpr):
    a: PrimExpr
    span: Span | None = field(default=None, compare=False)
    dtype: ClassVar[str] = "bool"


@node
class Select(PrimExpr):
    """``T.if_then_else(condition, true_value, false_value)``."""

    condition: PrimExpr
    true_value: PrimExpr
    false_value: PrimExpr
    span: Span | None = field(default=None, compare=False)

    @property
    def dtype(self) -> str:
        return self.true_value.dtype


@node
class Cast(PrimExpr):
    dtype: str
    value: PrimExpr
    span: Span | None = field(default=None, compare=False)


@node
class BufferLoad(PrimExpr):
    buffer: "Buffer"
    indices: tuple[PrimExpr, ...]
    span: Span | None = field(default=None, compare=False)

    @property
    def dtype(self) -> str:
        return self.buffer.dtype


@node
class Call(PrimExpr):
    """An intrinsic call such as ``T.tvm_storage_sync("shared")`` or ``T.ptx_mma(...)``.

    ``op`` is the name after ``T.``; arguments may be expressions, buffer regions
    (:class:`tilepipe.ir.BufferRegion`) or buffers, so that passes can rewrite the
    buffer accesses an opaque call makes like any other access.
    """

    dtype: str
    op: str
    args: tuple
    span: Span | None = field(default=None, compare=False)


BINARY_OPS: tuple[type[BinaryOp], ...] = (
    Add, Sub, Mul, Div, FloorDiv, FloorMod, Min, Max, EQ, NE, LT, LE, GT, GE, And, Or,
)


def const(value: int | float | bool, dtype: str = "int32") -> PrimExpr:
    """An immediate of ``dtype``."""
    if dtype == "bool":
        return IntImm(int(bool(value)), "bool")
    if is_float_dtype(dtype):
        return FloatImm(float(value), dtype)
    return IntImm(int(value), dtype)


def as_int(expr: PrimExpr) -> int | None:
    """The Python int of an integer immediate, else None."""
    return expr.value if isinstance(expr, IntImm) else None
