"""Structural equality and hashing.

Two trees are equal when they have the same shape, the same constants and annotations,
and their variables and buffers correspond one to one in order of first appearance
(like TVM's ``assert_structural_equal(..., map_free_vars=True)``). Source spans are
ignored.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from .buffer import Buffer
from .expr import FloatImm, IntImm, Node, StringImm, Var
from .stmt import For, PrimFunc


class _Mismatch(Exception):
    def __init__(self, path: str, detail: str):
        super().__init__(f"at {path}: {detail}")
        self.path = path
        self.detail = detail


_FIELDS_CACHE: dict[type, tuple[str, ...]] = {}


def _fields(cls: type) -> tuple[str, ...]:
    names = _FIELDS_CACHE.get(cls)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(cls) if f.name != "span")
        _FIELDS_CACHE[cls] = names
    return names


class _Comparer:
    def __init__(self, compare_regions: bool):
        self.compare_regions = compare_regions
        self.left_to_right: dict[int, Any] = {}
        self.right_to_left: dict[int, Any] = {}

    def rebind(self, left: Var, right: Var) -> None:
        """A loop variable is defined anew by each loop: forget earlier pairings."""
        for side, other in ((self.left_to_right, self.right_to_left),
                            (self.right_to_left, self.left_to_right)):
            node = left if side is self.left_to_right else right
            partner = side.pop(id(node), None)
            if partner is not None:
                other.pop(id(partner), None)
        self.left_to_right[id(left)] = right
        self.right_to_left[id(right)] = left

    def bind(self, left: Any, right: Any, path: str) -> None:
        mapped = self.left_to_right.get(id(left))
        back = self.right_to_left.get(id(right))
        if mapped is None and back is None:
            self.left_to_right[id(left)] = right
            self.right_to_left[id(right)] = left
            return
        if mapped is not right or back is not left:
            raise _Mismatch(path, f"{_describe(left)} does not correspond to {_describe(right)}")

    def equal(self, left: Any, right: Any, path: str) -> None:
        if isinstance(left, Node) or isinstance(right, Node):
            if type(left) is not type(right):
                raise _Mismatch(path, f"{type(left).__name__} vs {type(right).__name__}")
            if isinstance(left, Var):
                if left.dtype != right.dtype:
                    raise _Mismatch(path, f"dtype {left.dtype} vs {right.dtype}")
                self.bind(left, right, path)
                return
            if isinstance(left, Buffer):
                if id(left) in self.left_to_right or id(right) in self.right_to_left:
                    self.bind(left, right, path)
                    return
                self.bind(left, right, path)
                for name in ("shape", "dtype", "scope"):
                    self.equal(getattr(left, name), getattr(right, name), f"{path}.{name}")
                return
            if isinstance(left, (IntImm, FloatImm, StringImm)):
                if left.value != right.value or left.dtype != right.dtype:
                    raise _Mismatch(path, f"{_describe(left)} vs {_describe(right)}")
                return
            if isinstance(left, For):
                if left.loop_var.dtype != right.loop_var.dtype:
                    raise _Mismatch(f"{path}.loop_var",
                                    f"dtype {left.loop_var.dtype} vs {right.loop_var.dtype}")
                self.rebind(left.loop_var, right.loop_var)
            for name in _fields(type(left)):
                if not self.compare_regions and name in ("reads", "writes"):
                    continue
                self.equal(getattr(left, name), getattr(right, name), f"{path}.{name}")
            return
        if isinstance(left, (tuple, list)) and isinstance(right, (tuple, list)):
            if len(left) != len(right):
                raise _Mismatch(path, f"length {len(left)} vs {len(right)}")
            for index, (a, b) in enumerate(zip(left, right)):
                self.equal(a, b, f"{path}[{index}]")
            return
        if isinstance(left, dict) and isinstance(right, dict):
            if sorted(left) != sorted(right):
                raise _Mismatch(path, f"keys {sorted(left)} vs {sorted(right)}")
            for key in sorted(left):
                self.equal(left[key], right[key], f"{path}[{key!r}]")
            return
        if type(left) is not type(right) or left != right:
            raise _Mismatch(path, f"{left!r} vs {right!r}")


def _describe(node: Any) -> str:
    if isinstance(node, (Var, Buffer)):
        return f"{type(node).__name__} {node.name}"
    if isinstance(node, (IntImm, FloatImm, StringImm)):
        return f"{node.value!r}:{node.dtype}"
    return type(node).__name__


def structural_equal(left: Any, right: Any, compare_regions: bool = True) -> bool:
    """True when ``left`` and ``right`` are equal up to renaming of vars and buffers.

    With ``compare_regions=False`` the declared reads/writes of blocks are ignored.
    """
    try:
        _Comparer(compare_regions).equal(left, right, _root(left))
    except _Mismatch:
        return False
    return True


def assert_structural_equal(left: Any, right: Any, compare_regions: bool = True) -> None:
    """Raise AssertionError naming the first difference, printing both programs."""
    try:
        _Comparer(compare_regions).equal(left, right, _root(left))
    except _Mismatch as mismatch:
        left_text = left.script() if isinstance(left, PrimFunc) else repr(left)
        right_text = right.script() if isinstance(right, PrimFunc) else repr(right)
        raise AssertionError(
            f"structural mismatch {mismatch}\n--- left\n{left_text}\n--- right\n{right_text}"
        ) from None


def _root(node: Any) -> str:
    return "func" if isinstance(node, PrimFunc) else type(node).__name__


def structural_hash(node: Any) -> int:
    """A hash consistent with :func:`structural_equal` (vars and buffers hash by order)."""
    numbering: dict[int, int] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, Var):
            number = numbering.setdefault(id(value), len(numbering))
            return ("var", value.dtype, number)
        if isinstance(value, Buffer):
            if id(value) in numbering:
                return ("buffer", numbering[id(value)])
            numbering[id(value)] = len(numbering)
            return ("buffer", walk(value.shape), value.dtype, value.scope)
        if isinstance(value, (IntImm, FloatImm, StringImm)):
            return (type(value).__name__, value.value, value.dtype)
        if isinstance(value, For):
            numbering[id(value.loop_var)] = len(numbering)
        if isinstance(value, Node):
            return (type(value).__name__,) + tuple(walk(getattr(value, name))
                                                  for name in _fields(type(value)))
        if isinstance(value, (tuple, list)):
            return tuple(walk(item) for item in value)
        if isinstance(value, dict):
            return tuple((key, walk(value[key])) for key in sorted(value))
        if isinstance(value, enum.Enum):
            return value.value
        return value

    return hash(walk(node))
