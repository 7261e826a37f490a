"""Timelines: the ASCII form fits the terminal and marks the phases; pictures are real
PNG and SVG files; several timelines share one scale."""

import pytest

from tilepipe.errors import TilepipeError
from tilepipe.ir import (
    AsyncCommitQueue, AsyncScope, AsyncWaitQueue, Block, Buffer, BufferLoad, BufferStore, Cast,
    For, ForKind, IntImm, PrimFunc, Var, seq,
)
from tilepipe.sim.timeline import ascii_comparison, ascii_timeline, draw_timeline
from tilepipe.sim.timing import estimate

TILE = 64


def copy_then_scale(n, stages):
    """Copy tile k of A into a shared ring, then C += 2 * tile (shared-memory traffic);
    pipelined by hand with ``stages - 1`` asynchronous copies in flight when stages > 1."""
    A = Buffer("A", (IntImm(n), IntImm(TILE * 32)), "float16", "global")
    C = Buffer("C", (IntImm(TILE * 32),), "float32", "local")
    ring = Buffer("A_shared", (IntImm(stages), IntImm(TILE * 32)), "float16", "shared")

    def copy(k):
        e = Var("e")
        return For(e, IntImm(0), IntImm(TILE * 32), ForKind.VECTORIZED,
                   BufferStore(ring, BufferLoad(A, (k, e)), (k % stages, e)))

    def scale(k):
        e = Var("e")
        value = C[e] + Cast("float32", BufferLoad(ring, (k % stages, e))) * 2.0
        return For(e, IntImm(0), IntImm(TILE * 32), ForKind.SERIAL, BufferStore(C, value, (e,)))

    if stages == 1:
        k = Var("k")
        body = For(k, IntImm(0), IntImm(n), ForKind.SERIAL, seq(copy(k), scale(k)))
    else:
        p, i, e = Var("p"), Var("i"), Var("e")
        body = seq(
            For(p, IntImm(0), IntImm(stages - 1), ForKind.UNROLLED,
                AsyncCommitQueue(0, AsyncScope(copy(p)))),
            For(i, IntImm(0), IntImm(n - stages + 1), ForKind.SERIAL, seq(
                AsyncCommitQueue(0, AsyncScope(copy(i + (stages - 1)))),
                AsyncWaitQueue(0, IntImm(stages - 1), scale(i)))),
            For(e, IntImm(0), IntImm(stages - 1), ForKind.UNROLLED,
                AsyncWaitQueue(0, IntImm(stages - 2) - e, scale(e + (n - stages + 1)))))
    return PrimFunc("scaled_sum", (A,), Block("root", body, alloc_buffers=(ring, C)))


@pytest.fixture(scope="module")
def reports():
    return estimate(copy_then_scale(12, 1)), estimate(copy_then_scale(12, 4))


def test_ascii_fits_one_hundred_columns_and_marks_the_phases(reports):
    text = ascii_timeline(reports[1])
    lines = text.splitlines()
    assert all(len(line) <= 100 for line in lines)
    assert lines[0].startswith("scaled_sum on A100:")
    ruler = lines[1]
    assert "body" in ruler and "epilogue" in ruler and ruler.strip().startswith("|")
    # The steady-state loop's 9 iterations (12 tiles, 3 in the prologue) are numbered
    # where each starts.
    assert lines[2].split() == ["iter"] + [str(number) for number in range(9)]
    lanes = {line.split()[0] for line in lines[3:-2]}
    assert lanes == {"threads", "copy", "shared"}
    copy_lane = next(line for line in lines if line.startswith("copy "))
    assert "=" in copy_lane and "~" in copy_lane
    assert lines[-2].rstrip().endswith("cycles")
    assert lines[-1].startswith("legend:") and lines[-1].endswith(": partly busy")


def test_a_partly_busy_lane_is_not_drawn_saturated():
    # On one 100-column scale a lane busy for a third of every column reads ":".
    from tilepipe.sim.timing import Interval, TimingReport

    report = estimate(copy_then_scale(2, 1))
    step = report.total_cycles / 90
    thirds = [Interval("tensor", column * step, column * step + step / 3, "compute", "mma",
                       None, "body") for column in range(90)]
    report.intervals = thirds
    row = ascii_timeline(report).splitlines()[3]
    assert row.startswith("tensor") and set(row.split(maxsplit=1)[1]) == {":"}


def test_comparison_shares_one_scale(reports):
    text = ascii_comparison(reports, ["as written", "pipelined"])
    before, after = text.split("\n\n")
    assert before.startswith("-- as written --") and after.startswith("-- pipelined --")

    def last_busy_column(block):
        row = next(line for line in block.splitlines() if line.startswith("copy "))
        return len(row.rstrip())

    ratio = reports[1].total_cycles / reports[0].total_cycles
    assert ratio < 0.7
    assert last_busy_column(after) < last_busy_column(before)
    assert before.splitlines()[-2] == after.splitlines()[-2]  # the same axis


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG\r\n\x1a\n"), (".svg", b"<?xml")])
def test_pictures_are_written(tmp_path, reports, suffix, magic):
    path = draw_timeline(reports, tmp_path / f"timeline{suffix}", ["as written", "pipelined"])
    data = path.read_bytes()
    assert data.startswith(magic)
    assert len(data) > 10_000


def test_picture_with_an_unknown_suffix_is_refused(tmp_path, reports):
    with pytest.raises(TilepipeError, match="must end in .png or .svg"):
        draw_timeline(reports, tmp_path / "timeline.jpg")
    with pytest.raises(TilepipeError, match="cannot write"):
        draw_timeline(reports, tmp_path / "missing" / "timeline.png")
