"""Statement instances of the pipeline: ring indices, loop-variable
substitution with folding, and the subtrees that instances share."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tilepipe.arith import Analyzer
from tilepipe.ir import (
    EQ, LT, Add, And, AsyncCommitQueue, AsyncScope, AsyncWaitQueue, AttrStmt, Block, Buffer,
    BufferLoad, BufferRegion, BufferStore, Call, Cast, Evaluate, FloorDiv, FloorMod, For,
    ForKind, IfThenElse, IntImm, IRMutator, Max, Min, Mul, Not, Range, Select, SeqStmt, Sub, Var,
    structural_equal, substitute,
)
from tilepipe.ir.printer import expr_to_str, stmt_to_str
from tilepipe.transform.pipeline.instances import InstanceBuilder


def _store():
    """``for e in serial(4): C[e] = S[i, e] + S[i + 1, e] + A[e]`` over ``i``, with S a ring
    of two versions, and the function giving its instances."""
    i, e = Var("i"), Var("e")
    shared = Buffer("S", (IntImm(2), IntImm(4)), scope="shared")
    ring = Buffer("S", (IntImm(2), IntImm(2), IntImm(4)), scope="shared")
    source = Buffer("A", (IntImm(4),))
    target = Buffer("C", (IntImm(4),))
    value = Add(Add(BufferLoad(shared, (i, e)), BufferLoad(shared, (Add(i, IntImm(1)), e))),
                BufferLoad(source, (e,)))
    loop = For(e, IntImm(0), IntImm(4), ForKind.SERIAL, BufferStore(target, value, (e,)))
    return loop, InstanceBuilder(i, {shared: (ring, 2)}).statement(loop)


def _value(stmt) -> str:
    return expr_to_str(stmt.body.value)


def test_ring_accesses_share_one_index_and_untouched_loads_are_kept():
    original, instance = _store()
    j = Var("j")
    ringed = instance(j)
    first, second = ringed.body.value.a.a, ringed.body.value.a.b
    assert first.indices[0] is second.indices[0]
    assert isinstance(first.indices[0], FloorMod) and first.indices[0].a is j
    assert ringed.body.value.b is original.body.value.b


def test_every_instance_replaces_the_variable_everywhere():
    _, instance = _store()
    j = Var("j")
    assert _value(instance(Add(j, IntImm(2)))) == (
        "S[(j + 2) % 2, j + 2, e] + S[(j + 2) % 2, j + 2 + 1, e] + A[e]")
    # A later instance replaces again, with no trace of the first one.
    assert _value(instance(IntImm(3))) == "S[1, 3, e] + S[1, 4, e] + A[e]"
    assert _value(instance(Add(j, IntImm(1)))) == (
        "S[(j + 1) % 2, j + 1, e] + S[(j + 1) % 2, j + 1 + 1, e] + A[e]")


def test_subtrees_without_the_variable_keep_their_identity():
    original, instance = _store()
    untouched = original.body.value.b
    for replacement in (IntImm(0), Add(Var("j"), IntImm(5)), IntImm(7)):
        stmt = instance(replacement)
        assert stmt.body.value.b is untouched
        assert stmt.body.indices is original.body.indices


def test_a_statement_without_the_variable_or_a_ring_is_its_own_instance():
    i, e = Var("i"), Var("e")
    target = Buffer("C", (IntImm(4),))
    stmt = For(e, IntImm(0), IntImm(4), ForKind.SERIAL, BufferStore(target, e, (e,)))
    instance = InstanceBuilder(i, {}).statement(stmt)
    assert instance(IntImm(3)) is stmt


def test_constant_replacements_fold_integer_arithmetic_only():
    i = Var("i")
    target = Buffer("C", (IntImm(64),))
    index = Add(IntImm(0), Add(Mul(i, IntImm(4)), FloorDiv(IntImm(7), Sub(i, IntImm(3)))))
    stmt = BufferStore(target, IntImm(1), (index,))
    instance = InstanceBuilder(i, {}).statement(stmt)
    assert expr_to_str(instance(IntImm(5)).indices[0]) == "23"
    # Division by zero stays as it is, and ``0 + x`` drops the zero.
    assert expr_to_str(instance(IntImm(3)).indices[0]) == "12 + T.int32(7) // 0"
    j = Var("j")
    assert expr_to_str(instance(j).indices[0]) == "j * 4 + 7 // (j - 3)"
    # Constants of different dtypes, and comparisons, are not folded.
    mixed = BufferStore(target, IntImm(1), (Add(IntImm(1, "int64"), i),
                                            And(IntImm(1, "bool"), EQ(i, IntImm(2)))))
    folded = InstanceBuilder(i, {}).statement(mixed)(IntImm(2))
    assert [expr_to_str(index) for index in folded.indices] == [
        "T.int64(1) + T.int32(2)", "True and T.int32(2) == 2"]


def test_regions_and_buffer_arguments_of_a_ring_get_the_index():
    i = Var("i")
    shared = Buffer("S", (IntImm(4),), scope="shared")
    ring = Buffer("S", (IntImm(3), IntImm(4)), scope="shared")
    call = Call("handle", "opaque", (shared, IntImm(1)))
    region = BufferRegion(shared, (Range(IntImm(0), IntImm(4)),))
    stmt = Block("copy", Evaluate(call), reads=(region,), writes=(region,))
    instance = InstanceBuilder(i, {shared: (ring, 3)}).statement(stmt)(IntImm(4))
    argument = instance.body.value.args[0]
    assert isinstance(argument, BufferRegion) and argument.buffer is ring
    assert [(r.min.value, r.extent.value) for r in argument.region] == [(1, 1), (0, 4)]
    assert instance.body.value.args[1] is call.args[1]
    assert instance.reads[0].buffer is ring
    assert [(r.min.value, r.extent.value) for r in instance.reads[0].region] == [(1, 1), (0, 4)]
    # The block's allocations and name stay; the instance is a new block.
    assert instance.name == "copy" and instance is not stmt


_I, _E, _J = Var("i"), Var("e"), Var("j")


@st.composite
def _integer_expressions(draw, depth: int = 3):
    """Integer expressions of ``i`` and ``e``; divisors are positive constants."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from([_I, _E, IntImm(0), IntImm(1), IntImm(-3), IntImm(5)]))
    kind = draw(st.sampled_from([Add, Sub, Mul, FloorDiv, FloorMod, Min, Max, Select]))
    a, b = draw(_integer_expressions(depth - 1)), draw(_integer_expressions(depth - 1))
    if kind in (FloorDiv, FloorMod):
        return kind(a, IntImm(draw(st.integers(1, 4))))
    if kind is Select:
        return Select(LT(a, b), a, b)
    return kind(a, b)


def _evaluated(expr, env) -> int:
    result = Analyzer().simplify(substitute(expr, env))
    assert isinstance(result, IntImm), expr_to_str(result)
    return result.value


@settings(max_examples=60, deadline=None)
@given(_integer_expressions(), st.integers(-4, 9), st.integers(-4, 9))
def test_instances_compute_what_the_statement_computes_at_that_iteration(expr, i, e):
    """Folding only rewrites what the replacement made constant: an instance for the
    iteration ``i`` (a constant or ``j + 1`` with ``j = i - 1``) has the original value."""
    instance = InstanceBuilder(_I, {}).statement(Evaluate(expr))
    expected = _evaluated(expr, {_I: IntImm(i), _E: IntImm(e)})
    assert _evaluated(instance(IntImm(i)).value, {_E: IntImm(e)}) == expected
    assert _evaluated(instance(Add(_J, IntImm(1))).value, {_J: IntImm(i - 1), _E: IntImm(e)}) \
        == expected


_RINGED = Buffer("S", (IntImm(4),), scope="shared")
_RING = Buffer("S", (IntImm(3), IntImm(4)), scope="shared")
_GLOBAL = Buffer("A", (IntImm(64),))


class _Reference(IRMutator):
    """The instance written the plain way: a mutator that puts in the ring index and
    replaces the loop variable (no constant replacement, hence no folding)."""

    def __init__(self, replacement):
        self.replacement = replacement

    def _index(self):
        return FloorMod(self.replacement, IntImm(3))

    def visit_var(self, node):
        return self.replacement if node is _I else node

    def visit_buffer_load(self, node):
        load = super().visit_buffer_load(node)
        if node.buffer is not _RINGED:
            return load
        return BufferLoad(_RING, (self._index(),) + load.indices)

    def visit_buffer_store(self, node):
        store = super().visit_buffer_store(node)
        if node.buffer is not _RINGED:
            return store
        return BufferStore(_RING, store.value, (self._index(),) + store.indices)

    def visit_buffer_region(self, node):
        region = super().visit_buffer_region(node)
        if node.buffer is not _RINGED:
            return region
        return BufferRegion(_RING, (Range(self._index(), IntImm(1)),) + region.region)

    def visit_call(self, node):
        return Call(node.dtype, node.op, tuple(
            self.visit(BufferRegion(_RINGED, (Range(IntImm(0), IntImm(4)),)))
            if arg is _RINGED else self.visit(arg) for arg in node.args))


@st.composite
def _nonzero_expressions(draw, depth: int = 2):
    """Expressions of ``i`` and ``e`` with loads; no zero constant, so that a symbolic
    replacement leaves nothing to fold."""
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from([_I, _E, IntImm(1), IntImm(3)]))
    choice = draw(st.integers(0, 5))
    a, b = draw(_nonzero_expressions(depth - 1)), draw(_nonzero_expressions(depth - 1))
    if choice == 0:
        return BufferLoad(draw(st.sampled_from([_RINGED, _GLOBAL])), (a,))
    if choice == 1:
        return Select(LT(a, b), a, b)
    if choice == 2:
        return Cast("int64", a)
    return draw(st.sampled_from([Add, Sub, Mul, Min]))(a, b)


@st.composite
def _statements(draw, depth: int = 2):
    """Statements of every kind an instance rebuilds."""
    expr = _nonzero_expressions()
    choice = draw(st.integers(0, 8)) if depth else 0
    if choice == 0:
        return BufferStore(draw(st.sampled_from([_RINGED, _GLOBAL])), draw(expr), (draw(expr),))
    body = draw(_statements(depth - 1))
    if choice == 1:
        return SeqStmt((body, draw(_statements(depth - 1))))
    if choice == 2:
        return For(_E, IntImm(1), draw(expr), ForKind.SERIAL, body)
    if choice == 3:
        region = BufferRegion(draw(st.sampled_from([_RINGED, _GLOBAL])),
                              (Range(draw(expr), IntImm(1)),))
        return Block("b", body, (region,), (region,),
                     predicate=draw(st.sampled_from([None, LT(draw(expr), IntImm(3))])))
    if choice == 4:
        return IfThenElse(LT(draw(expr), IntImm(3)), body, draw(_statements(depth - 1)))
    if choice == 5:
        return AsyncWaitQueue(0, draw(expr), body)
    if choice == 6:
        return AttrStmt(_E, "pragma", draw(expr), AsyncScope(body))
    if choice == 7:
        return SeqStmt((Evaluate(Call("int32", "touch", (_RINGED, _GLOBAL, draw(expr)))),
                        body))
    return AsyncCommitQueue(0, Evaluate(Not(LT(draw(expr), IntImm(1)))))


@settings(max_examples=60, deadline=None)
@given(_statements())
def test_instances_equal_the_plain_ring_index_and_substitution(stmt):
    instance = InstanceBuilder(_I, {_RINGED: (_RING, 3)}).statement(stmt)
    for replacement in (_J, Add(_J, IntImm(2))):
        expected = _Reference(replacement).visit(stmt)
        assert stmt_to_str(instance(replacement)) == stmt_to_str(expected)
        assert structural_equal(instance(replacement), expected)
