"""Exact proofs of affine conditions through islpy (Presburger arithmetic).

A condition holds for every point of a domain exactly when ``domain and not condition``
is empty. Affine integer expressions, floordiv/floormod by positive constants, min/max,
comparisons and and/or/not are translated to ISL's set notation; any other
subexpression (a load, a product of variables, a select...) becomes a fresh variable
bounded only by its constant bounds, which keeps the proof sound. One ISL context is
shared by the process and answers are cached by the text of the set.

The work spent on one question is bounded without looking at a clock, so that every
machine, loaded or not, gives the same answers: a question with more variables or
floordiv/floormod terms than the size limits is not given to ISL at all, and ISL stops
a question once it has counted ``MAX_OPERATIONS`` of its own operations. Either way the
answer is "not proven", which is sound.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

from ..ir import (
    EQ, GE, GT, LE, LT, NE, Add, And, FloorDiv, FloorMod, IntImm, Max, Min, Mul, Not, Or,
    PrimExpr, Range, Sub, Var, is_int_dtype,
)
from .interval import Interval, dtype_interval
from .linear import structural_key

_RELATIONS = {LT: "<", LE: "<=", GT: ">", GE: ">=", EQ: "=", NE: "!="}
_CACHE_LIMIT = 65536
# Each floordiv/floormod term becomes an existential variable in ISL, and negating the
# condition multiplies the disjuncts: these counts are what make a question costly. The
# passes' questions stay well below them (at most 7 variables and 10 terms in the test
# suite).
MAX_DIMENSIONS = 16
MAX_DIVISIONS = 16
# ISL's own count of its operations per question: a question stopped there has taken
# about half a second on a quiet machine.
MAX_OPERATIONS = 500_000

_contexts: list = []
_answers: dict[str, bool] = {}


def _isl():
    """islpy and the process's one ISL context, both created on first use."""
    import islpy

    if not _contexts:
        context = islpy.Context()
        context.set_max_operations(MAX_OPERATIONS)
        _contexts.append(context)
    return islpy, _contexts[0]


def _is_empty(text: str) -> bool:
    """Whether the ISL set ``text`` has no point (False when ISL cannot tell)."""
    answer = _answers.get(text)
    if answer is None:
        islpy, context = _isl()
        context.reset_operations()
        try:
            answer = islpy.Set.read_from_str(context, text).is_empty()
        except islpy.Error:
            answer = False  # a question ISL cannot take (or finish) is not proven
        if len(_answers) >= _CACHE_LIMIT:
            _answers.clear()
        _answers[text] = answer
    return answer


class _SetText:
    """Accumulates the dimensions and domain constraints of one ISL set."""

    def __init__(self, ranges: Mapping[Var, Range], atom_bound: Callable[[PrimExpr], Interval]):
        self.ranges = ranges
        self.atom_bound = atom_bound
        self.names: dict[tuple, str] = {}
        self.domain: list[str] = []
        self.new_vars: list[Var] = []
        self.divisions = 0

    def _dimension(self, key: tuple) -> tuple[str, bool]:
        name = self.names.get(key)
        if name is not None:
            return name, False
        name = f"d{len(self.names)}"
        self.names[key] = name
        return name, True

    def _opaque(self, expr: PrimExpr) -> str:
        name, new = self._dimension(("opaque",) + structural_key(expr))
        if new:
            low, high = self.atom_bound(expr)
            if low is not None:
                self.domain.append(f"{name} >= {low}")
            if high is not None:
                self.domain.append(f"{name} <= {high}")
        return name

    def affine(self, expr: PrimExpr) -> str:
        kind = type(expr)
        if kind is IntImm:
            return str(expr.value)
        if kind is Var and is_int_dtype(expr.dtype):
            name, new = self._dimension(("var", id(expr)))
            if new:
                self.new_vars.append(expr)
                low, high = dtype_interval(expr.dtype)
                if low is not None:
                    self.domain.append(f"{low} <= {name} <= {high}")
            return name
        # Every operand is parenthesized: ISL's parser gives unary minus and mod
        # surprising precedence (it reads "-2*-1 mod 2" as 2).
        if kind is Add or kind is Sub:
            operator = "+" if kind is Add else "-"
            return f"(({self.affine(expr.a)}) {operator} ({self.affine(expr.b)}))"
        if kind is Mul:
            if isinstance(expr.b, IntImm):
                return f"({expr.b.value}*({self.affine(expr.a)}))"
            if isinstance(expr.a, IntImm):
                return f"({expr.a.value}*({self.affine(expr.b)}))"
        if (kind is FloorDiv or kind is FloorMod) and isinstance(expr.b, IntImm) \
                and expr.b.value > 0:
            self.divisions += 1
            if kind is FloorDiv:
                return f"floor(({self.affine(expr.a)})/{expr.b.value})"
            return f"(({self.affine(expr.a)}) mod {expr.b.value})"
        if kind is Min or kind is Max:
            function = "min" if kind is Min else "max"
            return f"{function}(({self.affine(expr.a)}), ({self.affine(expr.b)}))"
        return self._opaque(expr)

    def formula(self, cond: PrimExpr) -> str:
        kind = type(cond)
        if kind is IntImm:
            return "1 = 1" if cond.value else "1 = 0"
        if kind in _RELATIONS and is_int_dtype(cond.a.dtype) and is_int_dtype(cond.b.dtype):
            return f"({self.affine(cond.a)}) {_RELATIONS[kind]} ({self.affine(cond.b)})"
        if kind is And or kind is Or:
            word = "and" if kind is And else "or"
            return f"({self.formula(cond.a)} {word} {self.formula(cond.b)})"
        if kind is Not:
            return f"not ({self.formula(cond.a)})"
        name, new = self._dimension(("truth",) + structural_key(cond))
        if new:
            self.domain.append(f"0 <= {name} <= 1")
        return f"{name} = 1"


def prove(cond: PrimExpr, ranges: Mapping[Var, Range],
          constraints: Sequence[tuple[PrimExpr, frozenset[Var]]],
          atom_bound: Callable[[PrimExpr], Interval]) -> bool:
    """True when ``cond`` holds at every point where each bound variable lies in its
    range and every constraint holds. Only constraints that share variables with the
    condition (directly or through ranges and other constraints) enter the set."""
    text = _SetText(ranges, atom_bound)
    goal = text.formula(cond)
    seen: set[Var] = set()
    used = [False] * len(constraints)
    progress = True
    while progress:
        progress = False
        while text.new_vars:
            var = text.new_vars.pop()
            seen.add(var)
            range_ = ranges.get(var)
            if range_ is not None:
                low = text.affine(range_.min)
                end = text.affine(Add(range_.min, range_.extent))
                name = text.names[("var", id(var))]
                text.domain.append(f"({low}) <= {name} < ({end})")
        for index, (constraint, constraint_vars) in enumerate(constraints):
            if not used[index] and not constraint_vars.isdisjoint(seen):
                used[index] = True
                progress = True
                text.domain.append(text.formula(constraint))
        progress = progress or bool(text.new_vars)
    if len(text.names) > MAX_DIMENSIONS or text.divisions > MAX_DIVISIONS:
        return False  # too large to ask ISL within the work bound
    dimensions = ", ".join(text.names.values())
    domain = " and ".join(f"({part})" for part in text.domain) or "1 = 1"
    return _is_empty(f"{{ [{dimensions}] : {domain} and not ({goal}) }}")


def cached_answers() -> int:
    """How many islpy answers the process holds (for benchmarks and diagnostics)."""
    return len(_answers)
