"""``tilepipe timeline``: ASCII by default, pictures with --png/--svg, --compare, and
bad input reported with exit status 2."""

import pytest

from tilepipe.cli import main

if not hasattr(pytest.importorskip("tilepipe.transform"), "inject_software_pipeline"):
    pytest.skip("the pipeline pass is not installed", allow_module_level=True)

PROGRAM = '''
from tilepipe import script as T


@T.prim_func
def tile_copy(A: T.Buffer[(64, 1024), "float16"], C: T.Buffer[(64, 1024), "float32"]):
    for tx in T.thread_binding(0, 128, thread="threadIdx.x"):
        for i in T.serial(0, 64, annotations={"software_pipeline_num_stages": 3}):
            with T.block():
                T.reads(A[i, tx * 8:tx * 8 + 8])
                T.writes(C[i, tx * 8:tx * 8 + 8])
                B = T.alloc_buffer((1024,), dtype="float16", scope="shared")
                with T.block():
                    T.reads(A[i, tx * 8:tx * 8 + 8])
                    T.writes(B[tx * 8:tx * 8 + 8])
                    for v in T.vectorized(8):
                        B[tx * 8 + v] = A[i, tx * 8 + v]
                with T.block():
                    T.reads(B[tx * 8:tx * 8 + 8])
                    T.writes(C[i, tx * 8:tx * 8 + 8])
                    for v in T.serial(8):
                        C[i, tx * 8 + v] = T.Cast("float32", B[tx * 8 + v]) * T.float32(2)
'''


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "tile_copy.py"
    path.write_text(PROGRAM)
    return path


def test_ascii_timeline_of_the_pipelined_program(program, capsys):
    assert main(["timeline", str(program)]) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 100 for line in out.splitlines())
    assert out.startswith("tile_copy on A100:")
    assert out.splitlines()[1].lstrip().startswith("|body")
    assert "pipelined: tile_copy on A100" in out


def test_compare_shows_both_programs_on_one_scale(program, capsys):
    assert main(["timeline", str(program), "--compare"]) == 0
    out = capsys.readouterr().out
    assert "-- as written --" in out and "-- pipelined --" in out
    cycles = [float(line.split(": ")[2].split(" cycles")[0].replace(",", ""))
              for line in out.splitlines() if line.startswith(("as written:", "pipelined:"))]
    assert len(cycles) == 2 and cycles[1] < cycles[0]


def test_png_and_svg_are_written(program, tmp_path, capsys):
    png, svg = tmp_path / "t.png", tmp_path / "t.svg"
    assert main(["timeline", str(program), "--compare", "--png", str(png),
                 "--svg", str(svg), "--machine", "H100"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {png}" in out and f"wrote {svg}" in out
    assert png.read_bytes().startswith(b"\x89PNG") and svg.read_bytes().startswith(b"<?xml")
    assert "tile_copy on H100" in out


def test_bad_machine_and_bad_picture_exit_with_status_two(program, tmp_path, capsys):
    assert main(["timeline", str(program), "--machine", "B300"]) == 2
    assert "unknown machine 'B300'" in capsys.readouterr().err
    assert main(["timeline", str(program), "--png", str(tmp_path / "t.gif")]) == 2
    assert "must end in .png or .svg" in capsys.readouterr().err
