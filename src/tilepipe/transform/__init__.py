"""Passes from IR to IR; :func:`inject_software_pipeline` is the software pipeliner.

The pipeliner's result carries the block barriers its threads need
(:func:`~.thread_sync.insert_barriers`), so that every program it returns is race-free
as it stands, on any target.
"""

from ..ir import PrimFunc
from .pipeline import inject_software_pipeline as _pipeline_loops
from .thread_sync import insert_barriers


def inject_software_pipeline(func: PrimFunc, target: str = "sm_80") -> PrimFunc:
    """``func`` with its annotated loops software-pipelined (commit groups and exact wait
    counts) and the block barriers that make threads sharing tiles race-free."""
    return insert_barriers(_pipeline_loops(func, target=target))


__all__ = ["inject_software_pipeline", "insert_barriers"]
