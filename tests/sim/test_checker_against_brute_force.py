"""The race checker (shadow memory, a few records per element) agrees with a brute-force
comparison of every pair of accesses, on generated pipelines and on their mutants."""

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings

from tilepipe import PipelineError
from tilepipe.backend.cuda import insert_barriers
from tilepipe.script import parse
from tilepipe.sim import verify
from tilepipe.transform import inject_software_pipeline

import sim_programs as programs
from brute_force import has_race
from sim_mutants import barriers, wait_mutants, without_barrier

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline_programs import programs as generated  # noqa: E402


def _mutants(func):
    yield "as is", func
    yield from wait_mutants(func)
    for barrier in barriers(func):
        yield "barrier dropped", without_barrier(func, barrier)


def _agree(func, dims=None, what=""):
    for name, mutant in _mutants(func):
        report = verify(mutant, dims=dims)
        assert has_race(mutant, dims) == (not report.ok), f"{name}\n{report.format()}\n{what}"


def test_hand_written_programs_and_mutants():
    for source in (programs.pipelined(1), programs.pipelined(3), programs.EXCHANGE):
        _agree(programs.load(source))


@settings(max_examples=12, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(generated(max_threads=4, max_extent=4))
def test_generated_pipelines_and_mutants(program):
    func = parse(program.source, source_name="<generated>")
    try:
        synchronized = insert_barriers(inject_software_pipeline(func))
    except PipelineError:
        assume(False)
    # Read back as the commands do: this test is about the checker, on printed programs.
    _agree(parse(synchronized.script(), source_name="<pipelined>"), program.dims,
           program.describe())
