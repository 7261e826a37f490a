"""Constant integer bounds of expressions by interval evaluation."""

from __future__ import annotations

from typing import Callable

from ..ir import (
    EQ, GE, GT, LE, LT, NE, Add, And, Cast, CompareOp, FloorDiv, FloorMod, IntImm, Max, Min,
    Mul, Not, Or, PrimExpr, Select, Sub, Var, is_int_dtype,
)
from . import interval
from .interval import EVERYTHING, Interval
from .linear import LinearForm

_BOOLEAN = (0, 1)


class BoundEvaluator:
    """Evaluates expressions over intervals, given the interval of each variable.

    Sums of terms are bounded term by term; the caller merges like terms first (a
    :class:`LinearForm`) so that ``i - i`` is bounded as 0 rather than ``[-n, n]``.
    """

    def __init__(self, var_bound: Callable[[Var], Interval]):
        self.var_bound = var_bound

    def form_bound(self, form: LinearForm) -> Interval:
        result = interval.point(form.constant)
        for atom, coefficient in form.items():
            result = interval.add(result, interval.scale(self.expr_bound(atom), coefficient))
            if result == EVERYTHING:
                break
        return result

    def expr_bound(self, expr: PrimExpr) -> Interval:
        kind = type(expr)
        if kind is Var:
            return self.var_bound(expr) if is_int_dtype(expr.dtype) else interval.dtype_interval(
                expr.dtype)
        if kind is IntImm:
            return interval.point(expr.value)
        if kind is Add:
            return interval.add(self.expr_bound(expr.a), self.expr_bound(expr.b))
        if kind is Sub:
            return interval.add(self.expr_bound(expr.a),
                                interval.negate(self.expr_bound(expr.b)))
        if kind is Mul:
            return interval.multiply(self.expr_bound(expr.a), self.expr_bound(expr.b))
        if kind is FloorDiv or kind is FloorMod:
            divisor = self.expr_bound(expr.b)
            if not interval.is_point(divisor) or divisor[0] == 0:
                return interval.dtype_interval(expr.dtype)
            numerator = self.expr_bound(expr.a)
            if kind is FloorDiv:
                return interval.floordiv(numerator, divisor[0])
            return interval.floormod(numerator, divisor[0])
        if kind is Min:
            return interval.minimum(self.expr_bound(expr.a), self.expr_bound(expr.b))
        if kind is Max:
            return interval.maximum(self.expr_bound(expr.a), self.expr_bound(expr.b))
        if kind is Select:
            return interval.union(self.expr_bound(expr.true_value),
                                  self.expr_bound(expr.false_value))
        if kind is Cast:
            return self._cast_bound(expr)
        if isinstance(expr, (CompareOp, Not)):
            return self._boolean_bound(expr)
        return interval.dtype_interval(expr.dtype)

    def _cast_bound(self, expr: Cast) -> Interval:
        target = interval.dtype_interval(expr.dtype)
        if not is_int_dtype(expr.value.dtype) and expr.value.dtype != "bool":
            return target
        inner = self.expr_bound(expr.value)
        if expr.dtype == "bool":
            return _BOOLEAN
        if target == EVERYTHING:
            return inner
        fits = (inner[0] is not None and inner[1] is not None
                and target[0] <= inner[0] and inner[1] <= target[1])
        return inner if fits else target

    def _boolean_bound(self, expr: PrimExpr) -> Interval:
        """Comparisons whose outcome the intervals decide are points; others are 0..1."""
        kind = type(expr)
        if kind in (And, Or):
            left = self._boolean_bound_any(expr.a)
            right = self._boolean_bound_any(expr.b)
            if kind is And:
                return (min(left[0], right[0]), min(left[1], right[1]))
            return (max(left[0], right[0]), max(left[1], right[1]))
        if kind is Not:
            inner = self._boolean_bound_any(expr.a)
            return (1 - inner[1], 1 - inner[0])
        if not is_int_dtype(expr.a.dtype):
            return _BOOLEAN
        difference = interval.add(self.expr_bound(expr.a), interval.negate(self.expr_bound(expr.b)))
        decided = decide_comparison(kind, difference)
        return _BOOLEAN if decided is None else interval.point(int(decided))

    def _boolean_bound_any(self, expr: PrimExpr) -> Interval:
        """The interval of ``expr != 0``."""
        lo, hi = self.expr_bound(expr)
        if (lo is not None and lo > 0) or (hi is not None and hi < 0):
            return (1, 1)
        if lo == 0 and hi == 0:
            return (0, 0)
        return _BOOLEAN


def decide_comparison(kind: type, difference: Interval) -> bool | None:
    """The truth of ``a <op> b`` from the interval of ``a - b``, or None if undecided."""
    lo, hi = difference
    if kind is LT:
        if hi is not None and hi < 0:
            return True
        if lo is not None and lo >= 0:
            return False
    elif kind is LE:
        if hi is not None and hi <= 0:
            return True
        if lo is not None and lo > 0:
            return False
    elif kind is GT:
        if lo is not None and lo > 0:
            return True
        if hi is not None and hi <= 0:
            return False
    elif kind is GE:
        if lo is not None and lo >= 0:
            return True
        if hi is not None and hi < 0:
            return False
    elif kind is EQ:
        if lo == 0 and hi == 0:
            return True
        if (hi is not None and hi < 0) or (lo is not None and lo > 0):
            return False
    elif kind is NE:
        if lo == 0 and hi == 0:
            return False
        if (hi is not None and hi < 0) or (lo is not None and lo > 0):
            return True
    return None
