"""Source text, spans and the Python constants a tile program may use.

A program is read from its Python AST and never executed. Module-level assignments of
constants (``N = 16``, ``M = K = 2 * N``) and, for a decorated function, the constants
among its globals and closure are the only Python values it sees.
"""

from __future__ import annotations

import ast
import numbers
import operator
import warnings
from dataclasses import dataclass, field
from typing import Any

from ..errors import ParseError, Span

DEFAULT_ALIAS = "T"


@dataclass
class Source:
    """Where the AST came from: its name, the file's lines and the offsets that map the
    AST's positions back to them (a decorated function is parsed on its own)."""

    name: str
    lines: list[str]
    line_offset: int = 0
    column_offset: int = 0

    def span(self, node: ast.AST) -> Span:
        line = getattr(node, "lineno", 1) + self.line_offset
        column = getattr(node, "col_offset", 0) + 1 + self.column_offset
        text = self.lines[line - 1].rstrip() if 0 < line <= len(self.lines) else ""
        return Span(self.name, line, column, text)

    def error(self, node: ast.AST, message: str) -> ParseError:
        return ParseError(message, self.span(node))


def parse_python(text: str, source_name: str) -> ast.Module:
    """The Python AST of ``text``; a syntax error becomes a :class:`ParseError`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # e.g. "1i": reported as errors
            return ast.parse(text, filename=source_name)
    except SyntaxError as error:
        line = error.lineno or 1
        lines = text.splitlines()
        line_text = lines[line - 1].rstrip() if 0 < line <= len(lines) else ""
        span = Span(source_name, line, error.offset or 0, line_text)
        raise ParseError(f"invalid Python syntax: {error.msg}", span) from None
    except ValueError as error:  # null bytes
        raise ParseError(f"{source_name}: cannot parse: {error}") from None


class NotConstant(Exception):
    """An expression that is not a compile-time Python constant."""


@dataclass
class Constants:
    """Names bound to Python constants (ints, floats, bools, strings, tuples of them)."""

    values: dict[str, Any] = field(default_factory=dict)
    # Names bound to Python values that are not constants (functions, modules, ...).
    others: set[str] = field(default_factory=set)

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


def as_constant(value: Any) -> Any:
    """``value`` as a plain Python constant, or raise :class:`NotConstant`."""
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (tuple, list)):
        return tuple(as_constant(item) for item in value)
    raise NotConstant(value)


def constants_of(namespace: dict[str, Any]) -> Constants:
    """The constant entries of a Python namespace (a function's globals or closure)."""
    constants = Constants()
    for name, value in namespace.items():
        try:
            constants.values[name] = as_constant(value)
        except NotConstant:
            constants.others.add(name)
    return constants


_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}


def evaluate_constant(node: ast.expr, constants: Constants) -> Any:
    """Evaluate a module-level constant expression, or raise :class:`NotConstant`."""
    if isinstance(node, ast.Constant):
        return as_constant(node.value)
    if isinstance(node, ast.Name):
        if node.id in constants:
            return constants[node.id]
        raise NotConstant(node.id)
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(evaluate_constant(item, constants) for item in node.elts)
    if isinstance(node, ast.UnaryOp):
        value = evaluate_constant(node.operand, constants)
        operations = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
        if type(node.op) in operations:
            return _apply(operations[type(node.op)], value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = evaluate_constant(node.left, constants)
        right = evaluate_constant(node.right, constants)
        return _apply(_BINARY[type(node.op)], left, right)
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        values = [evaluate_constant(item, constants) for item in [node.left, *node.comparators]]
        return all(_apply(_COMPARE[type(op)], a, b)
                   for op, a, b in zip(node.ops, values, values[1:]))
    if isinstance(node, ast.BoolOp):
        values = [bool(evaluate_constant(item, constants)) for item in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Subscript):
        base = evaluate_constant(node.value, constants)
        index = evaluate_constant(node.slice, constants)
        return _apply(operator.getitem, base, index)
    raise NotConstant(node)


def _apply(function, *values):
    try:
        return as_constant(function(*values))
    except (TypeError, ValueError, ArithmeticError, IndexError, OverflowError):
        raise NotConstant(values) from None


def module_constants(tree: ast.Module) -> Constants:
    """Constants assigned at the top level of a module, in order; a name later bound to
    something that is not a constant is forgotten."""
    constants = Constants()
    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            constants.others.add(statement.name)
            continue
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            constants.others.update((alias.asname or alias.name).split(".")[0]
                                    for alias in statement.names)
            continue
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        else:
            continue
        try:
            result = evaluate_constant(value, constants)
        except NotConstant:
            result = None
            failed = True
        else:
            failed = False
        for target in targets:
            _bind_target(constants, target, result, failed)
    return constants


def _bind_target(constants: Constants, target: ast.expr, value: Any, failed: bool) -> None:
    if isinstance(target, ast.Name):
        if failed:
            constants.values.pop(target.id, None)
            constants.others.add(target.id)
        else:
            constants.values[target.id] = value
            constants.others.discard(target.id)
    elif isinstance(target, (ast.Tuple, ast.List)):
        unpackable = not failed and isinstance(value, tuple) and len(value) == len(target.elts)
        for index, item in enumerate(target.elts):
            _bind_target(constants, item, value[index] if unpackable else None, not unpackable)


def script_aliases(tree: ast.Module) -> frozenset[str]:
    """The names under which a module imports ``tilepipe.script`` (``T`` by default)."""
    aliases = set()
    for statement in ast.walk(tree):
        if isinstance(statement, ast.ImportFrom) and statement.module == "tilepipe":
            aliases.update(alias.asname or alias.name for alias in statement.names
                           if alias.name == "script")
        elif isinstance(statement, ast.Import):
            aliases.update(alias.asname for alias in statement.names
                           if alias.name == "tilepipe.script" and alias.asname)
    return frozenset(aliases or {DEFAULT_ALIAS})


def is_prim_func_decorator(node: ast.expr, aliases: frozenset[str]) -> bool:
    """``@T.prim_func`` or ``@T.prim_func()``."""
    if isinstance(node, ast.Call) and not node.args and not node.keywords:
        node = node.func
    return (isinstance(node, ast.Attribute) and node.attr == "prim_func"
            and isinstance(node.value, ast.Name) and node.value.id in aliases)
