"""Structural equality and hashing: equal up to renaming, sensitive to everything else."""

from __future__ import annotations

import pytest

from tilepipe.errors import Span
from tilepipe.ir import (
    Block, Buffer, BufferLoad, BufferRegion, BufferStore, FloatImm, For, ForKind, IntImm,
    PrimFunc, Range, Var, assert_structural_equal, structural_equal, structural_hash,
)


def _copy_kernel(loop_name="i", buffer_names=("A", "B"), dtype="float32", scope="global",
                 annotations=None, reads_extent=16, span=None):
    """``for i: B[i] = A[i] * 2`` inside a block that declares its regions."""
    a = Buffer(buffer_names[0], (IntImm(16),), dtype)
    b = Buffer(buffer_names[1], (IntImm(16),), dtype, scope)
    i = Var(loop_name, span=span)
    store = BufferStore(b, BufferLoad(a, (i,)) * FloatImm(2.0, dtype), (i,), span)
    block = Block("copy", store, (BufferRegion(a, (Range(IntImm(0), IntImm(reads_extent)),)),),
                  (BufferRegion.full(b),))
    loop = For(i, IntImm(0), IntImm(16), ForKind.SERIAL, block,
               annotations=annotations or {"software_pipeline_stage": (0, 1), "note": "x"})
    return PrimFunc("copy", (a, b), loop)


def test_equal_up_to_renaming_and_spans():
    left = _copy_kernel()
    right = _copy_kernel("k", ("X", "Y"), span=Span("f.py", 3, 1, "text"))
    assert structural_equal(left, right)
    assert structural_hash(left) == structural_hash(right)
    assert_structural_equal(left, right)


def test_annotation_order_does_not_matter():
    left = _copy_kernel(annotations={"a": 1, "b": (2, 3)})
    right = _copy_kernel(annotations={"b": (2, 3), "a": 1})
    assert structural_equal(left, right)
    assert structural_hash(left) == structural_hash(right)


@pytest.mark.parametrize("change", [
    {"dtype": "float16"}, {"scope": "shared"}, {"annotations": {"a": 2}},
    {"reads_extent": 8},
])
def test_differences_are_detected(change):
    base = {"annotations": {"a": 1}}
    left = _copy_kernel(**base)
    right = _copy_kernel(**{**base, **change})
    assert not structural_equal(left, right)
    with pytest.raises(AssertionError, match="structural mismatch at func"):
        assert_structural_equal(left, right)


def test_regions_can_be_ignored():
    left, right = _copy_kernel(), _copy_kernel(reads_extent=8)
    assert not structural_equal(left, right)
    assert structural_equal(left, right, compare_regions=False)


def test_variables_must_correspond_one_to_one():
    i, j = Var("i"), Var("j")
    assert structural_equal(i + i, j + j)
    assert not structural_equal(i + i, i + j)
    assert not structural_equal(i + j, j + j)
    assert structural_hash(i + i) != structural_hash(i + j)


def test_immediate_dtype_and_value_matter():
    assert not structural_equal(IntImm(1), IntImm(1, "int64"))
    assert not structural_equal(IntImm(1), IntImm(2))
    assert not structural_equal(FloatImm(1.0), FloatImm(1.0, "float16"))
    assert structural_equal(IntImm(3), IntImm(3))


def test_mismatch_message_names_the_path():
    left = _copy_kernel()
    right = _copy_kernel(dtype="float16")
    with pytest.raises(AssertionError) as caught:
        assert_structural_equal(left, right)
    message = str(caught.value)
    assert "func.params[0].dtype" in message
    assert "--- left" in message and "--- right" in message
