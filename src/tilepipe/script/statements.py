"""Reading statements and functions: a ``@T.prim_func`` definition -> :class:`PrimFunc`."""

from __future__ import annotations

import ast
from typing import Any

from ..ir import (
    SCOPES, AsyncCommitQueue, AsyncScope, AsyncWaitQueue, AttrStmt, Block, Buffer,
    BufferLoad, BufferStore, Evaluate, For, ForKind, IfThenElse, IntImm, PrimExpr, PrimFunc,
    SeqStmt, Stmt, StringImm, Var, is_int_dtype,
)
from ..ir.notation import extent_of
from .expressions import (
    SCALAR_DTYPES, ExpressionParser, Handle, call_dtype_hint, constant_to_expr,
)

_LOOP_KINDS = {
    "serial": ForKind.SERIAL, "unroll": ForKind.UNROLLED, "vectorized": ForKind.VECTORIZED,
    "thread_binding": ForKind.THREAD_BINDING,
}
_BLOCK_HEADERS = ("reads", "writes", "where", "block_attr")
_ASYNC_KEYS = ("async_scope", "async_commit_queue_scope", "async_wait_queue_scope",
               "async_wait_inflight_count")


class FunctionParser(ExpressionParser):
    """Reads one function definition."""

    # Functions -------------------------------------------------------------------------
    def function(self, node: ast.FunctionDef) -> PrimFunc:
        arguments = node.args
        extra = (arguments.posonlyargs or arguments.vararg or arguments.kwonlyargs
                 or arguments.kwarg or arguments.defaults)
        if extra:
            raise self.error(node, f"parameters of '{node.name}' must be plain annotated names "
                                   "(no defaults, *args, keyword-only or **kwargs)")
        params: list[Any] = []
        for position, argument in enumerate(arguments.args):
            param = self._parameter(argument, position)
            self.bind(argument.arg, param)
            params.append(param)
        statements = list(node.body)
        if statements and _is_docstring(statements[0]):
            statements.pop(0)
        attrs: dict[str, Any] = {}
        while statements and self._declaration(statements[0], params, attrs):
            statements.pop(0)
        for param in params:
            if isinstance(param, Handle):
                raise self.error(arguments.args[param.position],
                                 f"T.handle parameter '{param.name}' has no T.match_buffer")
        body = self.body(statements, node)
        return PrimFunc(node.name, tuple(params), body, attrs, self.source.span(node))

    def _parameter(self, argument: ast.arg, position: int) -> Any:
        annotation = argument.annotation
        span = self.source.span(argument)
        if annotation is None:
            raise self.error(argument, f"parameter '{argument.arg}' needs a type: "
                                       "T.Buffer(shape, dtype), T.handle or a dtype like T.int32")
        name = self.intrinsic_name(annotation)
        if name == "handle":
            return Handle(argument.arg, position)
        if name in SCALAR_DTYPES:
            return Var(argument.arg, name, span)
        if isinstance(annotation, ast.Subscript) and self.intrinsic_name(annotation.value) == "Buffer":
            items = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) \
                else [annotation.slice]
            call = ast.Call(func=annotation.value, args=items, keywords=[])
            ast.copy_location(call, annotation)
            return self._buffer(call, "Buffer", argument.arg, span, dtype_keyword="dtype")
        if self.is_call_of(annotation, "Buffer"):
            return self._buffer(annotation, "Buffer", argument.arg, span, dtype_keyword="dtype")
        raise self.error(annotation, f"unknown type of parameter '{argument.arg}': expected "
                                     "T.Buffer(shape, dtype), T.handle or a dtype like T.int32")

    def _buffer(self, call: ast.Call, name: str, buffer_name: str, span, dtype_keyword: str,
                required: int = 1) -> Buffer:
        """A buffer from ``T.Buffer``/``T.alloc_buffer``/``T.match_buffer`` arguments
        (after the first ``required - 1`` ones, which the caller reads)."""
        args = self.arguments(call, name, required, optional=(dtype_keyword, "scope"))
        shape = self.shape(args[f"arg{required - 1}"])
        dtype = self.dtype(args[dtype_keyword]) if dtype_keyword in args else "float32"
        if dtype == "handle":
            raise self.error(args[dtype_keyword], "a buffer cannot hold handles")
        scope = self.string(args["scope"], "a scope") if "scope" in args else "global"
        if scope not in SCOPES:
            raise self.error(args["scope"], f"unknown scope '{scope}' "
                                            f"(known: {', '.join(SCOPES)})")
        return Buffer(buffer_name, shape, dtype, scope, span)

    def shape(self, node: ast.expr) -> tuple[PrimExpr, ...]:
        items = node.elts if isinstance(node, (ast.Tuple, ast.List)) else [node]
        shape = []
        for item in items:
            value = self.operand(item)
            if isinstance(value, tuple):
                shape.extend(self.to_expr(extent, item) for extent in value)
                continue
            extent = self.to_expr(value, item)
            if not is_int_dtype(extent.dtype):
                raise self.error(item, f"a buffer extent must be an integer, got {extent.dtype}")
            shape.append(extent)
        return tuple(shape)

    def _declaration(self, node: ast.stmt, params: list[Any], attrs: dict[str, Any]) -> bool:
        """Read a function-level declaration (``T.func_attr``, a size variable, a
        ``T.match_buffer``); False when ``node`` is not one."""
        if isinstance(node, ast.Expr) and self.is_call_of(node.value, "func_attr"):
            args = self.arguments(node.value, "func_attr", 1)
            value = self.annotation_value(args["arg0"])
            if not isinstance(value, dict):
                raise self.error(node, "T.func_attr takes a dict of attributes")
            attrs.update(value)
            return True
        if self._size_var(node):
            return True
        if not (isinstance(node, ast.Assign) and self.is_call_of(node.value, "match_buffer")):
            return False
        target = self._single_name(node, "T.match_buffer")
        call = node.value
        if not call.args or not isinstance(call.args[0], ast.Name):
            raise self.error(call, "T.match_buffer(handle, shape, dtype) needs a T.handle "
                                   "parameter first")
        handle = self.lookup(call.args[0])
        if not isinstance(handle, Handle) or not isinstance(params[handle.position], Handle):
            raise self.error(call.args[0], f"'{call.args[0].id}' is not a T.handle parameter "
                                           "that is still to be matched")
        buffer = self._buffer(call, "match_buffer", target, self.source.span(node),
                              dtype_keyword="dtype", required=2)
        params[handle.position] = buffer
        self.bind(target, buffer)
        return True

    def _size_var(self, node: ast.stmt) -> bool:
        """``k = T.int32()`` or ``k = T.var("int32")``: declare a size variable."""
        if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Call):
            return False
        name = self.intrinsic_name(node.value.func)
        if name == "var":
            args = self.arguments(node.value, "var", 1)
            dtype = self.dtype(args["arg0"])
        elif name in SCALAR_DTYPES and not node.value.args and not node.value.keywords:
            dtype = name
        else:
            return False
        target = self._single_name(node, f"T.{name}()")
        self.bind(target, Var(target, dtype, self.source.span(node)))
        return True

    def _single_name(self, node: ast.Assign, what: str) -> str:
        if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
            raise self.error(node, f"assign {what} to a single name")
        return node.targets[0].id

    # Statement lists -------------------------------------------------------------------
    def body(self, statements: list[ast.stmt], owner: ast.AST) -> Stmt:
        """A statement list; ``T.attr(...)`` as a statement applies to the rest of it."""
        result: list[Stmt] = []
        for index, node in enumerate(statements):
            if isinstance(node, ast.Expr) and self.is_call_of(node.value, "attr"):
                result.append(self._attr(node.value, statements[index + 1:], node))
                break
            stmt = self.statement(node)
            if stmt is not None:
                result.append(stmt)
        if not result:
            raise self.error(owner, "this body has no statement (write T.evaluate(0) for none)")
        if len(result) == 1:
            return result[0]
        return SeqStmt(tuple(result), result[0].span)

    def statement(self, node: ast.stmt) -> Stmt | None:
        method = getattr(self, "_statement_" + type(node).__name__, None)
        if method is None:
            raise self.error(node, f"unsupported statement '{type(node).__name__.lower()}' "
                                   "in a tile program")
        return method(node)

    def _statement_Pass(self, node: ast.Pass) -> None:
        return None

    def _statement_Expr(self, node: ast.Expr) -> Stmt | None:
        value = node.value
        if _is_docstring(node):
            return None
        name = self.intrinsic_name(value.func) if isinstance(value, ast.Call) else None
        if name is None:
            raise self.error(node, "this expression statement has no effect")
        if name in _BLOCK_HEADERS:
            raise self.error(node, f"T.{name} belongs at the top level of a T.block body")
        if name in ("func_attr", "match_buffer"):
            raise self.error(node, f"T.{name} belongs at the start of the function body")
        if name == "evaluate":
            args = self.arguments(value, name, 1)
            return Evaluate(self.expr(args["arg0"]), self.source.span(node))
        return Evaluate(self.expr(value), self.source.span(node))

    def _statement_Assign(self, node: ast.Assign) -> Stmt | None:
        if self._size_var(node):
            return None
        if len(node.targets) != 1:
            raise self.error(node, "chained assignment is not supported in a tile program")
        target = node.targets[0]
        if isinstance(target, ast.Subscript):
            return self._store(target, self.operand(node.value), node.value, node)
        if self.is_call_of(node.value, "alloc_buffer"):
            raise self.error(node, "T.alloc_buffer belongs at the top level of a T.block body")
        if self.is_call_of(node.value, "match_buffer"):
            raise self.error(node, "T.match_buffer belongs at the start of the function body")
        raise self.error(node, "only buffer elements (A[i] = ...), T.alloc_buffer, "
                               "T.match_buffer and size variables (k = T.int32()) are assigned "
                               "in a tile program")

    def _statement_AugAssign(self, node: ast.AugAssign) -> Stmt:
        if not isinstance(node.target, ast.Subscript):
            raise self.error(node, "only buffer elements can be updated in place")
        load = ast.Subscript(value=node.target.value, slice=node.target.slice, ctx=ast.Load())
        value = ast.BinOp(left=ast.copy_location(load, node.target), op=node.op, right=node.value)
        ast.copy_location(value, node)
        return self._store(node.target, self.operand(value), value, node)

    def _store(self, target: ast.Subscript, value: Any, value_node: ast.AST,
               node: ast.stmt) -> Stmt:
        buffer = self.operand(target.value)
        if not isinstance(buffer, Buffer):
            raise self.error(target, f"cannot store into {ast.unparse(target.value)}: "
                                     "not a buffer")
        access: BufferLoad = self.access(target, buffer, allow_region=False)
        value = self.to_expr(value, value_node, buffer.dtype)
        if value.dtype != buffer.dtype:
            raise self.error(node, f"cannot store a value of dtype {value.dtype} into "
                                   f"{buffer.dtype} buffer '{buffer.name}'; convert it with "
                                   f"T.Cast{call_dtype_hint(value)}")
        return BufferStore(buffer, value, access.indices, self.source.span(node))

    def _statement_If(self, node: ast.If) -> Stmt:
        condition = self.condition(node.test, "an if condition")
        then_case = self._scoped_body(node.body, node)
        else_case = self._scoped_body(node.orelse, node) if node.orelse else None
        return IfThenElse(condition, then_case, else_case, self.source.span(node))

    def _scoped_body(self, statements: list[ast.stmt], owner: ast.AST,
                     bindings: dict[str, Any] | None = None) -> Stmt:
        self.scopes.append(dict(bindings or {}))
        try:
            return self.body(statements, owner)
        finally:
            self.scopes.pop()

    # Loops -----------------------------------------------------------------------------
    def _statement_For(self, node: ast.For) -> Stmt:
        if node.orelse:
            raise self.error(node, "a for loop in a tile program has no else branch")
        if self.is_call_of(node.iter, "grid"):
            return self._grid(node)
        if not isinstance(node.target, ast.Name):
            raise self.error(node.target, "a loop variable is a single name")
        call = node.iter
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) \
                and call.func.id == "range":
            kind, name = ForKind.SERIAL, "range"
            args = self.arguments(call, name, 1, optional=("stop",))
        else:
            name = self.intrinsic_name(call.func) if isinstance(call, ast.Call) else None
            if name not in _LOOP_KINDS:
                raise self.error(call, "a loop runs over range(...), T.serial, T.unroll, "
                                       "T.vectorized or T.thread_binding")
            kind = _LOOP_KINDS[name]
            optional = ("stop", "thread") if kind is ForKind.THREAD_BINDING else ("stop",)
            args = self.arguments(call, name, 1, optional=optional,
                                  keywords_only=("annotations",))
        if kind is ForKind.THREAD_BINDING and "thread" not in args and "stop" in args \
                and isinstance(args["stop"], ast.Constant) and isinstance(args["stop"].value, str):
            args["thread"] = args.pop("stop")  # T.thread_binding(16, "threadIdx.x")
        if "stop" in args:
            start, stop = self.pair(args["arg0"], args["stop"])
        else:
            stop = self.expr(args["arg0"])
            start = constant_to_expr(0, stop.dtype, self.source.span(call))
        for bound in (start, stop):
            if not is_int_dtype(bound.dtype):
                raise self.error(call, f"loop bounds must be integers, got dtype {bound.dtype}")
        if start.dtype != stop.dtype:
            raise self.error(call, f"loop bounds have different dtypes {start.dtype} and "
                                   f"{stop.dtype}")
        thread_tag = None
        if kind is ForKind.THREAD_BINDING:
            if "thread" not in args:
                raise self.error(call, 'T.thread_binding needs thread="threadIdx.x" (or another '
                                       "thread axis)")
            thread_tag = self.string(args["thread"], "a thread axis")
        annotations = {}
        if "annotations" in args:
            annotations = self.annotation_value(args["annotations"])
            if not isinstance(annotations, dict):
                raise self.error(args["annotations"], "annotations must be a dict")
        loop_var = Var(node.target.id, stop.dtype, self.source.span(node.target))
        body = self._scoped_body(node.body, node, {node.target.id: loop_var})
        return For(loop_var, start, extent_of(start, stop), kind, body, thread_tag,
                   annotations, self.source.span(node))

    def _grid(self, node: ast.For) -> Stmt:
        """``for i, j in T.grid(m, n)``: nested serial loops from 0."""
        call = node.iter
        targets = node.target.elts if isinstance(node.target, ast.Tuple) else [node.target]
        if call.keywords or any(not isinstance(target, ast.Name) for target in targets) \
                or len(targets) != len(call.args):
            raise self.error(node, "T.grid takes one extent per loop variable: "
                                   "for i, j in T.grid(m, n)")
        extents = [self.int_expr(arg, "a loop extent") for arg in call.args]
        loop_vars = [Var(target.id, extent.dtype, self.source.span(target))
                     for target, extent in zip(targets, extents)]
        body = self._scoped_body(node.body, node, {var.name: var for var in loop_vars})
        for loop_var, extent in reversed(list(zip(loop_vars, extents))):
            body = For(loop_var, constant_to_expr(0, extent.dtype), extent, ForKind.SERIAL,
                       body, span=self.source.span(node))
        return body

    def annotation_value(self, node: ast.expr) -> Any:
        """An annotation: a constant, an expression, or lists (as tuples) and dicts of them."""
        if isinstance(node, (ast.List, ast.Tuple)):
            return tuple(self.annotation_value(item) for item in node.elts)
        if isinstance(node, ast.Dict):
            result = {}
            for key, item in zip(node.keys, node.values):
                if key is None:
                    raise self.error(item, "'**' is not supported in annotations")
                name = self.operand(key)
                if not isinstance(name, str):
                    raise self.error(key, "annotation keys are strings")
                result[name] = self.annotation_value(item)
            return result
        if isinstance(node, ast.Constant) and node.value is None:
            return None
        value = self.operand(node)
        if isinstance(value, Handle):
            raise self.error(node, "a T.handle cannot be an annotation")
        return value

    # With statements -------------------------------------------------------------------
    def _statement_With(self, node: ast.With) -> Stmt:
        if len(node.items) != 1 or node.items[0].optional_vars is not None:
            raise self.error(node, "use 'with T.block(...):' or 'with T.attr(...):', "
                                   "one at a time and without 'as'")
        call = node.items[0].context_expr
        if self.is_call_of(call, "block"):
            return self._block(node, call)
        if self.is_call_of(call, "attr"):
            return self._attr(call, node.body, node, scoped=True)
        raise self.error(call, "a with statement opens T.block(...) or T.attr(...)")

    def _attr(self, call: ast.Call, statements: list[ast.stmt], owner: ast.AST,
              scoped: bool = False) -> Stmt:
        """``T.attr(node, key, value)`` around ``statements``; the async keys become the
        async nodes."""
        args = self.arguments(call, "attr", 3)
        key = self.string(args["arg1"], "an attribute key")
        span = self.source.span(call)
        if key == "async_wait_inflight_count":
            raise self.error(call, "async_wait_inflight_count must directly follow "
                                   "async_wait_queue_scope")
        if key == "async_wait_queue_scope":
            queue = self._queue(args["arg2"])
            count_call, rest = self._inflight_count(statements, call)
            count_args = self.arguments(count_call, "attr", 3)
            in_flight = self.int_expr(count_args["arg2"], "an in-flight count")
            body = self._attr_body(rest, count_call, scoped)
            return AsyncWaitQueue(queue, in_flight, body, span)
        body = self._attr_body(statements, owner, scoped)
        if key == "async_scope":
            return AsyncScope(body, span)
        if key == "async_commit_queue_scope":
            return AsyncCommitQueue(self._queue(args["arg2"]), body, span)
        return AttrStmt(self._attr_operand(args["arg0"]), key,
                        self._attr_operand(args["arg2"]), body, span)

    def _attr_body(self, statements: list[ast.stmt], owner: ast.AST, scoped: bool) -> Stmt:
        return self._scoped_body(statements, owner) if scoped else self.body(statements, owner)

    def _inflight_count(self, statements: list[ast.stmt],
                        wait: ast.Call) -> tuple[ast.Call, list[ast.stmt]]:
        """The ``async_wait_inflight_count`` attr that opens a wait's body, and the
        statements it applies to."""
        first = statements[0] if statements else None
        if isinstance(first, ast.Expr) and self._is_inflight(first.value):
            return first.value, statements[1:]
        if isinstance(first, ast.With) and len(statements) == 1 and len(first.items) == 1 \
                and self._is_inflight(first.items[0].context_expr):
            return first.items[0].context_expr, first.body
        raise self.error(wait, 'async_wait_queue_scope must be followed by '
                               'T.attr(0, "async_wait_inflight_count", N) and nothing else')

    def _is_inflight(self, node: ast.expr) -> bool:
        return (self.is_call_of(node, "attr") and len(node.args) == 3
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value == "async_wait_inflight_count")

    def _queue(self, node: ast.expr) -> int:
        value = self.operand(node)
        if isinstance(value, IntImm) and value.dtype != "bool":
            value = value.value
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.error(node, "an async queue is a constant non-negative integer")
        return value

    def _attr_operand(self, node: ast.expr) -> Any:
        value = self.operand(node)
        if isinstance(value, str):
            return StringImm(value, span=self.source.span(node))
        if isinstance(value, Buffer):
            return value
        return self.to_expr(value, node)

    # Blocks ----------------------------------------------------------------------------
    def _block(self, node: ast.With, call: ast.Call) -> Stmt:
        args = self.arguments(call, "block", 0, optional=("name",))
        name = self.string(args["name"], "a block name") if "name" in args else ""
        self.scopes.append({})
        try:
            return self._block_body(node, name)
        finally:
            self.scopes.pop()

    def _block_body(self, node: ast.With, name: str) -> Stmt:
        allocs: list[Buffer] = []
        for statement in node.body:
            if isinstance(statement, ast.Assign) and self.is_call_of(statement.value,
                                                                     "alloc_buffer"):
                target = self._single_name(statement, "T.alloc_buffer")
                buffer = self._buffer(statement.value, "alloc_buffer", target,
                                      self.source.span(statement), dtype_keyword="dtype")
                self.bind(target, buffer)
                allocs.append(buffer)
        headers: dict[str, Any] = {}
        rest = []
        for statement in node.body:
            if isinstance(statement, ast.Assign) and self.is_call_of(statement.value,
                                                                     "alloc_buffer"):
                continue
            header = self.intrinsic_name(statement.value.func) \
                if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call) \
                else None
            if header not in _BLOCK_HEADERS:
                rest.append(statement)
                continue
            if header in headers:
                raise self.error(statement, f"T.{header} appears twice in this block")
            headers[header] = self._block_header(statement.value, header)
        body = self.body(rest, node)
        reads, writes = headers.get("reads"), headers.get("writes")
        if reads is None or writes is None:
            from ..arith import infer_regions

            inferred_reads, inferred_writes = infer_regions(body, tuple(allocs))
            reads = inferred_reads if reads is None else reads
            writes = inferred_writes if writes is None else writes
        return Block(name, body, tuple(reads), tuple(writes), tuple(allocs),
                     headers.get("where"), headers.get("block_attr", {}),
                     self.source.span(node))

    def _block_header(self, call: ast.Call, header: str) -> Any:
        if header in ("reads", "writes"):
            if call.keywords:
                raise self.error(call, f"T.{header} takes buffer regions only")
            items = call.args
            if len(items) == 1 and isinstance(items[0], (ast.List, ast.Tuple)):
                items = items[0].elts
            return tuple(self.region(item) for item in items)
        args = self.arguments(call, header, 1)
        if header == "where":
            return self.condition(args["arg0"], "T.where")
        value = self.annotation_value(args["arg0"])
        if not isinstance(value, dict):
            raise self.error(call, "T.block_attr takes a dict of annotations")
        return value


def _is_docstring(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))

