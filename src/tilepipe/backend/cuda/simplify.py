"""Simplification of a whole program under its loop ranges: integer expressions in
canonical form, blocks whose predicate always holds unpredicated, and what a decided
condition rules out (blocks predicated false, untaken branches) dropped.

The pipeline leaves indices such as ``(i - 1 + 1) % 2`` and predicates such as
``i + 1 < 16`` that the loop range decides; the lowered program reads better, and the
CUDA code branches less, without them.
"""

from __future__ import annotations

from ...arith import Analyzer
from ...ir import (
    AsyncWaitQueue, Block, BufferLoad, BufferRegion, BufferStore, Evaluate, For, IfThenElse,
    IntImm, IRMutator, PrimExpr, PrimFunc, Range, SeqStmt, Stmt, as_int, const, seq,
)


def simplify(func: PrimFunc) -> PrimFunc:
    """``func`` simplified under the ranges of its loops."""
    return func.with_body(Simplifier(Analyzer()).visit(func.body))


def is_no_op(stmt: Stmt) -> bool:
    return isinstance(stmt, Evaluate) and isinstance(stmt.value, IntImm)


class Simplifier(IRMutator):
    """Simplifies integer expressions of statements under the analyzer's bindings and drops
    what a constant condition rules out (blocks predicated false, untaken branches)."""

    def __init__(self, analyzer: Analyzer):
        self.analyzer = analyzer

    def simplify(self, expr: PrimExpr) -> PrimExpr:
        return self.analyzer.simplify(expr)

    def visit_seq_stmt(self, node: SeqStmt) -> Stmt:
        kept = [stmt for stmt in (self.visit(child) for child in node.stmts)
                if not is_no_op(stmt)]
        return seq(*kept) if kept else Evaluate(const(0))

    def visit_buffer_load(self, node: BufferLoad) -> PrimExpr:
        indices = tuple(self.simplify(self.visit(index)) for index in node.indices)
        return BufferLoad(node.buffer, indices, node.span)

    def visit_buffer_store(self, node: BufferStore) -> Stmt:
        indices = tuple(self.simplify(self.visit(index)) for index in node.indices)
        return BufferStore(node.buffer, self.visit(node.value), indices, node.span)

    def visit_buffer_region(self, node: BufferRegion) -> BufferRegion:
        region = tuple(Range(self.simplify(r.min), self.simplify(r.extent), r.span)
                       for r in node.region)
        return BufferRegion(node.buffer, region, node.span)

    def visit_for(self, node: For) -> Stmt:
        low, extent = self.simplify(node.min), self.simplify(node.extent)
        self.analyzer.bind(node.loop_var, Range(low, extent))
        return For(node.loop_var, low, extent, node.kind, self.visit(node.body),
                   node.thread_tag, node.annotations, node.span)

    def visit_block(self, node: Block) -> Stmt:
        predicate = node.predicate
        if predicate is not None:
            predicate = self.simplify(predicate)
            if as_int(predicate) == 0:
                return Evaluate(const(0))
            if as_int(predicate) == 1:
                predicate = None
        block = super().visit_block(node)
        return Block(block.name, block.body, block.reads, block.writes, block.alloc_buffers,
                     predicate, block.annotations, block.span)

    def visit_if_then_else(self, node: IfThenElse) -> Stmt:
        condition = self.simplify(node.condition)
        if as_int(condition) == 1:
            return self.visit(node.then_case)
        if as_int(condition) == 0:
            return Evaluate(const(0)) if node.else_case is None else self.visit(node.else_case)
        else_case = None if node.else_case is None else self.visit(node.else_case)
        return IfThenElse(condition, self.visit(node.then_case), else_case, node.span)

    def visit_async_wait_queue(self, node: AsyncWaitQueue) -> Stmt:
        return AsyncWaitQueue(node.queue, self.simplify(node.in_flight), self.visit(node.body),
                              node.span)
