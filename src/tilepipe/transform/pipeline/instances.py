"""Statement instances: a statement of the pipelined loop for one iteration.

An instance is the statement with the loop variable replaced by the iteration it works on,
a leading ring index on every access to a multi-versioned buffer, and the integer
arithmetic that a constant iteration makes constant folded as TVM's operators fold it, so
that outputs read like the seeds'. Each statement is compiled once into a builder that
rebuilds only what mentions the loop variable or a ring buffer; :mod:`.emit` builds one
instance per section and stage.
"""

from __future__ import annotations

import operator

from typing import Any, Callable, Mapping, Sequence

from ...ir import (
    BINARY_OPS, Add, AsyncCommitQueue, AsyncScope, AsyncWaitQueue, AttrStmt, BinaryOp, Block,
    Buffer, BufferLoad, BufferRegion, BufferStore, Call, Cast, Evaluate, FloatImm, FloorDiv,
    FloorMod, For, IfThenElse, IntImm, Mul, Not, PrimExpr, Range, Select, SeqStmt, Stmt,
    StringImm, Sub, Var,
)

Build = Callable[[PrimExpr], Any]  # the loop variable's replacement -> a node's instance


class InstanceCompiler:
    """Turns each statement of a loop into a function from the loop variable's replacement
    to the statement's instance: every access to a multi-versioned buffer (buffer arguments
    of opaque calls included) gets the leading ring index ``loop_var % versions``, the loop
    variable is replaced, and integer arithmetic that the replacement made constant is
    folded (``15 % 2`` is ``1`` in a one-slot section).

    One walk per statement finds the subtrees that mention the loop variable or a ring
    buffer and makes a builder for each of them (None for every other subtree), so that
    an instance rebuilds only those and shares the rest as it is. The ring index of one
    version count is built once per replacement and shared by every access."""

    def __init__(self, loop_var: Var, remap: Mapping[Buffer, tuple[Buffer, int]]):
        self.loop_var = loop_var
        self.remap = remap
        self.ring_indices: dict[int, Build] = {}  # version count -> its ring index

    def statement(self, stmt: Stmt) -> Callable[[PrimExpr], Stmt]:
        build = self.compile(stmt)
        return (lambda _: stmt) if build is None else build

    def compile(self, node: Any) -> Build | None:
        """The builder of ``node``'s instances, None when every instance is ``node``."""
        kind = type(node)
        if kind in _LEAVES:  # half of all nodes: answered without a dispatch
            return _replacement if node is self.loop_var else None
        method = self._METHODS.get(kind)
        if method is None:
            raise TypeError(f"no instances of {kind.__name__}")
        return method(self, node)

    def _tuple(self, nodes: Sequence[Any]) -> Callable[[PrimExpr], tuple] | None:
        """The builder of a tuple of nodes (indices, regions, statements): only the
        elements that change are rebuilt."""
        compile = self.compile
        changed = []
        for place, node in enumerate(nodes):
            build = compile(node)
            if build is not None:
                changed.append((place, build))
        if not changed:
            return None
        if len(changed) == len(nodes):
            builds = [build for _, build in changed]
            return lambda r: tuple([build(r) for build in builds])
        kept = list(nodes)

        def build_tuple(r: PrimExpr) -> tuple:
            items = kept.copy()
            for place, build in changed:
                items[place] = build(r)
            return tuple(items)
        return build_tuple

    def _ring_index(self, versions: int) -> Build:
        """The builder of ``loop_var % versions``, one for every access."""
        index = self.ring_indices.get(versions)
        if index is None:
            index = self.ring_indices[versions] = _RingIndex(
                IntImm(versions, self.loop_var.dtype))
        return index

    # Expressions ------------------------------------------------------------------------
    def _binary(self, node: BinaryOp) -> Build | None:
        a, b = self.compile(node.a), self.compile(node.b)
        kind, span = type(node), node.span
        if b is None:
            if a is None:
                return None
            right = node.b
            return lambda r: _fold(kind, a(r), right, span)
        if a is None:
            left = node.a
            return lambda r: _fold(kind, left, b(r), span)
        return lambda r: _fold(kind, a(r), b(r), span)

    def _not(self, node: Not) -> Build | None:
        a = self.compile(node.a)
        span = node.span
        return None if a is None else lambda r: Not(a(r), span)

    def _select(self, node: Select) -> Build | None:
        parts = self._tuple((node.condition, node.true_value, node.false_value))
        span = node.span
        return None if parts is None else lambda r: Select(*parts(r), span)

    def _cast(self, node: Cast) -> Build | None:
        value = self.compile(node.value)
        dtype, span = node.dtype, node.span
        return None if value is None else lambda r: Cast(dtype, value(r), span)

    def _access(self, buffer: Buffer, items: Sequence[Any], region: bool = False
                ) -> tuple[Buffer, Callable[[PrimExpr], tuple] | None]:
        """The buffer an access (indices, or the ranges of a region) goes to and the
        builder of its items, a ring buffer's leading ring index first; the builder is
        None when neither the buffer nor any item changes."""
        built = self._tuple(items)
        ring = self.remap.get(buffer)
        if ring is None:
            return buffer, built
        index = self._ring_index(ring[1])
        if region:
            point, one = index, IntImm(1)

            def index(r: PrimExpr) -> Range:  # a region's ring entry: its one slot
                return Range(point(r), one)
        if built is None:
            kept = tuple(items)
            return ring[0], lambda r: (index(r),) + kept
        return ring[0], lambda r: (index(r),) + built(r)

    def _buffer_load(self, node: BufferLoad) -> Build | None:
        buffer, indices = self._access(node.buffer, node.indices)
        span = node.span
        return None if indices is None else lambda r: BufferLoad(buffer, indices(r), span)

    def _call(self, node: Call) -> Build | None:
        """An opaque call; a ring buffer it takes whole becomes the region of the whole
        buffer, which then gets the ring index like any other region."""
        dtype, op, span = node.dtype, node.op, node.span
        args = self._tuple([_whole(arg) if isinstance(arg, Buffer) and arg in self.remap
                            else arg for arg in node.args])
        return None if args is None else lambda r: Call(dtype, op, args(r), span)

    def _range(self, node: Range) -> Build | None:
        low, extent = self.compile(node.min), self.compile(node.extent)
        if low is None and extent is None:
            return None
        old_low, old_extent, span = node.min, node.extent, node.span
        return lambda r: Range(old_low if low is None else low(r),
                               old_extent if extent is None else extent(r), span)

    def _buffer_region(self, node: BufferRegion) -> Build | None:
        buffer, region = self._access(node.buffer, node.region, region=True)
        span = node.span
        return None if region is None else lambda r: BufferRegion(buffer, region(r), span)

    # Statements -------------------------------------------------------------------------
    def _buffer_store(self, node: BufferStore) -> Build | None:
        value = self.compile(node.value)
        buffer, indices = self._access(node.buffer, node.indices)
        if value is None and indices is None:
            return None
        old_value, kept, span = node.value, node.indices, node.span
        return lambda r: BufferStore(buffer, old_value if value is None else value(r),
                                     kept if indices is None else indices(r), span)

    def _evaluate(self, node: Evaluate) -> Build | None:
        value, span = self.compile(node.value), node.span
        return None if value is None else lambda r: Evaluate(value(r), span)

    def _seq_stmt(self, node: SeqStmt) -> Build | None:
        stmts, span = self._tuple(node.stmts), node.span
        return None if stmts is None else lambda r: SeqStmt(stmts(r), span)

    def _if_then_else(self, node: IfThenElse) -> Build | None:
        condition, then_case = self.compile(node.condition), self.compile(node.then_case)
        else_case = None if node.else_case is None else self.compile(node.else_case)
        if condition is None and then_case is None and else_case is None:
            return None
        return lambda r: IfThenElse(
            node.condition if condition is None else condition(r),
            node.then_case if then_case is None else then_case(r),
            node.else_case if else_case is None else else_case(r), node.span)

    def _for(self, node: For) -> Build | None:
        low, extent, body = (self.compile(node.min), self.compile(node.extent),
                             self.compile(node.body))
        if low is None and extent is None and body is None:
            return None
        return lambda r: For(node.loop_var, node.min if low is None else low(r),
                             node.extent if extent is None else extent(r), node.kind,
                             node.body if body is None else body(r), node.thread_tag,
                             node.annotations, node.span)

    def _block(self, node: Block) -> Build | None:
        reads, writes = self._tuple(node.reads), self._tuple(node.writes)
        predicate = None if node.predicate is None else self.compile(node.predicate)
        body = self.compile(node.body)
        if reads is None and writes is None and predicate is None and body is None:
            return None
        return lambda r: Block(
            node.name, node.body if body is None else body(r),
            node.reads if reads is None else reads(r),
            node.writes if writes is None else writes(r), node.alloc_buffers,
            node.predicate if predicate is None else predicate(r), node.annotations,
            node.span)

    def _attr_stmt(self, node: AttrStmt) -> Build | None:
        value = self.compile(node.value) if isinstance(node.value, PrimExpr) else None
        body = self.compile(node.body)
        if value is None and body is None:
            return None
        return lambda r: AttrStmt(node.node, node.key,
                                  node.value if value is None else value(r),
                                  node.body if body is None else body(r), node.span)

    def _async_scope(self, node: AsyncScope) -> Build | None:
        body, span = self.compile(node.body), node.span
        return None if body is None else lambda r: AsyncScope(body(r), span)

    def _async_commit_queue(self, node: AsyncCommitQueue) -> Build | None:
        body, queue, span = self.compile(node.body), node.queue, node.span
        return None if body is None else lambda r: AsyncCommitQueue(queue, body(r), span)

    def _async_wait_queue(self, node: AsyncWaitQueue) -> Build | None:
        in_flight, body = self.compile(node.in_flight), self.compile(node.body)
        if in_flight is None and body is None:
            return None
        return lambda r: AsyncWaitQueue(
            node.queue, node.in_flight if in_flight is None else in_flight(r),
            node.body if body is None else body(r), node.span)

    _METHODS: dict[type, Callable[["InstanceCompiler", Any], Build | None]] = {
        Not: _not, Select: _select, Cast: _cast, BufferLoad: _buffer_load, Call: _call,
        Range: _range, BufferRegion: _buffer_region, BufferStore: _buffer_store,
        Evaluate: _evaluate, SeqStmt: _seq_stmt, IfThenElse: _if_then_else, For: _for,
        Block: _block, AttrStmt: _attr_stmt, AsyncScope: _async_scope,
        AsyncCommitQueue: _async_commit_queue, AsyncWaitQueue: _async_wait_queue,
        **dict.fromkeys(BINARY_OPS, _binary),
    }


_LEAVES = frozenset((Var, IntImm, FloatImm, StringImm, Buffer))


def _whole(buffer: Buffer) -> BufferRegion:
    return BufferRegion(buffer, tuple(Range(IntImm(0), extent) for extent in buffer.shape))


def _replacement(replacement: PrimExpr) -> PrimExpr:
    """The instance of the loop variable."""
    return replacement


class _RingIndex:
    """The ring index ``replacement % versions``, built once for consecutive instances
    with the same replacement, which every access of one statement (and the statements
    of one stage) share."""

    def __init__(self, versions: IntImm):
        self.versions = versions
        self.replacement: PrimExpr | None = None
        self.index: PrimExpr | None = None

    def __call__(self, replacement: PrimExpr) -> PrimExpr:
        if replacement is not self.replacement:
            self.replacement = replacement
            self.index = _fold(FloorMod, replacement, self.versions, None)
        return self.index


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
