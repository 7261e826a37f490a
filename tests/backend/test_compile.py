"""Compilation with nvcc for sm_80 and sm_90: the SASS holds as many cp.async (LDGSTS),
commit (LDGDEPBAR), wait (DEPBAR with the same immediates) and barrier (BAR.SYNC)
instructions as the lowered program has copies, commits, waits and barriers; without a
GPU, running raises a clear error."""

from collections import Counter

import numpy as np
import pytest

import cuda_programs as programs
from tilepipe.backend.cuda import (
    DeviceError, async_instruction_counts, build, disassemble, find_nvcc, lower,
)
from tilepipe.transform.thread_sync import is_storage_sync
from tilepipe.backend.cuda.runtime import _present_arch
from tilepipe.ir import (
    AsyncCommitQueue, AsyncScope, AsyncWaitQueue, For, ForKind, IfThenElse, SeqStmt, as_int,
)
from tilepipe.kernels.examples import shared_exchange, simple_compute, simt_gemm
from tilepipe.script import parse

pytestmark = pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")

KERNELS = {
    "simple_compute": lambda: parse(programs.SIMPLE_COMPUTE),
    "exchange": lambda: parse(programs.EXCHANGE),
    "two_queues": lambda: parse(programs.TWO_QUEUES),
    "dynamic_count": lambda: parse(programs.DYNAMIC_COUNT),
    "copy_sizes": lambda: parse(programs.COPY_SIZES),
    "example_simple_compute": lambda: simple_compute(1),
    "example_shared_exchange": lambda: shared_exchange(2),
    "simt_gemm": lambda: simt_gemm(128, 128, 48),
}
ARCHES = ("sm_80", "sm_90")


@pytest.fixture(scope="session")
def built():
    """Every kernel, built once per architecture."""
    return {(name, arch): build(make(), arch=arch) for name, make in KERNELS.items()
            for arch in ARCHES}


def expected_instructions(stmt, copies: int = 1) -> Counter:
    """Copies, commits and waits of a lowered program as nvcc lays them out: loops that
    the source unrolls (T.unroll, T.vectorized) repeated, serial loops once."""
    counts: Counter = Counter()
    if isinstance(stmt, SeqStmt):
        for child in stmt.stmts:
            counts += expected_instructions(child, copies)
    elif isinstance(stmt, AsyncScope):
        counts["LDGSTS"] += copies
    elif is_storage_sync(stmt):
        counts["BAR.SYNC"] += copies
    elif isinstance(stmt, For):
        factor = 1
        if stmt.kind in (ForKind.UNROLLED, ForKind.VECTORIZED):
            factor = as_int(stmt.extent)
        counts += expected_instructions(stmt.body, copies * factor)
    elif isinstance(stmt, IfThenElse):
        counts += expected_instructions(stmt.then_case, copies)
        if stmt.else_case is not None:
            counts += expected_instructions(stmt.else_case, copies)
    elif isinstance(stmt, AsyncCommitQueue):
        counts["LDGDEPBAR"] += copies
        counts += expected_instructions(stmt.body, copies)
    elif isinstance(stmt, AsyncWaitQueue):
        counts[("DEPBAR", as_int(stmt.in_flight))] += copies
        counts += expected_instructions(stmt.body, copies)
    elif hasattr(stmt, "body"):
        counts += expected_instructions(stmt.body, copies)
    return counts


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_sass_matches_lowered_program(built, name, arch):
    kernel = built[name, arch]
    assert kernel.cubin[:4] == b"\x7fELF"
    found = async_instruction_counts(disassemble(kernel.cubin))
    assert found == expected_instructions(kernel.lowered.body)


def test_gemm_is_pipelined_in_sass(built):
    found = async_instruction_counts(disassemble(built["simt_gemm", "sm_80"].cubin))
    # one group per K tile holds the A and the B copy; with 3 stages and the copies after
    # the multiply, one tile stays in flight in the body and first epilogue step, then none
    assert found["LDGDEPBAR"] > 0
    assert found["LDGSTS"] == 2 * found["LDGDEPBAR"]
    assert {key[1] for key in found if isinstance(key, tuple)} == {0, 1}


@pytest.mark.skipif(_present_arch() is not None, reason="a GPU is present")
def test_running_without_a_gpu_is_a_clear_error(built):
    kernel = built["simple_compute", "sm_80"]
    arrays = (np.zeros((16, 64), np.float32), np.zeros((16, 64), np.float32))
    with pytest.raises(DeviceError, match="no CUDA GPU is available"):
        kernel(*arrays)
    assert "cp_async_wait_group<3>();" in kernel.source


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["simple_compute", "exchange", "simt_gemm"])
def test_gpu_results_equal_the_simulator(name):
    from tilepipe.sim import random_inputs, simulate

    func = KERNELS[name]()
    kernel = build(func)
    inputs = random_inputs(func, seed=5)
    expected = simulate(lower(func), inputs)
    arrays = {key: value.copy() for key, value in inputs.items()}
    kernel(**arrays)
    for key, value in expected.items():
        np.testing.assert_allclose(arrays[key], value, rtol=1e-5, atol=1e-5)


def nvrtc_loads() -> bool:
    try:
        from cuda.bindings import nvrtc

        nvrtc.nvrtcVersion()
    except (ImportError, RuntimeError):
        return False
    return True


@pytest.mark.skipif(not nvrtc_loads(), reason="the NVRTC library is not installed")
def test_nvrtc_compiles_when_nvcc_is_missing(monkeypatch, tmp_path, built):
    from tilepipe.backend.cuda import compiler

    monkeypatch.setattr(compiler, "find_nvcc", lambda: None)
    monkeypatch.setenv("TILEPIPE_CACHE_DIR", str(tmp_path))
    kernel = built["exchange", "sm_80"]
    cubin = compiler.compile_source(kernel.source, "sm_80")
    assert list(tmp_path.glob("cubin/*.cubin"))
    found = async_instruction_counts(disassemble(cubin))
    assert found == expected_instructions(kernel.lowered.body)


def test_compiler_errors_are_reported(tmp_path, monkeypatch):
    from tilepipe.backend.cuda import CompileError, compile_source

    monkeypatch.setenv("TILEPIPE_CACHE_DIR", str(tmp_path))
    with pytest.raises(CompileError, match="nvcc failed for sm_80"):
        compile_source('extern "C" __global__ void k() { undefined_name(); }', "sm_80")
