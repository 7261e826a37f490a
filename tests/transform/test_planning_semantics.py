"""Pipelines planned from num_stages, run in the simulator: race-free, exact waits, and
the same results as the program as written."""

import numpy as np
import pytest

from tilepipe.kernels.gemm import gemm_small
from tilepipe.kernels.tuning import with_num_stages
from tilepipe.sim import random_inputs, simulate, verify
from tilepipe.transform import inject_software_pipeline
from tilepipe.transform.pipeline.planning import plan_pipeline

from test_planning import simple_compute


def planned(func, num_stages):
    return inject_software_pipeline(plan_pipeline(with_num_stages(func, num_stages)))


def assert_exact_and_equal(written, program):
    report = verify(program)
    assert report.ok, report.format()
    counts = verify.max_safe_counts(program)
    assert counts and all(count.exact for count in counts), "\n".join(
        count.format() for count in counts)
    inputs = random_inputs(written, seed=1)
    expected = simulate(written, {name: array.copy() for name, array in inputs.items()})
    got = simulate(program, inputs, schedule="lazy")
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("num_stages", [2, 3, 5])
@pytest.mark.parametrize("extent", [16, 3])
def test_planned_simple_compute(num_stages, extent):
    written = simple_compute(num_stages, extent=extent)
    assert_exact_and_equal(written, planned(written, num_stages))


@pytest.mark.parametrize("num_stages", [2, 3, 4])
def test_planned_small_gemm(num_stages):
    # Warps share the shared tiles, so the program is checked with the thread barriers
    # the CUDA lowering gives it.
    from tilepipe.backend.cuda import lower

    written = plan_pipeline(with_num_stages(gemm_small(), 1))
    assert_exact_and_equal(written, lower(planned(gemm_small(), num_stages)))
