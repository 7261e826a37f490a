"""Software pipelining with asynchronous stages.

:mod:`.annotations` reads the loop annotations, :mod:`.schedule` computes stages,
versions, commit groups and producer -> consumer dependencies, :mod:`.sync` derives the
waits from those dependencies, :mod:`.emit` builds prologue, body and epilogue from the statement
instances of :mod:`.instances`, and :mod:`.inject` applies all of it to every annotated
loop.
"""

from .annotations import ASYNC_STAGES, ORDER, STAGE, PipelineAnnotation, read_annotation
from .inject import inject_software_pipeline, pipeline_loop
from .schedule import CommitGroup, Dependency, PipelineStatement, Schedule, compute_schedule
from .sync import SyncPlan, Wait, plan_synchronization

__all__ = [
    "ASYNC_STAGES", "ORDER", "STAGE", "CommitGroup", "Dependency", "PipelineAnnotation",
    "PipelineStatement", "Schedule", "SyncPlan", "Wait", "compute_schedule",
    "inject_software_pipeline", "pipeline_loop", "plan_synchronization", "read_annotation",
]
