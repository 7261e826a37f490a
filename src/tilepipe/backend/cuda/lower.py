"""``lower``: the CUDA lowering pipeline, each step a PrimFunc -> PrimFunc pass.

1. :func:`~.unroll.unroll_waits` - every wait count an immediate;
2. :func:`~.simplify.simplify` - indices in canonical form, decided predicates dropped;
3. :func:`~.wgmma_queue.lower_wgmma_queues` - a wgmma queue to ``wgmma.fence`` /
   ``commit_group`` / ``wait_group`` (sm_90a);
4. :func:`~.merge_queues.merge_queues` - one hardware cp.async queue, counts adjusted;
5. :func:`~tilepipe.transform.thread_sync.insert_barriers` - the block barriers that make
   it race-free again after the unrolling and merging (idempotent).

Step 5 is left out when the caller says that the program's barriers are planned already
(the pipeliner's output, as :func:`pipeline_and_lower` lowers it) and it has at most one
queue: unrolling and simplifying keep what every thread does, so those barriers still
hold; merged queues land groups at other waits, so their barriers are planned again.

The result is still a tile program (``tilepipe lower`` prints it) that the simulator runs
and :func:`~.codegen.codegen` turns into CUDA C++.
"""

from __future__ import annotations

from ...ir import PrimFunc
from ...transform.thread_sync import insert_barriers
from .merge_queues import async_queues, merge_queues
from .simplify import simplify
from .unroll import unroll_waits
from .wgmma_queue import lower_wgmma_queues


def lower(func: PrimFunc, barriers_planned: bool = False) -> PrimFunc:
    """The program right before CUDA code generation (``func`` is already pipelined);
    ``barriers_planned``: ``func`` carries the barriers that
    :func:`~tilepipe.transform.thread_sync.insert_barriers` plans (as the pipeliner's
    output does), not planned again unless queues are merged."""
    merged = merge_queues(lower_wgmma_queues(simplify(unroll_waits(func))))
    if barriers_planned and len(async_queues(func)) <= 1:
        return merged
    return insert_barriers(merged)


def pipeline_and_lower(func: PrimFunc) -> PrimFunc:
    """Apply the pipeline annotations ``func`` still carries, then :func:`lower` it."""
    from ...transform import inject_software_pipeline

    return lower(inject_software_pipeline(func), barriers_planned=True)
