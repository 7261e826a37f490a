"""Property: lowering a correct generated pipeline for CUDA (immediate counts, one merged
queue, barriers) keeps its results under every schedule, leaves no race, and keeps every
wait exact: the largest safe count, also where several queues are merged into one.

Pipelines that are not correct before lowering (the transform's concern, tested in
tests/transform) are set aside with ``assume``."""

import sys
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, assume, given, settings

from tilepipe import TilepipeError
from tilepipe.backend.cuda import lower
from tilepipe.ir import AsyncCommitQueue, AsyncWaitQueue, as_int, post_order_visit
from tilepipe.script import parse
from tilepipe.sim import max_safe_counts, random_inputs, simulate, verify
from tilepipe.transform import inject_software_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline_programs import programs  # noqa: E402


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_lowered_pipelines_are_equal_race_free_and_exact(program):
    func = parse(program.source, source_name="<generated>")
    inputs = random_inputs(func, seed=2, dims=program.dims)
    expected = simulate(func, inputs, dims=program.dims)["C"]
    pipelined = _correct_pipeline(func, inputs, expected, program.dims)
    assume(pipelined is not None)
    lowered = lower(pipelined)
    context = "\n" + program.describe() + "\n" + lowered.script()
    nodes = []
    post_order_visit(lowered.body, lambda node: nodes.append(node)
                     if isinstance(node, (AsyncCommitQueue, AsyncWaitQueue)) else None)
    assert all(node.queue == 0 for node in nodes), context
    assert all(as_int(node.in_flight) is not None for node in nodes
               if isinstance(node, AsyncWaitQueue)), context
    for schedule in ("eager", "lazy", "random:1"):
        result = simulate(lowered, inputs, dims=program.dims, schedule=schedule)["C"]
        np.testing.assert_array_equal(result, expected, err_msg=schedule + context)
    report = verify(lowered, dims=program.dims)
    assert report.ok, report.format() + context
    for count in max_safe_counts(lowered, dims=program.dims):
        for used, safe in count.executions:
            assert safe is None or max(used) <= safe, count.format() + context
        assert count.max_safe is None or count.exact, count.format() + context


def _correct_pipeline(func, inputs, expected, dims):
    """The pipelined program when it gives the same results (eager) with exact waits."""
    try:
        pipelined = inject_software_pipeline(func)
        result = simulate(pipelined, inputs, dims=dims)["C"]
        exact = all(count.exact for count in max_safe_counts(pipelined, dims=dims))
    except TilepipeError:
        return None
    return pipelined if exact and np.array_equal(result, expected) else None
