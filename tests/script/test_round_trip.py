"""Property: printing a program and parsing it back gives a structurally equal program,
and printing is a fixed point of print -> parse."""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from tilepipe.ir import assert_structural_equal, structural_hash
from tilepipe.script import parse

sys.path.insert(0, str(Path(__file__).parent))
from program_generator import programs  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(programs())
def test_print_parse_round_trip(func):
    text = func.script()
    again = parse(text)
    assert_structural_equal(func, again)
    assert structural_hash(func) == structural_hash(again)
    assert again.script() == text
