"""``@T.prim_func`` in Python code: source read (never run), constants from globals and
closures, spans in the defining file."""

from __future__ import annotations

import pytest

from tilepipe import script as T
from tilepipe.errors import ParseError
from tilepipe.ir import For, PrimFunc, assert_structural_equal
from tilepipe.script import parse

TILE = 8
NOT_A_CONSTANT = object()


@T.prim_func
def scaled(A: T.Buffer((TILE, 4), "float32"), n: T.int32) -> None:
    for i in T.serial(TILE // 2):
        A[i, 0] = A[i, 1] * T.float32(n)


def make(stages: int, name_of_thread: str):
    @T.prim_func
    def kernel(A: T.Buffer[(16,), "float32"]):
        for tx in T.thread_binding(16, thread=name_of_thread):
            for i in T.serial(4, annotations={"software_pipeline_stage": [0, stages]}):
                A[tx] = A[tx] + T.float32(i)

    return kernel


def test_globals_are_constants_and_the_body_never_runs():
    assert isinstance(scaled, PrimFunc)
    assert [extent.value for extent in scaled.params[0].shape] == [8, 4]
    assert scaled.body.extent.value == 4
    assert_structural_equal(parse(scaled.script()), scaled)


def test_closure_values_are_constants():
    for stages in (1, 3):
        kernel = make(stages, "threadIdx.y")
        loop = kernel.body
        assert loop.thread_tag == "threadIdx.y"
        assert isinstance(loop.body, For)
        assert loop.body.annotations == {"software_pipeline_stage": (0, stages)}


def test_spans_point_into_this_file():
    store = scaled.body.body
    assert store.span.source_name == __file__
    assert store.span.text.strip() == "A[i, 0] = A[i, 1] * T.float32(n)"
    assert store.span.text[store.span.column - 1:].startswith("A[i, 0]")


def test_non_constant_globals_are_refused():
    with pytest.raises(ParseError, match="'NOT_A_CONSTANT' is not a constant"):
        @T.prim_func
        def uses_object(A: T.Buffer((4,), "float32")):
            A[0] = NOT_A_CONSTANT


def test_functions_without_source_are_refused():
    with pytest.raises(ParseError, match="cannot read the source"):
        T.prim_func(len)
    with pytest.raises(ParseError, match="defined with 'def'"):
        T.prim_func(lambda: 0)
