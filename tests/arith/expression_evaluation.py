"""A direct evaluator of integer/boolean expressions at a point, the oracle of the tests."""

from tilepipe.ir import (
    EQ, GE, GT, LE, LT, NE, Add, And, FloorDiv, FloorMod, IntImm, Max, Min, Mul, Not, Or,
    Select, Sub, Var,
)

_BINARY = {
    Add: lambda a, b: a + b,
    Sub: lambda a, b: a - b,
    Mul: lambda a, b: a * b,
    FloorDiv: lambda a, b: a // b,
    FloorMod: lambda a, b: a % b,
    Min: min,
    Max: max,
    EQ: lambda a, b: int(a == b),
    NE: lambda a, b: int(a != b),
    LT: lambda a, b: int(a < b),
    LE: lambda a, b: int(a <= b),
    GT: lambda a, b: int(a > b),
    GE: lambda a, b: int(a >= b),
    And: lambda a, b: int(bool(a) and bool(b)),
    Or: lambda a, b: int(bool(a) or bool(b)),
}


def evaluate(expr, env: dict) -> int:
    """The value of ``expr`` with each variable taken from ``env``."""
    kind = type(expr)
    if kind is Var:
        return env[expr]
    if kind is IntImm:
        return expr.value
    if kind is Not:
        return int(not evaluate(expr.a, env))
    if kind is Select:
        chosen = expr.true_value if evaluate(expr.condition, env) else expr.false_value
        return evaluate(chosen, env)
    return _BINARY[kind](evaluate(expr.a, env), evaluate(expr.b, env))
