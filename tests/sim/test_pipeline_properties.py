"""Differential and property tests over generated pipelines.

For every generated producer/consumer program: the pipelined program (with the block
barriers of the CUDA lowering, for programs whose threads share data) computes what the
original computes under every schedule, has no race, and every wait is exact; loosening
a wait by one group, or removing it, is rejected whenever it changes the results.
"""

import sys
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, assume, given, settings

from tilepipe import PipelineError
from tilepipe.backend.cuda import insert_barriers
from tilepipe.script import parse
from tilepipe.sim import max_safe_counts, random_inputs, simulate, verify
from tilepipe.transform import inject_software_pipeline

from sim_mutants import wait_mutants

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline_programs import programs  # noqa: E402

SCHEDULES = ("eager", "lazy", "random:1")
PROPERTY_SETTINGS = settings(max_examples=25, deadline=None, database=None, derandomize=True,
                             suppress_health_check=[HealthCheck.too_slow])


def _pipelined(program):
    """The original, pipelined and synchronized programs, the latter two read back from
    their printout as the commands do. The properties are about the programs the
    transform accepts (benchmarks/fuzz.py counts those it rejects, and runs the
    transform's IR as it is)."""
    func = parse(program.source, source_name="<generated>")
    try:
        pipelined = inject_software_pipeline(func)
    except PipelineError:
        assume(False)
    synchronized = insert_barriers(pipelined)
    return (func, parse(pipelined.script(), source_name="<pipelined>"),
            parse(synchronized.script(), source_name="<synchronized>"))


@PROPERTY_SETTINGS
@given(programs())
def test_pipelining_preserves_results_without_races_and_with_exact_waits(program):
    func, pipelined, synchronized = _pipelined(program)
    inputs = random_inputs(func, seed=2, dims=program.dims)
    expected = simulate(func, inputs, dims=program.dims)["C"]
    for schedule in SCHEDULES:
        result = simulate(synchronized, inputs, dims=program.dims, schedule=schedule)["C"]
        np.testing.assert_array_equal(result, expected,
                                      err_msg=f"{schedule}\n{program.describe()}")
    report = verify(synchronized, dims=program.dims)
    assert report.ok, report.format() + "\n" + program.describe()
    for count in max_safe_counts(pipelined, dims=program.dims):
        assert count.exact, count.format() + "\n" + program.describe()


@settings(max_examples=10, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(programs(max_threads=2, max_extent=4))
def test_a_loosened_or_removed_wait_is_rejected_whenever_it_changes_results(program):
    """A wait loosened by one group (or removed) is actually racy when some schedule
    changes the results; verify must then reject it. (It need not be racy: another wait
    may already complete the group.) Equivalently: a mutant verify accepts gives the
    original's results under every schedule."""
    func, _, synchronized = _pipelined(program)
    inputs = random_inputs(func, seed=3, dims=program.dims)
    expected = simulate(func, inputs, dims=program.dims)["C"]
    for name, mutant in wait_mutants(synchronized):
        changed = [schedule for schedule in SCHEDULES if not np.array_equal(
            simulate(mutant, inputs, dims=program.dims, schedule=schedule)["C"], expected)]
        if changed:
            assert not verify(mutant, dims=program.dims).ok, (
                f"{name} changes the results under {changed}\n{program.describe()}")
