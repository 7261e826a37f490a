"""Warpgroup MMA as an asynchronous statement of a count pipeline.

A count pipeline may put a statement that issues ``T.wgmma`` in an asynchronous stage:
``async_scope`` then defers the whole wgmma (the interpreter runs its body when the
schedule lands it), and the queue of its commit scope is a wgmma queue, lowered to
``wgmma.fence`` / ``commit_group`` / ``wait_group``. When it lands, a wgmma reads its
operand tiles in shared memory (asynchronous reads: they last until the wait that forces
its group) and updates its accumulator registers (reported as an asynchronous write of
each thread's own registers: the update reads and writes the same elements); the
update itself is the one of :mod:`tilepipe.sim.mbarrier`, run when the group lands.

In-order execution. PTX orders the accumulator updates of successive wgmma operations
of a warpgroup: a wgmma accumulating into the registers an earlier one still updates
needs no wait. The model says so of every asynchronous statement made of in-order
intrinsics (:data:`IN_ORDER_INTRINSICS`): within one thread and one queue, such
statements land in issue order, and their accesses to one element never race with each
other. Anything else that touches those elements still waits for their groups (the
epilogue's read of the accumulator is a drain).
"""

from __future__ import annotations

from ..ir import AsyncScope, Call, IRVisitor, Stmt
from .intrinsics import IntrinsicError, register

IN_ORDER_INTRINSICS = frozenset({"wgmma"})


class _InOrderFinder(IRVisitor):
    def __init__(self) -> None:
        self.found = False

    def visit_call(self, node: Call) -> None:
        if node.op in IN_ORDER_INTRINSICS:
            self.found = True
        super().visit_call(node)


def issues_in_order(stmt: Stmt) -> bool:
    """Whether the asynchronous statement ``stmt`` (or the body of an ``async_scope``)
    issues an in-order intrinsic (``T.wgmma``)."""
    finder = _InOrderFinder()
    finder.visit(stmt.body if isinstance(stmt, AsyncScope) else stmt)
    return finder.found


@register("fence_proxy_async")
def _fence_proxy_async(call, args, context):
    """``fence.proxy.async``: orders the thread's shared-memory writes (landed
    ``cp.async`` copies) before reads through the async proxy (a later wgmma). The
    simulator has one view of memory: nothing to do."""
    if args:
        raise IntrinsicError("T.fence_proxy_async takes no argument", call.span)
    return 0

