"""The seeds' examples (the example files) before and after pipelining: equal outputs
under every schedule, no race, and every wait exact (the seed tests' annotations, with
async stages)."""

from pathlib import Path

import numpy as np
import pytest

from tilepipe.script import parse
from tilepipe.sim import max_safe_counts, random_inputs, simulate, verify
from tilepipe.transform import inject_software_pipeline

EXAMPLES = Path(__file__).parent.parent.parent / "examples"


def _example(name: str) -> str:
    return (EXAMPLES / f"{name}.py").read_text()


# The seeds' programs, as the example files write them (simple_compute also with the
# seed's other depth, stages [0, 1]).
CASES = {
    "simple_compute_1": _example("simple_compute_async").replace(
        '"software_pipeline_stage": [0, 3]', '"software_pipeline_stage": [0, 1]'),
    "simple_compute_3": _example("simple_compute_async"),
    "producer_interleaving": _example("producer_interleaving"),
    "three_stage_two_async": _example("three_stage_two_async"),
}


def test_the_cases_differ():
    assert CASES["simple_compute_1"] != CASES["simple_compute_3"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_seed_pipeline(name):
    func = parse(CASES[name], source_name=f"<{name}>")
    pipelined = parse(inject_software_pipeline(func).script(), source_name="<pipelined>")
    inputs = random_inputs(func, seed=9)
    expected = simulate(func, inputs)
    for schedule in ("eager", "lazy", "random:2", "random:3"):
        result = simulate(pipelined, inputs, schedule=schedule)
        for buffer, array in expected.items():
            np.testing.assert_array_equal(result[buffer], array, err_msg=schedule)
    report = verify(pipelined)
    assert report.ok, report.format()
    counts = max_safe_counts(pipelined)
    assert counts, "the pipelined program has async stages, hence waits"
    for count in counts:
        assert count.exact, count.format()
