"""The seeds' TVMScript programs parse, print and read back to equal functions."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tilepipe.ir import (
    AsyncCommitQueue, AsyncScope, AsyncWaitQueue, Block, BufferStore, For, ForKind, IntImm,
    Select, Sub, Var, assert_structural_equal,
)
from tilepipe.script import load_file, parse

SEED_DIR = Path(__file__).parent / "seed_programs"
SEED_FILES = sorted(path for path in SEED_DIR.glob("*.py") if path.name != "gen_simple_compute.py")


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _only(path: str):
    (func,) = load_file(SEED_DIR / path)
    return func


def _round_trip(func) -> None:
    text = func.script()
    again = parse(text)
    assert_structural_equal(func, again)
    assert again.script() == text


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda path: path.stem)
def test_seed_file_round_trips(path: Path):
    funcs = load_file(path)
    assert len(funcs) == 1
    _round_trip(funcs[0])


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda path: path.stem)
def test_decorator_reads_the_same_function_as_load_file(path: Path):
    module = _import(path)
    (func,) = load_file(path)
    assert_structural_equal(getattr(module, func.name), func)


@pytest.mark.parametrize("num_stages", [1, 3])
def test_generator_closure_constant(num_stages: int):
    func = _import(SEED_DIR / "gen_simple_compute.py").gen_simple_compute(num_stages)
    loop = func.body.body
    assert isinstance(loop, For) and loop.kind is ForKind.SERIAL
    assert loop.annotations["software_pipeline_stage"] == (0, num_stages)
    assert loop.annotations["software_pipeline_order"] == (0, 1)
    _round_trip(func)


def test_generator_spans_name_the_file_lines():
    path = SEED_DIR / "gen_simple_compute.py"
    func = _import(path).gen_simple_compute(1)
    lines = path.read_text().splitlines()
    loop = func.body.body
    assert loop.span.source_name == str(path)
    assert lines[loop.span.line - 1].strip().startswith("for i in T.serial(")
    assert loop.span.text == lines[loop.span.line - 1]
    assert loop.span.text[loop.span.column - 1:].startswith("for i")


def test_statement_form_attr_equals_with_form():
    func = _only("simple_compute_async_3_ref.py")
    prologue = func.body.body.body.stmts[0]
    inner = prologue.body.body
    assert isinstance(inner, Block) and inner.predicate is not None
    commit = inner.body
    assert isinstance(commit, AsyncCommitQueue) and commit.queue == 0
    assert isinstance(commit.body, AsyncScope)
    assert isinstance(commit.body.body, BufferStore)


def test_wait_counts_of_the_seed_refs():
    func = _only("simple_compute_async_3_ref.py")
    body_loop = func.body.body.body.stmts[1].body
    epilogue_loop = func.body.body.body.stmts[2].body
    steady_wait = body_loop.body.stmts[1].body
    assert isinstance(steady_wait, AsyncWaitQueue)
    assert (steady_wait.queue, steady_wait.in_flight.value) == (0, 3)
    drain = epilogue_loop.body.body
    assert isinstance(drain, AsyncWaitQueue)
    assert isinstance(drain.in_flight, Sub)
    assert drain.in_flight.a.value == 2 and drain.in_flight.b is epilogue_loop.loop_var
    assert epilogue_loop.kind is ForKind.UNROLLED


def test_if_then_else_count_with_dtype_keyword():
    func = _only("three_stage_compute_two_stage_async_ref.py")
    last_loop = func.body.body.body.stmts[2].body
    wait = last_loop.body.stmts[1].body
    assert isinstance(wait, AsyncWaitQueue) and wait.queue == 1
    count = wait.in_flight
    assert isinstance(count, Select)
    assert count.true_value.dtype == count.false_value.dtype == "int32"


def test_constant_index_arithmetic_folds():
    func = _only("simple_compute_async_1_ref.py")
    prologue = func.body.body.body.stmts[0]
    store = prologue.body.body.body
    assert isinstance(store, BufferStore)
    first = store.indices[0]
    assert isinstance(first, IntImm) and first.value == 0


def test_loop_variables_are_distinct_per_loop():
    func = _only("simple_compute_async_3_ref.py")
    loops = [stmt.body for stmt in func.body.body.body.stmts]
    loop_vars = [loop.loop_var for loop in loops]
    assert all(isinstance(var, Var) and var.name == "i" for var in loop_vars)
    assert len({id(var) for var in loop_vars}) == 3
