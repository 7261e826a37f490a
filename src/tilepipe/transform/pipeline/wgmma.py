"""Warpgroup MMA (``T.wgmma``) as an asynchronous stage of a count pipeline.

A statement issuing ``T.wgmma(accumulator, a, b, accumulate)`` in an asynchronous stage
is an asynchronous computation on a queue of its own (lowered to ``wgmma.fence`` /
``commit_group`` / ``wait_group``): it reads its operand ring slots and updates its
accumulator until a wait forces its group. Two facts shape its dependencies:

* its accesses are exact, not those of an opaque call: it reads ``a`` and ``b`` and
  reads and writes ``accumulator``, so a producer overwriting an operand slot depends
  on it (an asynchronous *reader*) and nothing it only reads depends on it;
* wgmma operations of one queue update a shared accumulator in issue order (PTX orders
  the accumulator registers of successive ``wgmma.mma_async``), so one wgmma statement
  never waits for another of its queue; everything else that touches the accumulator
  (the epilogue) waits for its groups, after the loop by a drain.

A wgmma stage must hold nothing but wgmma statements: copies and MMAs are different
hardware queues.
"""

from __future__ import annotations

from typing import Sequence

from ...ir import BufferRegion, Call, For, IRVisitor, Stmt
from .annotations import ASYNC_STAGES, loop_error

WGMMA = "wgmma"


class _Finder(IRVisitor):
    def __init__(self) -> None:
        self.found = False

    def visit_call(self, node: Call) -> None:
        self.found = self.found or node.op == WGMMA
        super().visit_call(node)


def issues_wgmma(stmt: Stmt) -> bool:
    """Whether ``stmt`` issues a warpgroup MMA."""
    finder = _Finder()
    finder.visit(stmt)
    return finder.found


def call_accesses(call: Call) -> tuple[list[BufferRegion], list[BufferRegion]] | None:
    """The regions a ``T.wgmma`` call reads and writes (None for any other call)."""
    if call.op != WGMMA or len(call.args) != 4 or not all(
            isinstance(arg, BufferRegion) for arg in call.args[:3]):
        return None
    accumulator, a, b = call.args[:3]
    return [accumulator, a, b], [accumulator]


def in_order(first, second) -> bool:
    """Whether two pipeline statements are asynchronous wgmma statements of one stage
    (one queue), whose accesses the hardware keeps in issue order."""
    return (first.is_async and second.is_async and first.stage == second.stage
            and first.issues_wgmma and second.issues_wgmma)


def check_stages(loop: For, statements: Sequence) -> None:
    """A :class:`PipelineError` when an asynchronous stage mixes wgmma statements with
    other asynchronous statements (they would share one commit queue)."""
    kinds: dict[int, set[bool]] = {}
    for statement in statements:
        if statement.is_async:
            kinds.setdefault(statement.stage, set()).add(statement.issues_wgmma)
    for stage, found in sorted(kinds.items()):
        if len(found) > 1:
            raise loop_error(loop, ASYNC_STAGES,
                             f"makes stage {stage} asynchronous, but it holds both T.wgmma "
                             "and other statements: put the wgmma in a stage of its own")
