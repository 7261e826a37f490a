"""Canonical affine forms: a sum of coefficient * atom terms plus an integer constant.

An atom is any integer expression that is not a sum or a product by a constant: a
variable, a floordiv/floormod, a min/max, a load, a product of two non-constants...
Atoms are merged by structural key, so ``x // 4 - x // 4`` cancels. Terms keep the order
in which their atoms first appeared, which makes printed results stable.
"""

from __future__ import annotations

from math import gcd
from typing import Iterator

from ..ir import (
    Add, BinaryOp, Buffer, BufferLoad, BufferRegion, Call, Cast, FloatImm, IntImm, Mul, Not,
    PrimExpr, Range, Select, StringImm, Sub, Var,
)


def structural_key(node) -> tuple:
    """A hashable key equal for structurally equal expressions over the same variables.

    Variables and buffers are keyed by identity: ``i`` bound by two different loops is
    two different atoms even when both are named ``i``. Intrinsic calls are keyed by
    identity too (see below).
    """
    if isinstance(node, Var):
        return ("var", id(node))
    if isinstance(node, IntImm):
        return ("int", node.value, node.dtype)
    if isinstance(node, BinaryOp):
        return (type(node).__name__, structural_key(node.a), structural_key(node.b))
    if isinstance(node, FloatImm):
        return ("float", float(node.value).hex(), node.dtype)  # hex tells -0.0 from 0.0
    if isinstance(node, BufferLoad):
        return ("load", id(node.buffer), tuple(structural_key(index) for index in node.indices))
    if isinstance(node, Cast):
        return ("cast", node.dtype, structural_key(node.value))
    if isinstance(node, Not):
        return ("not", structural_key(node.a))
    if isinstance(node, Select):
        return ("select", structural_key(node.condition), structural_key(node.true_value),
                structural_key(node.false_value))
    if isinstance(node, Call):
        # An intrinsic may have effects (an atomic returns a value), so two calls are
        # never merged: f() - f() keeps both evaluations.
        return ("call", id(node))
    if isinstance(node, StringImm):
        return ("string", node.value)
    if isinstance(node, Buffer):
        return ("buffer", id(node))
    if isinstance(node, BufferRegion):
        return ("region", id(node.buffer), tuple(structural_key(range_) for range_ in node.region))
    if isinstance(node, Range):
        return ("range", structural_key(node.min), structural_key(node.extent))
    return ("object", id(node))


def variables_of(node) -> frozenset[Var]:
    """The variables an expression (or range, region, call argument) mentions."""
    found: set[Var] = set()
    _collect_variables(node, found)
    return frozenset(found)


def mentions_any(node, variables) -> bool:
    """Whether ``node`` mentions one of ``variables`` (a set or mapping of variables)."""
    if not variables:
        return False
    found: set[Var] = set()
    _collect_variables(node, found)
    return any(var in variables for var in found)


def _collect_variables(node, found: set) -> None:
    if isinstance(node, Var):
        found.add(node)
    elif isinstance(node, BinaryOp):
        _collect_variables(node.a, found)
        _collect_variables(node.b, found)
    elif isinstance(node, (IntImm, FloatImm, StringImm, Buffer)):
        return
    elif isinstance(node, BufferLoad):
        for index in node.indices:
            _collect_variables(index, found)
    elif isinstance(node, Call):
        for arg in node.args:
            _collect_variables(arg, found)
    elif isinstance(node, (Cast, Not)):
        _collect_variables(node.value if isinstance(node, Cast) else node.a, found)
    elif isinstance(node, Select):
        _collect_variables(node.condition, found)
        _collect_variables(node.true_value, found)
        _collect_variables(node.false_value, found)
    elif isinstance(node, BufferRegion):
        for range_ in node.region:
            _collect_variables(range_, found)
    elif isinstance(node, Range):
        _collect_variables(node.min, found)
        _collect_variables(node.extent, found)


class LinearForm:
    """``sum(coefficient * atom) + constant`` with integer coefficients.

    ``terms`` maps an atom's structural key to ``[atom, coefficient]``; terms with a
    zero coefficient are dropped.
    """

    __slots__ = ("terms", "constant")

    def __init__(self, terms: dict | None = None, constant: int = 0):
        self.terms: dict[tuple, list] = terms if terms is not None else {}
        self.constant = constant

    @staticmethod
    def of_constant(value: int) -> "LinearForm":
        return LinearForm({}, value)

    @staticmethod
    def of_atom(atom: PrimExpr, key: tuple | None = None) -> "LinearForm":
        return LinearForm({key if key is not None else structural_key(atom): [atom, 1]}, 0)

    @property
    def is_constant(self) -> bool:
        return not self.terms

    def items(self) -> Iterator[tuple[PrimExpr, int]]:
        for atom, coefficient in self.terms.values():
            yield atom, coefficient

    def copy(self) -> "LinearForm":
        return LinearForm({key: [atom, coefficient] for key, (atom, coefficient)
                           in self.terms.items()}, self.constant)

    def add(self, other: "LinearForm", factor: int = 1) -> "LinearForm":
        """``self + factor * other`` as a new form."""
        terms = {key: [atom, coefficient] for key, (atom, coefficient) in self.terms.items()}
        for key, (atom, coefficient) in other.terms.items():
            entry = terms.get(key)
            if entry is None:
                terms[key] = [atom, coefficient * factor]
            else:
                entry[1] += coefficient * factor
                if entry[1] == 0:
                    del terms[key]
        return LinearForm(terms, self.constant + other.constant * factor)

    def add_term(self, key: tuple, atom: PrimExpr, coefficient: int) -> None:
        """Add ``coefficient * atom`` in place."""
        entry = self.terms.get(key)
        if entry is None:
            if coefficient:
                self.terms[key] = [atom, coefficient]
        else:
            entry[1] += coefficient
            if entry[1] == 0:
                del self.terms[key]

    def add_in_place(self, other: "LinearForm", factor: int = 1) -> None:
        """Add ``factor * other`` to this form."""
        if factor == 0:
            return
        for key, (atom, coefficient) in other.terms.items():
            self.add_term(key, atom, coefficient * factor)
        self.constant += other.constant * factor

    def scaled(self, factor: int) -> "LinearForm":
        if factor == 0:
            return LinearForm.of_constant(0)
        return LinearForm({key: [atom, coefficient * factor] for key, (atom, coefficient)
                           in self.terms.items()}, self.constant * factor)

    def coefficient_gcd(self) -> int:
        """The gcd of the coefficients (0 when there are none)."""
        result = 0
        for _, coefficient in self.terms.values():
            result = gcd(result, coefficient)
        return result

    def split_multiples(self, divisor: int) -> tuple["LinearForm", "LinearForm"]:
        """``(quotient, rest)`` with ``self == divisor * quotient + rest`` exactly, where
        ``quotient`` takes every term whose coefficient ``divisor`` divides and the
        multiple of ``divisor`` in the constant, so that ``0 <= rest.constant < divisor``."""
        quotient: dict = {}
        rest: dict = {}
        for key, (atom, coefficient) in self.terms.items():
            if coefficient % divisor == 0:
                quotient[key] = [atom, coefficient // divisor]
            else:
                rest[key] = [atom, coefficient]
        return (LinearForm(quotient, self.constant // divisor),
                LinearForm(rest, self.constant % divisor))

    def to_expr(self, dtype: str = "int32") -> PrimExpr:
        """The canonical expression: positive terms in order of first appearance, then
        negative terms subtracted, then the constant (``c - x`` when no term is positive)."""
        positive = [(atom, coefficient) for atom, coefficient in self.terms.values()
                    if coefficient > 0]
        negative = [(atom, -coefficient) for atom, coefficient in self.terms.values()
                    if coefficient < 0]
        result: PrimExpr | None = None
        for atom, coefficient in positive:
            term = _times(atom, coefficient, dtype)
            result = term if result is None else Add(result, term)
        if result is None:
            if not negative:
                return IntImm(self.constant, dtype)
            result = IntImm(self.constant, dtype)
            for atom, coefficient in negative:
                result = Sub(result, _times(atom, coefficient, dtype))
            return result
        for atom, coefficient in negative:
            result = Sub(result, _times(atom, coefficient, dtype))
        if self.constant > 0:
            result = Add(result, IntImm(self.constant, dtype))
        elif self.constant < 0:
            result = Sub(result, IntImm(-self.constant, dtype))
        return result


def _times(atom: PrimExpr, coefficient: int, dtype: str) -> PrimExpr:
    return atom if coefficient == 1 else Mul(atom, IntImm(coefficient, dtype))
