"""The barrier lowering and warp specialization over the shared generated pipelines
(tests/pipeline_programs.py), their shared buffers allocated before the loop: each
program either lowers and then computes what the original computes under every
schedule, race-free, or is rejected with a PipelineError naming what the barrier form
does not support (a statement that is not a tile copy in an asynchronous stage, an
asynchronous statement before the loop, a loop inside another loop, no asynchronous
stage, synchronous data shared across threads)."""

import sys
from pathlib import Path

import numpy as np
import pytest
from hopper_programs import FORMS
from hypothesis import HealthCheck, given, settings

from tilepipe import parse
from tilepipe.errors import PipelineError
from tilepipe.sim import random_inputs, simulate, verify

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline_programs import build_program, programs  # noqa: E402

SCHEDULES = ("eager", "lazy", "random:4")
KNOWN_LIMITS = ("cannot become a TMA copy", "outside other loops", "no asynchronous stage",
                "asynchronous statement outside the pipelined loop",
                "not synchronous statements across threads")


def rings_outside(source: str) -> str:
    """The program with the buffers of the loop body allocated in a block around the
    loop (the barrier lowering rings buffers allocated outside the loop)."""
    lines = source.split("\n")
    out = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if "for i in T.serial(" not in line:
            out.append(line)
            index += 1
            continue
        indent = line[:len(line) - len(line.lstrip())]
        assert 'with T.block("body"):' in lines[index + 1]
        index += 2
        allocations = []
        while "T.alloc_buffer" in lines[index]:
            allocations.append(f"{indent}    {lines[index].strip()}")
            index += 1
        out += [f'{indent}with T.block("ring"):', *allocations, f"    {line}"]
    return "\n".join(out)


def check_form(program, form: str) -> bool:
    """False when the form rejects the program for a known reason; else checks it."""
    func = parse(rings_outside(program.source))
    try:
        lowered = FORMS[form](func)
    except PipelineError as error:
        assert any(limit in str(error) for limit in KNOWN_LIMITS), str(error)
        return False
    inputs = random_inputs(func, seed=1, dims=program.dims)
    expected = simulate(func, inputs, dims=program.dims)
    for schedule in SCHEDULES:
        outputs = simulate(lowered, inputs, dims=program.dims, schedule=schedule)
        for name, array in expected.items():
            np.testing.assert_array_equal(outputs[name], array, err_msg=program.describe())
    assert verify(lowered, dims=program.dims).ok, program.describe()
    return True


@pytest.mark.parametrize("form", sorted(FORMS))
@settings(max_examples=25, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(program=programs().filter(lambda program: program.async_stages))
def test_generated_pipeline_lowers_correctly_or_is_rejected_clearly(form, program):
    check_form(program, form)


# Programs the generator draws that both barrier forms accept: one copy in an asynchronous
# stage ahead of its consumer; two copies, one of them transformed in shared memory (the
# other asynchronous); a symbolic extent from a nonzero start.
ACCEPTED = [
    build_program(threads=2, num_inputs=1, computes=(False,), shift=0, outer=False, start=0,
                  extent=6, symbolic=False, prelude=False, stages=(0, 1), orders=(0, 1),
                  async_stages=(0,)),
    build_program(threads=2, num_inputs=2, computes=(True, False), shift=0, outer=False,
                  start=0, extent=6, symbolic=False, prelude=False, stages=(3, 3, 0, 3),
                  orders=(1, 2, 0, 3), async_stages=(0,)),
    build_program(threads=4, num_inputs=1, computes=(False,), shift=0, outer=False, start=1,
                  extent=5, symbolic=True, prelude=False, stages=(0, 2), orders=(1, 0),
                  async_stages=(0,)),
]


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("program", ACCEPTED, ids=["one-copy", "two-copies", "symbolic"])
def test_some_generated_pipelines_lower(form, program):
    """The barrier forms accept generated programs, so the property test above checks
    lowered programs and not only rejections. (A search among drawn programs would not be
    deterministic: Hypothesis mixes in constants of whatever modules the process loaded.)"""
    assert check_form(program, form)
