"""The timing model on the tensor-core GEMM: pipelining approaches the bound."""

import pytest

from tilepipe.kernels.gemm import gemm
from tilepipe.kernels.tuning import pipelined, with_num_stages
from tilepipe.sim.timing import estimate


@pytest.fixture(scope="module")
def kernel():
    return gemm(256, 256, 4096)


@pytest.mark.parametrize("machine", ["A100", "H100"])
def test_cycles_fall_with_stages_until_the_bound(kernel, machine):
    reports = [estimate(pipelined(with_num_stages(kernel, stages), machine), machine)
               for stages in range(1, 4)]
    bound = reports[0].bound_cycles
    assert all(report.bound_cycles == pytest.approx(bound) for report in reports)
    cycles = [report.total_cycles for report in reports]
    assert cycles[0] > 1.4 * bound          # as written: the latency is exposed
    assert cycles[1] < 0.75 * cycles[0]
    # Deeper rings only lengthen the prologue once the bound is reached.
    assert all(later <= 1.01 * earlier for earlier, later in zip(cycles, cycles[1:]))
    assert min(cycles) <= 1.05 * bound
    for report in reports:
        assert report.total_cycles >= report.bound_cycles


def test_gemm_work_is_counted_exactly(kernel):
    report = estimate(kernel, "A100")
    # A (256 x 4096 rows of this block: 128 x 4096) and B (4096 x 128) in fp16, C fp32.
    assert report.global_bytes == (128 * 4096 + 4096 * 128) * 2 + 128 * 128 * 4
    # mma flops plus the accumulator fills (one flop per element).
    assert report.flops == 2 * 128 * 128 * 4096 + 128 * 128
