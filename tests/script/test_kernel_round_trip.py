"""The ready-made kernels, before and after pipelining, print and read back unchanged."""

from __future__ import annotations

import pytest

from tilepipe.ir import assert_structural_equal
from tilepipe.kernels import examples, gemm
from tilepipe.script import parse
from tilepipe.transform import inject_software_pipeline

KERNELS = {
    "simple_compute": examples.simple_compute,
    "shared_exchange": examples.shared_exchange,
    "simt_gemm": lambda: examples.simt_gemm(64, 64, 48),
    "gemm_small": gemm.gemm_small,
}


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("pipelined", [False, True], ids=["written", "pipelined"])
def test_kernel_round_trips(name: str, pipelined: bool):
    func = KERNELS[name]()
    if pipelined:
        func = inject_software_pipeline(func)
    text = func.script()
    again = parse(text)
    assert_structural_equal(func, again)
    assert again.script() == text
