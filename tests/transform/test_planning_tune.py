"""``tilepipe tune``: num_stages chosen by the timing model, budget misses reported."""

import sys
from pathlib import Path

import pytest

from tilepipe.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_programs import tile_copy_source, write_program  # noqa: E402

PROGRAM = tile_copy_source(elements=128, num_stages=2)


def test_tune_prints_the_table_and_picks_a_depth(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    assert main(["tune", write_program(tmp_path, PROGRAM, "tile_copy.py")]) == 0
    out = capsys.readouterr().out
    rows = {int(cells[1].split()[0]): cells[2:-1]
            for cells in (line.split("│") for line in out.splitlines())
            if len(cells) > 2 and cells[1].strip()[:1].isdigit()}
    assert sorted(rows) == list(range(1, 9))
    # A 32 KiB tile: five versions fit in sm_80's 163 KiB, six do not.
    assert all("does not fit: sm_80 gives 166,912 bytes" in rows[s][-1] for s in (6, 7, 8))
    assert rows[5][3].strip() == "163,840"
    cycles = [float(rows[s][0].replace(",", "")) for s in range(1, 6)]
    assert cycles[1] < cycles[0]
    chosen = int(out.split("chosen: num_stages = ")[1].split()[0])
    assert cycles[chosen - 1] <= 1.01 * min(cycles)
    assert "GPU ms: not measured" in out


def test_tune_api_keeps_unfitting_depths_and_picks_the_shallowest_near_best():
    from tilepipe.kernels.tuning import best, tune
    from tilepipe.script import parse

    tuning = tune(parse(PROGRAM), "A100", stages=range(1, 8), measure=False)
    assert tuning.unmeasured_reason == "measurement not asked for"
    by_depth = {candidate.num_stages: candidate for candidate in tuning.candidates}
    assert by_depth[6].report is None and by_depth[6].shared_bytes == 6 * 32768
    assert all(by_depth[depth].report is not None for depth in range(1, 6))
    chosen = best(tuning.candidates)
    fewest = min(by_depth[depth].report.total_cycles for depth in range(1, 6))
    assert chosen.report.total_cycles <= 1.01 * fewest
    assert all(by_depth[depth].report.total_cycles > 1.01 * fewest
               for depth in range(1, chosen.num_stages))


def test_a_function_without_a_pipelined_loop_cannot_be_tuned():
    from tilepipe.errors import PipelineError
    from tilepipe.kernels.tuning import with_num_stages
    from tilepipe.script import parse

    plain = parse(PROGRAM.replace(', annotations={"software_pipeline_num_stages": 2}', ""))
    with pytest.raises(PipelineError, match="has no pipelined loop"):
        with_num_stages(plain, 3)
