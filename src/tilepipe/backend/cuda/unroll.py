"""Make every wait count an immediate, as ``cp.async.wait_group`` requires.

An unrolled loop (``T.unroll``, the pipeline's prologue and epilogue) whose body holds a
wait with a count depending on its variable (or any wait, when several queues are to be
merged: the merged counts differ per iteration) is replaced by one copy of its body per
iteration, each simplified under the iteration's value (dead predicated blocks dropped).
A count that stays dynamic (a serial loop's variable, a symbolic size) becomes a bounded
switch over its possible values: ``if count <= lo: wait(lo) elif count == lo + 1: ...``,
the last case waiting with the largest considered count for every larger value (waiting
for more groups than needed is always safe).
"""

from __future__ import annotations

from ...arith import Analyzer
from ...errors import LoweringError
from .simplify import Simplifier, is_no_op
from ...ir import (
    EQ, AsyncCommitQueue, AsyncWaitQueue, Evaluate, For, ForKind, IfThenElse, IntImm, IRMutator,
    IRVisitor, PrimExpr, PrimFunc, Range, Stmt, Var, as_int, const, post_order_visit, seq,
    substitute,
)

# Dynamic counts are switched over at most this many values; larger ones wait with this.
MAX_SWITCH_COUNT = 8


def unroll_waits(func: PrimFunc) -> PrimFunc:
    """``func`` with every wait count an integer immediate."""
    queues: set[int] = set()
    post_order_visit(func.body, lambda node: queues.add(node.queue)
                     if isinstance(node, (AsyncCommitQueue, AsyncWaitQueue)) else None)
    return func.with_body(_WaitUnroller(several_queues=len(queues) > 1).visit(func.body))


def _loop_var_in_wait_count(body: Stmt, var: Var | None) -> bool:
    """Whether a wait inside ``body`` has a count that mentions ``var`` (any wait: None)."""
    found = False

    class _Finder(IRVisitor):
        def visit_async_wait_queue(self, node: AsyncWaitQueue) -> None:
            nonlocal found
            found = found or var is None or _mentions(node.in_flight, var)
            self.visit(node.body)

    _Finder().visit(body)
    return found


def _mentions(expr: PrimExpr, var: Var) -> bool:
    seen = False

    class _Finder(IRVisitor):
        def visit_var(self, node: Var) -> None:
            nonlocal seen
            seen = seen or node is var

    _Finder().visit(expr)
    return seen


class _WaitUnroller(IRMutator):
    """Unrolls the loops whose waits need one count per iteration: those whose count
    mentions the loop variable and, when several queues will be merged into one (which
    makes counts differ per iteration), every unrolled loop holding a wait."""

    def __init__(self, several_queues: bool):
        self.analyzer = Analyzer()
        self.several_queues = several_queues

    def visit_for(self, node: For) -> Stmt:
        self.analyzer.bind(node.loop_var, Range(node.min, node.extent))
        extent = as_int(self.analyzer.simplify(node.extent))
        if (node.kind is ForKind.UNROLLED and extent is not None
                and _loop_var_in_wait_count(node.body,
                                            None if self.several_queues else node.loop_var)):
            copies = []
            for iteration in range(max(extent, 0)):
                value = self.analyzer.simplify(node.min + iteration)
                body = substitute(node.body, {node.loop_var: value})
                copies.append(self.visit(Simplifier(self.analyzer).visit(body)))
            kept = [copy for copy in copies if not is_no_op(copy)]
            return seq(*kept) if kept else Evaluate(const(0))
        return super().visit_for(node)

    def visit_async_wait_queue(self, node: AsyncWaitQueue) -> Stmt:
        body = self.visit(node.body)
        count = self.analyzer.simplify(node.in_flight)
        if as_int(count) is not None:
            if as_int(count) < 0:
                raise LoweringError(f"wait count {node.in_flight!r} is negative", node.span)
            if count is node.in_flight and body is node.body:
                return node
            return AsyncWaitQueue(node.queue, count, body, node.span)
        return seq(self._switch(node, count), body)

    def _switch(self, node: AsyncWaitQueue, count: PrimExpr) -> Stmt:
        low, high = self.analyzer.const_int_bound(count)
        low = max(low or 0, 0)
        high = MAX_SWITCH_COUNT if high is None else min(high, MAX_SWITCH_COUNT)
        high = max(high, low)

        def wait(value: int) -> Stmt:
            return AsyncWaitQueue(node.queue, IntImm(value), Evaluate(const(0)), node.span)

        switch = wait(high)
        for value in range(high - 1, low, -1):
            switch = IfThenElse(EQ(count, const(value, count.dtype)), wait(value), switch,
                                node.span)
        if high > low:
            switch = IfThenElse(count <= low, wait(low), switch, node.span)
        return switch
