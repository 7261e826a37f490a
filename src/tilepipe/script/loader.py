"""Entry points: read tile programs from text, from files and from decorated functions."""

from __future__ import annotations

import ast
import inspect
import linecache
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

from ..errors import ParseError
from ..ir import PrimFunc
from .source import (
    Constants, Source, constants_of, is_prim_func_decorator, module_constants, parse_python,
    script_aliases,
)
from .statements import FunctionParser


def parse_module(text: str, source_name: str = "<string>") -> list[PrimFunc]:
    """Every top-level ``@T.prim_func`` of ``text``, in order. The text is never run:
    only its module-level constant assignments are evaluated."""
    tree = parse_python(text, source_name)
    source = Source(source_name, text.splitlines())
    aliases = script_aliases(tree)
    constants = module_constants(tree)
    funcs: list[PrimFunc] = []
    seen: dict[str, int] = {}
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if not any(is_prim_func_decorator(item, aliases) for item in node.decorator_list):
            continue
        if isinstance(node, ast.AsyncFunctionDef):
            raise source.error(node, "a @T.prim_func cannot be async")
        if node.name in seen:
            raise source.error(node, f"function '{node.name}' is defined twice "
                                     f"(first at line {seen[node.name]})")
        seen[node.name] = node.lineno
        funcs.append(FunctionParser(source, aliases, constants).function(node))
    return funcs


def parse(text: str, source_name: str = "<string>") -> PrimFunc:
    """The one ``@T.prim_func`` in ``text``."""
    funcs = parse_module(text, source_name)
    if len(funcs) != 1:
        found = ", ".join(func.name for func in funcs) or "none"
        raise ParseError(f"{source_name}: expected exactly one @T.prim_func function, "
                         f"found {len(funcs)} ({found})")
    return funcs[0]


def load_file(path: str | Path) -> list[PrimFunc]:
    """The ``@T.prim_func`` functions of a Python file, read without running it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ParseError(f"cannot read '{path}': {reason}") from None
    return parse_module(text, str(path))


def prim_func(function: Callable[..., Any]) -> PrimFunc:
    """``@T.prim_func``: read the decorated function's source (never call it); its
    globals and closure variables that hold constants are usable as constants."""
    name = getattr(function, "__name__", repr(function))
    try:
        lines, first_line = inspect.getsourcelines(function)
        file_name = inspect.getsourcefile(function) or "<unknown>"
    except (OSError, TypeError):
        raise ParseError(f"cannot read the source of function '{name}'; define it in a file, "
                         "or pass its text to tilepipe.script.parse") from None
    text = "".join(lines)
    dedented = textwrap.dedent(text)
    indent = len(lines[0]) - len(lines[0].lstrip()) \
        - (len(dedented.splitlines()[0]) - len(dedented.splitlines()[0].lstrip()))
    file_lines = [line.rstrip("\n") for line in linecache.getlines(file_name)] \
        or text.splitlines()
    offset = first_line - 1 if linecache.getlines(file_name) else 0
    source = Source(file_name, file_lines, line_offset=offset, column_offset=indent)
    tree = parse_python(dedented, file_name)
    definition = next((node for node in tree.body if isinstance(node, ast.FunctionDef)
                       and node.name == name), None)
    if definition is None:
        raise ParseError(f"T.prim_func decorates a function defined with 'def', not {name!r}")
    namespace = dict(function.__globals__)
    closure = function.__closure__ or ()
    namespace.update(zip(function.__code__.co_freevars,
                         (cell.cell_contents for cell in closure)))
    script_module = sys.modules[__package__]
    aliases = frozenset(key for key, value in namespace.items() if value is script_module)
    constants: Constants = constants_of(namespace)
    return FunctionParser(source, aliases or frozenset({"T"}), constants).function(definition)
