"""Warpgroup MMA as an asynchronous statement of a count pipeline.

A count pipeline may put a statement that issues ``T.wgmma`` in an asynchronous stage:
``async_scope`` then defers the whole wgmma (the interpreter runs its body when the
schedule lands it), and the queue of its commit scope is a wgmma queue, lowered to
``wgmma.fence`` / ``commit_group`` / ``wait_group``. When it lands, a wgmma reads its
operand tiles in shared memory (asynchronous reads: they last until the wait that forces
its group) and updates its accumulator registers (reported as an asynchronous write of
each thread's own registers: the update reads and writes the same elements).

In-order execution. PTX orders the accumulator updates of successive wgmma operations
of a warpgroup: a wgmma accumulating into the registers an earlier one still updates
needs no wait. The model says so of every asynchronous statement made of in-order
intrinsics (:data:`IN_ORDER_INTRINSICS`): within one thread and one queue, such
statements land in issue order, and their accesses to one element never race with each
other. Anything else that touches those elements still waits for their groups (the
epilogue's read of the accumulator is a drain).
"""

from __future__ import annotations

import numpy as np

from ..ir import AsyncScope, BufferRegion, Call, IntImm, IRVisitor, Range, Stmt
from .intrinsics import IntrinsicError, register

IN_ORDER_INTRINSICS = frozenset({"wgmma"})
WARPGROUP_THREADS = 128


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


def run_async_wgmma(call, accumulator, a, b, accumulate, context, error) -> int:
    """Land ``T.wgmma(accumulator, a, b, accumulate)`` for the threads of ``context``
    (any subset of warpgroups: a warpgroup's threads may land their parts at different
    moments) with the operands as they are now. ``error`` builds the exception of a
    malformed call."""
    # imported here: mbarrier imports the interpreter, which imports this module
    from .mbarrier import WGMMA_K, WGMMA_M, wgmma_accumulator_position

    machine = context.machine
    storage = machine.memory.storage(accumulator.buffer, call.span)
    if len(accumulator.region) != 1:
        raise error("T.wgmma accumulates into a one-dimensional region of registers",
                    call.span)
    (register_range,) = accumulator.region
    flags = np.asarray(context.lanes(accumulate))
    warpgroups = context.local // WARPGROUP_THREADS
    for warpgroup in np.unique(warpgroups):
        lanes = warpgroups == warpgroup
        members = context if lanes.all() else context.subset(lanes)
        start = _uniform(members, register_range.min, "accumulator start", call, error)
        count = _uniform(members, register_range.extent, "accumulator extent", call, error)
        if len(np.unique(flags[lanes])) != 1:
            raise error("T.wgmma: the accumulate flag differs within a warpgroup", call.span)
        left = _operand(members, a, "A operand", call, error)
        right = _operand(members, b, "B operand", call, error)
        if left.shape[0] != WGMMA_M or left.shape[1] % WGMMA_K or \
                right.shape[1] != left.shape[1] or count * 2 != right.shape[0]:
            raise error(
                f"T.wgmma multiplies a {WGMMA_M} x k tile by an n x k tile (k a multiple of "
                f"{WGMMA_K}) into n / 2 registers per thread; got {list(left.shape)}, "
                f"{list(right.shape)} and {count} registers", call.span)
        threads = members.local
        rank = (threads % WARPGROUP_THREADS)[:, None]
        registers = np.arange(count)[None, :]
        rows, columns = wgmma_accumulator_position(rank, registers)
        product = left @ right.T
        places = (threads[:, None], start + registers)
        if machine.observer is not None:
            flat = np.ravel_multi_index(np.broadcast_arrays(*places), storage.array.shape)
            owners = np.broadcast_to(members.threads[:, None], flat.shape)
            machine.observer.access(members, storage, owners.ravel(), flat.ravel(), True)
        if int(flags[lanes][0]):
            product = product[rows, columns] + storage.array[places]
        else:
            product = product[rows, columns]
        storage.array[places] = product
    return 0


@register("fence_proxy_async")
def _fence_proxy_async(call, args, context):
    """``fence.proxy.async``: orders the thread's shared-memory writes (landed
    ``cp.async`` copies) before reads through the async proxy (a later wgmma). The
    simulator has one view of memory: nothing to do."""
    if args:
        raise IntrinsicError("T.fence_proxy_async takes no argument", call.span)
    return 0


def _uniform(context, expr, what: str, call, error) -> int:
    values = np.unique(np.asarray(context.lanes(context.evaluate(expr))))
    if len(values) != 1:
        raise error(f"T.wgmma: the {what} must be the same for a whole warpgroup, got "
                    f"{values.tolist()}", call.span)
    return int(values[0])


def _operand(context, region, what: str, call, error) -> np.ndarray:
    """The operand tile as a 2-D float32 matrix (read now, by ``context``)."""
    bounds = [(_uniform(context, range_.min, f"{what} start", call, error),
               _uniform(context, range_.extent, f"{what} extent", call, error))
              for range_ in region.region]
    concrete = BufferRegion(region.buffer, tuple(Range(IntImm(low), IntImm(extent))
                                                 for low, extent in bounds), region.span)
    tile = np.asarray(context.read_region(concrete, call.span))
    shape = [extent for extent in tile.shape if extent != 1]
    if len(shape) != 2:
        raise error(f"T.wgmma: the {what} must be a 2-D tile, got extents "
                    f"{list(tile.shape)}", call.span)
    return tile.reshape(shape).astype(np.float32)
