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
    BINARY_OPS, Add, AsyncCommitQueue, AsyncScope, AsyncWaitQueue, AttrStmt, BinaryOp, Block,
    Buffer, BufferLoad, BufferRegion, BufferStore, Call, Cast, Evaluate, FloatImm, FloorDiv,
    FloorMod, For, IfThenElse, IntImm, Mul, Not, PrimExpr, Range, Select, SeqStmt, Stmt,
    StringImm, Sub, Var,
)


class InstanceBuilder:
    """Gives each statement of a loop a function from the loop variable's replacement to
    the statement's instance: every access to a multi-versioned buffer (buffer arguments
    of opaque calls included) gets the leading ring index ``loop_var % versions``, the loop
    variable is replaced, and integer arithmetic that the replacement made constant is
    folded (``15 % 2`` is ``1`` in a one-slot section).

    An instance is one walk of the statement that rebuilds only the nodes that mention
    the loop variable or a ring buffer and shares the rest as they are. A statement has
    only a few instances (one per section it runs in), so walking it for each costs less
    than compiling it into builders first. Constants and variables, half of all nodes,
    are answered where an operand or a tuple item meets them; every other node's method
    is looked up in ``_METHODS`` by its type there, one call per node. The ring index of
    one version count is built once per replacement and shared by every access."""

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
        return _METHODS[type(node)](self, node)

    def _tuple(self, nodes: tuple) -> tuple:
        """A tuple of nodes (indices, regions, statements), itself when no element
        changes."""
        loop_var, replacement = self.loop_var, self.replacement
        items = []
        changed = False
        for node in nodes:
            item = replacement if node is loop_var else node if type(node) in _LEAVES \
                else _METHODS[type(node)](self, node)
            items.append(item)
            if item is not node:
                changed = True
        return tuple(items) if changed else nodes

    def _access(self, buffer: Buffer, items: tuple, region: bool = False
                ) -> tuple[Buffer, tuple]:
        """The buffer an access (indices, or the ranges of a region) goes to and its
        items, a ring buffer's leading ring index first; ``items`` itself when neither
        the buffer nor any item changes."""
        built = self._tuple(items)
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

    # Leaves -----------------------------------------------------------------------------
    def _variable(self, node: Var) -> PrimExpr:
        return self.replacement if node is self.loop_var else node

    def _leaf(self, node: Any) -> Any:
        """A constant or a buffer, which no instance changes (a ring buffer is replaced
        by the access that names it)."""
        return node

    # Expressions ------------------------------------------------------------------------
    def _binary(self, node: BinaryOp) -> PrimExpr:
        a, b = node.a, node.b
        loop_var = self.loop_var
        new_a = self.replacement if a is loop_var else a if type(a) in _LEAVES \
            else _METHODS[type(a)](self, a)
        new_b = self.replacement if b is loop_var else b if type(b) in _LEAVES \
            else _METHODS[type(b)](self, b)
        if new_a is a and new_b is b:
            return node
        if type(new_a) is not IntImm:  # nothing to fold
            return type(node)(new_a, new_b, node.span)
        return _fold(type(node), new_a, new_b, node.span)

    def _not(self, node: Not) -> PrimExpr:
        a = _METHODS[type(node.a)](self, node.a)
        return node if a is node.a else Not(a, node.span)

    def _select(self, node: Select) -> PrimExpr:
        parts = (node.condition, node.true_value, node.false_value)
        built = self._tuple(parts)
        return node if built is parts else Select(*built, node.span)

    def _cast(self, node: Cast) -> PrimExpr:
        value = _METHODS[type(node.value)](self, node.value)
        return node if value is node.value else Cast(node.dtype, value, node.span)

    def _buffer_load(self, node: BufferLoad) -> PrimExpr:
        buffer, indices = self._access(node.buffer, node.indices)
        return node if indices is node.indices else BufferLoad(buffer, indices, node.span)

    def _call(self, node: Call) -> PrimExpr:
        """An opaque call; a ring buffer it takes whole becomes the region of the whole
        buffer, which then gets the ring index like any other region."""
        remap, args = self.remap, node.args
        if any(isinstance(arg, Buffer) and arg in remap for arg in args):
            args = tuple([_whole(arg) if isinstance(arg, Buffer) and arg in remap else arg
                          for arg in args])
        built = self._tuple(args)
        return node if built is node.args else Call(node.dtype, node.op, built, node.span)

    def _range(self, node: Range) -> Range:
        low, extent = node.min, node.extent
        new_low, new_extent = _METHODS[type(low)](self, low), _METHODS[type(extent)](self, extent)
        if new_low is low and new_extent is extent:
            return node
        return Range(new_low, new_extent, node.span)

    def _buffer_region(self, node: BufferRegion) -> BufferRegion:
        buffer, region = self._access(node.buffer, node.region, region=True)
        return node if region is node.region else BufferRegion(buffer, region, node.span)

    # Statements -------------------------------------------------------------------------
    def _buffer_store(self, node: BufferStore) -> Stmt:
        value = _METHODS[type(node.value)](self, node.value)
        buffer, indices = self._access(node.buffer, node.indices)
        if value is node.value and indices is node.indices:
            return node
        return BufferStore(buffer, value, indices, node.span)

    def _evaluate(self, node: Evaluate) -> Stmt:
        value = _METHODS[type(node.value)](self, node.value)
        return node if value is node.value else Evaluate(value, node.span)

    def _seq_stmt(self, node: SeqStmt) -> Stmt:
        stmts = self._tuple(node.stmts)
        return node if stmts is node.stmts else SeqStmt(stmts, node.span)

    def _if_then_else(self, node: IfThenElse) -> Stmt:
        condition, then_case, else_case = node.condition, node.then_case, node.else_case
        new_condition = _METHODS[type(condition)](self, condition)
        new_then = _METHODS[type(then_case)](self, then_case)
        new_else = None if else_case is None else _METHODS[type(else_case)](self, else_case)
        if new_condition is condition and new_then is then_case and new_else is else_case:
            return node
        return IfThenElse(new_condition, new_then, new_else, node.span)

    def _for(self, node: For) -> Stmt:
        low, extent, body = node.min, node.extent, node.body
        new_low, new_extent = _METHODS[type(low)](self, low), _METHODS[type(extent)](self, extent)
        new_body = _METHODS[type(body)](self, body)
        if new_low is low and new_extent is extent and new_body is body:
            return node
        return For(node.loop_var, new_low, new_extent, node.kind, new_body, node.thread_tag,
                   node.annotations, node.span)

    def _block(self, node: Block) -> Stmt:
        reads, writes = self._tuple(node.reads), self._tuple(node.writes)
        predicate, body = node.predicate, node.body
        new_predicate = None if predicate is None else _METHODS[type(predicate)](self, predicate)
        new_body = _METHODS[type(body)](self, body)
        if reads is node.reads and writes is node.writes and new_predicate is predicate \
                and new_body is body:
            return node
        return Block(node.name, new_body, reads, writes, node.alloc_buffers, new_predicate,
                     node.annotations, node.span)

    def _attr_stmt(self, node: AttrStmt) -> Stmt:
        value, body = node.value, node.body
        new_value = _METHODS[type(value)](self, value) if isinstance(value, PrimExpr) else value
        new_body = _METHODS[type(body)](self, body)
        if new_value is value and new_body is body:
            return node
        return AttrStmt(node.node, node.key, new_value, new_body, node.span)

    def _async_scope(self, node: AsyncScope) -> Stmt:
        body = _METHODS[type(node.body)](self, node.body)
        return node if body is node.body else AsyncScope(body, node.span)

    def _async_commit_queue(self, node: AsyncCommitQueue) -> Stmt:
        body = _METHODS[type(node.body)](self, node.body)
        return node if body is node.body else AsyncCommitQueue(node.queue, body, node.span)

    def _async_wait_queue(self, node: AsyncWaitQueue) -> Stmt:
        in_flight, body = node.in_flight, node.body
        new_in_flight = _METHODS[type(in_flight)](self, in_flight)
        new_body = _METHODS[type(body)](self, body)
        if new_in_flight is in_flight and new_body is body:
            return node
        return AsyncWaitQueue(node.queue, new_in_flight, new_body, node.span)


_LEAVES = frozenset((Var, IntImm, FloatImm, StringImm, Buffer))


class _Methods(dict):
    """Node type -> the method of :class:`InstanceBuilder` that gives its instance."""

    def __missing__(self, kind: type):
        raise TypeError(f"no instances of {kind.__name__}")


_METHODS = _Methods({
    Var: InstanceBuilder._variable,
    **dict.fromkeys((IntImm, FloatImm, StringImm, Buffer), InstanceBuilder._leaf),
    **dict.fromkeys(BINARY_OPS, InstanceBuilder._binary),
    Not: InstanceBuilder._not, Select: InstanceBuilder._select,
    Cast: InstanceBuilder._cast, BufferLoad: InstanceBuilder._buffer_load,
    Call: InstanceBuilder._call, Range: InstanceBuilder._range,
    BufferRegion: InstanceBuilder._buffer_region,
    BufferStore: InstanceBuilder._buffer_store, Evaluate: InstanceBuilder._evaluate,
    SeqStmt: InstanceBuilder._seq_stmt, IfThenElse: InstanceBuilder._if_then_else,
    For: InstanceBuilder._for, Block: InstanceBuilder._block,
    AttrStmt: InstanceBuilder._attr_stmt, AsyncScope: InstanceBuilder._async_scope,
    AsyncCommitQueue: InstanceBuilder._async_commit_queue,
    AsyncWaitQueue: InstanceBuilder._async_wait_queue,
})


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
