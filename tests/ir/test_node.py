"""Node classes: immutable, slotted, identity-compared dataclasses whose fast ``__init__``
takes exactly the arguments of the dataclass's own."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle

import pytest

from tilepipe import ir
from tilepipe.errors import Span
from tilepipe.ir import (
    Add, Block, Buffer, BufferLoad, BufferRegion, BufferStore, For, ForKind, IntImm, LT, Node,
    PrimFunc, Range, Var, structural_equal,
)
from tilepipe.ir.node import node

NODE_CLASSES = sorted((value for value in vars(ir).values()
                       if isinstance(value, type) and issubclass(value, Node)),
                      key=lambda cls: cls.__name__)


def _kernel() -> PrimFunc:
    a = Buffer("A", (IntImm(16),))
    b = Buffer("B", (IntImm(16),), scope="shared")
    i = Var("i")
    store = BufferStore(b, BufferLoad(a, (i,)) + 1.0, (i,))
    block = Block("copy", store, (BufferRegion(a, (Range(IntImm(0), IntImm(16)),)),),
                  (BufferRegion.full(b),))
    loop = For(i, IntImm(0), IntImm(16), ForKind.SERIAL, block,
               annotations={"software_pipeline_stage": (0, 1)})
    return PrimFunc("copy", (a, b), loop)


@pytest.mark.parametrize("cls", NODE_CLASSES, ids=lambda cls: cls.__name__)
def test_every_node_class_is_slotted(cls):
    """No instance carries a ``__dict__``: a field-less subclass without ``__slots__ = ()``
    would get one (and with it attributes that can be set)."""
    assert cls.__dictoffset__ == 0


@pytest.mark.parametrize("cls", [cls for cls in NODE_CLASSES if dataclasses.is_dataclass(cls)],
                         ids=lambda cls: cls.__name__)
def test_init_signature_is_the_dataclass_one(cls):
    parameters = list(inspect.signature(cls).parameters.values())
    assert [parameter.name for parameter in parameters] == \
        [field.name for field in dataclasses.fields(cls)]
    for parameter, field in zip(parameters, dataclasses.fields(cls)):
        assert parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        if field.default is not dataclasses.MISSING:
            assert parameter.default is field.default
        elif field.default_factory is not dataclasses.MISSING:
            assert repr(parameter.default) == "<factory>"
        else:
            assert parameter.default is inspect.Parameter.empty


def test_positional_keyword_and_default_arguments():
    i = Var("i")
    body = BufferStore(Buffer("A", (IntImm(4),)), IntImm(0), (i,))
    positional = For(i, IntImm(0), IntImm(4), ForKind.UNROLLED, body, "threadIdx.x", {"k": 1})
    keyword = For(body=body, kind=ForKind.UNROLLED, extent=IntImm(4), min=IntImm(0),
                  loop_var=i, annotations={"k": 1}, thread_tag="threadIdx.x")
    for loop in (positional, keyword):
        assert (loop.loop_var, loop.body, loop.kind, loop.thread_tag, loop.span) == \
            (i, body, ForKind.UNROLLED, "threadIdx.x", None)
        assert loop.annotations == {"k": 1}
    assert structural_equal(positional, keyword)
    assert (i.dtype, i.span, IntImm(3).dtype, Buffer("B", ()).scope) == \
        ("int32", None, "int32", "global")
    with pytest.raises(TypeError):
        Var()
    with pytest.raises(TypeError):
        Var("x", "int32", None, "extra")
    with pytest.raises(TypeError):
        Var("x", color="red")


def test_default_factory_gives_each_node_its_own_annotations():
    i = Var("i")
    body = BufferStore(Buffer("A", (IntImm(4),)), IntImm(0), (i,))
    first = For(i, IntImm(0), IntImm(4), ForKind.SERIAL, body)
    second = For(i, IntImm(0), IntImm(4), ForKind.SERIAL, body)
    assert first.annotations == {} and second.annotations == {}
    assert first.annotations is not second.annotations
    shared = {"k": 1}
    assert For(i, IntImm(0), IntImm(4), ForKind.SERIAL, body, annotations=shared).annotations \
        is shared
    assert Block("b", body).annotations is not Block("b", body).annotations


@pytest.mark.parametrize("name", ["a", "span", "dtype", "something_else"])
def test_nodes_are_immutable(name):
    expr = Add(Var("i"), IntImm(1))
    with pytest.raises(dataclasses.FrozenInstanceError, match=f"Add.{name}"):
        setattr(expr, name, IntImm(2))
    with pytest.raises(AttributeError):
        delattr(expr, name)
    assert isinstance(expr.b, IntImm) and expr.b.value == 1


def test_every_kind_of_node_refuses_assignment():
    func = _kernel()
    loop = func.body
    for target, name in ((func, "body"), (loop, "annotations"), (loop.body, "reads"),
                         (func.params[0], "shape"), (loop.body.reads[0].region[0], "extent"),
                         (loop.loop_var, "name"), (LT(loop.loop_var, 4), "b")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(target, name, None)


def test_identity_equality_and_hash():
    left, right = Var("i"), Var("i")
    assert left == left and left != right
    assert len({left, right, left}) == 2
    assert {left: 1}.get(right) is None
    assert structural_equal(left, right)


def test_fields_replace_copy_deepcopy_and_pickle():
    func = _kernel()
    assert [field.name for field in dataclasses.fields(func)] == \
        ["name", "params", "body", "attrs", "span"]
    renamed = dataclasses.replace(func, name="renamed")
    assert renamed.name == "renamed" and renamed.body is func.body
    expr = LT(Var("i"), 4)
    shallow = copy.copy(expr)
    assert shallow is not expr and shallow.a is expr.a and shallow.b is expr.b
    assert type(shallow) is LT
    restored = pickle.loads(pickle.dumps(func))
    assert restored is not func and structural_equal(restored, func)
    assert restored.script() == func.script()
    deep = copy.deepcopy(func)
    assert deep.body is not func.body and structural_equal(deep, func)
    # Shared nodes stay shared: the loop variable is one object in the copy as well.
    assert deep.body.loop_var is deep.body.body.body.indices[0]


def test_spans_are_kept():
    span = Span("kernel.py", 7, 3, "B[i] = A[i]")
    assert Var("i", span=span).span is span
    assert Add(Var("i"), IntImm(1), span).span is span


def test_node_decorator_refuses_keyword_only_and_non_init_fields():
    with pytest.raises(TypeError, match="positional"):
        @node
        class KeywordOnly(Node):
            value: int = dataclasses.field(kw_only=True)
    with pytest.raises(TypeError, match="positional"):
        @node
        class NotInInit(Node):
            value: int = dataclasses.field(default=0, init=False)
