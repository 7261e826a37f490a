"""Mutants of synchronized programs: one wait loosened or removed, one barrier dropped."""

from __future__ import annotations

from typing import Iterator

from tilepipe.ir import (
    AsyncWaitQueue, Call, Evaluate, IRMutator, PrimFunc, SeqStmt, Stmt, post_order_visit, seq,
)


def waits(func: PrimFunc) -> list[AsyncWaitQueue]:
    found: list[AsyncWaitQueue] = []
    post_order_visit(func.body, lambda node: found.append(node)
                     if isinstance(node, AsyncWaitQueue) else None)
    return found


def is_barrier(node) -> bool:
    return (isinstance(node, Evaluate) and isinstance(node.value, Call)
            and node.value.op == "tvm_storage_sync")


def barriers(func: PrimFunc) -> list[Evaluate]:
    found: list[Evaluate] = []
    post_order_visit(func.body, lambda node: found.append(node) if is_barrier(node) else None)
    return found


class _Replace(IRMutator):
    """Replaces one statement (by identity); ``None`` removes it from its sequence."""

    def __init__(self, target: Stmt, replacement: Stmt | None):
        self.target = target
        self.replacement = replacement

    def visit(self, node):
        if node is self.target and self.replacement is not None:
            return self.replacement
        return super().visit(node)

    def visit_seq_stmt(self, node: SeqStmt) -> Stmt:
        kept = [self.visit(stmt) for stmt in node.stmts
                if not (stmt is self.target and self.replacement is None)]
        return seq(*kept)


def replace(func: PrimFunc, target: Stmt, replacement: Stmt | None) -> PrimFunc:
    return func.with_body(_Replace(target, replacement).visit(func.body))


def loosened(func: PrimFunc, wait: AsyncWaitQueue) -> PrimFunc:
    """``wait`` allowing one more group in flight."""
    return replace(func, wait, AsyncWaitQueue(wait.queue, wait.in_flight + 1, wait.body,
                                              wait.span))


def tightened(func: PrimFunc, wait: AsyncWaitQueue) -> PrimFunc:
    return replace(func, wait, AsyncWaitQueue(wait.queue, wait.in_flight - 1, wait.body,
                                              wait.span))


def without_wait(func: PrimFunc, wait: AsyncWaitQueue) -> PrimFunc:
    return replace(func, wait, wait.body)


def without_barrier(func: PrimFunc, barrier: Evaluate) -> PrimFunc:
    return replace(func, barrier, None)


def wait_mutants(func: PrimFunc) -> Iterator[tuple[str, PrimFunc]]:
    """Every wait loosened by one, and every wait removed."""
    for wait in waits(func):
        line = wait.span.line if wait.span is not None else "?"
        yield f"wait at line {line} + 1", loosened(func, wait)
        yield f"wait at line {line} removed", without_wait(func, wait)
