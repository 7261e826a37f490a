"""Visitor and mutator over expressions and statements.

Subclasses override ``visit_<node>`` methods (``visit_buffer_load``, ``visit_for``...).
Dispatch is by exact type, cached per class. The mutator rebuilds a node only when a
child changed, so an untouched subtree keeps its identity.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Callable

from .buffer import Buffer, BufferRegion, Range
from .expr import (
    BinaryOp, BufferLoad, Call, Cast, FloatImm, IntImm, Not, PrimExpr, Select, StringImm, Var,
)
from .stmt import (
    AsyncCommitQueue, AsyncScope, AsyncWaitQueue, AttrStmt, Block, BufferStore, Evaluate, For,
    IfThenElse, SeqStmt, Stmt,
)


@cache
def _method_name(cls: type) -> str:
    name = re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", cls.__name__).lower()
    return "visit_" + name


_BINARY_METHOD = "visit_binary_op"


class _Dispatcher:
    """Each subclass gets its own table from node type to the method that visits it,
    filled on first use, so that dispatching a node costs one dictionary lookup."""

    _table: dict[type, Callable] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._table = {}

    def _lookup(self, node: Any) -> Callable:
        cls = type(node)
        owner = type(self)
        name = _method_name(cls)
        method = getattr(owner, name, None)
        if method is None and isinstance(node, BinaryOp):
            method = getattr(owner, _BINARY_METHOD)
        if method is None:
            for base in cls.__mro__[1:]:
                method = getattr(owner, _method_name(base), None)
                if method is not None:
                    break
        if method is None:
            raise TypeError(f"{owner.__name__} cannot visit {cls.__name__}")
        owner._table[cls] = method
        return method


class IRVisitor(_Dispatcher):
    """Walks every expression and statement; override methods to observe nodes."""

    def visit(self, node: Any) -> None:
        method = self._table.get(type(node))
        if method is None:
            method = self._lookup(node)
        method(self, node)

    def visit_expr(self, expr: PrimExpr) -> None:
        self.visit(expr)

    def visit_stmt(self, stmt: Stmt) -> None:
        self.visit(stmt)

    # Expressions ----------------------------------------------------------------------
    def visit_var(self, node: Var) -> None:
        pass

    def visit_int_imm(self, node: IntImm) -> None:
        pass

    def visit_float_imm(self, node: FloatImm) -> None:
        pass

    def visit_string_imm(self, node: StringImm) -> None:
        pass

    def visit_binary_op(self, node: BinaryOp) -> None:
        self.visit(node.a)
        self.visit(node.b)

    def visit_not(self, node: Not) -> None:
        self.visit(node.a)

    def visit_select(self, node: Select) -> None:
        self.visit(node.condition)
        self.visit(node.true_value)
        self.visit(node.false_value)

    def visit_cast(self, node: Cast) -> None:
        self.visit(node.value)

    def visit_buffer_load(self, node: BufferLoad) -> None:
        for index in node.indices:
            self.visit(index)

    def visit_call(self, node: Call) -> None:
        for arg in node.args:
            self.visit(arg)

    def visit_buffer(self, node: Buffer) -> None:
        pass

    def visit_range(self, node: Range) -> None:
        self.visit(node.min)
        self.visit(node.extent)

    def visit_buffer_region(self, node: BufferRegion) -> None:
        for range_ in node.region:
            self.visit(range_)

    # Statements -----------------------------------------------------------------------
    def visit_buffer_store(self, node: BufferStore) -> None:
        self.visit(node.value)
        for index in node.indices:
            self.visit(index)

    def visit_evaluate(self, node: Evaluate) -> None:
        self.visit(node.value)

    def visit_seq_stmt(self, node: SeqStmt) -> None:
        for stmt in node.stmts:
            self.visit(stmt)

    def visit_if_then_else(self, node: IfThenElse) -> None:
        self.visit(node.condition)
        self.visit(node.then_case)
        if node.else_case is not None:
            self.visit(node.else_case)

    def visit_for(self, node: For) -> None:
        self.visit(node.min)
        self.visit(node.extent)
        self.visit(node.body)

    def visit_block(self, node: Block) -> None:
        for region in node.reads:
            self.visit(region)
        for region in node.writes:
            self.visit(region)
        if node.predicate is not None:
            self.visit(node.predicate)
        self.visit(node.body)

    def visit_attr_stmt(self, node: AttrStmt) -> None:
        if isinstance(node.value, PrimExpr):
            self.visit(node.value)
        self.visit(node.body)

    def visit_async_scope(self, node: AsyncScope) -> None:
        self.visit(node.body)

    def visit_async_commit_queue(self, node: AsyncCommitQueue) -> None:
        self.visit(node.body)

    def visit_async_wait_queue(self, node: AsyncWaitQueue) -> None:
        self.visit(node.in_flight)
        self.visit(node.body)


def _same(old: tuple, new: list) -> bool:
    return all(a is b for a, b in zip(old, new))


class IRMutator(_Dispatcher):
    """Rebuilds the tree bottom-up; override methods to replace nodes.

    ``visit_buffer`` lets a subclass remap buffers (it is applied to the buffer of every
    load, store, region, call argument and block allocation).
    """

    def visit(self, node: Any) -> Any:
        method = self._table.get(type(node))
        if method is None:
            method = self._lookup(node)
        return method(self, node)

    # Expressions ----------------------------------------------------------------------
    def visit_var(self, node: Var) -> PrimExpr:
        return node

    def visit_int_imm(self, node: IntImm) -> PrimExpr:
        return node

    def visit_float_imm(self, node: FloatImm) -> PrimExpr:
        return node

    def visit_string_imm(self, node: StringImm) -> PrimExpr:
        return node

    def visit_binary_op(self, node: BinaryOp) -> PrimExpr:
        a = self.visit(node.a)
        b = self.visit(node.b)
        if a is node.a and b is node.b:
            return node
        return type(node)(a, b, node.span)

    def visit_not(self, node: Not) -> PrimExpr:
        a = self.visit(node.a)
        return node if a is node.a else Not(a, node.span)

    def visit_select(self, node: Select) -> PrimExpr:
        parts = [self.visit(node.condition), self.visit(node.true_value),
                 self.visit(node.false_value)]
        if _same((node.condition, node.true_value, node.false_value), parts):
            return node
        return Select(*parts, node.span)

    def visit_cast(self, node: Cast) -> PrimExpr:
        value = self.visit(node.value)
        return node if value is node.value else Cast(node.dtype, value, node.span)

    def visit_buffer_load(self, node: BufferLoad) -> PrimExpr:
        buffer = self.visit_buffer(node.buffer)
        indices = [self.visit(index) for index in node.indices]
        if buffer is node.buffer and _same(node.indices, indices):
            return node
        return BufferLoad(buffer, tuple(indices), node.span)

    def visit_call(self, node: Call) -> PrimExpr:
        args = [self.visit(arg) for arg in node.args]
        if _same(node.args, args):
            return node
        return Call(node.dtype, node.op, tuple(args), node.span)

    def visit_buffer(self, node: Buffer) -> Buffer:
        return node

    def visit_range(self, node: Range) -> Range:
        low = self.visit(node.min)
        extent = self.visit(node.extent)
        if low is node.min and extent is node.extent:
            return node
        return Range(low, extent, node.span)

    def visit_buffer_region(self, node: BufferRegion) -> BufferRegion:
        buffer = self.visit_buffer(node.buffer)
        region = [self.visit(range_) for range_ in node.region]
        if buffer is node.buffer and _same(node.region, region):
            return node
        return BufferRegion(buffer, tuple(region), node.span)

    # Statements -----------------------------------------------------------------------
    def visit_buffer_store(self, node: BufferStore) -> Stmt:
        buffer = self.visit_buffer(node.buffer)
        value = self.visit(node.value)
        indices = [self.visit(index) for index in node.indices]
        if buffer is node.buffer and value is node.value and _same(node.indices, indices):
            return node
        return BufferStore(buffer, value, tuple(indices), node.span)

    def visit_evaluate(self, node: Evaluate) -> Stmt:
        value = self.visit(node.value)
        return node if value is node.value else Evaluate(value, node.span)

    def visit_seq_stmt(self, node: SeqStmt) -> Stmt:
        stmts = [self.visit(stmt) for stmt in node.stmts]
        if _same(node.stmts, stmts):
            return node
        return SeqStmt(tuple(stmts), node.span)

    def visit_if_then_else(self, node: IfThenElse) -> Stmt:
        condition = self.visit(node.condition)
        then_case = self.visit(node.then_case)
        else_case = None if node.else_case is None else self.visit(node.else_case)
        if (condition is node.condition and then_case is node.then_case
                and else_case is node.else_case):
            return node
        return IfThenElse(condition, then_case, else_case, node.span)

    def visit_for(self, node: For) -> Stmt:
        low = self.visit(node.min)
        extent = self.visit(node.extent)
        body = self.visit(node.body)
        if low is node.min and extent is node.extent and body is node.body:
            return node
        return For(node.loop_var, low, extent, node.kind, body, node.thread_tag,
                   node.annotations, node.span)

    def visit_block(self, node: Block) -> Stmt:
        reads = [self.visit(region) for region in node.reads]
        writes = [self.visit(region) for region in node.writes]
        allocs = [self.visit_buffer(buffer) for buffer in node.alloc_buffers]
        predicate = None if node.predicate is None else self.visit(node.predicate)
        body = self.visit(node.body)
        if (_same(node.reads, reads) and _same(node.writes, writes)
                and _same(node.alloc_buffers, allocs) and predicate is node.predicate
                and body is node.body):
            return node
        return Block(node.name, body, tuple(reads), tuple(writes), tuple(allocs), predicate,
                     node.annotations, node.span)

    def visit_attr_stmt(self, node: AttrStmt) -> Stmt:
        value = self.visit(node.value) if isinstance(node.value, PrimExpr) else node.value
        body = self.visit(node.body)
        if value is node.value and body is node.body:
            return node
        return AttrStmt(node.node, node.key, value, body, node.span)

    def visit_async_scope(self, node: AsyncScope) -> Stmt:
        body = self.visit(node.body)
        return node if body is node.body else AsyncScope(body, node.span)

    def visit_async_commit_queue(self, node: AsyncCommitQueue) -> Stmt:
        body = self.visit(node.body)
        return node if body is node.body else AsyncCommitQueue(node.queue, body, node.span)

    def visit_async_wait_queue(self, node: AsyncWaitQueue) -> Stmt:
        in_flight = self.visit(node.in_flight)
        body = self.visit(node.body)
        if in_flight is node.in_flight and body is node.body:
            return node
        return AsyncWaitQueue(node.queue, in_flight, body, node.span)


def post_order_visit(node: Any, callback: Callable[[Any], None]) -> None:
    """Call ``callback`` on every node below ``node`` (children first)."""

    class _Walker(IRVisitor):
        def visit(self, child):
            super().visit(child)
            callback(child)

    _Walker().visit(node)
