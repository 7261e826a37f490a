"""Visitor and mutator bases for the pass's hot walks: the IR functors with a per-walker
dispatch cache, so that each node costs one dictionary lookup to dispatch."""

from __future__ import annotations

from typing import Any

from ...ir import IRMutator, IRVisitor


class Visitor(IRVisitor):
    def visit(self, node: Any) -> None:
        cache = self.__dict__.setdefault("_methods", {})
        method = cache.get(type(node))
        if method is None:
            method = cache[type(node)] = self._lookup(node)
        method(self, node)


class Mutator(IRMutator):
    def visit(self, node: Any) -> Any:
        cache = self.__dict__.setdefault("_methods", {})
        method = cache.get(type(node))
        if method is None:
            method = cache[type(node)] = self._lookup(node)
        return method(self, node)
