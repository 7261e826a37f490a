"""The :class:`Analyzer`: variable ranges, assumptions, and the questions asked of them."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..ir import (
    EQ, GE, GT, LE, LT, NE, And, FloorDiv, FloorMod, IntImm, Max, Min, Not, Or, PrimExpr, Range,
    Var, convert, is_int_dtype,
)
from . import interval, presburger
from .bound import BoundEvaluator
from .interval import EVERYTHING, Interval
from .linear import LinearForm, structural_key, variables_of
from .simplify import Simplifier

_PRESBURGER_ATOMS = (FloorDiv, FloorMod, Min, Max)
_ORDERINGS = (LT, LE, GT, GE, EQ, NE)


class Analyzer:
    """Answers arithmetic questions about expressions whose variables lie in known ranges.

    ``bind`` gives a variable its range (a loop's ``[min, min + extent)``, possibly
    symbolic), ``add_constraint`` adds a condition assumed true. ``can_prove`` is sound:
    it says True only when the condition holds for every value the variables can take.
    It decides with intervals first and, when they are inconclusive and the question is
    affine, exactly with islpy.
    """

    def __init__(self):
        self._ranges: dict[Var, Range] = {}
        self._constraints: list[tuple[PrimExpr, frozenset[Var]]] = []
        self._constrained: set[Var] = set()
        self._constraint_bounds: dict[Var, Interval] = {}
        self._symbolic: set[Var] = set()
        self._bounds: dict[Var, Interval] = {}
        self._proofs: dict[tuple, tuple[PrimExpr, bool]] = {}
        self._evaluator = BoundEvaluator(self.var_bound)
        self._simplifier = Simplifier(self)

    # State -------------------------------------------------------------------------------
    def bind(self, var: Var, range_or_pair) -> None:
        """Let ``var`` range over ``[min, min + extent)``, given a Range or a pair."""
        if not isinstance(var, Var):
            raise TypeError(f"can only bind a variable, not {type(var).__name__}")
        if isinstance(range_or_pair, Range):
            range_ = range_or_pair
        else:
            low, extent = range_or_pair
            range_ = Range(convert(low, var.dtype), convert(extent, var.dtype))
        self._ranges[var] = range_
        if isinstance(range_.min, IntImm) and isinstance(range_.extent, IntImm):
            self._symbolic.discard(var)
        else:
            self._symbolic.add(var)
        self._forget_derived()

    def add_constraint(self, cond: PrimExpr | bool) -> None:
        """Assume ``cond`` (a boolean expression) holds from now on."""
        for part in _conjuncts(convert(cond)):
            variables = variables_of(part)
            self._constraints.append((part, variables))
            self._constrained.update(variables)
            self._tighten(part)
        self._forget_derived()

    @contextmanager
    def constraint_scope(self, cond: PrimExpr) -> Iterator[None]:
        """Assume ``cond`` inside the ``with`` block; on leaving it, every range and
        constraint given since entering is forgotten."""
        saved = (dict(self._ranges), list(self._constraints), set(self._constrained),
                 dict(self._constraint_bounds), set(self._symbolic))
        try:
            self.add_constraint(cond)
            yield
        finally:
            (self._ranges, self._constraints, self._constrained, self._constraint_bounds,
             self._symbolic) = saved
            self._forget_derived()

    def copy(self) -> "Analyzer":
        """An analyzer with the same ranges and constraints, changed independently."""
        other = Analyzer()
        other._ranges = dict(self._ranges)
        other._constraints = list(self._constraints)
        other._constrained = set(self._constrained)
        other._constraint_bounds = dict(self._constraint_bounds)
        other._symbolic = set(self._symbolic)
        return other

    # Questions ---------------------------------------------------------------------------
    def simplify(self, expr: PrimExpr | int) -> PrimExpr:
        """An equal, canonical and usually smaller expression (see :mod:`.simplify`)."""
        return self._simplifier.simplify(convert(expr))

    def linear_form(self, expr: PrimExpr) -> LinearForm:
        """The canonical affine form of an integer expression (terms over atoms)."""
        return self._simplifier.linear(expr)

    def can_prove(self, cond: PrimExpr | bool) -> bool:
        """True only if ``cond`` holds for every value of the bound variables."""
        cond = convert(cond)
        if type(cond) in _ORDERINGS and is_int_dtype(cond.a.dtype) and is_int_dtype(cond.b.dtype):
            # The common case, decided without building the simplified expression.
            difference = self._simplifier.linear(cond.a).add(self._simplifier.linear(cond.b), -1)
            return self._simplifier.decide(type(cond), difference) is True
        simplified = self._simplifier.simplify(cond)
        if isinstance(simplified, IntImm):
            return simplified.value != 0
        if isinstance(simplified, And):
            return self.can_prove(simplified.a) and self.can_prove(simplified.b)
        if isinstance(simplified, (Or, Not)):
            return self.prove_exact(simplified)
        return False

    def const_int_bound(self, expr: PrimExpr | int) -> tuple[int | None, int | None]:
        """``(lo, hi)`` with ``lo <= expr <= hi`` for all bound values; None is unbounded."""
        expr = convert(expr)
        if is_int_dtype(expr.dtype):
            return self.form_bound(self._simplifier.linear(expr))
        if expr.dtype == "bool":
            simplified = self._simplifier.simplify(expr)
            if isinstance(simplified, IntImm):
                return interval.point(simplified.value)
            return (0, 1)
        return EVERYTHING

    # Services of the simplifier ----------------------------------------------------------
    def var_bound(self, var: Var) -> Interval:
        """The interval of a variable from its range and the constraints on it alone."""
        bound = self._bounds.get(var)
        if bound is None:
            self._bounds[var] = EVERYTHING  # a range that refers to itself gives no bound
            bound = interval.dtype_interval(var.dtype)
            range_ = self._ranges.get(var)
            if range_ is not None:
                low = self._evaluator.expr_bound(range_.min)
                last = self.form_bound(
                    self._simplifier.linear(range_.min).add(
                        self._simplifier.linear(range_.extent)).add(LinearForm.of_constant(-1)))
                bound = interval.intersect(bound, (low[0], last[1]))
            bound = interval.intersect(bound, self._constraint_bounds.get(var, EVERYTHING))
            self._bounds[var] = bound
        return bound

    def form_bound(self, form: LinearForm) -> Interval:
        return self._evaluator.form_bound(form)

    def exact_may_help(self, form: LinearForm, equality: bool = False) -> bool:
        """Whether islpy could decide more than intervals about ``form`` compared with 0:
        intervals are exact for a sum of distinct variables in constant ranges with no
        constraints, and for an (in)equality when moreover every coefficient is +-1 (a
        coefficient of 2 leaves gaps in the values)."""
        for atom, coefficient in form.items():
            if equality and abs(coefficient) != 1:
                return True
            if isinstance(atom, Var):
                if atom in self._symbolic or atom in self._constrained:
                    return True
            elif isinstance(atom, _PRESBURGER_ATOMS):
                return True
        return False

    def prove_exact(self, cond: PrimExpr) -> bool:
        """The islpy proof of ``cond`` under the ranges and constraints."""
        key = structural_key(cond)
        known = self._proofs.get(key)
        if known is None:
            answer = presburger.prove(cond, self._ranges, self._constraints,
                                      self._evaluator.expr_bound)
            # The condition is kept so that the identities in its key stay unique.
            known = self._proofs[key] = (cond, answer)
        return known[1]

    def _forget_derived(self) -> None:
        """Drop what was derived from the ranges and constraints before they changed."""
        self._bounds.clear()
        self._proofs.clear()

    def _tighten(self, cond: PrimExpr) -> None:
        """Narrow a variable's interval from a constraint of the form ``c*v + k <op> 0``."""
        kind = type(cond)
        if kind not in (LT, LE, GT, GE, EQ) or not is_int_dtype(cond.a.dtype):
            return
        # Canonicalized without ranges: the bound must stay true if a range is rebound.
        unbounded = Analyzer()
        difference = unbounded.linear_form(cond.a).add(unbounded.linear_form(cond.b), -1)
        if len(difference.terms) != 1:
            return
        ((var, coefficient),) = difference.terms.values()
        if not isinstance(var, Var):
            return
        # Every kind becomes one or two facts "sign * difference <= slack".
        facts = {LT: [(1, -1)], LE: [(1, 0)], GT: [(-1, -1)], GE: [(-1, 0)],
                 EQ: [(1, 0), (-1, 0)]}[kind]
        bound = self._constraint_bounds.get(var, EVERYTHING)
        for sign, slack in facts:
            # sign * (coefficient * var + constant) <= slack
            factor = sign * coefficient
            limit = slack - sign * difference.constant
            if factor > 0:
                bound = interval.intersect(bound, (None, limit // factor))
            else:
                bound = interval.intersect(bound, (-(limit // -factor), None))
        self._constraint_bounds[var] = bound


def _conjuncts(cond: PrimExpr) -> list[PrimExpr]:
    if isinstance(cond, And):
        return _conjuncts(cond.a) + _conjuncts(cond.b)
    return [cond]
