"""Every program in examples/ goes through the commands its docstring shows: it prints,
pipelines into a program that reads back, runs, and verifies race-free with exact waits."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tilepipe import cli, simulate
from tilepipe.ir import bind_params, structural_equal
from tilepipe.script import load_file, parse
from tilepipe.sim import random_inputs, verify
from tilepipe.transform import inject_software_pipeline

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))
SIZES = {"n": [1, 2, 3, 7]}


def _bindings(func):
    names = set(re.findall(r"(\w+) = T\.int32\(\)", func.script()))
    if not names:
        return [{}]
    (name,) = names
    return [{name: value} for value in SIZES[name]]


def test_there_are_examples():
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_example_pipelines_runs_and_verifies(path, capsys):
    (func,) = load_file(str(path))
    pipelined = inject_software_pipeline(func)
    reread = parse(pipelined.script())
    assert structural_equal(reread, pipelined, compare_regions=False)
    assert "software_pipeline" not in pipelined.script()
    for values in _bindings(func):
        before = bind_params(func, values)
        after = bind_params(reread, values)
        inputs = random_inputs(before, seed=3)
        expected = simulate(before, {k: v.copy() for k, v in inputs.items()})
        for schedule in ("eager", "lazy", "random:5"):
            got = simulate(after, {k: v.copy() for k, v in inputs.items()}, schedule=schedule)
            for name in expected:
                np.testing.assert_array_equal(got[name], expected[name])
        report = verify(after)
        assert report.ok, report.format()
        counts = verify.max_safe_counts(after)
        assert counts and all(count.exact for count in counts), counts


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_example_commands_exit_zero(path, capsys):
    (func,) = load_file(str(path))
    dims = [f"--dim={name}={value}" for name, value in _bindings(func)[-1].items()]
    assert cli.main(["pipeline", str(path)]) == 0
    assert cli.main(["verify", str(path), *dims]) == 0
    assert "no race" in capsys.readouterr().out
