"""``tilepipe timeline``: ASCII by default, pictures with --png/--svg, --compare, and
bad input reported with exit status 2."""

import sys
from pathlib import Path

import pytest

from tilepipe.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_programs import tile_copy_source, write_program  # noqa: E402

@pytest.fixture
def program(tmp_path):
    return write_program(tmp_path, tile_copy_source(elements=8, num_stages=3), "tile_copy.py")


def test_ascii_timeline_of_the_pipelined_program(program, capsys):
    assert main(["timeline", program]) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 100 for line in out.splitlines())
    assert out.startswith("tile_copy on A100:")
    assert out.splitlines()[1].lstrip().startswith("|body")
    assert "pipelined: tile_copy on A100" in out


def test_compare_shows_both_programs_on_one_scale(program, capsys):
    assert main(["timeline", program, "--compare"]) == 0
    out = capsys.readouterr().out
    assert "-- as written --" in out and "-- pipelined --" in out
    cycles = [float(line.split(": ")[2].split(" cycles")[0].replace(",", ""))
              for line in out.splitlines() if line.startswith(("as written:", "pipelined:"))]
    assert len(cycles) == 2 and cycles[1] < cycles[0]


def test_png_and_svg_are_written(program, tmp_path, capsys):
    png, svg = tmp_path / "t.png", tmp_path / "t.svg"
    assert main(["timeline", program, "--compare", "--png", str(png),
                 "--svg", str(svg), "--machine", "H100"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {png}" in out and f"wrote {svg}" in out
    assert png.read_bytes().startswith(b"\x89PNG") and svg.read_bytes().startswith(b"<?xml")
    assert "tile_copy on H100" in out


def test_bad_machine_and_bad_picture_exit_with_status_two(program, tmp_path, capsys):
    assert main(["timeline", program, "--machine", "B300"]) == 2
    assert "unknown machine 'B300'" in capsys.readouterr().err
    assert main(["timeline", program, "--png", str(tmp_path / "t.gif")]) == 2
    assert "must end in .png or .svg" in capsys.readouterr().err
