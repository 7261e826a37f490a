"""The backend-ready example kernels, pipelined and lowered: race-free in the simulator,
equal to NumPy, with the fewest barriers their statement order allows."""

import numpy as np
import pytest

from tilepipe.backend.cuda import lower
from tilepipe.ir.printer import script
from tilepipe.kernels.examples import shared_exchange, simple_compute, simt_gemm
from tilepipe.sim import random_inputs, simulate, verify
from tilepipe.transform import inject_software_pipeline


def lowered(func):
    return lower(inject_software_pipeline(func))


def loop_body_barriers(func) -> int:
    """Barriers in the pipelined serial loop's body (the steady state)."""
    lines = script(func).splitlines()
    start = next(i for i, line in enumerate(lines) if "in T.serial(" in line)
    indent = len(lines[start]) - len(lines[start].lstrip())
    body = []
    for line in lines[start + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        body.append(line)
    return sum("T.tvm_storage_sync(" in line for line in body)


@pytest.mark.parametrize("num_stages", [1, 3])
def test_simple_compute(num_stages):
    func = simple_compute(num_stages)
    program = lowered(func)
    assert "T.tvm_storage_sync(" not in script(program)  # each thread reads its own row
    report = verify(program)
    assert report.ok, report.format()
    inputs = random_inputs(func, seed=2)
    np.testing.assert_allclose(simulate(program, inputs, schedule="lazy")["C"],
                               inputs["A"] * 2 + 1, rtol=1e-6)


def test_shared_exchange():
    func = shared_exchange(2)
    program = lowered(func)
    report = verify(program)
    assert report.ok, report.format()
    assert loop_body_barriers(program) == 2  # before the ring slot is refilled, after the wait
    inputs = random_inputs(func, seed=4)
    expected = inputs["A"][::-1] + 1
    np.testing.assert_allclose(simulate(program, inputs, schedule="random:3")["C"], expected,
                               rtol=1e-6)


@pytest.mark.parametrize("num_stages, copy_first, barriers", [(3, False, 1), (3, True, 2),
                                                               (4, False, 1)])
def test_simt_gemm(num_stages, copy_first, barriers):
    """Fewest barriers, race-free, the product, and every wait still exact after lowering."""
    func = simt_gemm(64, 64, 96, num_stages=num_stages, copy_first=copy_first)
    program = lowered(func)
    assert loop_body_barriers(program) == barriers
    report = verify(program)
    assert report.ok, report.format()
    inputs = random_inputs(func, seed=6)
    np.testing.assert_allclose(simulate(program, inputs)["C"], inputs["A"] @ inputs["B"],
                               rtol=1e-4, atol=1e-4)
    for entry in verify.max_safe_counts(program):
        assert entry.max_safe is None or set(entry.used) == {entry.max_safe}, entry
