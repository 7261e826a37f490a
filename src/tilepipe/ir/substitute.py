"""Replacing variables by expressions, and binding a function's sizes and scalars."""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import TilepipeError
from .buffer import Buffer
from .expr import PrimExpr, Var, convert
from .functor import IRMutator, IRVisitor
from .stmt import Block, PrimFunc


class _Substituter(IRMutator):
    def __init__(self, mapping: Mapping[Var, PrimExpr]):
        self.mapping = mapping
        self.buffers: dict[Buffer, Buffer] = {}

    def visit_var(self, node: Var) -> PrimExpr:
        return self.mapping.get(node, node)

    def visit_buffer(self, node: Buffer) -> Buffer:
        """Buffers whose shape mentions a substituted size are rebuilt once."""
        new = self.buffers.get(node)
        if new is None:
            shape = tuple(self.visit(extent) for extent in node.shape)
            if all(a is b for a, b in zip(shape, node.shape)):
                new = node
            else:
                new = Buffer(node.name, shape, node.dtype, node.scope, node.span)
            self.buffers[node] = new
        return new


def substitute(node: Any, mapping: Mapping[Var, PrimExpr | int]) -> Any:
    """``node`` with every variable in ``mapping`` replaced (also inside buffer shapes)."""
    if not mapping:
        return node
    converted = {var: convert(value, var.dtype) for var, value in mapping.items()}
    return _Substituter(converted).visit(node)


def free_size_vars(func: PrimFunc) -> list[Var]:
    """Variables used in buffer shapes that are not parameters, in order of appearance."""
    found: dict[Var, None] = {}
    params = set(func.scalar_params)

    class _Collector(IRVisitor):
        def visit_var(self, node: Var) -> None:
            if node not in params:
                found.setdefault(node, None)

    collector = _Collector()
    buffers: list[Buffer] = list(func.buffer_params)

    class _Buffers(IRVisitor):
        def visit_block(self, node: Block) -> None:
            buffers.extend(node.alloc_buffers)
            super().visit_block(node)

    _Buffers().visit(func.body)
    for buffer in buffers:
        for extent in buffer.shape:
            collector.visit(extent)
    return list(found)


def bind_params(func: PrimFunc, values: Mapping[str, int]) -> PrimFunc:
    """Bind scalar parameters and free size variables by name to integers.

    Bound scalar parameters are removed from the signature. Unknown names raise a
    :class:`TilepipeError` listing the names that can be bound.
    """
    if not values:
        return func
    candidates: dict[str, Var] = {var.name: var for var in free_size_vars(func)}
    for var in func.scalar_params:
        candidates[var.name] = var
    unknown = sorted(set(values) - set(candidates))
    if unknown:
        known = ", ".join(sorted(candidates)) or "none"
        raise TilepipeError(
            f"cannot bind {', '.join(unknown)} in function '{func.name}': "
            f"its sizes and scalar parameters are {known}"
        )
    mapping = {candidates[name]: value for name, value in values.items()}
    substituter = _Substituter({var: convert(value, var.dtype) for var, value in mapping.items()})
    params = tuple(
        substituter.visit_buffer(param) if isinstance(param, Buffer) else param
        for param in func.params
        if not (isinstance(param, Var) and param in mapping)
    )
    body = substituter.visit(func.body)
    return PrimFunc(func.name, params, body, func.attrs, func.span)
