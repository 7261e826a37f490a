"""Conventions of the script notation shared by the printer and the parser.

A loop or a slice is written with its stop (``T.serial(2, n)``, ``A[i:i + 4]``) while the
IR stores a start and an extent; an intrinsic call's dtype is written only when it
differs from the default. Printer and parser agree on these rules here, so that what is
printed reads back to the same tree.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .buffer import Buffer
from .expr import Add, IntImm, Node, PrimExpr, Sub, Var

# Intrinsics whose result has the dtype of their first argument; other intrinsic calls are
# opaque calls of dtype "handle" (or of INTRINSIC_DTYPES) unless written with ``dtype=``.
MATH_INTRINSICS = frozenset({
    "abs", "ceil", "cos", "erf", "exp", "exp2", "fabs", "floor", "log", "log2", "round",
    "rsqrt", "sigmoid", "sin", "sqrt", "tanh",
})


# Intrinsics with a fixed result dtype (as in TVM).
INTRINSIC_DTYPES = {"tvm_storage_sync": "int32"}


def default_call_dtype(op: str, args: tuple) -> str:
    """The dtype a call ``T.op(*args)`` has when written without ``dtype=``."""
    if op in MATH_INTRINSICS and args and isinstance(args[0], PrimExpr):
        return args[0].dtype
    return INTRINSIC_DTYPES.get(op, "handle")


def identical(left: Any, right: Any) -> bool:
    """Exact equality of two expressions: same shape and the very same variables."""
    if left is right:
        return True
    if isinstance(left, (Var, Buffer)) or isinstance(right, (Var, Buffer)):
        return False
    if isinstance(left, Node) and isinstance(right, Node):
        if type(left) is not type(right):
            return False
        return all(
            identical(getattr(left, field.name), getattr(right, field.name))
            for field in dataclasses.fields(left) if field.name != "span"
        )
    if isinstance(left, tuple) and isinstance(right, tuple):
        return len(left) == len(right) and all(map(identical, left, right))
    return type(left) is type(right) and left == right


def stop_of(start: PrimExpr, extent: PrimExpr) -> PrimExpr:
    """The stop written for ``[start, start + extent)``; :func:`extent_of` inverts it."""
    if isinstance(start, IntImm) and isinstance(extent, IntImm) and start.dtype == extent.dtype:
        return IntImm(start.value + extent.value, extent.dtype)
    if _is_zero(start):
        return extent
    if isinstance(extent, Sub) and identical(extent.b, start) \
            and identical(extent_of(start, extent.a), extent):
        return extent.a
    return Add(start, extent)


def extent_of(start: PrimExpr, stop: PrimExpr) -> PrimExpr:
    """The extent of ``[start, stop)`` as :func:`stop_of` wrote it."""
    if isinstance(start, IntImm) and isinstance(stop, IntImm) and start.dtype == stop.dtype:
        return IntImm(stop.value - start.value, stop.dtype)
    if _is_zero(start):
        return stop
    if _starts_with(stop, start):
        return stop.b
    return Sub(stop, start)


def _starts_with(expr: PrimExpr, start: PrimExpr) -> bool:
    return isinstance(expr, Add) and identical(expr.a, start)


def _is_zero(expr: PrimExpr) -> bool:
    return isinstance(expr, IntImm) and expr.value == 0 and expr.dtype != "bool"
