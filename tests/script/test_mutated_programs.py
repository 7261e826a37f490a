"""Property: a program text damaged at random either parses or raises ParseError —
never another exception (a user mistake is never a traceback)."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tilepipe.errors import ParseError
from tilepipe.script import parse_module

HERE = Path(__file__).parent
TEXTS = [path.read_text() for path in sorted((HERE / "programs").glob("*.py"))
         + sorted((HERE / "seed_programs").glob("*_ref.py"))]
TOKENS = ("T.serial", "T.block", "T.attr", "T.reads", "T.int32", "T.handle", "T.Buffer",
          "T.if_then_else", "T.Cast", "T.match_buffer", "T.alloc_buffer", "T.where", "T.grid",
          "T.evaluate", "T.var", "A", "i", "range", "None", "True", "lambda", "(", ")", "[",
          "]", ",", ":", "=", "+", "//", "/", "*", "**", "-", "not", "and", "0", "1.5", '"x"',
          "[]", "()", "{}", "\n    ")


@st.composite
def damaged_programs(draw) -> str:
    parts = re.split(r"(\W)", draw(st.sampled_from(TEXTS)))
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(parts) - 1))
        action = draw(st.sampled_from(("replace", "delete", "insert")))
        if action == "replace":
            parts[position] = draw(st.sampled_from(TOKENS))
        elif action == "delete":
            parts[position] = ""
        else:
            parts.insert(position, draw(st.sampled_from(TOKENS)))
    return "".join(parts)


@settings(max_examples=300, deadline=None)
@given(damaged_programs())
def test_damaged_programs_raise_only_parse_errors(text: str):
    try:
        parse_module(text, "damaged.py")
    except ParseError as error:
        assert error.message
        assert error.span is None or error.span.source_name == "damaged.py"
