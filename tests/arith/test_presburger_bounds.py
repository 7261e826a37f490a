"""The work bounds of the exact proofs: a question beyond the size limits or ISL's
operation limit is "not proven", the same on every machine and every time it is asked,
and the analyzer keeps proving what fits."""

from tilepipe.arith import Analyzer, presburger
from tilepipe.ir import EQ, NE, And, IntImm, Or, Var


def bound_analyzer(variables) -> Analyzer:
    analyzer = Analyzer()
    for var in variables:
        analyzer.bind(var, (0, 1000))
    return analyzer


def parity_sum(count: int):
    """``sum(v % 2 + (v + 1) % 2) == count`` over ``count`` variables: true, with two
    floormod terms per variable, and beyond interval reasoning (each term is 0 or 1)."""
    variables = [Var(f"v{index}") for index in range(count)]
    total = None
    for var in variables:
        term = var % 2 + (var + 1) % 2
        total = term if total is None else total + term
    return variables, EQ(total, IntImm(count))


def test_a_question_at_the_size_limits_is_asked_and_proven():
    variables, cond = parity_sum(presburger.MAX_DIVISIONS // 2)
    asked = presburger.cached_answers()
    assert bound_analyzer(variables).can_prove(cond)
    assert presburger.cached_answers() == asked + 1


def test_a_question_beyond_the_size_limits_is_not_asked_and_not_proven():
    variables, cond = parity_sum(presburger.MAX_DIVISIONS // 2 + 1)
    asked = presburger.cached_answers()
    for _ in range(3):
        assert not bound_analyzer(variables).can_prove(cond)
    assert presburger.cached_answers() == asked  # islpy never saw it


def chained(count: int):
    """An analyzer where ``w[k] == w[k - 1] + 1`` for ``count`` variables, and the claim
    ``w[-1] - w[0] == count - 1``, which needs every variable of the chain."""
    variables = [Var(f"w{index}") for index in range(count)]
    analyzer = bound_analyzer(variables)
    for previous, var in zip(variables, variables[1:]):
        analyzer.add_constraint(EQ(var, previous + 1))
    return analyzer, EQ(variables[-1] - variables[0], IntImm(count - 1))


def test_a_question_with_variables_up_to_the_limit_is_proven():
    analyzer, claim = chained(presburger.MAX_DIMENSIONS)
    assert analyzer.can_prove(claim)


def test_a_question_with_more_variables_than_the_limit_is_not_asked():
    analyzer, claim = chained(presburger.MAX_DIMENSIONS + 1)
    asked = presburger.cached_answers()
    assert not analyzer.can_prove(claim)
    assert presburger.cached_answers() == asked


def test_a_question_beyond_the_operation_limit_is_not_proven_every_time():
    """Within the size limits but more work than ISL may spend: each time the same
    answer, and proofs that fit go on."""
    variables = [Var(f"u{index}") for index in range(8)]
    large = None
    for index, var in enumerate(variables):
        following = variables[(index + 1) % len(variables)]
        part = NE(var % (index + 2), following % (index + 3))
        large = part if large is None else And(large, part)
    asked = presburger.cached_answers()
    answers = set()
    for offset in range(3):  # distinct texts, so that each is worked out afresh
        answers.add(bound_analyzer(variables).can_prove(Or(large, variables[0] > 500 + offset)))
    assert answers == {False}
    assert presburger.cached_answers() > asked  # within the size limits: islpy was asked
    fits, cond = parity_sum(2)
    assert bound_analyzer(fits).can_prove(cond)
