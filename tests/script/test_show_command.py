"""``tilepipe show``: its output is a fixed point, --func/--dim work, bad input exits 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tilepipe.cli import main
from tilepipe.ir import IntImm, assert_structural_equal
from tilepipe.ir.printer import script_module
from tilepipe.script import load_file

PROGRAMS = sorted((Path(__file__).parent / "programs").glob("*.py"))


def _show(capsys, *args: str) -> str:
    assert main(["show", *map(str, args)]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda path: path.stem)
def test_show_output_is_a_fixed_point(path: Path, tmp_path: Path, capsys):
    first = _show(capsys, path)
    assert first.startswith("from tilepipe import script as T\n")
    assert first == script_module(load_file(path))
    printed = tmp_path / "printed.py"
    printed.write_text(first)
    assert _show(capsys, printed) == first
    for before, after in zip(load_file(path), load_file(printed)):
        assert_structural_equal(before, after)


def test_func_picks_one_function(capsys):
    path = Path(__file__).parent / "programs" / "two_functions.py"
    text = _show(capsys, path, "--func", "clear")
    assert "def clear(" in text and "def fill(" not in text


def test_dim_binds_a_size_and_a_scalar(capsys, tmp_path: Path):
    path = Path(__file__).parent / "programs" / "symbolic_sizes.py"
    text = _show(capsys, path, "--dim", "m=8", "--dim", "k=4")
    assert 'A: T.Buffer((8, 4), "float32")' in text
    assert "T.handle" not in text and "T.int32()" not in text
    printed = tmp_path / "bound.py"
    printed.write_text(text)
    (func,) = load_file(printed)
    assert all(isinstance(extent, IntImm) for extent in func.params[0].shape)
    scalar = Path(__file__).parent / "programs" / "scalar_params.py"
    text = _show(capsys, scalar, "--dim", "n=32")
    assert "n: T.int32" not in text and "T.serial(32)" in text


def _fails(capsys, args: list[str], *words: str) -> None:
    """The command exits with status 2 and a message holding ``words``, no traceback."""
    try:
        status = main(args)
    except SystemExit as exit_:
        status = exit_.code
    assert status == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    for word in words:
        assert word in error, error


def _write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text('from tilepipe import script as T\n\n\n@T.prim_func\n'
                    'def f(A: T.Buffer((16,), "float32")):\n' + body)
    return path


def test_missing_file(capsys, tmp_path: Path):
    _fails(capsys, ["show", str(tmp_path / "nope.py")], "cannot read", "nope.py")


def test_unreadable_file(capsys, tmp_path: Path):
    path = tmp_path / "binary.py"
    path.write_bytes(b"\xff\xfe\x00bad")
    _fails(capsys, ["show", str(path)], "cannot read", "binary.py")


def test_syntax_error(capsys, tmp_path: Path):
    path = tmp_path / "syntax.py"
    path.write_text("from tilepipe import script as T\ndef f(:\n")
    _fails(capsys, ["show", str(path)], "syntax.py:2:7", "invalid Python syntax")


def test_unknown_construct(capsys, tmp_path: Path):
    path = _write(tmp_path, "unknown.py", "    for i in T.parallel(16):\n        A[i] = T.float32(0)\n")
    _fails(capsys, ["show", str(path)], "unknown.py:6:14", "T.parallel(16)")


def test_undefined_name(capsys, tmp_path: Path):
    path = _write(tmp_path, "undefined.py", "    A[0] = B[0]\n")
    _fails(capsys, ["show", str(path)], "undefined.py:6:12", "undefined name 'B'")


def test_wrong_arity(capsys, tmp_path: Path):
    path = _write(tmp_path, "arity.py", "    A[0] = T.max(A[1])\n")
    _fails(capsys, ["show", str(path)], "arity.py:6:12", "T.max takes 2 positional arguments, got 1")


def test_bad_dtype(capsys, tmp_path: Path):
    path = _write(tmp_path, "dtype.py", '    A[0] = T.Cast("f32", A[1])\n')
    _fails(capsys, ["show", str(path)], "dtype.py:6:19", "unknown dtype 'f32'")


def test_unknown_func(capsys):
    path = Path(__file__).parent / "programs" / "two_functions.py"
    _fails(capsys, ["show", str(path), "--func", "zero"], "no function named 'zero'", "fill, clear")


def test_duplicated_func_option(capsys):
    path = Path(__file__).parent / "programs" / "two_functions.py"
    _fails(capsys, ["show", str(path), "--func", "fill", "--func", "clear"], "--func is given twice")


def test_unknown_dim(capsys):
    path = Path(__file__).parent / "programs" / "symbolic_sizes.py"
    _fails(capsys, ["show", str(path), "--dim", "q=3"], "cannot bind q", "k, m")


def test_malformed_dim(capsys):
    path = Path(__file__).parent / "programs" / "symbolic_sizes.py"
    _fails(capsys, ["show", str(path), "--dim", "m"], "--dim expects NAME=INTEGER")


def test_command_line_help_and_exit_status(tmp_path: Path):
    run = [sys.executable, "-m", "tilepipe.cli"]
    help_text = subprocess.run([*run, "--help"], capture_output=True, text=True, check=True).stdout
    assert "show" in help_text and "pipeline" in help_text
    path = _write(tmp_path, "bad.py", "    A[0] = B[0]\n")
    result = subprocess.run([*run, "show", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("tilepipe: error: ") and "undefined name 'B'" in result.stderr
