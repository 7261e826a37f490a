"""Statement nodes, the asynchronous-synchronization nodes and :class:`PrimFunc`.

Annotations are plain dicts from string keys to ints, floats, strings, expressions or
tuples of those; they are never mutated after construction (build a new node instead).
"""

from __future__ import annotations

import enum
from dataclasses import field
from typing import Any, Mapping

from ..errors import Span
from .buffer import Buffer, BufferRegion
from .expr import PrimExpr, Var
from .node import Node, node


class Stmt(Node):
    """Base of statements."""

    __slots__ = ()

    def __repr__(self) -> str:
        from .printer import stmt_to_str

        return stmt_to_str(self)


@node
class BufferStore(Stmt):
    buffer: Buffer
    value: PrimExpr
    indices: tuple[PrimExpr, ...]
    span: Span | None = field(default=None, compare=False)


@node
class Evaluate(Stmt):
    """An expression run for its effect, usually an intrinsic call."""

    value: PrimExpr
    span: Span | None = field(default=None, compare=False)


@node
class SeqStmt(Stmt):
    stmts: tuple[Stmt, ...]
    span: Span | None = field(default=None, compare=False)


@node
class IfThenElse(Stmt):
    condition: PrimExpr
    then_case: Stmt
    else_case: Stmt | None = None
    span: Span | None = field(default=None, compare=False)


class ForKind(enum.Enum):
    SERIAL = "serial"
    UNROLLED = "unroll"
    VECTORIZED = "vectorized"
    THREAD_BINDING = "thread_binding"


@node
class For(Stmt):
    """``for loop_var in [min, min + extent)``; ``thread_tag`` names the bound thread
    axis (``"threadIdx.x"``, ``"blockIdx.y"``, ...) when ``kind`` is THREAD_BINDING."""

    loop_var: Var
    min: PrimExpr
    extent: PrimExpr
    kind: ForKind
    body: Stmt
    thread_tag: str | None = None
    annotations: Mapping[str, Any] = field(default_factory=dict)
    span: Span | None = field(default=None, compare=False)


@node
class Block(Stmt):
    """``with T.block(name)``: a scope that declares what it reads and writes,
    allocates buffers for its body and may be predicated by ``T.where``."""

    name: str
    body: Stmt
    reads: tuple[BufferRegion, ...] = ()
    writes: tuple[BufferRegion, ...] = ()
    alloc_buffers: tuple[Buffer, ...] = ()
    predicate: PrimExpr | None = None
    annotations: Mapping[str, Any] = field(default_factory=dict)
    span: Span | None = field(default=None, compare=False)


@node
class AttrStmt(Stmt):
    """``with T.attr(node, key, value)`` for keys without a node type of their own."""

    node: Any
    key: str
    value: Any
    body: Stmt
    span: Span | None = field(default=None, compare=False)


@node
class AsyncScope(Stmt):
    """``T.attr(0, "async_scope", 1)``: the body runs on an asynchronous unit."""

    body: Stmt
    span: Span | None = field(default=None, compare=False)


@node
class AsyncCommitQueue(Stmt):
    """``T.attr(0, "async_commit_queue_scope", queue)``: the async statements of the
    body form one group, committed to ``queue`` when the scope ends."""

    queue: int
    body: Stmt
    span: Span | None = field(default=None, compare=False)


@node
class AsyncWaitQueue(Stmt):
    """``T.attr(0, "async_wait_queue_scope", queue)`` +
    ``T.attr(0, "async_wait_inflight_count", in_flight)``: before the body, block until
    at most ``in_flight`` most recently committed groups of ``queue`` are in flight."""

    queue: int
    in_flight: PrimExpr
    body: Stmt
    span: Span | None = field(default=None, compare=False)


@node
class PrimFunc(Node):
    """A function: parameters are buffers or scalar variables, in order.

    Size variables that appear in buffer shapes but are not parameters are the
    function's free sizes (bound with ``--dim`` or :func:`bind_params`).
    """

    name: str
    params: tuple[Buffer | Var, ...]
    body: Stmt
    attrs: Mapping[str, Any] = field(default_factory=dict)
    span: Span | None = field(default=None, compare=False)

    def script(self) -> str:
        """The program in the seeds' TVMScript notation (parses back to an equal one)."""
        from .printer import script

        return script(self)

    @property
    def buffer_params(self) -> tuple[Buffer, ...]:
        return tuple(param for param in self.params if isinstance(param, Buffer))

    @property
    def scalar_params(self) -> tuple[Var, ...]:
        return tuple(param for param in self.params if isinstance(param, Var))

    def with_body(self, body: Stmt) -> "PrimFunc":
        return PrimFunc(self.name, self.params, body, self.attrs, self.span)

    def __repr__(self) -> str:
        return self.script()


def seq(*stmts: Stmt) -> Stmt:
    """A sequence, flattened; a single statement stands alone."""
    flat: list[Stmt] = []
    for stmt in stmts:
        if stmt is None:
            continue
        if isinstance(stmt, SeqStmt):
            flat.extend(stmt.stmts)
        else:
            flat.append(stmt)
    if len(flat) == 1:
        return flat[0]
    return SeqStmt(tuple(flat))
