"""Invalid pipeline annotations: a PipelineError naming the loop, the key and the problem,
and exit status 2 from ``tilepipe pipeline``."""

from __future__ import annotations

import pytest
from pipeline_helpers import annotate, seed

from tilepipe.cli import main
from tilepipe.errors import PipelineError
from tilepipe.ir import For, IRVisitor
from tilepipe.transform import inject_software_pipeline

STAGE = "software_pipeline_stage"
ORDER = "software_pipeline_order"
ASYNC = "software_pipeline_async_stages"


def three_stage(**annotations):
    return annotate(seed("three_stage_compute"), "i", **annotations)


@pytest.mark.parametrize("annotations, key, problem", [
    ({"order": None}, ORDER, "is missing"),
    ({"stage": None}, STAGE, "is missing"),
    ({"stage": [0, 1]}, STAGE, "has 2 entries but the loop body has 3 statements"),
    ({"order": [0, 1, 2, 3]}, ORDER, "has 4 entries"),
    ({"order": [0, 1, 1]}, ORDER, "gives order 1 to more than one statement"),
    ({"stage": [0, -1, 2]}, STAGE, "has a negative stage -1"),
    ({"stage": [0, 1.5, 2]}, STAGE, "must hold integers only, found 1.5"),
    ({"stage": [0, True, 2]}, STAGE, "must hold integers only, found True"),
    ({"order": "first"}, ORDER, "must be a list of integers"),
    ({"async_stages": [3]}, ASYNC, "lists stage 3, which no statement of the loop has"),
    ({"async_stages": [0, 0]}, ASYNC, "lists stage 0 twice"),
    ({"async_stages": ["0"]}, ASYNC, "must hold integers only"),
    ({"stage": [1, 0, 2]}, STAGE, "schedules statement 1"),
    ({"stage": [0, 0, 2], "order": [1, 0, 2]}, ORDER, "puts statement 1"),
])
def test_invalid_annotation(annotations, key, problem):
    with pytest.raises(PipelineError) as caught:
        inject_software_pipeline(three_stage(**annotations))
    message = str(caught.value)
    assert "pipelined loop 'i'" in message
    assert f"annotation '{key}'" in message
    assert problem in message
    assert caught.value.span is not None  # the loop's line


def test_consumer_before_producer_names_both_statements():
    with pytest.raises(PipelineError, match=r"before statement 0 .*produces 'B'"):
        inject_software_pipeline(three_stage(stage=[1, 0, 2]))


def test_other_annotations_are_kept_and_applied_ones_dropped():
    func = three_stage(async_stages=[0], unroll_explicit=1)
    pipelined = inject_software_pipeline(func)
    annotations = []

    class _Loops(IRVisitor):
        def visit_for(self, node: For) -> None:
            annotations.append(dict(node.annotations))
            super().visit_for(node)

    _Loops().visit(pipelined.body)
    assert {"unroll_explicit": 1} in annotations
    assert not any(STAGE in item or ORDER in item or ASYNC in item for item in annotations)


def test_cli_pipeline_prints_a_program_that_reads_back(tmp_path, capsys):
    source = tmp_path / "three_stage.py"
    source.write_text(three_stage(async_stages=[0, 1]).script())
    assert main(["pipeline", str(source)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("from tilepipe import script as T")
    assert "software_pipeline" not in printed
    again = tmp_path / "again.py"
    again.write_text(printed)
    assert main(["pipeline", str(again)]) == 0
    assert capsys.readouterr().out == printed


def test_cli_pipeline_invalid_annotation_exits_2(tmp_path, capsys):
    source = tmp_path / "bad.py"
    source.write_text(three_stage(order=[0, 1, 1]).script())
    assert main(["pipeline", str(source)]) == 2
    error = capsys.readouterr().err
    assert "annotation 'software_pipeline_order' gives order 1 to more than one" in error
    assert "Traceback" not in error
