"""Bad programs raise ParseError naming the file, line, column, source line and problem."""

from __future__ import annotations

import pytest

from tilepipe.errors import ParseError
from tilepipe.script import parse, parse_module

HEADER = 'from tilepipe import script as T\n\n\n@T.prim_func\ndef f(A: T.Buffer((16,), "float32"), n: T.int32):\n'
BODY_LINE = 6  # the first body line of a program made of HEADER + body

# (body, line offset from the first body line, column, words the message must contain)
BODY_CASES = {
    "undefined name": ("A[0] = B[0]", 0, 12, "undefined name 'B'"),
    "unknown loop kind": ("for i in T.parallel(16):\n        A[i] = T.float32(0)", 0, 14,
                          "T.serial"),
    "unknown with": ("with T.foo():\n        A[0] = T.float32(0)", 0, 10, "T.block"),
    "wrong arity": ("A[0] = T.if_then_else(n < 2, T.float32(1))", 0, 12,
                    "takes 3 positional arguments, got 2"),
    "unknown dtype": ('A[0] = T.Cast("flt", n)', 0, 19, "unknown dtype 'flt'"),
    "mixed dtypes": ("A[0] = A[1] + n", 0, 12, "different dtypes float32 and int32"),
    "integer true division": ("A[n / 2] = T.float32(0)", 0, 7, "use '//' for integers"),
    "float floor division": ("A[0] = A[1] // A[2]", 0, 12, "'//' needs integers"),
    "store dtype": ("A[0] = n", 0, 5, "dtype int32 into float32 buffer 'A'"),
    "wrong rank": ("A[0, 1] = T.float32(0)", 0, 5, "1 dimension but is indexed with 2"),
    "float index": ("A[A[0]] = T.float32(0)", 0, 7, "a buffer index must be an integer"),
    "allocation outside a block": ('B = T.alloc_buffer((4,), dtype="float32")', 0, 5,
                                   "top level of a T.block"),
    "reads outside a block": ("T.reads(A[0])\n    A[0] = T.float32(1)", 0, 5,
                              "top level of a T.block"),
    "while loop": ("while n < 2:\n        A[0] = T.float32(0)", 0, 5,
                   "unsupported statement 'while'"),
    "wait without count": ('with T.attr(0, "async_wait_queue_scope", 0):\n'
                           "        A[0] = T.float32(0)", 0, 10, "async_wait_inflight_count"),
    "count without wait": ('with T.attr(0, "async_wait_inflight_count", 0):\n'
                           "        A[0] = T.float32(0)", 0, 10, "must directly follow"),
    "non-constant queue": ('with T.attr(0, "async_commit_queue_scope", n):\n'
                           "        A[0] = T.float32(0)", 0, 48, "constant non-negative"),
    "float condition": ("if A[0]:\n        A[0] = T.float32(0)", 0, 8, "boolean condition"),
    "assignment to a name": ("x = n + 1", 0, 5, "only buffer elements"),
    "unknown keyword": ("for i in T.serial(16, annotation={}):\n        A[i] = T.float32(0)",
                        0, 27, "no argument 'annotation'"),
    "thread binding without thread": ("for i in T.thread_binding(16):\n"
                                      "        A[i] = T.float32(0)", 0, 14, 'thread="threadIdx.x"'),
    "python function": ("A[0] = float(n)", 0, 12, "unknown function 'float'"),
    "empty block": ("with T.block():\n        T.reads()", 0, 5, "has no statement"),
    "reads twice": ("with T.block():\n        T.reads(A[0])\n        T.reads(A[1])\n"
                    "        A[0] = T.float32(0)", 2, 9, "T.reads appears twice"),
    "unknown scope": ('with T.block():\n        B = T.alloc_buffer((4,), dtype="float32", '
                      'scope="shard")\n        B[0] = T.float32(0)', 1, 57, "unknown scope 'shard'"),
    "statement in an expression": ("A[0] = T.reads(A[1])", 0, 12, "cannot be used inside an expression"),
    "slice as a value": ("A[0] = A[0:2]", 0, 12, "is a region, not a value"),
    "division by zero": ("A[4 // 0] = T.float32(0)", 0, 7, "division by zero"),
    "loop else": ("for i in T.serial(4):\n        A[i] = T.float32(0)\n    else:\n"
                  "        A[0] = T.float32(0)", 0, 5, "no else branch"),
    "statement without effect": ("n + 1", 0, 5, "has no effect"),
    "constant out of range": ("A[(1, 2)[5]] = T.float32(0)", 0, 7, "out of range"),
    "bool arithmetic": ("A[0] = T.float32(n < 1 + (n < 2))", 0, 26, "different dtypes int32 and bool"),
    "integer dtype of a float": ("A[0] = T.Cast(\"float32\", T.int32(1.5))", 0, 30,
                                 "T.int32 cannot hold the constant 1.5"),
}


def _check(error: ParseError, line: int, column: int, words: str, source_name: str) -> None:
    assert error.span is not None
    assert (error.span.source_name, error.span.line, error.span.column) == \
        (source_name, line, column), str(error)
    assert words in error.message
    text = str(error)
    assert text.startswith(f"{source_name}:{line}:{column}: ")
    assert error.span.text.strip() in text and error.span.text.strip()
    assert text.endswith("^")


@pytest.mark.parametrize("case", list(BODY_CASES))
def test_body_error_names_its_place(case: str):
    body, line_offset, column, words = BODY_CASES[case]
    with pytest.raises(ParseError) as caught:
        parse(HEADER + "    " + body + "\n", "prog.py")
    _check(caught.value, BODY_LINE + line_offset, column, words, "prog.py")


def test_handle_used_as_a_value():
    text = ('from tilepipe import script as T\n\n\n@T.prim_func\ndef f(a: T.handle):\n'
            '    A = T.match_buffer(a, (4,), "float32")\n    A[0] = a\n')
    with pytest.raises(ParseError) as caught:
        parse(text, "prog.py")
    _check(caught.value, 7, 12, "'a' is a T.handle", "prog.py")


@pytest.mark.parametrize("signature, column, words", [
    ("A", 7, "parameter 'A' needs a type"),
    ('A: T.Buffer((16,), "float99")', 26, "unknown dtype 'float99'"),
    ("a: T.handle", 7, "has no T.match_buffer"),
    ("A: T.Tensor((16,))", 10, "unknown type of parameter 'A'"),
    ("A: T.Buffer((16.5,))", 20, "a buffer extent must be an integer"),
    ("n=3", 1, "plain annotated names"),
])
def test_signature_errors(signature: str, column: int, words: str):
    text = f"from tilepipe import script as T\n\n\n@T.prim_func\ndef f({signature}):\n    T.evaluate(0)\n"
    with pytest.raises(ParseError) as caught:
        parse(text, "sig.py")
    _check(caught.value, 5, column, words, "sig.py")


def test_syntax_error_names_line_and_column():
    with pytest.raises(ParseError) as caught:
        parse("from tilepipe import script as T\n\ndef f(:\n    pass\n", "bad.py")
    assert (caught.value.span.line, caught.value.span.column) == (3, 7)
    assert "invalid Python syntax" in caught.value.message


def test_parse_needs_exactly_one_function():
    text = HEADER + "    T.evaluate(0)\n"
    with pytest.raises(ParseError, match="found 0"):
        parse("N = 1\n", "none.py")
    with pytest.raises(ParseError, match="found 2 \\(f, g\\)"):
        parse(text + "\n\n" + text.replace("def f", "def g").split("\n", 3)[3], "two.py")


def test_duplicated_function_name():
    text = HEADER + "    T.evaluate(0)\n"
    with pytest.raises(ParseError) as caught:
        parse_module(text + "\n\n" + text.split("\n", 3)[3], "dup.py")
    assert "function 'f' is defined twice (first at line 5)" in caught.value.message
    assert caught.value.span.line == 10


def test_statement_form_wait_needs_its_count():
    body = ('with T.block():\n        T.attr(0, "async_wait_queue_scope", 0)\n'
            "        A[0] = T.float32(0)")
    with pytest.raises(ParseError) as caught:
        parse(HEADER + "    " + body + "\n", "prog.py")
    _check(caught.value, BODY_LINE + 1, 9, "async_wait_inflight_count", "prog.py")
