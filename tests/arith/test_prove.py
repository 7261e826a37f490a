"""can_prove and const_int_bound on the predicates the pipeline transform asks about."""

import pytest

from tilepipe.arith import Analyzer
from tilepipe.ir import (
    EQ, NE, And, Buffer, BufferLoad, FloorDiv, FloorMod, IntImm, Max, Min, Not, Or, Range, Select,
    Var,
)

i = Var("i")
j = Var("j")
k = Var("k")
n = Var("n")


def const(value, dtype="int32"):
    return IntImm(value, dtype)


def test_loop_guard_of_a_shifted_stage():
    analyzer = Analyzer()
    analyzer.bind(i, (0, 13))
    assert analyzer.can_prove(i + 3 < 16)
    assert not analyzer.can_prove(i + 3 < 15)
    assert analyzer.can_prove(i + 3 - 3 < 16)
    assert not analyzer.can_prove(i + 3 >= 16)


def test_bind_accepts_a_range_or_a_pair():
    analyzer = Analyzer()
    analyzer.bind(i, Range(const(2), const(3)))
    analyzer.bind(j, (1, 4))
    assert analyzer.const_int_bound(i) == (2, 4)
    assert analyzer.const_int_bound(j) == (1, 4)


def test_symbolic_bound_under_a_constraint():
    analyzer = Analyzer()
    analyzer.bind(i, (0, 3))
    assert not analyzer.can_prove(i < k)
    analyzer.add_constraint(k >= 3)
    assert analyzer.can_prove(i < k)
    assert not analyzer.can_prove(i < k - 1)


def test_symbolic_extent():
    analyzer = Analyzer()
    analyzer.bind(i, (0, n - 1))
    assert analyzer.can_prove(i < n - 1)
    assert analyzer.can_prove(i + 1 < n)
    assert analyzer.can_prove(i <= n)
    assert not analyzer.can_prove(i < n - 2)
    assert analyzer.can_prove(i >= 0)


def test_symbolic_start_and_extent():
    analyzer = Analyzer()
    analyzer.bind(i, (k, n))
    assert analyzer.can_prove(And(k <= i, i < k + n))
    assert not analyzer.can_prove(i < n)


def test_floormod_of_affine_forms():
    analyzer = Analyzer()
    analyzer.bind(i, (0, 13))
    assert analyzer.can_prove((i + 3) % 4 < 4)
    assert analyzer.can_prove((i + 3) % 4 >= 0)
    assert not analyzer.can_prove((i + 3) % 4 < 3)
    assert analyzer.can_prove(EQ((i + 4) % 4, i % 4))
    assert analyzer.can_prove(NE((i + 1) % 2, i % 2))
    assert analyzer.can_prove(EQ(i // 4 * 4 + i % 4, i))
    assert analyzer.can_prove(i // 4 * 4 <= i)
    assert not analyzer.can_prove(i // 4 * 4 < i)


def test_floormod_of_free_variables_is_exact():
    analyzer = Analyzer()
    assert analyzer.can_prove(EQ(FloorDiv(j, const(2)) * 2 + FloorMod(j, const(2)), j))
    assert analyzer.can_prove(NE((j + 1) % 2, j % 2))
    assert not analyzer.can_prove(j % 3 < 2)


def test_disjunctions_and_negations():
    analyzer = Analyzer()
    analyzer.bind(i, (0, 13))
    assert analyzer.can_prove(Or(i < 5, i >= 5))
    assert analyzer.can_prove(Or(EQ(i % 2, const(0)), EQ(i % 2, const(1))))
    assert not analyzer.can_prove(Or(i < 5, i > 5))
    assert analyzer.can_prove(Not(And(i < 5, i > 7)))
    assert analyzer.can_prove(And(i < 13, i >= 0))
    assert not analyzer.can_prove(And(i < 13, i >= 1))


def test_min_and_max_in_conditions():
    analyzer = Analyzer()
    analyzer.bind(i, (0, n))
    assert analyzer.can_prove(EQ(Min(i, n - 1), i))
    assert analyzer.can_prove(EQ(Max(i - n, const(-1)), const(-1)))
    assert not analyzer.can_prove(EQ(Min(i, const(4)), i))


def test_constraint_scope_is_temporary():
    analyzer = Analyzer()
    analyzer.bind(i, (0, 16))
    with analyzer.constraint_scope(i < 8):
        assert analyzer.can_prove(i < 8)
        assert analyzer.const_int_bound(i) == (0, 7)
        analyzer.bind(j, (0, 2))
        assert analyzer.can_prove(j < 2)
    assert not analyzer.can_prove(i < 8)
    assert analyzer.const_int_bound(i) == (0, 15)
    assert not analyzer.can_prove(j < 2)


def test_constraints_tighten_bounds():
    analyzer = Analyzer()
    analyzer.add_constraint(And(k >= 3, k * 2 < 15))
    assert analyzer.const_int_bound(k) == (3, 7)
    analyzer.add_constraint(EQ(n, const(5)))
    assert analyzer.const_int_bound(n) == (5, 5)
    analyzer.add_constraint(-2 * j >= -9)
    assert analyzer.const_int_bound(j) == (None, 4)


def test_contradictory_assumptions_are_accepted():
    analyzer = Analyzer()
    analyzer.bind(i, (0, 4))
    analyzer.add_constraint(i > 10)
    assert analyzer.can_prove(i > 10)
    assert analyzer.can_prove(i < 4)


@pytest.mark.parametrize("expr, bound", [
    (i, (0, 12)),
    (i * 2 + 1, (1, 25)),
    (i - i, (0, 0)),
    (3 - i, (-9, 3)),
    (i // 4, (0, 3)),
    (i % 4, (0, 3)),
    ((i + 3) % 16, (3, 15)),
    (Min(i, const(5)), (0, 5)),
    (Max(i, const(5)), (5, 12)),
    (i * j, (None, None)),
    (Select(i < 3, const(7), const(-1)), (-1, 7)),
    (j, (None, None)),
    (j % 8, (0, 7)),
    (j - j + 2, (2, 2)),
    (i < 20, (1, 1)),
    (i < 5, (0, 1)),
])
def test_const_int_bound(expr, bound):
    analyzer = Analyzer()
    analyzer.bind(i, (0, 13))
    assert analyzer.const_int_bound(expr) == bound


def test_bounds_follow_symbolic_ranges():
    analyzer = Analyzer()
    analyzer.bind(n, (1, 8))
    analyzer.bind(i, (0, n))
    assert analyzer.const_int_bound(i) == (0, 7)
    analyzer.bind(j, (i, n - i))
    assert analyzer.const_int_bound(j) == (0, 7)


def test_loads_of_narrow_types_are_bounded_by_their_dtype():
    buffer = Buffer("flags", (const(4),), "uint8")
    analyzer = Analyzer()
    assert analyzer.const_int_bound(BufferLoad(buffer, (const(0),))) == (0, 255)
    assert analyzer.can_prove(BufferLoad(buffer, (i,)) < 256)
    assert not analyzer.can_prove(BufferLoad(buffer, (i,)) < 255)


def test_negative_constants_reach_islpy_with_their_precedence():
    """(-1 * -2) % 2 is 0, so the constraint says only x >= 0 and proves nothing."""
    x = Var("x")
    analyzer = Analyzer()
    analyzer.bind(x, (0, 2))
    analyzer.bind(j, (0, 1))
    analyzer.add_constraint(FloorMod(const(-1) * const(-2), const(2)) <= x)
    assert not analyzer.can_prove(j < x)
    assert analyzer.can_prove(j <= x)


def test_rebinding_a_range_does_not_leave_stale_bounds():
    analyzer = Analyzer()
    analyzer.bind(i, (0, 8))
    analyzer.add_constraint(k + i // 8 >= 3)
    assert analyzer.can_prove(k >= 3)
    analyzer.bind(i, (8, 8))
    assert analyzer.can_prove(k >= 2)
    assert not analyzer.can_prove(k >= 3)


def test_islpy_keeps_answering_after_a_question_too_large_for_it():
    variables = [Var(f"v{index}") for index in range(8)]
    analyzer = Analyzer()
    for var in variables:
        analyzer.bind(var, (0, 1000))
    large = None
    for index, var in enumerate(variables):
        following = variables[(index + 1) % len(variables)]
        part = NE(var % (index + 2), following % (index + 3))
        large = part if large is None else And(large, part)
    assert not analyzer.can_prove(Or(large, variables[0] > 500))
    analyzer.bind(i, (0, 13))
    assert analyzer.can_prove(Or(EQ(i % 2, const(0)), EQ(i % 2, const(1))))
