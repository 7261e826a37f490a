"""``lower``: the CUDA lowering pipeline, each step a PrimFunc -> PrimFunc pass.

1. :func:`~.unroll.unroll_waits` - every wait count an immediate;
2. :func:`~.simplify.simplify` - indices in canonical form, decided predicates dropped;
3. :func:`~.wgmma_queue.lower_wgmma_queues` - a wgmma queue to ``wgmma.fence`` /
   ``commit_group`` / ``wait_group`` (sm_90a);
4. :func:`~.merge_queues.merge_queues` - one hardware cp.async queue, counts adjusted;
5. :func:`~tilepipe.transform.thread_sync.insert_barriers` - the block barriers that make
   it race-free again after the unrolling and merging (idempotent).

The result is still a tile program (``tilepipe lower`` prints it) that the simulator runs
and :func:`~.codegen.codegen` turns into CUDA C++.
"""

from __future__ import annotations

from ...ir import PrimFunc
from ...transform.thread_sync import insert_barriers
from .merge_queues import merge_queues
from .simplify import simplify
from .unroll import unroll_waits
from .wgmma_queue import lower_wgmma_queues


def lower(func: PrimFunc) -> PrimFunc:
    """The program right before CUDA code generation (``func`` is already pipelined)."""
    return insert_barriers(merge_queues(lower_wgmma_queues(simplify(unroll_waits(func)))))


def pipeline_and_lower(func: PrimFunc) -> PrimFunc:
    """Apply the pipeline annotations ``func`` still carries, then :func:`lower` it."""
    from ...transform import inject_software_pipeline

    return lower(inject_software_pipeline(func))
