"""Statement instances of the pipeline emission: ring indices and loop-variable
substitution, including subtrees shared by several accesses."""

from tilepipe.ir import (
    Add, Buffer, BufferLoad, BufferStore, FloorMod, For, ForKind, IntImm, Var,
)
from tilepipe.ir.printer import expr_to_str
from tilepipe.transform.pipeline.emit import RingIndex, _LoopVarSubstituter


def _store():
    """``for e in serial(4): C[e] = S[i, e] + S[i + 1, e] + A[e]`` over ``i``, with S a ring
    of two versions."""
    i, e = Var("i"), Var("e")
    shared = Buffer("S", (IntImm(2), IntImm(4)), scope="shared")
    ring = Buffer("S", (IntImm(2), IntImm(2), IntImm(4)), scope="shared")
    source = Buffer("A", (IntImm(4),))
    target = Buffer("C", (IntImm(4),))
    value = Add(Add(BufferLoad(shared, (i, e)), BufferLoad(shared, (Add(i, IntImm(1)), e))),
                BufferLoad(source, (e,)))
    loop = For(e, IntImm(0), IntImm(4), ForKind.SERIAL, BufferStore(target, value, (e,)))
    return i, loop, RingIndex(i, {shared: (ring, 2)}).visit(loop)


def _value(stmt) -> str:
    return expr_to_str(stmt.body.value)


def test_ring_accesses_share_one_index_and_untouched_loads_are_kept():
    i, original, ringed = _store()
    first, second = ringed.body.value.a.a, ringed.body.value.a.b
    assert first.indices[0] is second.indices[0]
    assert isinstance(first.indices[0], FloorMod) and first.indices[0].a is i
    assert ringed.body.value.b is original.body.value.b


def test_shared_index_replaced_everywhere_in_every_application():
    i, _, ringed = _store()
    substituter = _LoopVarSubstituter(ringed, i)
    j = Var("j")
    assert _value(substituter.apply(Add(j, IntImm(2)))) == (
        "S[(j + 2) % 2, j + 2, e] + S[(j + 2) % 2, j + 2 + 1, e] + A[e]")
    # A later application replaces again, with no trace of the first one.
    assert _value(substituter.apply(IntImm(3))) == "S[1, 3, e] + S[1, 4, e] + A[e]"
    assert _value(substituter.apply(Add(j, IntImm(1)))) == (
        "S[(j + 1) % 2, j + 1, e] + S[(j + 1) % 2, j + 1 + 1, e] + A[e]")


def test_subtrees_without_the_variable_keep_their_identity():
    i, _, ringed = _store()
    substituter = _LoopVarSubstituter(ringed, i)
    untouched = ringed.body.value.b
    for replacement in (IntImm(0), Add(Var("j"), IntImm(5)), IntImm(7)):
        instance = substituter.apply(replacement)
        assert instance.body.value.b is untouched
        assert instance.body.indices == ringed.body.indices
