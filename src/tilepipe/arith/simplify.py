"""Expression simplification: canonical affine forms, folding, division and min/max.

Integer expressions are brought to a :class:`LinearForm` (so ``i + 1 - 1`` is ``i``),
floordiv/floormod by a constant split off the multiples of the divisor and disappear
when the bounds of the remainder allow, min/max and comparisons fold when the bounds
(or, where the analyzer says it may help, the exact Presburger prover) decide them.
Floating-point expressions are only folded where every operand is a constant, with the
dtype's own IEEE arithmetic, so results are bit-exact.
"""

from __future__ import annotations

import math
from collections import Counter
from math import gcd
from typing import TYPE_CHECKING

import numpy as np

from ..ir import (
    EQ, GE, GT, LE, LT, NE, Add, And, BinaryOp, BufferLoad, BufferRegion, Call, Cast, CompareOp,
    Div, FloatImm, FloorDiv, FloorMod, IntImm, Max, Min, Mul, Not, Or, PrimExpr, Range, Select,
    Sub, Var, is_int_dtype,
)
from .bound import decide_comparison
from .linear import LinearForm, structural_key

if TYPE_CHECKING:
    from .analyzer import Analyzer

_NUMPY_FLOATS = {"float16": np.float16, "float32": np.float32, "float64": np.float64}

_COMMUTATIVE = (Mul, Min, Max)
_FLIPPED = {LT: GE, LE: GT, GT: LE, GE: LT, EQ: NE, NE: EQ}
_MIRRORED = {LT: GT, LE: GE, GT: LT, GE: LE, EQ: EQ, NE: NE}

_COMPARE = {
    LT: lambda a, b: a < b, LE: lambda a, b: a <= b, GT: lambda a, b: a > b,
    GE: lambda a, b: a >= b, EQ: lambda a, b: a == b, NE: lambda a, b: a != b,
}


def _true(value: bool) -> IntImm:
    return IntImm(int(value), "bool")


def _is_constant(expr: PrimExpr) -> bool:
    return isinstance(expr, (IntImm, FloatImm))


class Simplifier:
    """Rewrites expressions under the variable bounds and constraints of an analyzer."""

    def __init__(self, analyzer: "Analyzer"):
        self.analyzer = analyzer

    # Entry -------------------------------------------------------------------------------
    def simplify(self, expr: PrimExpr) -> PrimExpr:
        dtype = expr.dtype
        if is_int_dtype(dtype):
            return self.linear(expr).to_expr(dtype)
        if dtype == "bool":
            return self.boolean(expr)
        return self.general(expr)

    # Integer expressions -----------------------------------------------------------------
    def linear(self, expr: PrimExpr) -> LinearForm:
        """The canonical affine form of an integer expression."""
        form = LinearForm()
        self._accumulate(expr, 1, form)
        return form

    def _accumulate(self, expr: PrimExpr, factor: int, form: LinearForm) -> None:
        """Add ``factor * expr`` to ``form`` in place. Sums are walked with a stack, left
        operand first, so long sums neither rebuild forms nor recurse deeply."""
        pending = [(expr, factor)]
        while pending:
            expr, factor = pending.pop()
            kind = type(expr)
            if kind is IntImm:
                form.constant += factor * expr.value
            elif kind is Var:
                form.add_term(("var", id(expr)), expr, factor)
            elif kind is Add or kind is Sub:
                pending.append((expr.b, factor if kind is Add else -factor))
                pending.append((expr.a, factor))
            elif kind is Mul:
                right = self.linear(expr.b)
                if right.is_constant:
                    pending.append((expr.a, factor * right.constant))
                    continue
                left = self.linear(expr.a)
                if left.is_constant:
                    form.add_in_place(right, factor * left.constant)
                else:
                    product = Mul(left.to_expr(expr.dtype), right.to_expr(expr.dtype))
                    form.add_in_place(self._atom(product), factor)
            else:
                form.add_in_place(self._nonlinear(expr), factor)

    def _nonlinear(self, expr: PrimExpr) -> LinearForm:
        """The form of an expression that is not a sum or a product."""
        kind = type(expr)
        if kind is FloorDiv or kind is FloorMod:
            return self._division(expr)
        if kind is Min or kind is Max:
            return self._min_max(expr)
        if kind is Select:
            chosen = self._select(expr)
            if isinstance(chosen, LinearForm):
                return chosen
            return self._atom(chosen) if isinstance(chosen, Select) else self.linear(chosen)
        if kind is Cast:
            value = self.simplify(expr.value)
            folded = _fold_cast(expr.dtype, value)
            if folded is not None:
                return LinearForm.of_constant(folded.value)
            return self._atom(Cast(expr.dtype, value, expr.span))
        return self._atom(self.general(expr))

    def _atom(self, atom: PrimExpr) -> LinearForm:
        if isinstance(atom, IntImm):
            return LinearForm.of_constant(atom.value)
        if type(atom) in _COMMUTATIVE:
            # i * j and j * i are one atom, printed as first seen.
            operands = Counter((structural_key(atom.a), structural_key(atom.b)))
            return LinearForm.of_atom(atom, (type(atom).__name__, frozenset(operands.items())))
        return LinearForm.of_atom(atom)

    def _division(self, expr: BinaryOp) -> LinearForm:
        dtype = expr.dtype
        numerator = self.linear(expr.a)
        divisor_form = self.linear(expr.b)
        if not divisor_form.is_constant or divisor_form.constant == 0:
            return self._atom(type(expr)(numerator.to_expr(dtype), divisor_form.to_expr(dtype)))
        divisor = divisor_form.constant
        if numerator.is_constant:
            value = numerator.constant
            return LinearForm.of_constant(
                value // divisor if type(expr) is FloorDiv else value % divisor)
        if divisor < 0:
            return self._atom(type(expr)(numerator.to_expr(dtype), IntImm(divisor, dtype)))
        if type(expr) is FloorDiv:
            return self.floordiv(numerator, divisor, dtype)
        return self.floormod(numerator, divisor, dtype)

    def floordiv(self, numerator: LinearForm, divisor: int, dtype: str) -> LinearForm:
        """``numerator // divisor`` for a positive constant divisor."""
        common = gcd(numerator.coefficient_gcd(), numerator.constant, divisor)
        if common > 1:
            numerator = _divided(numerator, common)
            divisor //= common
        if divisor == 1:
            return numerator
        quotient, rest = numerator.split_multiples(divisor)
        low, high = self.analyzer.form_bound(rest)
        if low is not None and high is not None and low // divisor == high // divisor:
            return quotient.add(LinearForm.of_constant(low // divisor))
        # Keep the sign of a small constant so that (i - 1) // 4 stays as written.
        if numerator.constant < 0 and rest.constant != 0:
            rest.constant -= divisor
            quotient.constant += 1
        inner = _single_atom(rest)
        if isinstance(inner, FloorDiv) and isinstance(inner.b, IntImm) and inner.b.value > 0:
            # (a // b) // d is a // (b * d), simplified again (x * 3 // 2 // 3 is x // 2).
            return quotient.add(self.floordiv(self.linear(inner.a), inner.b.value * divisor,
                                              dtype))
        return quotient.add(self._atom(FloorDiv(rest.to_expr(dtype), IntImm(divisor, dtype))))

    def floormod(self, numerator: LinearForm, divisor: int, dtype: str) -> LinearForm:
        """``numerator % divisor`` for a positive constant divisor."""
        common = gcd(numerator.coefficient_gcd(), numerator.constant, divisor)
        if common > 1:
            return self.floormod(_divided(numerator, common), divisor // common,
                                 dtype).scaled(common)
        if divisor == 1:
            return LinearForm.of_constant(0)
        _, rest = numerator.split_multiples(divisor)
        low, high = self.analyzer.form_bound(rest)
        if low is not None and high is not None and low // divisor == high // divisor:
            return rest.add(LinearForm.of_constant(-(low // divisor) * divisor))
        inner = _single_atom(rest)
        if (isinstance(inner, FloorMod) and isinstance(inner.b, IntImm)
                and inner.b.value > 0 and inner.b.value % divisor == 0):
            return self.floormod(self.linear(inner.a), divisor, dtype)
        return self._atom(FloorMod(rest.to_expr(dtype), IntImm(divisor, dtype)))

    def _min_max(self, expr: BinaryOp) -> LinearForm:
        dtype = expr.dtype
        left = self.linear(expr.a)
        right = self.linear(expr.b)
        difference = left.add(right, -1)
        is_min = type(expr) is Min
        left_smaller = self.decide(LE, difference)
        if left_smaller is not None:
            return left if left_smaller == is_min else right
        if self.decide(GE, difference) is True:
            return right if is_min else left
        return self._atom(type(expr)(left.to_expr(dtype), right.to_expr(dtype)))

    def decide(self, kind: type, difference: LinearForm) -> bool | None:
        """The truth of ``difference <op> 0`` for all bound values, if it can be decided."""
        decided = decide_comparison(kind, self.analyzer.form_bound(difference))
        if decided is not None or not self.analyzer.exact_may_help(
                difference, equality=kind is EQ or kind is NE):
            return decided
        zero = IntImm(0, "int32")
        expr = difference.to_expr("int32")
        if self.analyzer.prove_exact(kind(expr, zero)):
            return True
        if self.analyzer.prove_exact(_FLIPPED[kind](expr, zero)):
            return False
        return None

    # Conditions --------------------------------------------------------------------------
    def boolean(self, expr: PrimExpr) -> PrimExpr:
        """A condition with decided comparisons folded and constants moved right."""
        kind = type(expr)
        if kind is IntImm:
            return expr
        if kind in _FLIPPED:
            return self._comparison(expr)
        if kind is And or kind is Or:
            return self._logic(expr)
        if kind is Not:
            return self._negation(expr)
        if kind is Select:
            chosen = self._select(expr)
            return chosen.to_expr(expr.dtype) if isinstance(chosen, LinearForm) else chosen
        if kind is Cast:
            value = self.simplify(expr.value)
            folded = _fold_cast("bool", value)
            return folded if folded is not None else Cast("bool", value, expr.span)
        return self.general(expr)

    def _comparison(self, expr: CompareOp) -> PrimExpr:
        kind = type(expr)
        if not is_int_dtype(expr.a.dtype) or not is_int_dtype(expr.b.dtype):
            left = self.simplify(expr.a)
            right = self.simplify(expr.b)
            if _is_constant(left) and _is_constant(right):
                folded = _fold_float_compare(kind, left, right)
                if folded is not None:
                    return folded
            return kind(left, right, expr.span)
        left = self.linear(expr.a)
        right = self.linear(expr.b)
        decided = self.decide(kind, left.add(right, -1))
        if decided is not None:
            return _true(decided)
        if left.is_constant:
            # c < x is read as x > c, normalized, and mirrored back.
            folded = self._against_constant(_MIRRORED[kind], right, left.constant)
            if isinstance(folded, IntImm):
                return folded
            normal_kind, terms, bound = folded
            return _MIRRORED[normal_kind](IntImm(bound, expr.a.dtype),
                                          terms.to_expr(expr.b.dtype), expr.span)
        if right.is_constant:
            folded = self._against_constant(kind, left, right.constant)
            if isinstance(folded, IntImm):
                return folded
            normal_kind, terms, bound = folded
            return normal_kind(terms.to_expr(expr.a.dtype), IntImm(bound, expr.b.dtype),
                               expr.span)
        return kind(left.to_expr(expr.a.dtype), right.to_expr(expr.b.dtype), expr.span)

    @staticmethod
    def _against_constant(kind: type, form: LinearForm, bound: int
                          ) -> "IntImm | tuple[type, LinearForm, int]":
        """``form <op> bound`` as ``terms <op'> bound'``: the constant of ``form`` moved
        over, signs flipped when every coefficient is negative (``0 - i < 5`` is
        ``i > -5``) and the gcd of the coefficients divided out (``4*i + 4 < 16`` is
        ``i < 3``); or a folded truth when the gcd decides an (in)equality."""
        bound -= form.constant
        terms = LinearForm(dict(form.terms), 0)
        if all(coefficient < 0 for _, coefficient in terms.items()):
            terms = terms.scaled(-1)
            bound = -bound
            kind = _MIRRORED[kind]
        common = terms.coefficient_gcd()
        if common <= 1:
            return kind, terms, bound
        if kind is EQ or kind is NE:
            if bound % common:
                return _true(kind is NE)
            return kind, _divided(terms, common), bound // common
        if kind is LT or kind is GE:
            bound = -(-bound // common)  # ceiling: 4*i < 15 is i < 4, 4*i >= 15 is i >= 4
        else:
            bound //= common  # floor: 4*i <= 15 is i <= 3, 4*i > 15 is i > 3
        return kind, _divided(terms, common), bound

    def _logic(self, expr: BinaryOp) -> PrimExpr:
        is_and = type(expr) is And
        left = self.boolean(expr.a)
        right = self.boolean(expr.b)
        for first, second in ((left, right), (right, left)):
            if isinstance(first, IntImm):
                if bool(first.value) == is_and:
                    return second
                return _true(not is_and)
        if structural_key(left) == structural_key(right):
            return left
        return type(expr)(left, right, expr.span)

    def _negation(self, expr: Not) -> PrimExpr:
        inner = self.boolean(expr.a)
        if isinstance(inner, IntImm):
            return _true(not inner.value)
        if isinstance(inner, Not):
            return inner.a
        if type(inner) in _FLIPPED and is_int_dtype(inner.a.dtype):
            return _FLIPPED[type(inner)](inner.a, inner.b, expr.span)
        return Not(inner, expr.span)

    def _select(self, expr: Select) -> "PrimExpr | LinearForm":
        condition = self.boolean(expr.condition)
        if isinstance(condition, IntImm):
            chosen = expr.true_value if condition.value else expr.false_value
            return self.linear(chosen) if is_int_dtype(chosen.dtype) else self.simplify(chosen)
        true_value = self.simplify(expr.true_value)
        false_value = self.simplify(expr.false_value)
        if structural_key(true_value) == structural_key(false_value):
            return true_value
        return Select(condition, true_value, false_value, expr.span)

    # Everything else: floating point, loads, calls ---------------------------------------
    def general(self, expr: PrimExpr) -> PrimExpr:
        """Floating-point arithmetic, loads, calls and casts: the operands simplified and
        operations on constants folded exactly."""
        kind = type(expr)
        if isinstance(expr, BinaryOp):
            left = self.simplify(expr.a)
            right = self.simplify(expr.b)
            folded = _fold_float(kind, left, right, expr.dtype)
            if folded is not None:
                return folded
            if left is expr.a and right is expr.b:
                return expr
            return kind(left, right, expr.span)
        if kind is Select:
            chosen = self._select(expr)
            return chosen.to_expr(expr.dtype) if isinstance(chosen, LinearForm) else chosen
        if kind is Cast:
            value = self.simplify(expr.value)
            folded = _fold_cast(expr.dtype, value)
            return folded if folded is not None else Cast(expr.dtype, value, expr.span)
        if kind is BufferLoad:
            indices = tuple(self.simplify(index) for index in expr.indices)
            return BufferLoad(expr.buffer, indices, expr.span)
        if kind is Call:
            return Call(expr.dtype, expr.op, tuple(self._argument(arg) for arg in expr.args),
                        expr.span)
        return expr

    def _argument(self, arg):
        if isinstance(arg, PrimExpr):
            return self.simplify(arg)
        if isinstance(arg, BufferRegion):
            return BufferRegion(arg.buffer, tuple(
                Range(self.simplify(range_.min), self.simplify(range_.extent), range_.span)
                for range_ in arg.region), arg.span)
        return arg


def _divided(form: LinearForm, divisor: int) -> LinearForm:
    return LinearForm({key: [atom, coefficient // divisor]
                       for key, (atom, coefficient) in form.terms.items()},
                      form.constant // divisor)


def _single_atom(form: LinearForm) -> PrimExpr | None:
    """The atom of a form that is exactly one atom (coefficient 1, no constant)."""
    if form.constant != 0 or len(form.terms) != 1:
        return None
    ((atom, coefficient),) = form.terms.values()
    return atom if coefficient == 1 else None


def _fold_float(kind: type, left: PrimExpr, right: PrimExpr, dtype: str) -> PrimExpr | None:
    """The exact IEEE result of a floating-point operation on two constants."""
    if not (isinstance(left, FloatImm) and isinstance(right, FloatImm)):
        return None
    scalar = _NUMPY_FLOATS.get(dtype)
    if scalar is None or left.dtype != dtype or right.dtype != dtype:
        return None
    a, b = scalar(left.value), scalar(right.value)
    with np.errstate(all="ignore"):
        if kind is Add:
            result = a + b
        elif kind is Sub:
            result = a - b
        elif kind is Mul:
            result = a * b
        elif kind is Div and b != 0:
            result = a / b
        elif kind in (Min, Max) and not (np.isnan(a) or np.isnan(b)) \
                and not (a == b and np.signbit(a) != np.signbit(b)):  # min(-0.0, 0.0)
            result = min(a, b) if kind is Min else max(a, b)
        else:
            return None
    return FloatImm(float(result), dtype)


def _fold_float_compare(kind: type, left: PrimExpr, right: PrimExpr) -> PrimExpr | None:
    if left.dtype != right.dtype:
        return None
    scalar = _NUMPY_FLOATS.get(left.dtype)
    if scalar is None:
        return _true(_COMPARE[kind](left.value, right.value)) if isinstance(
            left, IntImm) else None
    return _true(bool(_COMPARE[kind](scalar(left.value), scalar(right.value))))


def _fold_cast(dtype: str, value: PrimExpr) -> PrimExpr | None:
    """A cast of a constant, where the result is exact and well defined."""
    if isinstance(value, IntImm):
        if dtype == "bool":
            return _true(value.value != 0)
        if is_int_dtype(dtype):
            info = np.iinfo(dtype)
            return IntImm(value.value, dtype) if info.min <= value.value <= info.max else None
        scalar = _NUMPY_FLOATS.get(dtype)
        if scalar is not None:
            return FloatImm(float(scalar(value.value)), dtype)
        return None
    if isinstance(value, FloatImm):
        if dtype == "bool":
            return _true(value.value != 0) if not math.isnan(value.value) else None
        if is_int_dtype(dtype) and math.isfinite(value.value):
            truncated = int(value.value)
            info = np.iinfo(dtype)
            return IntImm(truncated, dtype) if info.min <= truncated <= info.max else None
        scalar = _NUMPY_FLOATS.get(dtype)
        if scalar is not None and value.dtype in _NUMPY_FLOATS:
            return FloatImm(float(scalar(_NUMPY_FLOATS[value.dtype](value.value))), dtype)
    return None
