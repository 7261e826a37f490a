"""``tilepipe timeline --sync barriers|warp-specialized``: the Hopper forms drawn and
reported, the producer and consumer roles on lanes of their own."""

import pytest

from tilepipe.cli import main
from tilepipe.kernels.hopper_gemm import hopper_gemm


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    path = tmp_path_factory.mktemp("hopper") / "hopper_gemm.py"
    path.write_text(hopper_gemm(128, 128, 1024).script())
    return path


def lanes(out: str) -> list[str]:
    """The lane names of an ASCII timeline (the rows before the cycle axis)."""
    rows = out.split("\n")[3:]
    names = []
    for row in rows:
        name = row[:8].strip()
        if not name:
            break
        names.append(name)
    return names


@pytest.mark.parametrize("sync, roles", [
    ("warp-specialized", ["threads", "producer", "consumer"]),
    ("barriers", ["threads"]),
])
def test_ascii_timeline_of_a_barrier_form(program, capsys, sync, roles):
    assert main(["timeline", str(program), "--sync", sync, "--machine", "H100"]) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 100 for line in out.splitlines())
    assert out.startswith("hopper_gemm_kernel on H100:")
    assert lanes(out) == roles + ["copy", "tma", "tensor", "alu"]
    report = out[out.index("pipelined: "):]
    cycles = int(report.split("): ")[1].split(" cycles")[0].replace(",", ""))
    bound = int(report.split(") = ")[1].split(" cycles")[0].replace(",", ""))
    assert bound <= cycles <= 1.1 * bound


def test_png_timeline_of_the_warp_specialized_form(program, tmp_path, capsys):
    picture = tmp_path / "roles.png"
    assert main(["timeline", str(program), "--sync", "warp-specialized", "--machine", "H100",
                 "--png", str(picture)]) == 0
    assert f"wrote {picture}" in capsys.readouterr().out
    assert picture.read_bytes().startswith(b"\x89PNG")
