"""``--sync barriers|warp-specialized`` on the pipeline, verify and cuda commands."""

import sys
from pathlib import Path

import pytest
from hopper_programs import scaled_rows_source

from tilepipe import parse
from tilepipe.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_programs import write_program  # noqa: E402


@pytest.fixture
def program(tmp_path):
    return write_program(tmp_path, scaled_rows_source(), "scaled_rows.py")


@pytest.mark.parametrize("sync, marker", [("barriers", "T.mbarrier_wait_parity(full"),
                                          ("warp-specialized", "T.thread_binding(256")])
def test_pipeline_prints_the_barrier_form_that_reads_back(program, capsys, sync, marker):
    assert main(["pipeline", program, "--sync", sync]) == 0
    printed = capsys.readouterr().out
    assert marker in printed and "T.tma_load(" in printed
    assert parse(printed).script() == printed


@pytest.mark.parametrize("sync", ["barriers", "warp-specialized"])
def test_verify_of_the_barrier_forms_finds_no_race(program, capsys, sync):
    assert main(["verify", program, "--sync", sync]) == 0
    assert "no race" in capsys.readouterr().out


def test_cuda_for_sm90a_issues_tma_copies(program, capsys):
    assert main(["cuda", program, "--sync", "warp-specialized", "--arch", "sm_90a"]) == 0
    source = capsys.readouterr().out
    assert "cp.async.bulk.tensor.2d" in source and "CUtensorMap A_tensor_map" in source


def test_unknown_sync_is_a_usage_error(program):
    with pytest.raises(SystemExit) as caught:
        main(["pipeline", program, "--sync", "tokens"])
    assert caught.value.code == 2


def test_printed_barrier_program_compiles_as_written(program, tmp_path, capsys):
    assert main(["pipeline", program, "--sync", "warp-specialized"]) == 0
    printed = tmp_path / "specialized.py"
    printed.write_text(capsys.readouterr().out)
    assert main(["cuda", str(printed), "--no-pipeline", "--sync", "warp-specialized",
                 "--arch", "sm_90a"]) == 0
    source = capsys.readouterr().out
    assert "__syncthreads();" in source and source.count("__syncthreads();") == 1
