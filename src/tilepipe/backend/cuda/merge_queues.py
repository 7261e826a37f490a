"""Merge the abstract async queues into the one hardware ``cp.async`` queue.

``wait(q, N)`` needs every group of queue q but the N most recent to have completed; on
one merged queue the same needed group is passed by every group of *any* queue committed
after it, so the merged count is N plus the groups of other queues committed after the
needed group of q. That number is found by walking the commits backwards from the wait
over a skeleton of the program (commits, loops with their trip-count bounds, statements
that may or may not run), over every possible history; the wait takes the minimum (a
smaller count is always safe, and the minimum over executions is the exact one). Unrolled
loops are walked one iteration at a time, so that their predicates are decided; commits
under a condition that still cannot be decided are counted both ways. The function's last
wait (outside loops) completes every group: nothing may be in flight at the end. Two waits in a row (a
consumer of several queues) become one, with the smaller count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...arith import Analyzer
from ...errors import LoweringError
from ...ir import (
    AsyncCommitQueue, AsyncWaitQueue, Block, For, ForKind, IfThenElse, IntImm, IRMutator,
    Not, PrimFunc, Range, SeqStmt, Stmt, as_int, post_order_visit,
)


def merge_queues(func: PrimFunc) -> PrimFunc:
    """``func`` with every commit and wait on queue 0 and counts adjusted."""
    queues: set[int] = set()

    def collect(node) -> None:
        if isinstance(node, (AsyncCommitQueue, AsyncWaitQueue)):
            queues.add(node.queue)

    post_order_visit(func.body, collect)
    if not queues or queues == {0}:
        return func
    counts: dict[AsyncWaitQueue, int] = {}
    if len(queues) > 1:
        skeleton = _SkeletonBuilder()
        skeleton.build(func.body)
        for wait, paths in skeleton.wait_paths.items():
            counts[wait] = min(_merged_count(wait, path) for path in paths)
        last = list(skeleton.wait_paths)[-1] if skeleton.wait_paths else None
        if last is not None and not any(isinstance(owner, _Loop) for path in
                                         skeleton.wait_paths[last] for _, _, owner in path):
            counts[last] = 0  # nothing may be in flight when the function ends
    return func.with_body(_Renumber(counts).visit(func.body))


class _Renumber(IRMutator):
    def __init__(self, counts: dict[AsyncWaitQueue, int]):
        self.counts = counts

    def visit_async_commit_queue(self, node: AsyncCommitQueue) -> Stmt:
        return AsyncCommitQueue(0, self.visit(node.body), node.span)

    def visit_async_wait_queue(self, node: AsyncWaitQueue) -> Stmt:
        count = self.counts.get(node)
        in_flight = node.in_flight if count is None else IntImm(count)
        body = self.visit(node.body)
        if isinstance(body, AsyncWaitQueue):  # two waits in a row: the stricter one suffices
            inner = as_int(body.in_flight)
            if inner is not None and as_int(in_flight) is not None:
                return AsyncWaitQueue(0, IntImm(min(inner, as_int(in_flight))), body.body,
                                      node.span)
        return AsyncWaitQueue(0, in_flight, body, node.span)


# Unrolled loops up to this extent are walked one iteration at a time.
MAX_UNROLLED = 64


def _synchronizes(stmt: Stmt) -> bool:
    found = []
    post_order_visit(stmt, lambda node: found.append(node)
                     if isinstance(node, (AsyncCommitQueue, AsyncWaitQueue)) else None)
    return bool(found)


# The skeleton: what matters for counting groups --------------------------------------------
@dataclass(eq=False)
class _Commit:
    queue: int


@dataclass(eq=False)
class _Loop:
    """A loop run between ``low`` and ``high`` (None: unbounded) times."""

    low: int
    high: int | None
    body: list = field(default_factory=list)


@dataclass(eq=False)
class _Maybe:
    """Statements that may or may not run (a condition that cannot be decided)."""

    body: list = field(default_factory=list)


@dataclass(eq=False)
class _Branch:
    then_body: list = field(default_factory=list)
    else_body: list = field(default_factory=list)


class _SkeletonBuilder:
    """Builds the skeleton and, for each wait, its path: per enclosing level the list that
    holds it, its position there, and the construct that list belongs to."""

    def __init__(self):
        self.analyzer = Analyzer()
        self.root: list = []
        self.wait_paths: dict[AsyncWaitQueue, list[list[tuple[list, int, object]]]] = {}
        self._stack: list[tuple[list, object]] = []

    def build(self, body: Stmt) -> None:
        self._stack = [(self.root, None)]
        self._visit(body)

    def _items(self) -> list:
        return self._stack[-1][0]

    def _nested(self, items: list, owner, stmt: Stmt) -> None:
        self._stack.append((items, owner))
        self._visit(stmt)
        self._stack.pop()

    def _visit(self, stmt: Stmt) -> None:
        if isinstance(stmt, SeqStmt):
            for child in stmt.stmts:
                self._visit(child)
        elif isinstance(stmt, AsyncCommitQueue):
            self._visit(stmt.body)
            self._items().append(_Commit(stmt.queue))
        elif isinstance(stmt, AsyncWaitQueue):
            path = [(items, len(items), owner) for items, owner in self._stack]
            self.wait_paths.setdefault(stmt, []).append(path)
            self._visit(stmt.body)
        elif isinstance(stmt, For):
            self.analyzer.bind(stmt.loop_var, Range(stmt.min, stmt.extent))
            if stmt.kind is ForKind.THREAD_BINDING:
                self._visit(stmt.body)
                return
            low, high = self.analyzer.const_int_bound(stmt.extent)
            if (stmt.kind is ForKind.UNROLLED and low == high and low <= MAX_UNROLLED
                    and _synchronizes(stmt.body)):
                # One copy per iteration, so that conditions on the variable are decided.
                start = self.analyzer.simplify(stmt.min)
                for iteration in range(low):
                    self.analyzer.bind(stmt.loop_var, Range(start + iteration, IntImm(1)))
                    self._visit(stmt.body)
                return
            loop = _Loop(max(low or 0, 0), None if high is None else max(high, 0))
            self._nested(loop.body, loop, stmt.body)
            self._items().append(loop)
        elif isinstance(stmt, Block):
            self._guarded(stmt.predicate, stmt.body)
        elif isinstance(stmt, IfThenElse):
            if stmt.else_case is None:
                self._guarded(stmt.condition, stmt.then_case)
            elif self.analyzer.can_prove(stmt.condition):
                self._visit(stmt.then_case)
            elif self.analyzer.can_prove(Not(stmt.condition)):
                self._visit(stmt.else_case)
            else:
                branch = _Branch()
                self._nested(branch.then_body, branch, stmt.then_case)
                self._nested(branch.else_body, branch, stmt.else_case)
                self._items().append(branch)
        elif hasattr(stmt, "body"):
            self._visit(stmt.body)

    def _guarded(self, condition, body: Stmt) -> None:
        if condition is None or self.analyzer.can_prove(condition):
            self._visit(body)
        elif not self.analyzer.can_prove(Not(condition)):
            maybe = _Maybe()
            self._nested(maybe.body, maybe, body)
            self._items().append(maybe)


# The backward walk ---------------------------------------------------------------------------
class _Walk:
    """Histories of a wait on ``queue`` that keeps ``in_flight`` groups: states are
    ``(groups of queue passed, groups of other queues passed)``; ``best`` is the smallest
    merged count found so far."""

    def __init__(self, queue: int, in_flight: int):
        self.queue = queue
        self.in_flight = in_flight
        self.best: int | None = None

    def settle(self, value: int) -> None:
        self.best = value if self.best is None else min(self.best, value)

    def prune(self, states: set) -> set:
        if self.best is None:
            return states
        return {(own, other) for own, other in states if own + other < self.best}

    def back(self, items: list, states: set) -> set:
        for item in reversed(items):
            if not states:
                break
            states = self.prune(self.item(item, states))
        return states

    def item(self, item, states: set) -> set:
        if isinstance(item, _Commit):
            if item.queue != self.queue:
                return {(own, other + 1) for own, other in states}
            result = set()
            for own, other in states:
                if own == self.in_flight:
                    self.settle(other + own)
                else:
                    result.add((own + 1, other))
            return result
        if isinstance(item, _Maybe):
            return states | self.back(item.body, states)
        if isinstance(item, _Branch):
            return self.back(item.then_body, states) | self.back(item.else_body, states)
        if isinstance(item, _Loop):
            return self.loop(item, item.low, item.high, states)
        return states

    def loop(self, loop: _Loop, low: int, high: int | None, states: set) -> set:
        """The states after walking back over ``low``..``high`` whole iterations."""
        if not _commits(loop.body):
            return states
        result = set(states) if low == 0 else set()
        current = states
        limit = low + self.in_flight + 2
        iteration = 0
        while current and (high is None or iteration < high):
            iteration += 1
            current = self.back(loop.body, current)
            if iteration >= low:
                result |= current
            if iteration >= limit:
                for own, other in current:  # more iterations only add groups
                    self.settle(own + other)
                result -= current
                break
        return result


def _commits(items: list) -> bool:
    for item in items:
        if isinstance(item, _Commit):
            return True
        bodies = {_Loop: ("body",), _Maybe: ("body",), _Branch: ("then_body", "else_body")}
        for name in bodies.get(type(item), ()):
            if _commits(getattr(item, name)):
                return True
    return False


def _merged_count(wait: AsyncWaitQueue, path: list[tuple[list, int, object]]) -> int:
    in_flight = as_int(wait.in_flight)
    if in_flight is None:
        raise LoweringError(f"wait count {wait.in_flight!r} is not a constant (merge_queues "
                            "runs after unroll_waits)", wait.span)
    walk = _Walk(wait.queue, in_flight)
    states = {(0, 0)}
    for items, position, owner in reversed(path):
        states = walk.back(items[:position], states)
        if isinstance(owner, _Loop):
            previous = None if owner.high is None else max(owner.high - 1, 0)
            states = walk.loop(owner, 0, previous, states)
    for own, other in states:  # reached the start: nothing to wait for on this history
        walk.settle(own + other)
    return walk.best if walk.best is not None else in_flight
