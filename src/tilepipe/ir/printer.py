"""Printing the IR in the seeds' TVMScript notation.

The output is a Python file that :mod:`tilepipe.script` reads back to a structurally
equal function: 4-space indentation, parentheses only where precedence needs them,
``T.serial(n)`` when a loop starts at 0, and names made unique where two distinct
variables or buffers that are visible at the same place share a name. Constants are
written bare where the parser gives them back their dtype from the other operand and as
``T.<dtype>(value)`` elsewhere.
"""

from __future__ import annotations

import json
import keyword
import math
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from .buffer import Buffer, BufferRegion, Range
from .expr import (
    EQ, GE, GT, LE, LT, NE, Add, And, BinaryOp, BufferLoad, Call, Cast, CompareOp, Div,
    FloatImm, FloorDiv, FloorMod, IntImm, Max, Min, Mul, Not, Or, PrimExpr, Select,
    StringImm, Sub, Var, is_float_dtype, is_int_dtype,
)
from .functor import IRVisitor
from .notation import default_call_dtype, stop_of
from .stmt import (
    AsyncCommitQueue, AsyncScope, AsyncWaitQueue, AttrStmt, Block, BufferStore, Evaluate,
    For, ForKind, IfThenElse, PrimFunc, SeqStmt, Stmt,
)
from .substitute import free_size_vars

HEADER = "from tilepipe import script as T"
INDENT = "    "

# Python precedence levels of what the printer writes, lowest binding first.
_OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _UNARY, _ATOM = range(1, 9)
_PRECEDENCE = {
    Or: _OR, And: _AND, EQ: _COMPARE, NE: _COMPARE, LT: _COMPARE, LE: _COMPARE,
    GT: _COMPARE, GE: _COMPARE, Add: _SUM, Sub: _SUM, Mul: _PRODUCT, Div: _PRODUCT,
    FloorDiv: _PRODUCT, FloorMod: _PRODUCT,
}
_RESERVED = frozenset(keyword.kwlist) | {"T", "range"}

# Statement-level constructs: a call of one of these is printed inside ``T.evaluate``.
STATEMENT_INTRINSICS = frozenset({
    "alloc_buffer", "attr", "block", "block_attr", "evaluate", "func_attr", "match_buffer",
    "reads", "where", "writes",
})


def _identifier(name: str) -> str:
    """``name`` made a valid Python identifier that is not a keyword."""
    cleaned = "".join(char if char.isalnum() or char == "_" else "_" for char in name)
    if not cleaned or cleaned[0].isdigit():
        cleaned = "v_" + cleaned
    if cleaned in _RESERVED:
        cleaned += "_"
    return cleaned


class _Names:
    """Printed names of variables and buffers, unique among those visible together."""

    def __init__(self) -> None:
        self.scopes: list[set[str]] = [set()]
        self.names: dict[int, str] = {}

    def reserve(self, base: str) -> str:
        """A fresh name in the current scope, made from ``base``."""
        base = _identifier(base)
        candidate, suffix = base, 0
        while any(candidate in scope for scope in self.scopes):
            suffix += 1
            candidate = f"{base}_{suffix}"
        self.scopes[-1].add(candidate)
        return candidate

    def define(self, obj: Var | Buffer, base: str) -> str:
        """Name ``obj`` in the current scope."""
        name = self.reserve(base)
        self.names[id(obj)] = name
        return name

    def __getitem__(self, obj: Var | Buffer) -> str:
        name = self.names.get(id(obj))
        return name if name is not None else _identifier(obj.name)

    @contextmanager
    def scope(self) -> Iterator[None]:
        self.scopes.append(set())
        try:
            yield
        finally:
            self.scopes.pop()


def _is_negative_zero(value: float) -> bool:
    return value == 0 and math.copysign(1.0, value) < 0


def _is_immediate(expr: Any) -> bool:
    return isinstance(expr, (IntImm, FloatImm))


def format_value(value: Any, print_expr: Callable[[Any], str] | None = None) -> str:
    """An annotation or attribute value: Python constants, tuples (as lists), dicts;
    anything else (an expression) through ``print_expr``."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(format_value(item, print_expr) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{json.dumps(str(key))}: {format_value(item, print_expr)}"
                 for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    if print_expr is not None:
        return print_expr(value)
    raise TypeError(f"cannot print annotation value {value!r}")


class _Printer:
    def __init__(self) -> None:
        self.names = _Names()
        self.lines: list[str] = []

    # Expressions -----------------------------------------------------------------------
    def expr(self, expr: PrimExpr, context: str | None = None) -> str:
        """``expr`` as text; ``context`` is the dtype a bare constant would take here."""
        return self._expr(expr, context)[0]

    def _expr(self, expr: PrimExpr, context: str | None = None) -> tuple[str, int]:
        if isinstance(expr, IntImm):
            return self._int(expr, context)
        if isinstance(expr, FloatImm):
            return self._explicit(expr), _ATOM
        if isinstance(expr, StringImm):
            return json.dumps(expr.value), _ATOM
        if isinstance(expr, Var):
            return self.names[expr], _ATOM
        if isinstance(expr, (Min, Max)):
            first, second = self._pair(expr.a, expr.b)
            return f"T.{type(expr).__name__.lower()}({first}, {second})", _ATOM
        if isinstance(expr, BinaryOp):
            return self._binary(expr)
        if isinstance(expr, Not):
            # ``not`` of a bare constant would be folded by the parser.
            text, precedence = ((self._explicit(expr.a), _ATOM) if _is_immediate(expr.a)
                                else self._expr(expr.a))
            return f"not {self._wrap(text, precedence < _NOT)}", _NOT
        if isinstance(expr, Select):
            true_value, false_value = self._pair(expr.true_value, expr.false_value)
            return (f"T.if_then_else({self.expr(expr.condition)}, {true_value}, "
                    f"{false_value})"), _ATOM
        if isinstance(expr, Cast):
            return f"T.Cast({json.dumps(expr.dtype)}, {self.expr(expr.value)})", _ATOM
        if isinstance(expr, BufferLoad):
            return self._subscript(expr.buffer, [self.expr(index) for index in expr.indices]), _ATOM
        if isinstance(expr, Call):
            return self._call(expr), _ATOM
        raise TypeError(f"cannot print expression {type(expr).__name__}")

    def _int(self, expr: IntImm, context: str | None) -> tuple[str, int]:
        if expr.dtype == "bool":
            return ("True" if expr.value else "False"), _ATOM
        if context is not None and is_float_dtype(context):
            bare_dtype = None
        else:
            bare_dtype = context if context is not None and is_int_dtype(context) else "int32"
        if expr.dtype == bare_dtype:
            return str(expr.value), (_UNARY if expr.value < 0 else _ATOM)
        return self._explicit(expr), _ATOM

    @staticmethod
    def _explicit(expr: IntImm | FloatImm) -> str:
        """``T.<dtype>(value)``: a constant that keeps its dtype wherever it stands."""
        value = expr.value
        if expr.dtype == "bool":
            text = "True" if value else "False"
        elif isinstance(expr, IntImm):
            text = str(value)
        elif math.isinf(value) or math.isnan(value):
            text = json.dumps(repr(value))
        elif value.is_integer() and abs(value) < 1e15 and not _is_negative_zero(value):
            text = str(int(value))  # T.float32(2), as the seeds write it
        else:
            text = repr(value)
        return f"T.{expr.dtype}({text})"

    def _pair(self, first: PrimExpr, second: PrimExpr) -> tuple[str, str]:
        """Two operands of a call such as ``T.max``: a lone constant takes the other's dtype."""
        if _is_immediate(first) and not _is_immediate(second):
            return self.expr(first, second.dtype), self.expr(second)
        if _is_immediate(second) and not _is_immediate(first):
            return self.expr(first), self.expr(second, first.dtype)
        return self.expr(first), self.expr(second)

    def _binary(self, expr: BinaryOp) -> tuple[str, int]:
        precedence = _PRECEDENCE[type(expr)]
        if _is_immediate(expr.a) and _is_immediate(expr.b):
            # Two bare constants would be folded by the parser: keep the left one explicit.
            left = self._explicit(expr.a), _ATOM
            right = self._expr(expr.b, expr.a.dtype)
        elif _is_immediate(expr.a):
            left, right = self._expr(expr.a, expr.b.dtype), self._expr(expr.b)
        elif _is_immediate(expr.b):
            left, right = self._expr(expr.a), self._expr(expr.b, expr.a.dtype)
        else:
            left, right = self._expr(expr.a), self._expr(expr.b)
        comparison = isinstance(expr, CompareOp) and precedence == _COMPARE
        left_text = self._wrap(left[0], left[1] < precedence or (comparison and left[1] == precedence))
        right_text = self._wrap(right[0], right[1] <= precedence)
        return f"{left_text} {expr.symbol} {right_text}", precedence

    @staticmethod
    def _wrap(text: str, needed: bool) -> str:
        return f"({text})" if needed else text

    def _subscript(self, buffer: Buffer, indices: Sequence[str]) -> str:
        inside = ", ".join(indices) if indices else "()"
        return f"{self.names[buffer]}[{inside}]"

    def _range(self, range_: Range, as_slice: bool) -> str:
        if not as_slice and isinstance(range_.extent, IntImm) and range_.extent.value == 1 \
                and range_.extent.dtype == "int32":
            return self.expr(range_.min)
        start, stop = self._pair(range_.min, stop_of(range_.min, range_.extent))
        return f"{start}:{stop}"

    def region(self, region: BufferRegion, in_call: bool = False) -> str:
        """``A[i, 0:16]``; in a call argument a region of single elements is written
        with slices, so that it does not read back as a load."""
        as_slice = in_call and all(
            isinstance(range_.extent, IntImm) and range_.extent.value == 1
            for range_ in region.region)
        return self._subscript(region.buffer, [self._range(range_, as_slice)
                                               for range_ in region.region])

    def _call(self, call: Call) -> str:
        args = []
        for arg in call.args:
            if isinstance(arg, BufferRegion):
                args.append(self.region(arg, in_call=True))
            elif isinstance(arg, Buffer):
                args.append(self.names[arg])
            else:
                args.append(self.expr(arg))
        if call.dtype != default_call_dtype(call.op, call.args):
            args.append(f"dtype={json.dumps(call.dtype)}")
        return f"T.{call.op}({', '.join(args)})"

    def value(self, value: Any) -> str:
        """An annotation or attribute value; an immediate there is written with its
        dtype, since a bare number reads back as a Python constant."""
        if isinstance(value, Buffer):
            return self.names[value]
        return format_value(value, self._annotation_expr)

    def _annotation_expr(self, value: Any) -> str:
        if isinstance(value, Buffer):
            return self.names[value]
        return self._explicit(value) if _is_immediate(value) else self.expr(value)

    def shape(self, shape: Sequence[PrimExpr]) -> str:
        items = [self.expr(extent) for extent in shape]
        if len(items) == 1:
            return f"({items[0]},)"
        return "(" + ", ".join(items) + ")"

    # Statements ------------------------------------------------------------------------
    def line(self, depth: int, text: str) -> None:
        self.lines.append(INDENT * depth + text)

    def stmt(self, stmt: Stmt, depth: int) -> None:
        method = getattr(self, "_stmt_" + type(stmt).__name__, None)
        if method is None:
            raise TypeError(f"cannot print statement {type(stmt).__name__}")
        method(stmt, depth)

    def _stmt_SeqStmt(self, stmt: SeqStmt, depth: int) -> None:
        for child in stmt.stmts:
            self.stmt(child, depth)

    def _stmt_BufferStore(self, stmt: BufferStore, depth: int) -> None:
        target = self._subscript(stmt.buffer, [self.expr(index) for index in stmt.indices])
        self.line(depth, f"{target} = {self.expr(stmt.value, stmt.buffer.dtype)}")

    def _stmt_Evaluate(self, stmt: Evaluate, depth: int) -> None:
        value = stmt.value
        if isinstance(value, Call) and value.op not in STATEMENT_INTRINSICS:
            self.line(depth, self._call(value))
        else:
            self.line(depth, f"T.evaluate({self.expr(value)})")

    def _stmt_IfThenElse(self, stmt: IfThenElse, depth: int, keyword_: str = "if") -> None:
        self.line(depth, f"{keyword_} {self.expr(stmt.condition)}:")
        self.stmt(stmt.then_case, depth + 1)
        else_case = stmt.else_case
        if isinstance(else_case, IfThenElse):
            self._stmt_IfThenElse(else_case, depth, "elif")
        elif else_case is not None:
            self.line(depth, "else:")
            self.stmt(else_case, depth + 1)

    def _stmt_For(self, stmt: For, depth: int) -> None:
        if isinstance(stmt.min, IntImm) and stmt.min.value == 0 \
                and stmt.min.dtype == stmt.extent.dtype:
            args = [self.expr(stmt.extent)]
        else:
            args = list(self._pair(stmt.min, stop_of(stmt.min, stmt.extent)))
        if stmt.kind is ForKind.THREAD_BINDING:
            args.append(f"thread={json.dumps(stmt.thread_tag)}")
        if stmt.annotations:
            args.append(f"annotations={self.value(dict(stmt.annotations))}")
        with self.names.scope():
            name = self.names.define(stmt.loop_var, stmt.loop_var.name)
            self.line(depth, f"for {name} in T.{stmt.kind.value}({', '.join(args)}):")
            self.stmt(stmt.body, depth + 1)

    def _stmt_Block(self, stmt: Block, depth: int) -> None:
        self.line(depth, f"with T.block({json.dumps(stmt.name) if stmt.name else ''}):")
        inner = depth + 1
        with self.names.scope():
            for buffer in stmt.alloc_buffers:
                self.names.define(buffer, buffer.name)
            if stmt.predicate is not None:
                self.line(inner, f"T.where({self.expr(stmt.predicate)})")
            self.line(inner, f"T.reads({', '.join(self.region(r) for r in stmt.reads)})")
            self.line(inner, f"T.writes({', '.join(self.region(r) for r in stmt.writes)})")
            if stmt.annotations:
                self.line(inner, f"T.block_attr({self.value(dict(stmt.annotations))})")
            for buffer in stmt.alloc_buffers:
                self.line(inner, f"{self.names[buffer]} = T.alloc_buffer("
                                 f"{self.shape(buffer.shape)}, dtype={json.dumps(buffer.dtype)}, "
                                 f"scope={json.dumps(buffer.scope)})")
            self.stmt(stmt.body, inner)

    def _attr_line(self, depth: int, node: Any, key: str, value: Any) -> None:
        node_text = self.expr(node) if isinstance(node, PrimExpr) else self.value(node)
        value_text = self.expr(value) if isinstance(value, PrimExpr) else self.value(value)
        self.line(depth, f"with T.attr({node_text}, {json.dumps(key)}, {value_text}):")

    def _stmt_AttrStmt(self, stmt: AttrStmt, depth: int) -> None:
        self._attr_line(depth, stmt.node, stmt.key, stmt.value)
        self.stmt(stmt.body, depth + 1)

    def _stmt_AsyncScope(self, stmt: AsyncScope, depth: int) -> None:
        self._attr_line(depth, 0, "async_scope", 1)
        self.stmt(stmt.body, depth + 1)

    def _stmt_AsyncCommitQueue(self, stmt: AsyncCommitQueue, depth: int) -> None:
        self._attr_line(depth, 0, "async_commit_queue_scope", stmt.queue)
        self.stmt(stmt.body, depth + 1)

    def _stmt_AsyncWaitQueue(self, stmt: AsyncWaitQueue, depth: int) -> None:
        self._attr_line(depth, 0, "async_wait_queue_scope", stmt.queue)
        self._attr_line(depth + 1, 0, "async_wait_inflight_count", stmt.in_flight)
        self.stmt(stmt.body, depth + 2)

    # Functions -------------------------------------------------------------------------
    def function(self, func: PrimFunc) -> None:
        """Parameters are named first, then the declared size variables, then the
        buffers of ``T.handle`` parameters and, after them, the handles themselves, so
        that names are stable from one print to the next."""
        matched = [param for param in func.params if isinstance(param, Buffer)
                   and not all(isinstance(extent, IntImm) for extent in param.shape)]
        for param in func.params:
            if not any(param is buffer for buffer in matched):
                self.names.define(param, param.name)
        declared = [(self.names.define(var, var.name), var) for var in _undeclared_vars(func)]
        for buffer in matched:
            self.names.define(buffer, buffer.name)
        handles = {}
        for buffer in matched:
            name = self.names[buffer]
            handles[id(buffer)] = self.names.reserve(
                name.lower() if name.lower() != name else name + "_handle")
        params = []
        for param in func.params:
            if isinstance(param, Var):
                params.append(f"{self.names[param]}: T.{param.dtype}")
            elif id(param) in handles:
                params.append(f"{handles[id(param)]}: T.handle")
            else:
                params.append(f"{self.names[param]}: T.Buffer({self.shape(param.shape)}, "
                              f"{json.dumps(param.dtype)}{self._scope(param)})")
        self.line(0, "@T.prim_func")
        self.line(0, f"def {_identifier(func.name)}({', '.join(params)}):")
        if func.attrs:
            self.line(1, f"T.func_attr({self.value(dict(func.attrs))})")
        for name, var in declared:
            self.line(1, f"{name} = T.{var.dtype}()")
        for buffer in matched:
            self.line(1, f"{self.names[buffer]} = T.match_buffer({handles[id(buffer)]}, "
                         f"{self.shape(buffer.shape)}, {json.dumps(buffer.dtype)}"
                         f"{self._scope(buffer)})")
        self.stmt(func.body, 1)

    @staticmethod
    def _scope(buffer: Buffer) -> str:
        return "" if buffer.scope == "global" else f", scope={json.dumps(buffer.scope)}"


def _undeclared_vars(func: PrimFunc) -> list[Var]:
    """Variables used but bound by no loop or parameter, in order of first appearance:
    the function's free sizes first, then any other."""
    loop_vars: set[Var] = set()
    used: dict[Var, None] = dict.fromkeys(free_size_vars(func))

    class _Collector(IRVisitor):
        def visit_var(self, node: Var) -> None:
            used.setdefault(node, None)

        def visit_for(self, node: For) -> None:
            _visit_value(self, dict(node.annotations))
            loop_vars.add(node.loop_var)
            super().visit_for(node)

        def visit_block(self, node: Block) -> None:
            _visit_value(self, dict(node.annotations))
            super().visit_block(node)

        def visit_attr_stmt(self, node: AttrStmt) -> None:
            if isinstance(node.node, PrimExpr):
                self.visit(node.node)
            super().visit_attr_stmt(node)

    collector = _Collector()
    _visit_value(collector, dict(func.attrs))
    collector.visit(func.body)
    params = set(func.scalar_params)
    return [var for var in used if var not in loop_vars and var not in params]


def _visit_value(visitor: IRVisitor, value: Any) -> None:
    """Visit the expressions inside an annotation value (tuples and dicts included)."""
    if isinstance(value, PrimExpr):
        visitor.visit(value)
    elif isinstance(value, (tuple, list)):
        for item in value:
            _visit_value(visitor, item)
    elif isinstance(value, dict):
        for item in value.values():
            _visit_value(visitor, item)


def script_module(funcs: Sequence[PrimFunc]) -> str:
    """Several functions under one ``from tilepipe import script as T`` header."""
    parts = [HEADER]
    for func in funcs:
        printer = _Printer()
        printer.function(func)
        parts.append("\n".join(printer.lines))
    return "\n\n\n".join(parts) + "\n"


def script(func: PrimFunc) -> str:
    """One function as a file that :func:`tilepipe.script.parse` reads back."""
    return script_module([func])


def expr_to_str(expr: PrimExpr) -> str:
    """An expression in the script notation, with the variables' own names."""
    return _Printer().expr(expr)


def stmt_to_str(stmt: Stmt) -> str:
    """A statement in the script notation, with the variables' own names."""
    printer = _Printer()
    printer.stmt(stmt, 0)
    return "\n".join(printer.lines)
