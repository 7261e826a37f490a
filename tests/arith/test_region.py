"""Region inference over nested loops and blocks, relax_region and detect_affine."""

from hypothesis import given, settings
from hypothesis import strategies as st

from expression_evaluation import evaluate
from tilepipe.arith import Analyzer, detect_affine, infer_regions, relax_region
from tilepipe.ir import (
    Block, Buffer, BufferLoad, BufferRegion, BufferStore, Call, Evaluate, For, ForKind,
    IntImm, Min, Range, Var, assert_structural_equal, convert, seq,
)

tx = Var("tx")
i = Var("i")
j = Var("j")
k = Var("k")
n = Var("n")


def const(value):
    return IntImm(value)


def buffer(name, *shape, scope="global"):
    return Buffer(name, tuple(convert(extent) for extent in shape), "float32", scope)


def region(target, *ranges):
    """A region from (min, extent) pairs."""
    return BufferRegion(target, tuple(Range(convert(low), convert(extent))
                                      for low, extent in ranges))


def loop(var, extent, body, low=0, kind=ForKind.SERIAL):
    return For(var, convert(low), convert(extent), kind, body)


def assert_regions(actual, expected):
    assert [item.buffer for item in actual] == [item.buffer for item in expected]
    for got, want in zip(actual, expected):
        assert_structural_equal(got, want)


A = buffer("A", 16, 16)
B = buffer("B", 4, 16, 1, scope="shared")
C = buffer("C", 16, 16)


def shifted_stage_body():
    """The steady state of a 4-stage pipeline: B[(i+3)%4] = A[i+3]; C[i] = B[i%4]."""
    return seq(
        BufferStore(B, BufferLoad(A, (tx, i + 3)), ((i + 3) % 4, tx, const(0))),
        BufferStore(C, BufferLoad(B, ((i - 3 + 3) % 4, tx, const(0))), (tx, i - 3 + 3)),
    )


def test_loop_relaxes_its_variable():
    reads, writes = infer_regions(loop(i, 13, shifted_stage_body()))
    assert_regions(reads, [region(A, (tx, 1), (3, 13)), region(B, (0, 4), (tx, 1), (0, 1))])
    assert_regions(writes, [region(B, (0, 4), (tx, 1), (0, 1)), region(C, (tx, 1), (0, 13))])


def test_outer_variables_stay_symbolic():
    reads, writes = infer_regions(shifted_stage_body())
    assert_regions(reads, [region(A, (tx, 1), (i + 3, 1)),
                           region(B, (i % 4, 1), (tx, 1), (0, 1))])
    assert_regions(writes, [region(B, ((i + 3) % 4, 1), (tx, 1), (0, 1)),
                            region(C, (tx, 1), (i, 1))])


def test_floormod_inside_one_window_stays_tight():
    body = loop(i, 3, BufferStore(B, BufferLoad(A, (tx, i)), (i % 4, tx, const(0))),
                kind=ForKind.UNROLLED)
    reads, writes = infer_regions(body)
    assert_regions(reads, [region(A, (tx, 1), (0, 3))])
    assert_regions(writes, [region(B, (0, 3), (tx, 1), (0, 1))])


def test_nested_tile_loops():
    tile = loop(i, 4, loop(j, 8, BufferStore(
        C, BufferLoad(A, (k * 4 + i, j + n * 8)), (k * 4 + i, j + n * 8))))
    reads, writes = infer_regions(tile)
    assert_regions(reads, [region(A, (k * 4, 4), (n * 8, 8))])
    assert_regions(writes, [region(C, (k * 4, 4), (n * 8, 8))])


def test_triangular_loops():
    nest = loop(i, 8, For(j, i, 8 - i, ForKind.SERIAL,
                          BufferStore(C, BufferLoad(A, (i, j * 2)), (i + j, j // 2))))
    reads, writes = infer_regions(nest)
    assert_regions(reads, [region(A, (0, 8), (0, 15))])
    assert_regions(writes, [region(C, (0, 15), (0, 4))])


def test_symbolic_loop_extent():
    vector = Buffer("V", (n,), "float32")
    out = Buffer("W", (n,), "float32")
    reads, writes = infer_regions(loop(i, n - 1, BufferStore(out, BufferLoad(vector, (i + 1,)),
                                                             (i,))))
    assert_regions(reads, [region(vector, (1, n - 1))])
    assert_regions(writes, [region(out, (0, n - 1))])


def test_outer_ranges_from_an_analyzer_merge_accesses():
    analyzer = Analyzer()
    analyzer.bind(k, (0, 4))
    accesses = loop(i, 2, seq(
        BufferStore(C, BufferLoad(A, (tx, Min(k, const(8)))), (tx, i)),
        BufferStore(C, BufferLoad(A, (tx, k + 1)), (tx, i + 2))))
    reads, writes = infer_regions(accesses, analyzer=analyzer)
    assert_regions(reads, [region(A, (tx, 1), (k, 2))])
    assert_regions(writes, [region(C, (tx, 1), (0, 4))])
    assert analyzer.const_int_bound(i) == (None, None)  # the analyzer was not changed


def test_read_and_written_buffer_appears_in_both_in_order_of_first_access():
    update = loop(i, 16, BufferStore(
        C, BufferLoad(C, (tx, i)) + BufferLoad(A, (i, tx)) * BufferLoad(B, (const(0), i, const(0))),
        (tx, i)))
    reads, writes = infer_regions(update)
    assert_regions(reads, [region(C, (tx, 1), (0, 16)), region(A, (0, 16), (tx, 1)),
                           region(B, (0, 1), (0, 16), (0, 1))])
    assert_regions(writes, [region(C, (tx, 1), (0, 16))])


def test_inner_blocks_use_their_declared_regions_and_hide_their_allocations():
    local = buffer("L", 2)
    inner = Block("copy", BufferStore(local, BufferLoad(A, (i, const(0))), (const(0),)),
                  reads=(region(A, (i, 1), (0, 16)),), writes=(region(C, (i, 1), (0, 16)),),
                  alloc_buffers=(local,))
    undeclared = Block("undeclared", BufferStore(local, BufferLoad(C, (i, const(3))),
                                                 (const(1),)))
    reads, writes = infer_regions(loop(i, 4, seq(inner, undeclared)))
    assert_regions(reads, [region(A, (0, 4), (0, 16)), region(C, (0, 4), (3, 1))])
    assert_regions(writes, [region(C, (0, 4), (0, 16))])


def test_allocated_buffers_are_excluded():
    body = loop(i, 4, BufferStore(B, BufferLoad(A, (i, tx)), (i, tx, const(0))))
    reads, writes = infer_regions(body, alloc_buffers=(B,))
    assert_regions(reads, [region(A, (0, 4), (tx, 1))])
    assert writes == ()


def test_block_predicate_and_call_regions_are_reads():
    mask = Buffer("M", (const(16),), "int32")
    call = Evaluate(Call("handle", "mma_sync", (region(A, (i * 4, 4), (0, 16)), IntImm(0))))
    block = Block("guarded", call, predicate=BufferLoad(mask, (i,)) > 0)
    reads, writes = infer_regions(loop(i, 4, block))
    assert_regions(reads, [region(mask, (0, 4)), region(A, (0, 16), (0, 16))])
    assert writes == ()


def test_unanalyzable_index_covers_the_dimension():
    index = Buffer("I", (const(8),), "int32")
    body = loop(i, 8, BufferStore(C, BufferLoad(A, (BufferLoad(index, (i,)), i * i)), (tx, i)))
    reads, writes = infer_regions(body)
    assert_regions(reads, [region(index, (0, 8)), region(A, (0, 16), (0, 16))])
    assert_regions(writes, [region(C, (tx, 1), (0, 8))])


def test_relax_region():
    relaxed = relax_region(region(B, ((i + 1) % 4, 1), (tx, 1), (0, 1)),
                           {i: Range(const(0), const(2))})
    assert_structural_equal(relaxed, region(B, (1, 2), (tx, 1), (0, 1)))
    whole = relax_region(region(A, (i * j, 1), (0, 16)), {i: Range(const(0), const(2))})
    assert_structural_equal(whole, region(A, (0, 16), (0, 16)))


def test_detect_affine():
    coefficients, constant = detect_affine(i * 4 + tx * 2 + j - i + 3, [i, j])
    assert coefficients == (3, 1)
    assert_structural_equal(constant, tx * 2 + 3)
    assert detect_affine(i * j, [i, j]) is None
    assert detect_affine(i // 2 + j, [i, j]) is None
    coefficients, constant = detect_affine(tx // 2 + j * 8, [i, j])
    assert coefficients == (0, 8)
    assert_structural_equal(constant, tx // 2)


INDEX_TERMS = st.tuples(st.integers(-3, 3), st.integers(-3, 3), st.integers(-3, 3),
                        st.integers(-4, 4), st.sampled_from([None, 2, 3, 4]),
                        st.sampled_from(["floordiv", "floormod"]))


def _index(terms):
    outer_coefficient, inner_coefficient, symbolic_coefficient, constant, divisor, kind = terms
    expr = i * outer_coefficient + j * inner_coefficient + k * symbolic_coefficient + constant
    if divisor is None:
        return expr
    return expr // divisor if kind == "floordiv" else expr % divisor


@settings(max_examples=60, deadline=None)
@given(INDEX_TERMS, INDEX_TERMS, st.integers(1, 4), st.integers(0, 3), st.integers(1, 3))
def test_every_access_lies_inside_the_inferred_region(first, second, outer, shift, inner):
    """for i in [0, outer): for j in [i + shift, i + shift + inner): read A2[f(i, j, k), ...]"""
    table = Buffer("A2", (const(64), const(64)), "float32")
    out = Buffer("O", (const(1),), "float32")
    indices = (_index(first), _index(second))
    nest = loop(i, outer, For(j, i + shift, convert(inner), ForKind.SERIAL,
                              BufferStore(out, BufferLoad(table, indices), (const(0),))))
    (read,), _ = infer_regions(nest)
    for k_value in range(-2, 3):
        for i_value in range(outer):
            for j_value in range(i_value + shift, i_value + shift + inner):
                env = {i: i_value, j: j_value, k: k_value}
                for index, range_ in zip(indices, read.region):
                    low = evaluate(range_.min, {k: k_value})
                    extent = evaluate(range_.extent, {k: k_value})
                    assert low <= evaluate(index, env) < low + extent


def test_synchronization_scopes_and_branches_are_transparent():
    from tilepipe.ir import AsyncCommitQueue, AsyncScope, AsyncWaitQueue, IfThenElse

    copy = AsyncCommitQueue(0, AsyncScope(BufferStore(B, BufferLoad(A, (tx, i)),
                                                      (i % 4, tx, const(0)))))
    use = AsyncWaitQueue(0, const(1), IfThenElse(
        i > 0, BufferStore(C, BufferLoad(B, ((i - 1) % 4, tx, const(0))), (tx, i - 1)),
        Evaluate(Call("handle", "opaque", (BufferLoad(C, (tx, const(15))),)))))
    reads, writes = infer_regions(loop(i, 4, seq(copy, use)))
    assert_regions(reads, [region(A, (tx, 1), (0, 4)), region(B, (0, 4), (tx, 1), (0, 1)),
                           region(C, (tx, 1), (15, 1))])
    assert_regions(writes, [region(B, (0, 4), (tx, 1), (0, 1)), region(C, (tx, 1), (-1, 4))])
