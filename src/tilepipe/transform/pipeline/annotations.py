"""Reading and checking the three pipeline annotations of a loop.

``software_pipeline_stage`` and ``software_pipeline_order`` give, for each statement of
the loop body, its stage (how many iterations it runs behind stage 0) and its position in
the rewritten body; ``software_pipeline_async_stages`` lists the stages whose statements
run asynchronously. Every mistake is a :class:`PipelineError` naming the loop, the key
and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ...errors import PipelineError
from ...ir import For, IntImm

STAGE = "software_pipeline_stage"
ORDER = "software_pipeline_order"
ASYNC_STAGES = "software_pipeline_async_stages"
PIPELINE_KEYS = (STAGE, ORDER, ASYNC_STAGES)
_PIPELINE_KEY_SET = frozenset(PIPELINE_KEYS)


@dataclass(frozen=True)
class PipelineAnnotation:
    """The validated annotation: one stage and one order per statement, and the
    asynchronous stages."""

    stages: tuple[int, ...]
    orders: tuple[int, ...]
    async_stages: frozenset[int]

    @property
    def max_stage(self) -> int:
        return max(self.stages)


def is_pipelined(loop: For) -> bool:
    """True when ``loop`` carries any of the three pipeline annotations."""
    # One pass over the loop's annotations (most loops have none), asked of every loop.
    return not _PIPELINE_KEY_SET.isdisjoint(loop.annotations)


def other_annotations(annotations: Mapping[str, Any]) -> dict[str, Any]:
    """The annotations that are not the pipeline's own (kept on the result)."""
    return {key: value for key, value in annotations.items() if key not in PIPELINE_KEYS}


def loop_error(loop: For, key: str, problem: str) -> PipelineError:
    """A :class:`PipelineError` naming ``loop`` and ``key``."""
    return PipelineError(f"pipelined loop '{loop.loop_var.name}': annotation '{key}' {problem}",
                         loop.span)


def _integers(loop: For, key: str) -> tuple[int, ...]:
    value = loop.annotations[key]
    if not isinstance(value, (tuple, list)):
        value = (value,) if key == ASYNC_STAGES else None
    if value is None:
        raise loop_error(loop, key, "must be a list of integers")
    if all(type(item) is int for item in value):
        return tuple(value)  # the usual form: nothing to convert (bool is not int here)
    items = []
    for item in value:
        if isinstance(item, IntImm) and item.dtype != "bool":
            item = item.value
        if isinstance(item, bool) or not isinstance(item, int):
            raise loop_error(loop, key, f"must hold integers only, found {item!r}")
        items.append(item)
    return tuple(items)


def read_annotation(loop: For, num_statements: int) -> PipelineAnnotation:
    """The checked annotation of ``loop`` whose body has ``num_statements`` statements."""
    for key in (STAGE, ORDER):
        if key not in loop.annotations:
            raise loop_error(loop, key, "is missing (stage and order are both required)")
    stages = _integers(loop, STAGE)
    orders = _integers(loop, ORDER)
    for key, values in ((STAGE, stages), (ORDER, orders)):
        if len(values) != num_statements:
            raise loop_error(
                loop, key, f"has {len(values)} entries but the loop body has {num_statements} "
                "statements (a nested pipelined loop counts as three: prologue, body, epilogue)")
    negative = [stage for stage in stages if stage < 0]
    if negative:
        raise loop_error(loop, STAGE, f"has a negative stage {negative[0]}")
    if len(set(orders)) != len(orders):
        duplicate = next(order for order in orders if orders.count(order) > 1)
        raise loop_error(loop, ORDER, f"gives order {duplicate} to more than one statement")
    async_stages: tuple[int, ...] = ()
    if ASYNC_STAGES in loop.annotations:
        async_stages = _integers(loop, ASYNC_STAGES)
        for stage in async_stages:
            if async_stages.count(stage) > 1:
                raise loop_error(loop, ASYNC_STAGES, f"lists stage {stage} twice")
            if stage not in stages:
                raise loop_error(loop, ASYNC_STAGES,
                                 f"lists stage {stage}, which no statement of the loop has")
    return PipelineAnnotation(stages, orders, frozenset(async_stages))
