"""The printer: precedence, constants, names, loops and regions in the seeds' notation."""

from __future__ import annotations

import pytest

from tilepipe.ir import (
    EQ, LT, Add, And, Block, Buffer, BufferLoad, BufferRegion, BufferStore, Call, Cast, Evaluate,
    FloatImm, FloorDiv, For, ForKind, IntImm, Max, Mul, Not, Or, PrimFunc, Range, SeqStmt, Sub,
    Var,
)
from tilepipe.ir.printer import expr_to_str, script, script_module, stmt_to_str

i, j, k = Var("i"), Var("j"), Var("k")
A = Buffer("A", (IntImm(16), IntImm(16)))


@pytest.mark.parametrize("expr, text", [
    (Mul(Add(i, j), k), "(i + j) * k"),
    (Add(i, Mul(j, k)), "i + j * k"),
    (Sub(Sub(i, j), k), "i - j - k"),
    (Sub(i, Sub(j, k)), "i - (j - k)"),
    (FloorDiv(i, Mul(j, k)), "i // (j * k)"),
    (LT(Add(i, IntImm(1)), IntImm(16)), "i + 1 < 16"),
    (EQ(LT(i, j), LT(j, k)), "(i < j) == (j < k)"),
    (And(LT(i, j), Or(LT(j, k), EQ(i, k))), "i < j and (j < k or i == k)"),
    (Or(And(LT(i, j), LT(j, k)), EQ(i, k)), "i < j and j < k or i == k"),
    (Not(And(LT(i, j), LT(j, k))), "not (i < j and j < k)"),
    (LT(Not(EQ(i, j)), IntImm(1, "bool")), "(not i == j) < True"),
    (Add(i, IntImm(-3)), "i + -3"),
    (Add(IntImm(2), i), "2 + i"),
    (Add(IntImm(2), IntImm(3)), "T.int32(2) + 3"),
    (Add(Var("w", "int64"), IntImm(1, "int64")), "w + 1"),
    (Add(Var("w", "int64"), IntImm(1)), "w + T.int32(1)"),
    (Max(BufferLoad(A, (i, j)), FloatImm(0.0)), "T.max(A[i, j], T.float32(0))"),
    (FloatImm(0.1, "float16"), "T.float16(0.1)"),
    (FloatImm(float("inf")), 'T.float32("inf")'),
    (FloatImm(-0.0), "T.float32(-0.0)"),
    (FloatImm(-3.0, "float64"), "T.float64(-3)"),
    (Not(IntImm(1, "bool")), "not T.bool(True)"),
    (Cast("float16", i), 'T.Cast("float16", i)'),
    (Call("float32", "exp", (FloatImm(1.0),)), "T.exp(T.float32(1))"),
    (Call("int32", "my_op", (BufferRegion(A, (Range(i, IntImm(1)), Range(IntImm(0), IntImm(4)))),
                             BufferRegion(A, (Range(i, IntImm(1)), Range(j, IntImm(1)))))),
     'T.my_op(A[i, 0:4], A[i:i + 1, j:j + 1], dtype="int32")'),
])
def test_expression_text(expr, text):
    assert expr_to_str(expr) == text


def _loop(var, start, extent, body, kind=ForKind.SERIAL):
    return For(var, start, extent, kind, body)


def test_loop_bounds_are_written_with_their_stop():
    n = Var("n")
    store = BufferStore(A, FloatImm(1.0), (IntImm(0), IntImm(0)))
    assert stmt_to_str(_loop(i, IntImm(0), n, store)).startswith("for i in T.serial(n):")
    assert stmt_to_str(_loop(i, IntImm(2), IntImm(14), store)).startswith("for i in T.serial(2, 16):")
    assert stmt_to_str(_loop(i, IntImm(2), Sub(n, IntImm(2)), store)).startswith(
        "for i in T.serial(2, n):")
    assert stmt_to_str(_loop(i, n, IntImm(4), store, ForKind.UNROLLED)).startswith(
        "for i in T.unroll(n, n + 4):")


def test_distinct_variables_with_one_name_are_renamed_only_where_both_are_visible():
    outer, inner, sibling = Var("i"), Var("i"), Var("i")
    store = BufferStore(A, FloatImm(0.0), (outer, inner))
    nest = _loop(outer, IntImm(0), IntImm(4), _loop(inner, IntImm(0), IntImm(4), store))
    after = _loop(sibling, IntImm(0), IntImm(4), BufferStore(A, FloatImm(1.0), (sibling, sibling)))
    text = stmt_to_str(SeqStmt((nest, after)))
    assert text.splitlines() == [
        "for i in T.serial(4):",
        "    for i_1 in T.serial(4):",
        "        A[i, i_1] = T.float32(0)",
        "for i in T.serial(4):",
        "    A[i, i] = T.float32(1)",
    ]


def test_function_with_symbolic_sizes_uses_handles():
    m = Var("m")
    a = Buffer("A", (m, IntImm(4)), "float16")
    b = Buffer("B", (IntImm(4),), scope="shared")
    n = Var("n")
    body = _loop(i, IntImm(0), n, BufferStore(b, FloatImm(0.0), (i,)))
    text = script(PrimFunc("f", (a, n, b), body, {"global_symbol": "f"}))
    assert text == (
        'from tilepipe import script as T\n\n\n'
        '@T.prim_func\n'
        'def f(a: T.handle, n: T.int32, B: T.Buffer((4,), "float32", scope="shared")):\n'
        '    T.func_attr({"global_symbol": "f"})\n'
        '    m = T.int32()\n'
        '    A = T.match_buffer(a, (m, 4), "float16")\n'
        '    for i in T.serial(n):\n'
        '        B[i] = T.float32(0)\n'
    )


def test_block_notation_and_module_header():
    s = Buffer("S", (IntImm(4),), scope="shared")
    block = Block("", BufferStore(s, FloatImm(1.0), (IntImm(0),)),
                  writes=(BufferRegion.full(s),), alloc_buffers=(s,), predicate=LT(i, IntImm(4)),
                  annotations={"stage": (0, 1)})
    func = PrimFunc("g", (A,), _loop(i, IntImm(0), IntImm(4), block))
    lines = script_module([func, func]).splitlines()
    assert lines.count("from tilepipe import script as T") == 1
    assert lines.count("@T.prim_func") == 2
    body = lines[lines.index("    for i in T.serial(4):") + 1:][:7]
    assert body == [
        "        with T.block():",
        "            T.where(i < 4)",
        "            T.reads()",
        "            T.writes(S[0:4])",
        '            T.block_attr({"stage": [0, 1]})',
        '            S = T.alloc_buffer((4,), dtype="float32", scope="shared")',
        "            S[0] = T.float32(1)",
    ]


def test_calls_of_statement_intrinsics_are_wrapped_in_evaluate():
    assert stmt_to_str(Evaluate(Call("int32", "tvm_storage_sync", ()))) == "T.tvm_storage_sync()"
    assert stmt_to_str(Evaluate(Call("handle", "ptx_commit_group", ()))) == "T.ptx_commit_group()"
    assert stmt_to_str(Evaluate(IntImm(0))) == "T.evaluate(0)"
    assert stmt_to_str(Evaluate(Call("handle", "reads", ()))) == "T.evaluate(T.reads())"
