"""Visitor and mutator bases for the pass's hot walks: the IR functors with one dispatch
cache shared by all walkers, so that each node costs one dictionary lookup to dispatch."""

from __future__ import annotations

from typing import Any, Callable

from ...ir import IRMutator, IRVisitor

_METHODS: dict[tuple[type, type], Callable] = {}


def _method(walker: Any, node: Any) -> Callable:
    key = (type(walker), type(node))
    method = _METHODS.get(key)
    if method is None:
        method = _METHODS[key] = walker._lookup(node)
    return method


class Visitor(IRVisitor):
    def visit(self, node: Any) -> None:
        _method(self, node)(self, node)


class Mutator(IRMutator):
    def visit(self, node: Any) -> Any:
        return _method(self, node)(self, node)
