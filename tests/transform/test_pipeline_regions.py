"""Regions of the pipelined program: the blocks the pass creates show what they read and
write, as the seeds' outputs do, and the printed regions change nothing downstream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pipeline_helpers import annotate, seed, seed_module

from tilepipe import cli
from tilepipe.arith import declare_regions
from tilepipe.backend.cuda import lower
from tilepipe.ir import Block, Evaluate, IntImm, IRVisitor, PrimFunc, assert_structural_equal
from tilepipe.ir.printer import stmt_to_str
from tilepipe.script import load_file, parse
from tilepipe.transform import inject_software_pipeline

EXAMPLES = sorted((Path(__file__).parent.parent.parent / "examples").glob("*.py"))


def _blocks(func: PrimFunc) -> list[Block]:
    found: list[Block] = []

    class _Finder(IRVisitor):
        def visit_block(self, node: Block) -> None:
            found.append(node)
            super().visit_block(node)

    _Finder().visit(func.body)
    return found


def _regions(block: Block) -> tuple[str, str]:
    """The block's ``T.reads(...)`` and ``T.writes(...)`` lines as printed."""
    header = stmt_to_str(Block("", Evaluate(IntImm(0)), block.reads, block.writes))
    reads, writes = (line.strip() for line in header.splitlines()[1:3])
    return reads, writes


def _created_regions(func: PrimFunc) -> list[tuple[str, str]]:
    """The regions, as printed, of the blocks the pass created (those it leaves to
    inference), in printing order."""
    pipelined = inject_software_pipeline(func)
    created = [not (block.reads or block.writes) for block in _blocks(pipelined)]
    declared = _blocks(declare_regions(pipelined))
    return [_regions(block) for block, new in zip(declared, created) if new]


def _seed_regions(name: str, positions: list[int]) -> list[tuple[str, str]]:
    blocks = _blocks(seed(name))
    return [_regions(blocks[index]) for index in positions]


def test_created_blocks_declare_the_seed_regions_two_stages():
    """Stages [0, 1]: the function's block, the one-copy prologue, the body loop and its
    producer block carry exactly the seed's regions."""
    ours = _created_regions(annotate(seed("simple_compute"), "i", async_stages=[0]))
    assert ours == _seed_regions("simple_compute_async_1_ref", [0, 1, 2, 3])
    assert ours[2] == ("T.reads(A[tx, 1:16], B[0:2, tx, 0])",
                       "T.writes(B[0:2, tx, 0], C[tx, 0:15])")


def test_created_blocks_declare_the_seed_regions_four_versions():
    """Stages [0, 3]: the seed's regions everywhere but the epilogue, whose three copies
    read ring slots (13, 14, 15) % 4: ``B[1:4]``, where the seed declares the whole ring."""
    func = seed_module("gen_simple_compute").gen_simple_compute(3)
    ours = _created_regions(annotate(func, "i", async_stages=[0]))
    seeds = _seed_regions("simple_compute_async_3_ref", [0, 1, 2, 3, 4, 6])
    assert ours[:5] == seeds[:5]
    assert seeds[5] == ("T.reads(B[0:4, tx, 0])", "T.writes(C[tx, 13:16])")
    assert ours[5] == ("T.reads(B[1:4, tx, 0])", "T.writes(C[tx, 13:16])")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_printed_pipeline_reads_back_with_its_regions(path, capsys):
    """What `tilepipe pipeline` prints parses back to the pipelined program with the
    regions declared, and every block the pass created declares some."""
    assert cli.main(["pipeline", str(path)]) == 0
    printed = parse(capsys.readouterr().out)
    (func,) = load_file(path)
    expected = declare_regions(inject_software_pipeline(func))
    assert_structural_equal(printed, expected)
    assert all(block.reads or block.writes for block in _blocks(printed))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_declared_regions_change_nothing_downstream(path, capsys):
    """Lowering the printed pipeline (regions declared) gives the program that lowering
    the pipeline directly gives, regions aside: the declared regions are sound for the
    passes that read them."""
    assert cli.main(["pipeline", str(path)]) == 0
    printed = parse(capsys.readouterr().out)
    (func,) = load_file(path)
    assert_structural_equal(lower(printed), lower(inject_software_pipeline(func)),
                            compare_regions=False)


def test_trace_sites_are_lines_of_the_printed_pipeline(capsys):
    """Wait sites name lines of the `tilepipe pipeline` printout, regions included."""
    path = str(next(path for path in EXAMPLES if path.stem == "simple_compute_async"))
    assert cli.main(["pipeline", path]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert any("T.reads(A[tx, 0:3])" in line for line in printed)
    wait_lines = {line for line, text in enumerate(printed, 1)
                  if "async_wait_queue_scope" in text}
    assert cli.main(["trace", path, "--thread", "0"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {event["site"] for event in events if event["ev"] == "wait"} == wait_lines
