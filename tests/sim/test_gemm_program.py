"""The benchmark's 64x64x64 GEMM (128 threads, 4-stage async pipeline) in the simulator:
right results under every schedule, race-free, exact waits, and every barrier and wait
needed."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tilepipe.sim import max_safe_counts, random_inputs, simulate, verify

from sim_mutants import barriers, loosened, waits, without_barrier

_BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "sim_speed.py"


@pytest.fixture(scope="module")
def gemm():
    spec = importlib.util.spec_from_file_location("sim_speed", _BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.gemm_program()


def test_gemm_results_race_freedom_and_exact_waits(gemm):
    inputs = random_inputs(gemm, seed=1)
    expected = inputs["A"].astype(np.float64) @ inputs["B"].astype(np.float64)
    for schedule in ("eager", "lazy", "random:4"):
        np.testing.assert_allclose(simulate(gemm, inputs, schedule=schedule)["C"], expected,
                                   rtol=1e-4, atol=1e-4)
    assert verify(gemm).ok
    counts = max_safe_counts(gemm)
    assert [count.used for count in counts] == [(3,), (2,), (1,), (0,)]
    assert all(count.exact for count in counts)


def test_gemm_needs_every_barrier_and_its_body_wait(gemm):
    for barrier in barriers(gemm):
        report = verify(without_barrier(gemm, barrier))
        assert {race.kind for race in report.races} == {"cross-thread"}, report.format()
    report = verify(loosened(gemm, waits(gemm)[0]))
    assert "unlanded-read" in {race.kind for race in report.races}
