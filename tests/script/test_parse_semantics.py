"""What the parser builds: constants, dtypes, loops, blocks, regions and declarations."""

from __future__ import annotations

from pathlib import Path

import pytest

from tilepipe.errors import ParseError
from tilepipe.ir import (
    EQ, LE, LT, NE, Add, And, Block, Buffer, BufferLoad, BufferStore, Call, Cast, Evaluate,
    FloatImm, For, ForKind, IfThenElse, IntImm, Mul, Not, Or, PrimFunc, Select, SeqStmt,
    StringImm, Sub, Var, structural_equal,
)
from tilepipe.script import load_file, parse

HEADER = "from tilepipe import script as T\n\n\n@T.prim_func\n"


def _func(signature: str, body: str, prelude: str = "") -> PrimFunc:
    return parse(prelude + HEADER + f"def f({signature}):\n" + body)


def _body(body: str, signature: str = 'A: T.Buffer((16, 16), "float32"), n: T.int32'):
    return _func(signature, body).body


def test_constants_take_the_dtype_of_the_other_operand():
    store = _body("    A[0, 1] = A[n, 0] * 2 + 0.5\n")
    assert isinstance(store.value, Add)
    assert isinstance(store.value.a.b, FloatImm) and store.value.a.b.dtype == "float32"
    assert store.value.b.value == 0.5
    assert all(isinstance(index, IntImm) and index.dtype == "int32" for index in store.indices)
    store = _body("    A[0, 0] = T.Cast(\"float32\", w + 1)\n", 'A: T.Buffer((1, 1), "float32"), w: T.int64')
    assert store.value.value.b.dtype == "int64"


def test_constant_arithmetic_folds_like_python():
    store = _body("    A[16 // 5, 7 % 4 - 3] = T.float32(0)\n")
    assert [index.value for index in store.indices] == [3, 0]
    assert _body("    A[-n, 0] = T.float32(0)\n").indices[0].a.value == 0


def test_module_constants_are_folded_and_files_are_not_run(tmp_path: Path):
    path = tmp_path / "consts.py"
    path.write_text(
        "import a_module_that_does_not_exist\nraise SystemExit(3)\n"
        "N = K = 8\nTILES, STAGES = 2, 3\nSHAPE = (N, K * 2)\nLATER = 1\nLATER = len(SHAPE)\n"
        + HEADER + 'def f(A: T.Buffer(SHAPE, "float32")):\n'
        "    for i in T.serial(N // TILES, annotations={\"stages\": [0, STAGES], \"shape\": SHAPE}):\n"
        "        A[i, SHAPE[1] - 1] = T.float32(TILES)\n")
    (func,) = load_file(path)
    assert [extent.value for extent in func.params[0].shape] == [8, 16]
    loop = func.body
    assert loop.extent.value == 4
    assert loop.annotations == {"stages": (0, 3), "shape": (8, 16)}
    assert loop.body.indices[1].value == 15
    path.write_text(path.read_text().replace("SHAPE[1] - 1", "LATER"))
    with pytest.raises(ParseError, match="'LATER' is not a constant"):
        load_file(path)


def test_comparisons_chain_and_logic_folds_left():
    func = _func('A: T.Buffer((16, 16), "float32"), n: T.int32',
                 "    if 0 <= n < 16 and n != 3 or not n == 4:\n        A[0, 0] = T.float32(1)\n")
    n = func.params[1]
    expected = Or(And(And(LE(IntImm(0), n), LT(n, IntImm(16))), NE(n, IntImm(3))),
                  Not(EQ(n, IntImm(4))))
    assert structural_equal(func.body.condition, expected)


def test_if_elif_else_and_conditional_expressions():
    stmt = _body("    if n < 2:\n        A[0, 0] = T.float32(1)\n    elif n < 4:\n"
                 "        A[0, 0] = T.float32(2) if n == 3 else T.float32(3)\n    else:\n"
                 "        pass\n        A[0, 0] = T.float32(4)\n")
    assert isinstance(stmt, IfThenElse) and isinstance(stmt.else_case, IfThenElse)
    assert isinstance(stmt.else_case.then_case.value, Select)
    assert isinstance(stmt.else_case.else_case, BufferStore)


def test_loops_of_every_form():
    body = _body(
        "    for a in range(4):\n        A[a, 0] = T.float32(0)\n"
        "    for b in range(2, n):\n        A[b, 0] = T.float32(0)\n"
        "    for c in T.thread_binding(1, 9, \"threadIdx.y\"):\n        A[c, 0] = T.float32(0)\n"
        "    for d, e in T.grid(2, n):\n        A[d, e] = T.float32(0)\n"
        "    for g in T.vectorized(n + 1, n + 5, annotations={\"k\": None}):\n"
        "        A[g, 0] = T.float32(0)\n")
    loops = body.stmts
    assert (loops[0].min.value, loops[0].extent.value, loops[0].kind) == (0, 4, ForKind.SERIAL)
    assert isinstance(loops[1].extent, Sub) and loops[1].min.value == 2
    assert loops[2].thread_tag == "threadIdx.y" and loops[2].extent.value == 8
    inner = loops[3].body
    assert loops[3].extent.value == 2 and isinstance(inner, For)
    assert isinstance(inner.extent, Var) and inner.extent.name == "n"
    assert inner.body.indices == (loops[3].loop_var, inner.loop_var)
    assert isinstance(loops[4].extent, Sub) and loops[4].extent.b is loops[4].min
    assert loops[4].annotations == {"k": None}
    assert loops[4].kind is ForKind.VECTORIZED


def test_augmented_assignment_reads_and_writes_the_element():
    store = _body("    A[n, 1] += T.float32(2)\n")
    assert isinstance(store.value, Add) and isinstance(store.value.a, BufferLoad)
    assert store.value.a.indices[0] is store.indices[0]


def test_block_headers_and_regions():
    block = _body(
        "    with T.block(name=\"b\"):\n"
        "        T.reads([A[0:4, n], A])\n"
        "        T.writes(S[:, 1:])\n"
        "        T.block_attr({\"x\": [1, [2, \"y\"]]})\n"
        "        S = T.alloc_buffer((4, 8), \"int32\", \"local\")\n"
        "        S[0, 0] = n\n")
    assert isinstance(block, Block) and block.name == "b"
    first, whole = block.reads
    assert (first.region[0].extent.value, first.region[1].extent.value) == (4, 1)
    assert [r.extent.value for r in whole.region] == [16, 16]
    (written,) = block.writes
    assert written.buffer is block.alloc_buffers[0]
    assert written.region[0].extent.value == 4
    assert written.region[1].extent.value == 7
    assert block.annotations == {"x": (1, (2, "y"))}
    assert block.alloc_buffers[0].scope == "local" and block.alloc_buffers[0].dtype == "int32"


def test_missing_reads_and_writes_are_inferred():
    block = _body("    for i in T.serial(4):\n        with T.block():\n"
                  "            A[i, 0] = A[i, 1] + T.float32(1)\n").body
    (read,) = block.reads
    (write,) = block.writes
    assert read.buffer is write.buffer
    assert read.region[1].min.value == 1 and write.region[1].min.value == 0


def test_opaque_calls_keep_their_arguments():
    stmt = _body("    T.ptx_cp_async(A[n, 0:4], A, A[0, 0], \"cg\", n + 1, dtype=\"int32\")\n"
                 "    T.tvm_storage_sync(\"shared\")\n"
                 "    T.evaluate(T.exp(A[0, 0]))\n")
    copy, sync, math = stmt.stmts
    assert isinstance(copy, Evaluate) and copy.value.dtype == "int32"
    region, buffer, load, text, count = copy.value.args
    assert region.region[1].extent.value == 4 and isinstance(buffer, Buffer)
    assert isinstance(load, BufferLoad) and isinstance(text, StringImm) and text.value == "cg"
    assert isinstance(count, Add)
    assert sync.value.dtype == "int32" and sync.value.op == "tvm_storage_sync"
    assert math.value.op == "exp" and math.value.dtype == "float32"


def test_dtype_constructors_make_constants_or_casts():
    store = _body("    A[0, 0] = T.float32(n) + T.float32(\"inf\") + T.Cast(\"float32\", T.int64(3))\n")
    cast, infinite = store.value.a.a, store.value.a.b
    assert isinstance(cast, Cast) and cast.value.name == "n"
    assert infinite.value == float("inf")
    assert store.value.b.value.dtype == "int64"


def test_size_variables_and_handles():
    func = _func("a: T.handle, n: T.int32, b: T.handle",
                 "    \"\"\"Doc.\"\"\"\n    T.func_attr({\"global_symbol\": \"f\"})\n"
                 "    k = T.var(\"int64\")\n    A = T.match_buffer(a, (n, k), \"float16\", scope=\"shared\")\n"
                 "    B = T.match_buffer(b, [4], dtype=\"int8\")\n    B[0] = T.int8(1)\n")
    first, scalar, second = func.params
    assert first.shape[0] is scalar and first.shape[1].dtype == "int64"
    assert (first.dtype, first.scope, second.dtype) == ("float16", "shared", "int8")
    assert func.attrs == {"global_symbol": "f"}


def test_statement_form_attr_wraps_the_rest_of_the_body():
    stmt = _body("    A[0, 0] = T.float32(0)\n    T.attr(0, \"pragma\", \"x\")\n"
                 "    A[1, 0] = T.float32(1)\n    A[2, 0] = T.float32(2)\n")
    first, attr = stmt.stmts
    assert isinstance(first, BufferStore)
    assert attr.key == "pragma" and attr.value.value == "x"
    assert isinstance(attr.body, SeqStmt) and len(attr.body.stmts) == 2


def test_alias_other_than_t(tmp_path: Path):
    path = tmp_path / "alias.py"
    path.write_text("from tilepipe import script as S\n\n\n@S.prim_func\n"
                    "def g(A: S.Buffer((4,), \"float32\")):\n    for i in S.serial(4):\n"
                    "        A[i] = S.float32(1)\n\n\ndef not_a_kernel():\n    return 1\n")
    (func,) = load_file(path)
    assert func.name == "g" and isinstance(func.body, For)
    assert "S.serial" not in func.script() and "T.serial(4)" in func.script()


def test_spans_carry_file_line_column_and_text():
    func = parse(HEADER + 'def f(A: T.Buffer((4,), "float32")):\n    for i in T.serial(4):\n'
                 "        A[i] = A[i] * T.float32(2)\n", "kernel.py")
    store = func.body.body
    assert (store.span.source_name, store.span.line, store.span.column) == ("kernel.py", 7, 9)
    assert store.span.text == "        A[i] = A[i] * T.float32(2)"
    assert isinstance(store.value, Mul) and store.value.span.column == 16
    assert func.body.loop_var.span.line == 6


def test_comparison_of_floats_and_select_dtype_keyword():
    expr = _body("    A[0, 0] = T.if_then_else(A[1, 1] < 0.5, 1, 0, dtype=\"float32\")\n").value
    assert isinstance(expr.condition, LT) and expr.condition.b.dtype == "float32"
    assert expr.true_value.dtype == "float32" and isinstance(expr.true_value, FloatImm)
    eq = _body("    if n == 1:\n        A[0, 0] = T.float32(0)\n").condition
    assert isinstance(eq, EQ)
    assert isinstance(_body("    T.evaluate(0)\n"), Evaluate)
    assert isinstance(_body("    T.my_intrinsic()\n").value, Call)
