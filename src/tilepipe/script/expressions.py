"""Reading expressions: Python AST -> IR expressions, with dtype checks.

Python constants (literals and named constants) stay Python values while they combine
with each other, so ``N // 4`` or ``0 % 2`` fold as Python folds them; where a constant
meets an IR expression it takes that expression's dtype (``A[i] * 2`` multiplies by a
``float32`` 2 when ``A`` holds floats). Everything else must agree in dtype.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any, Callable

from ..ir import (
    DTYPES, EQ, GE, GT, LE, LT, NE, Add, And, Buffer, BufferLoad, BufferRegion, Call, Cast,
    Div, FloatImm, FloorDiv, FloorMod, IntImm, Max, Min, Mul, Not, Or, PrimExpr, Range,
    Select, StringImm, Sub, Var, is_float_dtype, is_int_dtype,
)
from ..ir.notation import default_call_dtype, extent_of
from ..ir.printer import STATEMENT_INTRINSICS
from .source import Constants, Source

SCALAR_DTYPES = tuple(dtype for dtype in DTYPES if dtype != "handle")

_ARITHMETIC = {
    ast.Add: (Add, operator.add, "+"), ast.Sub: (Sub, operator.sub, "-"),
    ast.Mult: (Mul, operator.mul, "*"), ast.Div: (Div, operator.truediv, "/"),
    ast.FloorDiv: (FloorDiv, operator.floordiv, "//"), ast.Mod: (FloorMod, operator.mod, "%"),
}
_COMPARISONS = {
    ast.Eq: (EQ, operator.eq, "=="), ast.NotEq: (NE, operator.ne, "!="),
    ast.Lt: (LT, operator.lt, "<"), ast.LtE: (LE, operator.le, "<="),
    ast.Gt: (GT, operator.gt, ">"), ast.GtE: (GE, operator.ge, ">="),
}
# Constructs that only make sense as statements or declarations, never in an expression.
_NOT_EXPRESSIONS = STATEMENT_INTRINSICS | {
    "Buffer", "grid", "handle", "prim_func", "serial", "thread_binding", "unroll", "var",
    "vectorized",
}


class Handle:
    """A ``T.handle`` parameter, waiting for its ``T.match_buffer``."""

    def __init__(self, name: str, position: int):
        self.name = name
        self.position = position


def is_constant(value: Any) -> bool:
    """A Python constant, as opposed to an IR object."""
    return isinstance(value, (bool, int, float, str, tuple))


def constant_to_expr(value: Any, context: str | None, span=None) -> PrimExpr:
    """A Python number as an immediate; ``context`` is the dtype it should take."""
    if isinstance(value, bool):
        return IntImm(int(value), "bool", span)
    if isinstance(value, int):
        if context is not None and is_float_dtype(context):
            return FloatImm(float(value), context, span)
        dtype = context if context is not None and is_int_dtype(context) else "int32"
        return IntImm(value, dtype, span)
    dtype = context if context is not None and is_float_dtype(context) else "float32"
    return FloatImm(float(value), dtype, span)


class ExpressionParser:
    """Reads expressions in lexical scopes of variables and buffers."""

    def __init__(self, source: Source, aliases: frozenset[str], constants: Constants):
        self.source = source
        self.aliases = aliases
        self.constants = constants
        self.scopes: list[dict[str, Any]] = [{}]

    # Names -----------------------------------------------------------------------------
    def error(self, node: ast.AST, message: str):
        return self.source.error(node, message)

    def bind(self, name: str, value: Any) -> None:
        self.scopes[-1][name] = value

    def lookup(self, node: ast.Name) -> Any:
        for scope in reversed(self.scopes):
            if node.id in scope:
                return scope[node.id]
        if node.id in self.constants:
            return self.constants[node.id]
        if node.id in self.constants.others:
            raise self.error(node, f"'{node.id}' is not a constant (a number, string or tuple "
                                   "of them), so a tile program cannot use it")
        raise self.error(node, f"undefined name '{node.id}'")

    def intrinsic_name(self, node: ast.AST) -> str | None:
        """``name`` for a node ``T.name``, else None."""
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in self.aliases):
            return node.attr
        return None

    def is_call_of(self, node: ast.AST, *names: str) -> bool:
        return isinstance(node, ast.Call) and self.intrinsic_name(node.func) in names

    # Entry points ----------------------------------------------------------------------
    def expr(self, node: ast.expr, context: str | None = None) -> PrimExpr:
        """An IR expression; a constant takes the dtype ``context`` (default int32/float32)."""
        return self.to_expr(self.operand(node), node, context)

    def to_expr(self, value: Any, node: ast.AST, context: str | None = None) -> PrimExpr:
        if isinstance(value, PrimExpr):
            return value
        if isinstance(value, (bool, int, float)):
            return constant_to_expr(value, context, self.source.span(node))
        raise self.error(node, f"expected a number or an expression, got {_describe(value)}")

    def int_expr(self, node: ast.expr, what: str) -> PrimExpr:
        value = self.expr(node)
        if not is_int_dtype(value.dtype):
            raise self.error(node, f"{what} must be an integer, got dtype {value.dtype}")
        return value

    def condition(self, node: ast.expr, what: str) -> PrimExpr:
        value = self.expr(node)
        if value.dtype != "bool":
            raise self.error(node, f"{what} must be a boolean condition, got dtype {value.dtype}")
        return value

    def pair(self, first_node: ast.expr, second_node: ast.expr) -> tuple[PrimExpr, PrimExpr]:
        """Two operands: a constant takes the dtype of the other operand."""
        return self.coerce(self.operand(first_node), self.operand(second_node),
                           first_node, second_node)

    def coerce(self, first: Any, second: Any, first_node: ast.AST,
               second_node: ast.AST) -> tuple[PrimExpr, PrimExpr]:
        first_context = second.dtype if isinstance(second, PrimExpr) else None
        second_context = first.dtype if isinstance(first, PrimExpr) else None
        return (self.to_expr(first, first_node, first_context),
                self.to_expr(second, second_node, second_context))

    def same_dtype(self, node: ast.AST, what: str, first: PrimExpr, second: PrimExpr) -> None:
        if first.dtype != second.dtype:
            raise self.error(node, f"operands of {what} have different dtypes {first.dtype} "
                                   f"and {second.dtype}; convert one with T.Cast"
                                   f"{call_dtype_hint(first) or call_dtype_hint(second)}")

    # Operands --------------------------------------------------------------------------
    def operand(self, node: ast.expr) -> Any:
        """A Python constant, an IR expression or a buffer."""
        method: Callable | None = getattr(self, "_operand_" + type(node).__name__, None)
        if method is None:
            raise self.error(node, f"unsupported expression: {_describe_node(node)}")
        return method(node)

    def _operand_Constant(self, node: ast.Constant) -> Any:
        if isinstance(node.value, (bool, int, float, str)):
            return node.value
        raise self.error(node, f"unsupported constant {node.value!r}")

    def _operand_Name(self, node: ast.Name) -> Any:
        value = self.lookup(node)
        if isinstance(value, Handle):
            raise self.error(node, f"'{node.id}' is a T.handle; read it through the buffer "
                                   "that T.match_buffer makes of it")
        return value

    def _operand_Tuple(self, node: ast.Tuple) -> Any:
        return tuple(self._constant(item) for item in node.elts)

    _operand_List = _operand_Tuple

    def _constant(self, node: ast.expr) -> Any:
        value = self.operand(node)
        if not is_constant(value):
            raise self.error(node, "a list or tuple here may only hold constants")
        return value

    def _operand_UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.operand(node.operand)
        if isinstance(node.op, ast.UAdd) and isinstance(value, (int, float, PrimExpr)):
            return value
        if isinstance(node.op, ast.USub):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return -value
            if isinstance(value, PrimExpr) and value.dtype != "bool":
                return Sub(constant_to_expr(0, value.dtype), value, self.source.span(node))
        if isinstance(node.op, ast.Not):
            if isinstance(value, bool):
                return not value
            if isinstance(value, PrimExpr) and value.dtype == "bool":
                return Not(value, self.source.span(node))
        raise self.error(node, f"cannot apply '{_UNARY_SYMBOLS.get(type(node.op), '?')}' "
                               f"to {_describe(value)}")

    def _operand_BinOp(self, node: ast.BinOp) -> Any:
        entry = _ARITHMETIC.get(type(node.op))
        if entry is None:
            raise self.error(node, "unsupported operator; tile programs use + - * / // %")
        node_type, python_op, symbol = entry
        left, right = self.operand(node.left), self.operand(node.right)
        if _is_number(left) and _is_number(right):
            if symbol == "/" and isinstance(left, int) and isinstance(right, int):
                raise self.error(node, "'/' divides floats; use '//' for integers")
            try:
                return python_op(left, right)
            except ZeroDivisionError:
                raise self.error(node, "division by zero") from None
        left, right = self.coerce(left, right, node.left, node.right)
        self.same_dtype(node, f"'{symbol}'", left, right)
        dtype = left.dtype
        if symbol == "/" and not is_float_dtype(dtype):
            raise self.error(node, f"'/' divides floats, not {dtype}; use '//' for integers")
        if symbol in ("//", "%") and not is_int_dtype(dtype):
            raise self.error(node, f"'{symbol}' needs integers, not {dtype}")
        if dtype == "bool":
            raise self.error(node, f"'{symbol}' cannot apply to booleans")
        return node_type(left, right, self.source.span(node))

    def _operand_Compare(self, node: ast.Compare) -> Any:
        operands = [node.left, *node.comparators]
        results = []
        for op, left_node, right_node in zip(node.ops, operands, operands[1:]):
            entry = _COMPARISONS.get(type(op))
            if entry is None:
                raise self.error(node, "unsupported comparison; use == != < <= > >=")
            node_type, python_op, symbol = entry
            left, right = self.operand(left_node), self.operand(right_node)
            if _is_number(left) and _is_number(right):
                results.append(python_op(left, right))
                continue
            left, right = self.coerce(left, right, left_node, right_node)
            self.same_dtype(node, f"'{symbol}'", left, right)
            results.append(node_type(left, right, self.source.span(node)))
        return self._conjunction(node, results, And)

    def _operand_BoolOp(self, node: ast.BoolOp) -> Any:
        values = []
        for item in node.values:
            value = self.operand(item)
            if not (isinstance(value, bool) or (isinstance(value, PrimExpr)
                                                and value.dtype == "bool")):
                raise self.error(item, f"'and'/'or' need boolean conditions, got "
                                       f"{_describe(value)}")
            values.append(value)
        return self._conjunction(node, values, And if isinstance(node.op, ast.And) else Or)

    def _conjunction(self, node: ast.AST, values: list, node_type: type) -> Any:
        """Fold ``values`` left to right with and/or; constants fold as in Python."""
        result = values[0]
        for value in values[1:]:
            if isinstance(result, bool) and isinstance(value, bool):
                result = (result and value) if node_type is And else (result or value)
            else:
                span = self.source.span(node)
                result = node_type(self.to_expr(result, node), self.to_expr(value, node), span)
        return result

    def _operand_IfExp(self, node: ast.IfExp) -> Any:
        condition = self.condition(node.test, "the condition of 'if ... else'")
        true_value, false_value = self.pair(node.body, node.orelse)
        self.same_dtype(node, "'if ... else'", true_value, false_value)
        return Select(condition, true_value, false_value, self.source.span(node))

    def _operand_Attribute(self, node: ast.Attribute) -> Any:
        name = self.intrinsic_name(node)
        if name is not None:
            raise self.error(node, f"T.{name} must be called here, as T.{name}(...)")
        raise self.error(node, "attribute access is not supported in tile programs")

    def _operand_Subscript(self, node: ast.Subscript) -> Any:
        base = self.operand(node.value)
        if isinstance(base, tuple):
            index = self.operand(node.slice)
            if not isinstance(index, int) or not -len(base) <= index < len(base):
                raise self.error(node, f"index {index!r} is out of range of a "
                                       f"{len(base)}-element constant")
            return base[index]
        if not isinstance(base, Buffer):
            raise self.error(node, f"cannot index {_describe(base)}; only buffers are indexed")
        access = self.access(node, base, allow_region=False)
        return access

    def _operand_Call(self, node: ast.Call) -> Any:
        name = self.intrinsic_name(node.func)
        if name is None:
            raise self.error(node, f"unknown function {_describe_node(node.func)}: only T.* "
                                   "intrinsics can be called in a tile program")
        return self.intrinsic(node, name)

    # Buffer accesses -------------------------------------------------------------------
    def indices(self, node: ast.Subscript) -> list[ast.expr]:
        index = node.slice
        if isinstance(index, ast.Tuple):
            return list(index.elts)
        return [index]

    def access(self, node: ast.Subscript, buffer: Buffer,
               allow_region: bool) -> BufferLoad | BufferRegion:
        """``A[i, j]`` (a load) or, where allowed, ``A[i, 0:16]`` (a region)."""
        items = self.indices(node)
        if len(items) != len(buffer.shape):
            raise self.error(node, f"buffer '{buffer.name}' has {_dimensions(len(buffer.shape))} "
                                   f"but is indexed with {len(items)} indices")
        span = self.source.span(node)
        if any(isinstance(item, ast.Slice) for item in items):
            if not allow_region:
                raise self.error(node, f"a slice of '{buffer.name}' is a region, not a value")
            return BufferRegion(buffer, tuple(self.range(item, buffer, axis)
                                              for axis, item in enumerate(items)), span)
        return BufferLoad(buffer, tuple(self.int_expr(item, "a buffer index")
                                        for item in items), span)

    def region(self, node: ast.expr) -> BufferRegion:
        """A region as written in ``T.reads``: ``A[i, 0:16]``, ``A[i, j]`` or ``A``."""
        value = self.operand(node.value) if isinstance(node, ast.Subscript) else self.operand(node)
        if not isinstance(value, Buffer):
            raise self.error(node, f"expected a buffer region such as A[i, 0:16], got "
                                   f"{_describe(value)}")
        if not isinstance(node, ast.Subscript):
            return BufferRegion.full(value)
        items = self.indices(node)
        if len(items) != len(value.shape):
            raise self.error(node, f"buffer '{value.name}' has {_dimensions(len(value.shape))} "
                                   f"but the region has {len(items)}")
        return BufferRegion(value, tuple(self.range(item, value, axis)
                                         for axis, item in enumerate(items)),
                            self.source.span(node))

    def range(self, node: ast.expr, buffer: Buffer, axis: int) -> Range:
        span = self.source.span(node)
        if not isinstance(node, ast.Slice):
            return Range(self.int_expr(node, "a buffer index"), IntImm(1), span)
        if node.step is not None:
            raise self.error(node, "slices with a step are not supported")
        start = self.operand(node.lower) if node.lower is not None else 0
        stop = self.operand(node.upper) if node.upper is not None else buffer.shape[axis]
        start, stop = self.coerce(start, stop, node.lower or node, node.upper or node)
        for value in (start, stop):
            if not is_int_dtype(value.dtype):
                raise self.error(node, f"slice bounds must be integers, got dtype {value.dtype}")
        return Range(start, extent_of(start, stop), span)

    # Intrinsic calls -------------------------------------------------------------------
    def arguments(self, node: ast.Call, name: str, required: int, optional: tuple[str, ...] = (),
                  keywords_only: tuple[str, ...] = ()) -> dict[str, ast.expr]:
        """Match ``node``'s arguments against ``required`` positional ones (named
        ``arg0``...) then ``optional`` (positional or keyword) and ``keywords_only``."""
        positional_names = [f"arg{index}" for index in range(required)] + list(optional)
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            raise self.error(node, f"T.{name} does not take *arguments")
        if len(node.args) > len(positional_names) or len(node.args) < required:
            expected = (f"{required}" if not optional else
                        f"{required} to {required + len(optional)}")
            raise self.error(node, f"T.{name} takes {expected} positional arguments, "
                                   f"got {len(node.args)}")
        bound = dict(zip(positional_names, node.args))
        for keyword in node.keywords:
            if keyword.arg is None or keyword.arg not in (*optional, *keywords_only):
                allowed = ", ".join((*optional, *keywords_only)) or "none"
                raise self.error(keyword.value if keyword.arg is None else keyword,
                                 f"T.{name} has no argument '{keyword.arg}' "
                                 f"(its keyword arguments: {allowed})")
            if keyword.arg in bound:
                raise self.error(keyword, f"T.{name} got argument '{keyword.arg}' twice")
            bound[keyword.arg] = keyword.value
        return bound

    def string(self, node: ast.expr, what: str) -> str:
        value = self.operand(node)
        if not isinstance(value, str):
            raise self.error(node, f"{what} must be a string, got {_describe(value)}")
        return value

    def dtype(self, node: ast.expr) -> str:
        value = self.string(node, "a dtype")
        if value not in DTYPES:
            raise self.error(node, f"unknown dtype '{value}' (known: {', '.join(DTYPES)})")
        return value

    def intrinsic(self, node: ast.Call, name: str) -> PrimExpr:
        span = self.source.span(node)
        if name in SCALAR_DTYPES:
            return self._dtype_constructor(node, name)
        if name == "Cast":
            args = self.arguments(node, name, 2)
            return Cast(self.dtype(args["arg0"]), self.expr(args["arg1"]), span)
        if name in ("max", "min", "floordiv", "floormod"):
            args = self.arguments(node, name, 2)
            first, second = self.pair(args["arg0"], args["arg1"])
            self.same_dtype(node, f"T.{name}", first, second)
            node_type = {"max": Max, "min": Min, "floordiv": FloorDiv, "floormod": FloorMod}[name]
            if name in ("floordiv", "floormod") and not is_int_dtype(first.dtype):
                raise self.error(node, f"T.{name} needs integers, not {first.dtype}")
            return node_type(first, second, span)
        if name == "if_then_else":
            args = self.arguments(node, name, 3, keywords_only=("dtype",))
            context = self.dtype(args["dtype"]) if "dtype" in args else None
            condition = self.condition(args["arg0"], "the condition of T.if_then_else")
            true_value, false_value = self.operand(args["arg1"]), self.operand(args["arg2"])
            if context is not None:
                true_value = self.to_expr(true_value, args["arg1"], context)
                false_value = self.to_expr(false_value, args["arg2"], context)
            true_value, false_value = self.coerce(true_value, false_value,
                                                  args["arg1"], args["arg2"])
            self.same_dtype(node, "T.if_then_else", true_value, false_value)
            return Select(condition, true_value, false_value, span)
        if name in _NOT_EXPRESSIONS:
            raise self.error(node, f"T.{name} cannot be used inside an expression")
        return self._opaque_call(node, name)

    def _dtype_constructor(self, node: ast.Call, dtype: str) -> PrimExpr:
        if not node.args:
            raise self.error(node, f"T.{dtype}() declares a variable: write 'k = T.{dtype}()' "
                                   "as a statement")
        args = self.arguments(node, dtype, 1)
        value = self.operand(args["arg0"])
        span = self.source.span(node)
        if isinstance(value, PrimExpr):
            return Cast(dtype, value, span)
        if dtype == "bool" and isinstance(value, (bool, int)):
            return IntImm(int(bool(value)), "bool", span)
        if is_float_dtype(dtype):
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise self.error(node, f"'{value}' is not a {dtype} number") from None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return FloatImm(float(value), dtype, span)
        if is_int_dtype(dtype) and isinstance(value, int) and not isinstance(value, bool):
            return IntImm(value, dtype, span)
        if is_int_dtype(dtype) and isinstance(value, float) and math.isfinite(value) \
                and value.is_integer():
            return IntImm(int(value), dtype, span)
        raise self.error(node, f"T.{dtype} cannot hold {_describe(value)}")

    def _opaque_call(self, node: ast.Call, name: str) -> Call:
        args = []
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.error(arg, f"T.{name} does not take *arguments")
            if isinstance(arg, ast.Subscript):
                base = self.operand(arg.value)
                if isinstance(base, Buffer):
                    args.append(self.access(arg, base, allow_region=True))
                    continue
            value = self.operand(arg)
            if isinstance(value, str):
                args.append(StringImm(value, span=self.source.span(arg)))
            elif isinstance(value, Buffer):
                args.append(value)
            else:
                args.append(self.to_expr(value, arg))
        dtype = default_call_dtype(name, tuple(args))
        for keyword in node.keywords:
            if keyword.arg != "dtype":
                raise self.error(keyword, f"T.{name}: the only keyword argument of an "
                                          f"intrinsic call is dtype, got '{keyword.arg}'")
            dtype = self.dtype(keyword.value)
        return Call(dtype, name, tuple(args), self.source.span(node))


def call_dtype_hint(expr: PrimExpr) -> str:
    """A hint for an intrinsic call whose dtype was left to its default ``handle``."""
    if isinstance(expr, Call) and expr.dtype == "handle":
        return (f" (T.{expr.op} has dtype handle: give its result type, as in "
                f'T.{expr.op}(..., dtype="float32"))')
    return ""


_UNARY_SYMBOLS = {ast.USub: "-", ast.UAdd: "+", ast.Not: "not", ast.Invert: "~"}


def _dimensions(count: int) -> str:
    return f"{count} dimension" + ("" if count == 1 else "s")


def _is_number(value: Any) -> bool:
    return isinstance(value, (bool, int, float))


def _describe(value: Any) -> str:
    if isinstance(value, Buffer):
        return f"buffer '{value.name}'"
    if isinstance(value, Var):
        return f"variable '{value.name}'"
    if isinstance(value, PrimExpr):
        return f"an expression of dtype {value.dtype}"
    if isinstance(value, BufferRegion):
        return f"a region of buffer '{value.buffer.name}'"
    return f"the constant {value!r}"


def _describe_node(node: ast.AST) -> str:
    try:
        return f"'{ast.unparse(node)}'"
    except (ValueError, AttributeError, TypeError):
        return type(node).__name__
