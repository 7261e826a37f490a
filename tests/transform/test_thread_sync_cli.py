"""The command line on kernels whose threads share shared-memory tiles: ``pipeline``,
``run``, ``verify`` and ``trace`` act on the pipeline with its block barriers, so they
are race-free and exact."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tilepipe import cli
from tilepipe.kernels import examples
from tilepipe.kernels.gemm import gemm_small
from tilepipe.script import parse

KERNELS = {
    "tensor_core_gemm": gemm_small,
    "exchange": lambda: examples.shared_exchange(2),
}


@pytest.fixture(scope="module", params=sorted(KERNELS))
def kernel_file(request, tmp_path_factory):
    """The kernel as ``tilepipe show`` prints it, in a file."""
    path = tmp_path_factory.mktemp("kernels") / f"{request.param}.py"
    path.write_text(KERNELS[request.param]().script())
    return str(path)


def test_verify_finds_no_race(kernel_file, capsys):
    assert cli.main(["verify", kernel_file]) == 0
    assert "no race" in capsys.readouterr().out


def test_pipeline_prints_the_barriers_and_reads_back(kernel_file, capsys):
    assert cli.main(["pipeline", kernel_file]) == 0
    printed = capsys.readouterr().out
    assert 'T.tvm_storage_sync("shared")' in printed
    assert "software_pipeline" not in printed
    parse(printed)


def test_run_computes_what_the_program_as_written_does(kernel_file, tmp_path):
    pipelined, written = tmp_path / "pipelined.npz", tmp_path / "written.npz"
    assert cli.main(["run", kernel_file, "--out", str(pipelined), "--schedule", "lazy"]) == 0
    assert cli.main(["run", kernel_file, "--out", str(written), "--no-pipeline"]) == 0
    after, before = np.load(pipelined), np.load(written)
    assert sorted(after.files) == sorted(before.files)
    for name in before.files:
        np.testing.assert_array_equal(after[name], before[name])


def test_tensor_core_gemm_run_matches_numpy(tmp_path):
    path = tmp_path / "gemm.py"
    path.write_text(gemm_small().script())
    out = tmp_path / "out.npz"
    assert cli.main(["run", str(path), "--out", str(out), "--seed", "5"]) == 0
    result = np.load(out)
    expected = result["A"].astype(np.float32) @ result["B"].astype(np.float32)
    np.testing.assert_allclose(result["C"], expected, rtol=1e-5, atol=1e-4)


def test_trace_shows_a_barrier_after_each_wait_of_shared_data(tmp_path, capsys):
    path = tmp_path / "exchange.py"
    path.write_text(examples.shared_exchange(2).script())
    assert cli.main(["trace", str(path), "--thread", "3"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [event["ev"] for event in events]
    assert kinds.count("barrier") > 0
    for position, event in enumerate(events):
        if event["ev"] == "read" and event["buffer"].startswith("B"):
            earlier = kinds[:position]
            last_wait = len(earlier) - 1 - earlier[::-1].index("wait")
            assert "barrier" in earlier[last_wait:], "a read of another thread's copy " \
                "must follow a barrier after the wait that landed it"
