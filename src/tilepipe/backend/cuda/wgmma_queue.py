"""Lower the wgmma queue of a count pipeline to warpgroup MMA synchronization.

A pipeline whose asynchronous stage issues ``T.wgmma`` commits it to a queue of its own
(see :mod:`tilepipe.transform.pipeline.wgmma`). On sm_90a that queue is the warpgroup's
wgmma queue, not ``cp.async``'s:

=============================================  ===========================================
pipeline IR                                    lowered
=============================================  ===========================================
``async_scope`` around ``T.wgmma(...)``        ``T.wgmma_fence()`` then ``T.wgmma(...)``
end of ``async_commit_queue_scope`` q          ``T.wgmma_commit_group()``
``async_wait_queue_scope`` q, N                ``T.wgmma_wait_group(N)`` before the body
=============================================  ===========================================

wgmma reads its operands through the async proxy while ``cp.async`` writes them through
the generic one, so each thread orders its landed copies before the async proxy's reads
with ``T.fence_proxy_async()`` right after each ``cp.async`` wait (before the barrier
that shows them to the warpgroup). The counts stay those of the pipeline: one abstract
queue is one hardware queue. The result is still a tile program that the simulator runs
(``T.wgmma`` then carries its own asynchrony, see :mod:`tilepipe.sim.mbarrier`).
"""

from __future__ import annotations

from ...errors import LoweringError
from ...ir import (
    AsyncCommitQueue, AsyncScope, AsyncWaitQueue, Call, Evaluate, IntImm, IRMutator, PrimFunc,
    Stmt, as_int, post_order_visit, seq,
)
from ...transform.pipeline.wgmma import issues_wgmma

WGMMA = "wgmma"


def _call(name: str, *args) -> Evaluate:
    return Evaluate(Call("handle", name, tuple(args)))


def wgmma_queues(func: PrimFunc) -> set[int]:
    """The queues whose commit groups hold asynchronous ``T.wgmma`` statements."""
    queues: set[int] = set()
    post_order_visit(func.body, lambda node: queues.add(node.queue)
                     if isinstance(node, AsyncCommitQueue) and issues_wgmma(node.body)
                     else None)
    return queues


def lower_wgmma_queues(func: PrimFunc) -> PrimFunc:
    """``func`` with its wgmma queue lowered to ``T.wgmma_fence`` / ``T.wgmma_commit_group``
    / ``T.wgmma_wait_group`` (wait counts must already be immediates)."""
    queues = wgmma_queues(func)
    if not queues:
        return func
    if len(queues) > 1:
        raise LoweringError(
            f"asynchronous wgmma statements are committed to queues {sorted(queues)}, but a "
            "warpgroup has one wgmma queue: put every wgmma in one asynchronous stage",
            func.span)
    (queue,) = queues
    return func.with_body(_Lowering(queue).visit(func.body))


class _Lowering(IRMutator):
    def __init__(self, queue: int):
        self.queue = queue
        self.committing = False  # inside a commit scope of the wgmma queue

    def visit_async_commit_queue(self, node: AsyncCommitQueue) -> Stmt:
        if node.queue != self.queue:
            return super().visit_async_commit_queue(node)
        self.committing = True
        try:
            body = self.visit(node.body)
        finally:
            self.committing = False
        return seq(body, _call("wgmma_commit_group"))

    def visit_async_scope(self, node: AsyncScope) -> Stmt:
        issues = issues_wgmma(node.body)
        if not issues and not self.committing:
            return super().visit_async_scope(node)
        if not (issues and self.committing and _only_wgmma(node.body)):
            raise LoweringError(
                "an asynchronous statement of the wgmma queue must be one T.wgmma call, "
                "committed to that queue", node.span)
        return seq(_call("wgmma_fence"), node.body)

    def visit_async_wait_queue(self, node: AsyncWaitQueue) -> Stmt:
        body = self.visit(node.body)
        if node.queue != self.queue:
            return AsyncWaitQueue(node.queue, node.in_flight, seq(_call("fence_proxy_async"),
                                                                  body), node.span)
        count = as_int(node.in_flight)
        if count is None or count < 0:
            raise LoweringError(f"wgmma.wait_group needs a non-negative constant count, not "
                                f"{node.in_flight!r} (unroll the waits first)", node.span)
        return seq(_call("wgmma_wait_group", IntImm(count)), body)


def _only_wgmma(body: Stmt) -> bool:
    """Whether ``body`` is one evaluated ``T.wgmma`` call."""
    return isinstance(body, Evaluate) and isinstance(body.value, Call) and \
        body.value.op == WGMMA
