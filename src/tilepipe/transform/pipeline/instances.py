"""Statement instances: a statement of the pipelined loop for one iteration.

An instance is the statement with the loop variable replaced by the iteration it works on,
a leading ring index on every access to a multi-versioned buffer, and the integer
arithmetic that a constant iteration makes constant folded as TVM's operators fold it, so
that outputs read like the seeds'. :mod:`.emit` builds one instance per section and stage.
"""

from __future__ import annotations

import operator

from functools import partial
from typing import Any, Callable, Mapping

from ...ir import (
    Add, BinaryOp, Buffer, BufferLoad, BufferRegion, BufferStore, Call, FloatImm, FloorDiv,
    FloorMod, IntImm, IRMutator, Mul, PrimExpr, Range, Stmt, StringImm, Sub, Var,
)


class InstanceBuilder(IRMutator):
    """Gives each statement of a loop a function from the loop variable's replacement to
    the statement's instance: every access to a multi-versioned buffer (buffer arguments
    of opaque calls included) gets the leading ring index ``loop_var % versions``, the loop
    variable is replaced, and integer arithmetic that the replacement made constant is
    folded (``15 % 2`` is ``1`` in a one-slot section).

    An instance is one walk of the statement by the mutator, which rebuilds only the
    nodes that mention the loop variable or a ring buffer and shares the rest. Index
    arithmetic and access indices, most of the nodes, answer constants and variables
    where they meet them instead of dispatching on each. The ring index of one version
    count is built once per replacement and shared by every access."""

    def __init__(self, loop_var: Var, remap: Mapping[Buffer, tuple[Buffer, int]]):
        self.loop_var = loop_var
        self.remap = remap
        self.replacement: PrimExpr | None = None  # of the instance being built
        self.ring_indices: dict[int, PrimExpr] = {}  # version count -> its ring index
        self.version_counts: dict[int, IntImm] = {}  # version count -> its constant

    def statement(self, stmt: Stmt) -> Callable[[PrimExpr], Stmt]:
        """The function from the loop variable's replacement to ``stmt``'s instance."""
        return partial(self.instance, stmt)

    def instance(self, node: Any, replacement: PrimExpr) -> Any:
        """``node`` for the iteration ``replacement``."""
        if replacement is not self.replacement:
            self.replacement = replacement
            self.ring_indices = {}
        return self.visit(node)

    def _items(self, nodes: tuple) -> tuple:
        """The instances of a tuple of indices or ranges; ``nodes`` itself when none
        changes."""
        loop_var, replacement = self.loop_var, self.replacement
        items = []
        changed = False
        for node in nodes:
            item = replacement if node is loop_var else node if type(node) in _LEAVES \
                else self.visit(node)
            items.append(item)
            if item is not node:
                changed = True
        return tuple(items) if changed else nodes

    def _access(self, buffer: Buffer, items: tuple, region: bool = False
                ) -> tuple[Buffer, tuple]:
        """The buffer an access (indices, or the ranges of a region) goes to and its
        items, a ring buffer's leading ring index first; ``items`` itself when neither
        the buffer nor any item changes."""
        built = self._items(items)
        ring = self.remap.get(buffer)
        if ring is None:
            return buffer, built
        versions = ring[1]
        index = self.ring_indices.get(versions)
        if index is None:  # the first access of this version count for this replacement
            count = self.version_counts.get(versions)
            if count is None:
                count = self.version_counts[versions] = IntImm(versions, self.loop_var.dtype)
            index = self.ring_indices[versions] = _fold(FloorMod, self.replacement, count, None)
        if region:  # a region's ring entry: its one slot
            index = Range(index, IntImm(1))
        return ring[0], (index,) + built

    # The nodes whose instances differ from a plain rebuild ---------------------------------
    def visit_var(self, node: Var) -> PrimExpr:
        return self.replacement if node is self.loop_var else node

    def visit_binary_op(self, node: BinaryOp) -> PrimExpr:
        a, b = node.a, node.b
        loop_var = self.loop_var
        new_a = self.replacement if a is loop_var else a if type(a) in _LEAVES else self.visit(a)
        new_b = self.replacement if b is loop_var else b if type(b) in _LEAVES else self.visit(b)
        if new_a is a and new_b is b:
            return node
        if type(new_a) is not IntImm:  # nothing to fold
            return type(node)(new_a, new_b, node.span)
        return _fold(type(node), new_a, new_b, node.span)

    def visit_buffer_load(self, node: BufferLoad) -> PrimExpr:
        buffer, indices = self._access(node.buffer, node.indices)
        return node if indices is node.indices else BufferLoad(buffer, indices, node.span)

    def visit_buffer_region(self, node: BufferRegion) -> BufferRegion:
        buffer, region = self._access(node.buffer, node.region, region=True)
        return node if region is node.region else BufferRegion(buffer, region, node.span)

    def visit_buffer_store(self, node: BufferStore) -> Stmt:
        value = self.visit(node.value)
        buffer, indices = self._access(node.buffer, node.indices)
        if value is node.value and indices is node.indices:
            return node
        return BufferStore(buffer, value, indices, node.span)

    def visit_call(self, node: Call) -> PrimExpr:
        """An opaque call; a ring buffer it takes whole becomes the region of the whole
        buffer, which then gets the ring index like any other region."""
        remap, args = self.remap, node.args
        if any(isinstance(arg, Buffer) and arg in remap for arg in args):
            args = tuple([_whole(arg) if isinstance(arg, Buffer) and arg in remap else arg
                          for arg in args])
        built = self._items(args)
        return node if built is node.args else Call(node.dtype, node.op, built, node.span)


_LEAVES = frozenset((Var, IntImm, FloatImm, StringImm, Buffer))


def _whole(buffer: Buffer) -> BufferRegion:
    return BufferRegion(buffer, tuple(Range(IntImm(0), extent) for extent in buffer.shape))


_FOLD = {Add: operator.add, Sub: operator.sub, Mul: operator.mul,
         FloorDiv: operator.floordiv, FloorMod: operator.mod}


def _fold(kind: type[BinaryOp], a: PrimExpr, b: PrimExpr, span) -> PrimExpr:
    """``kind(a, b)``, folded as TVM's operators do where the replacement made it
    constant: integer arithmetic of two constants, and ``0 + b``."""
    if isinstance(a, IntImm):
        if kind is Add and a.value == 0 and a.dtype == b.dtype:
            return b
        fold = _FOLD.get(kind)
        if fold is not None and isinstance(b, IntImm) and a.dtype == b.dtype \
                and a.dtype != "bool" and not (kind in (FloorDiv, FloorMod) and b.value == 0):
            return IntImm(fold(a.value, b.value), a.dtype)
    return kind(a, b, span)
