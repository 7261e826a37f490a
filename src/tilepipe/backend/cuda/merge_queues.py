"""Merge the abstract async queues into the one hardware ``cp.async`` queue.

``wait(q, N)`` needs every group of queue q but the N most recent to have completed; on
one merged queue the same needed group is passed by every group of *any* queue committed
after it, so the merged count is N plus the groups of other queues committed after the
needed group of q. Merged, a wait also holds back the groups of the other queues: a group
of another queue that an earlier wait completed and that the statement under this wait
touches (same buffer, one of them writing, not provably other elements) must count as
needed too. Elements are told apart by constant indices only, so inside a loop a ring
buffer of another queue can make a merged count smaller than the largest safe one (safe,
not exact); the straight-line prologue and epilogue are exact.

These numbers are found by walking the commits backwards from the wait over a skeleton
of the program (commits, waits, loops with their trip-count bounds, statements that may
or may not run), over every possible history; the wait takes the minimum (a smaller count
is always safe, and the minimum over executions is the exact one). Unrolled loops are
walked one iteration at a time, so that their predicates are decided; commits under a
condition that still cannot be decided are counted both ways. A wait after which the
function may end before another wait completes every group (nothing may be in flight at
the end). Two waits in a row (a consumer of several queues) become one, with the smaller
count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...arith import Analyzer
from ...errors import LoweringError
from ...ir import (
    AsyncCommitQueue, AsyncWaitQueue, Block, Buffer, BufferLoad, BufferRegion, BufferStore, Call,
    Evaluate, For, ForKind, IfThenElse, IntImm, IRMutator, Not, PrimFunc, Range, SeqStmt, Stmt,
    as_int, post_order_visit,
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
        horizon = 2 + max((as_int(wait.in_flight) or 0) for wait in skeleton.wait_paths)
        for wait, paths in skeleton.wait_paths.items():
            counts[wait] = min(_merged_count(wait, path, queues, horizon) for path in paths)
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
    """A group committed to ``queue``; ``accesses`` are its ``(buffer, is_write, indices)``."""

    queue: int
    accesses: frozenset


@dataclass(eq=False)
class _WaitMark:
    queue: int
    in_flight: int | None


@dataclass(eq=False)
class _Accesses:
    """A statement's ``(buffer, is_write, indices)`` accesses."""

    accesses: frozenset


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
            self._items().append(_Commit(stmt.queue, buffer_accesses(stmt.body)))
        elif isinstance(stmt, AsyncWaitQueue):
            path = [(items, len(items), owner) for items, owner in self._stack]
            self.wait_paths.setdefault(stmt, []).append(path)
            self._items().append(_WaitMark(stmt.queue, as_int(stmt.in_flight)))
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
        elif isinstance(stmt, (BufferStore, Evaluate)):
            self._items().append(_Accesses(buffer_accesses(stmt)))
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
    """Histories that lead to a wait, walked backwards: which groups must be complete there.

    It looks for the newest group of ``queue`` that is complete and ``conflicts``: first
    ``skip`` groups of that queue are passed (the ones allowed in flight; None until a
    wait on the queue is met when ``follow_waits``). A state is ``(skip, passed)`` with
    ``passed`` the groups of every queue walked over; the group found settles the merged
    count at ``passed``. ``best`` is the smallest settled count.
    """

    def __init__(self, queue: int, conflicts, follow_waits: bool, horizon: int):
        self.queue = queue
        self.conflicts = conflicts
        self.follow_waits = follow_waits
        self.horizon = horizon
        self.best: int | None = None

    def settle(self, value: int) -> None:
        self.best = value if self.best is None else min(self.best, value)

    def back(self, items: list, states: set) -> set:
        for item in reversed(items):
            if not states:
                break
            states = self.item(item, states)
            if self.best is not None:
                states = {(skip, passed) for skip, passed in states if passed < self.best}
        return states

    def item(self, item, states: set) -> set:
        if isinstance(item, _Commit):
            result = set()
            for skip, passed in states:
                if item.queue != self.queue or skip is None:
                    result.add((skip, passed + 1))
                elif skip > 0:
                    result.add((skip - 1, passed + 1))
                elif self.conflicts(item):
                    self.settle(passed)
                else:
                    result.add((0, passed + 1))
            return result
        if isinstance(item, _WaitMark):
            if not self.follow_waits or item.queue != self.queue:
                return states
            count = item.in_flight if item.in_flight is not None else 0
            return {(count if skip is None else min(skip, count), passed)
                    for skip, passed in states}
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
        iteration = 0
        while current and (high is None or iteration < high):
            iteration += 1
            current = self.back(loop.body, current)
            if iteration >= low:
                result |= current
            if iteration >= low + self.horizon:
                # more iterations only pass more groups: what is left is a lower bound
                self.unresolved(current)
                result -= current
                break
        return result

    def unresolved(self, states: set) -> None:
        """States that reach the start (or the horizon) without finding the group: for the
        waited queue the wait then holds everything back, no constraint otherwise."""
        if not self.follow_waits:
            for _, passed in states:
                self.settle(passed)


def _commits(items: list) -> bool:
    for item in items:
        if isinstance(item, _Commit):
            return True
        bodies = {_Loop: ("body",), _Maybe: ("body",), _Branch: ("then_body", "else_body")}
        for name in bodies.get(type(item), ()):
            if _commits(getattr(item, name)):
                return True
    return False


def _walk(walk: _Walk, start: tuple, path: list[tuple[list, int, object]]) -> int | None:
    states = {start}
    for items, position, owner in reversed(path):
        states = walk.back(items[:position], states)
        if isinstance(owner, _Loop):
            previous = None if owner.high is None else max(owner.high - 1, 0)
            states = walk.loop(owner, 0, previous, states)
    walk.unresolved(states)
    return walk.best


class _Window:
    """The accesses a wait guards: those made after it and before the next wait, on any
    path forward; ``reaches_end`` when some path meets the end of the function first."""

    def __init__(self, path: list[tuple[list, int, object]]):
        self.accesses: set = set()
        self.reaches_end = False
        for items, position, owner in reversed(path):
            if self.scan(items[position + 1:]):
                return
            if isinstance(owner, _Loop) and (owner.high is None or owner.high > 1):
                self.scan(owner.body)  # the next iteration, up to its first wait
        self.reaches_end = True

    def scan(self, items: list) -> bool:
        """Collect accesses up to the first wait; whether every path stops at one."""
        for item in items:
            if isinstance(item, _WaitMark):
                return True
            if isinstance(item, _Accesses):
                self.accesses |= item.accesses
            elif isinstance(item, _Commit):
                self.accesses |= item.accesses
            elif isinstance(item, _Loop):
                if self.scan(item.body) and item.low >= 1:
                    return True
            elif isinstance(item, _Maybe):
                self.scan(item.body)
            elif isinstance(item, _Branch):
                stops_then = self.scan(item.then_body)
                if self.scan(item.else_body) and stops_then:
                    return True
        return False


def _merged_count(wait: AsyncWaitQueue, path: list[tuple[list, int, object]], queues: set,
                  horizon: int) -> int:
    """The merged count of ``wait`` on one path: groups after the group it needs, and
    after any group of another queue that an earlier wait completed and that the accesses
    it guards touch (merged, nothing tells the queues apart any more); 0 when the end of
    the function follows before another wait (nothing may be in flight there)."""
    in_flight = as_int(wait.in_flight)
    if in_flight is None:
        raise LoweringError(f"wait count {wait.in_flight!r} is not a constant (merge_queues "
                            "runs after unroll_waits)", wait.span)
    window = _Window(path)
    if window.reaches_end:
        return 0
    count = _walk(_Walk(wait.queue, lambda commit: True, False, horizon), (in_flight, 0), path)
    touched = frozenset(window.accesses)
    for queue in queues - {wait.queue}:
        walk = _Walk(queue, lambda commit: _conflict(commit.accesses, touched), True, horizon)
        other = _walk(walk, (None, 0), path)
        if other is not None:
            count = other if count is None else min(count, other)
    return count if count is not None else in_flight


def _conflict(first: frozenset, second: frozenset) -> bool:
    """Whether two access sets (of one thread) may meet: same buffer, one writing, and no
    dimension where both indices are different constants (e.g. two ring slots)."""
    return any(buffer is other and (write or other_write)
               and not _distinct(indices, other_indices)
               for buffer, write, indices in first
               for other, other_write, other_indices in second)


def _distinct(first: tuple | None, second: tuple | None) -> bool:
    if first is None or second is None:
        return False
    return any(as_int(a) is not None and as_int(b) is not None and as_int(a) != as_int(b)
               for a, b in zip(first, second))


def buffer_accesses(stmt: Stmt) -> frozenset:
    """The ``(buffer, is_write, indices)`` of the loads, stores and intrinsic arguments in
    ``stmt`` (indices None for an intrinsic's, which may touch any element)."""
    found = set()

    def visit(node) -> None:
        if isinstance(node, BufferStore):
            found.add((node.buffer, True, node.indices))
        elif isinstance(node, BufferLoad):
            found.add((node.buffer, False, node.indices))
        elif isinstance(node, Call):  # an intrinsic may write any buffer it is given
            found.update((argument if isinstance(argument, Buffer) else argument.buffer, True,
                          None)
                         for argument in node.args
                         if isinstance(argument, (Buffer, BufferRegion)))

    post_order_visit(stmt, visit)
    return frozenset(found)
