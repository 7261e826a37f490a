"""Soundness (and, for affine conditions, completeness) checked by brute force.

Random expressions over two or three variables in small ranges are evaluated at every
point: ``simplify`` must keep every value, ``const_int_bound`` must contain every value,
``can_prove`` may say True only when the condition holds everywhere, and for affine
conditions (where islpy is exact) it must say True whenever it does.
"""

import itertools

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from expression_evaluation import evaluate
from tilepipe.arith import Analyzer
from tilepipe.ir import structural_equal
from tilepipe.ir import (
    EQ, GE, GT, LE, LT, NE, Add, And, FloorDiv, FloorMod, IntImm, Max, Min, Mul, Not, Or, Select,
    Sub, Var,
)

X = Var("x")
Y = Var("y")
Z = Var("z")
VARIABLES = (X, Y, Z)
SETTINGS = settings(max_examples=120, deadline=None)


def _leaf():
    return st.one_of(st.sampled_from(VARIABLES),
                     st.integers(-6, 6).map(lambda value: IntImm(value)))


def _affine_node(children):
    constant = st.integers(-5, 5).map(lambda value: IntImm(value))
    divisor = st.integers(1, 6).map(lambda value: IntImm(value))
    return st.one_of(
        st.tuples(children, children).map(lambda pair: Add(*pair)),
        st.tuples(children, children).map(lambda pair: Sub(*pair)),
        st.tuples(children, constant).map(lambda pair: Mul(*pair)),
        st.tuples(children, divisor).map(lambda pair: FloorDiv(*pair)),
        st.tuples(children, divisor).map(lambda pair: FloorMod(*pair)),
        st.tuples(children, children).map(lambda pair: Min(*pair)),
        st.tuples(children, children).map(lambda pair: Max(*pair)),
    )


AFFINE = st.recursive(_leaf(), _affine_node, max_leaves=8)
COMPARISONS = (LT, LE, GT, GE, EQ, NE)


def _comparison(expressions):
    return st.tuples(st.sampled_from(COMPARISONS), expressions, expressions).map(
        lambda triple: triple[0](triple[1], triple[2]))


def _logic(children):
    return st.one_of(
        st.tuples(children, children).map(lambda pair: And(*pair)),
        st.tuples(children, children).map(lambda pair: Or(*pair)),
        children.map(Not),
    )


AFFINE_CONDITIONS = st.recursive(_comparison(AFFINE), _logic, max_leaves=3)


def _general_node(children):
    """Affine nodes plus products of variables, selects and negative divisors."""
    negative = st.integers(-4, -1).map(lambda value: IntImm(value))
    return st.one_of(
        _affine_node(children),
        st.tuples(children, children).map(lambda pair: Mul(*pair)),
        st.tuples(children, negative).map(lambda pair: FloorDiv(*pair)),
        st.tuples(children, negative).map(lambda pair: FloorMod(*pair)),
        st.tuples(_comparison(children), children, children).map(lambda triple: Select(*triple)),
    )


GENERAL = st.recursive(_leaf(), _general_node, max_leaves=8)
RANGES = st.tuples(st.integers(-5, 5), st.integers(1, 6))


def _analyzer(ranges):
    analyzer = Analyzer()
    for var, (low, extent) in zip(VARIABLES, ranges):
        analyzer.bind(var, (low, extent))
    return analyzer


def _points(ranges, constraint=None):
    axes = [range(low, low + extent) for low, extent in ranges]
    for values in itertools.product(*axes):
        env = dict(zip(VARIABLES, values))
        if constraint is None or evaluate(constraint, env):
            yield env


@SETTINGS
@given(GENERAL, st.tuples(RANGES, RANGES, RANGES))
def test_simplify_keeps_every_value(expr, ranges):
    simplified = _analyzer(ranges).simplify(expr)
    for env in _points(ranges):
        assert evaluate(simplified, env) == evaluate(expr, env)


@SETTINGS
@given(st.one_of(GENERAL, AFFINE_CONDITIONS), st.tuples(RANGES, RANGES, RANGES),
       st.booleans())
def test_simplify_is_idempotent(expr, ranges, bound):
    """A simplified expression is already canonical, so printed programs are stable."""
    analyzer = _analyzer(ranges) if bound else Analyzer()
    once = analyzer.simplify(expr)
    assert structural_equal(analyzer.simplify(once), once)


@SETTINGS
@given(GENERAL, st.tuples(RANGES, RANGES, RANGES))
def test_const_int_bound_contains_every_value(expr, ranges):
    low, high = _analyzer(ranges).const_int_bound(expr)
    for env in _points(ranges):
        value = evaluate(expr, env)
        assert low is None or low <= value
        assert high is None or value <= high


@SETTINGS
@given(AFFINE_CONDITIONS, st.tuples(RANGES, RANGES, RANGES))
def test_can_prove_is_sound_and_complete_for_affine_conditions(cond, ranges):
    holds = all(evaluate(cond, env) for env in _points(ranges))
    assert _analyzer(ranges).can_prove(cond) == holds


@SETTINGS
@given(st.recursive(_comparison(GENERAL), _logic, max_leaves=3),
       st.tuples(RANGES, RANGES, RANGES))
def test_can_prove_is_sound_beyond_affine(cond, ranges):
    if _analyzer(ranges).can_prove(cond):
        assert all(evaluate(cond, env) for env in _points(ranges))


@SETTINGS
@given(AFFINE_CONDITIONS, _comparison(AFFINE), st.tuples(RANGES, RANGES, RANGES))
def test_constraints_are_used_exactly(cond, constraint, ranges):
    analyzer = _analyzer(ranges)
    analyzer.add_constraint(constraint)
    assume(any(True for _ in _points(ranges, constraint)))  # contradictions prove nothing
    holds = all(evaluate(cond, env) for env in _points(ranges, constraint))
    assert analyzer.can_prove(cond) == holds
    simplified = analyzer.simplify(cond)
    for env in _points(ranges, constraint):
        assert bool(evaluate(simplified, env)) == bool(evaluate(cond, env))


@SETTINGS
@given(AFFINE_CONDITIONS, st.integers(1, 7))
def test_symbolic_extents(cond, largest):
    """x in [0, z), y in [x, z) with z a size in [1, largest]: exact for every size."""
    analyzer = Analyzer()
    analyzer.bind(X, (IntImm(0), Z))
    analyzer.bind(Y, (X, Z - X))
    analyzer.add_constraint(And(Z >= 1, Z <= largest))
    holds = all(evaluate(cond, {X: x, Y: y, Z: z})
                for z in range(1, largest + 1) for x in range(z) for y in range(x, z))
    assert analyzer.can_prove(cond) == holds
    simplified = analyzer.simplify(cond)
    for z in range(1, largest + 1):
        for x in range(z):
            for y in range(x, z):
                env = {X: x, Y: y, Z: z}
                assert bool(evaluate(simplified, env)) == bool(evaluate(cond, env))
