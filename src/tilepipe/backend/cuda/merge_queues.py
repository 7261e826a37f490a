"""Merge the abstract async queues into the one hardware ``cp.async`` queue.

``wait(q, N)`` needs every group of queue q but the N most recent to have completed; on
one merged queue a needed group is passed by every group of *any* queue committed after
it. Merged, a wait guards only the accesses up to the next wait of any queue (the next
one guards those after it), so the groups it needs are those that it or an earlier wait
of their own queue completed and that these accesses touch (same buffer, one of them
writing, and not provably other elements), whatever their queue: an outer pipeline's
wait whose tile the inner loop's first wait lands anyway does not drain the inner
prefetches. Where the walk gives up before finding the touched group of the wait's own
queue, or finds none at all, the group N needs counts, as unmerged: the merged count is
then N plus the groups of other queues committed after it.

These numbers are found by walking the commits backwards from the wait over a skeleton
of the program (commits, waits, loops with their trip-count bounds, statements that may
or may not run), over every possible history; the wait takes the minimum (a smaller count
is always safe, and the minimum over executions is the exact one). Unrolled loops are
walked one iteration at a time, so that their predicates are decided; commits under a
condition that still cannot be decided are counted both ways. The walk knows how many
iterations of each loop it has gone back, so a ring slot written some iterations earlier
is told apart from the slot read now (``(i + 2) % 3`` then, ``i % 3`` now), and a walk
that leaves the wait's loop after d iterations knows the wait ran in iteration d; the
accesses of another thread are compared with every thread's. A wait after which the
function may end before another wait completes every group (nothing may be in flight at
the end). Two waits in a row (a consumer of several queues) become one, with the smaller
count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...arith import Analyzer, variables_of
from ...errors import LoweringError
from ...ir import (
    EQ, NE, And, AsyncCommitQueue, AsyncWaitQueue, Block, Buffer, BufferLoad, BufferRegion,
    BufferStore, Call, Evaluate, For, ForKind, IfThenElse, IntImm, IRMutator, Not, PrimExpr,
    PrimFunc, Range, SeqStmt, Stmt, Var, as_int, post_order_visit, substitute,
)


def async_queues(func: PrimFunc) -> set[int]:
    """The queues that ``func`` commits to or waits on."""
    queues: set[int] = set()

    def collect(node) -> None:
        if isinstance(node, (AsyncCommitQueue, AsyncWaitQueue)):
            queues.add(node.queue)

    post_order_visit(func.body, collect)
    return queues


def merge_queues(func: PrimFunc) -> PrimFunc:
    """``func`` with every commit and wait on queue 0 and counts adjusted."""
    queues = async_queues(func)
    if not queues or queues == {0}:
        return func
    counts: dict[AsyncWaitQueue, int] = {}
    if len(queues) > 1:
        skeleton = _SkeletonBuilder()
        skeleton.build(func.body)
        elements = _Elements(skeleton.ranges, skeleton.thread_vars)
        horizon = 2 + max((as_int(wait.in_flight) or 0) for wait in skeleton.wait_paths)
        for wait, paths in skeleton.wait_paths.items():
            counts[wait] = min(_merged_count(wait, path, queues, horizon, elements)
                               for path in paths)
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
    """A loop over ``var`` from ``start``, ``extent`` iterations: between ``low`` and
    ``high`` (None: unbounded) times."""

    low: int
    high: int | None
    var: Var
    start: PrimExpr
    extent: PrimExpr
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
    holds it, its position there, and the construct that list belongs to. The variables of
    unrolled loops are replaced by their value in the recorded accesses; ``ranges`` holds
    the range of every other loop variable (None when two loops share it with different
    ranges) and ``thread_vars`` the thread indices."""

    def __init__(self):
        self.analyzer = Analyzer()
        self.root: list = []
        self.wait_paths: dict[AsyncWaitQueue, list[list[tuple[list, int, object]]]] = {}
        self.ranges: dict[Var, Range | None] = {}
        self.thread_vars: set[Var] = set()
        self._values: dict[Var, PrimExpr] = {}
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

    def _accesses(self, stmt: Stmt) -> frozenset:
        if not self._values:
            return buffer_accesses(stmt)
        return frozenset(
            (buffer, is_write, None if indices is None else tuple(
                self.analyzer.simplify(substitute(index, self._values)) for index in indices))
            for buffer, is_write, indices in buffer_accesses(stmt))

    def _value(self, expr: PrimExpr) -> PrimExpr:
        return self.analyzer.simplify(substitute(expr, self._values) if self._values else expr)

    def _record_range(self, var: Var, start: PrimExpr, extent: PrimExpr) -> None:
        if var not in self.ranges:
            self.ranges[var] = Range(start, extent)
            return
        known = self.ranges[var]
        if known is not None and (str(known.min), str(known.extent)) != (str(start),
                                                                          str(extent)):
            self.ranges[var] = None

    def _visit(self, stmt: Stmt) -> None:
        if isinstance(stmt, SeqStmt):
            for child in stmt.stmts:
                self._visit(child)
        elif isinstance(stmt, AsyncCommitQueue):
            self._visit(stmt.body)
            self._items().append(_Commit(stmt.queue, self._accesses(stmt.body)))
        elif isinstance(stmt, AsyncWaitQueue):
            path = [(items, len(items), owner) for items, owner in self._stack]
            self.wait_paths.setdefault(stmt, []).append(path)
            self._items().append(_WaitMark(stmt.queue, as_int(stmt.in_flight)))
            self._visit(stmt.body)
        elif isinstance(stmt, For):
            self._for(stmt)
        elif isinstance(stmt, (BufferStore, Evaluate)):
            self._items().append(_Accesses(self._accesses(stmt)))
        elif isinstance(stmt, Block):
            self._guarded(stmt.predicate, stmt.body)
        elif isinstance(stmt, IfThenElse):
            condition = self._value(stmt.condition)
            if stmt.else_case is None:
                self._guarded(condition, stmt.then_case)
            elif self.analyzer.can_prove(condition):
                self._visit(stmt.then_case)
            elif self.analyzer.can_prove(Not(condition)):
                self._visit(stmt.else_case)
            else:
                branch = _Branch()
                with self.analyzer.constraint_scope(condition):
                    self._nested(branch.then_body, branch, stmt.then_case)
                with self.analyzer.constraint_scope(Not(condition)):
                    self._nested(branch.else_body, branch, stmt.else_case)
                self._items().append(branch)
        elif hasattr(stmt, "body"):
            self._visit(stmt.body)

    def _for(self, stmt: For) -> None:
        start, extent = self._value(stmt.min), self._value(stmt.extent)
        self.analyzer.bind(stmt.loop_var, Range(start, extent))
        if stmt.kind is ForKind.THREAD_BINDING:
            self._record_range(stmt.loop_var, start, extent)
            self.thread_vars.add(stmt.loop_var)
            self._visit(stmt.body)
            return
        low, high = self.analyzer.const_int_bound(extent)
        if (stmt.kind is ForKind.UNROLLED and low == high and low <= MAX_UNROLLED
                and _synchronizes(stmt.body)):
            # One copy per iteration, so that conditions on the variable are decided.
            for iteration in range(low):
                value = self.analyzer.simplify(start + iteration)
                self.analyzer.bind(stmt.loop_var, Range(value, IntImm(1)))
                self._values[stmt.loop_var] = value
                self._visit(stmt.body)
            self._values.pop(stmt.loop_var, None)
            return
        self._record_range(stmt.loop_var, start, extent)
        loop = _Loop(max(low or 0, 0), None if high is None else max(high, 0), stmt.loop_var,
                     start, extent)
        self._nested(loop.body, loop, stmt.body)
        self._items().append(loop)

    def _guarded(self, condition, body: Stmt) -> None:
        if condition is not None:
            condition = self._value(condition)
        if condition is None or self.analyzer.can_prove(condition):
            self._visit(body)
        elif not self.analyzer.can_prove(Not(condition)):
            maybe = _Maybe()
            with self.analyzer.constraint_scope(condition):
                self._nested(maybe.body, maybe, body)
            self._items().append(maybe)


# Telling elements apart ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Where:
    """Where, relative to the wait, an access is made: ``kept`` are the loop variables
    that have the value they have at the wait, ``shift`` maps others to the expression
    they have there (an earlier or later iteration); any other loop or thread variable
    may have any value. ``facts`` are what is known then about the wait's loop
    variables."""

    kept: frozenset = frozenset()
    shift: tuple = ()
    facts: tuple = ()


class _Elements:
    """Decides whether a committed group and a guarded access may touch one element:
    same buffer, one of them writing, and no dimension where the indices provably differ
    for every thread pair and every iteration consistent with what the walk knows."""

    def __init__(self, ranges: dict[Var, Range | None], thread_vars: set[Var]):
        self.analyzer = Analyzer()
        self.ranges = ranges
        self.thread_vars = thread_vars
        self.loop_vars = set(ranges)
        for var, loop_range in ranges.items():
            if loop_range is not None:
                self.analyzer.bind(var, loop_range)
        self._fresh: dict[tuple[Var, str], Var] = {}
        self._cache: dict[tuple, bool] = {}

    def fresh(self, var: Var, side: str) -> Var:
        """A stand-in for ``var`` ranging over the same values, one per side."""
        key = (var, side)
        if key not in self._fresh:
            stand_in = Var(f"{var.name}_{side}", var.dtype)
            loop_range = self.ranges.get(var)
            if loop_range is not None:
                self.analyzer.bind(stand_in, loop_range)
            self._fresh[key] = stand_in
        return self._fresh[key]

    def meet(self, first, first_where: _Where, second, second_where: _Where) -> bool:
        """Whether access ``first`` (a committed group's, made at ``first_where``) and
        ``second`` (a guarded one) may touch one element."""
        buffer, write, indices = first
        other, other_write, other_indices = second
        if buffer is not other or not (write or other_write):
            return False
        if indices is None or other_indices is None:
            return True
        key = (first, first_where, second, second_where)
        found = self._cache.get(key)
        if found is None:
            found = not self._distinct(indices, first_where, other_indices, second_where)
            self._cache[key] = found
        return found

    def _distinct(self, indices, where, other_indices, other_where) -> bool:
        first = [substitute(index, self._mapping(index, where, "then")) for index in indices]
        second = [substitute(index, self._mapping(index, other_where, "now"))
                  for index in other_indices]
        condition = None
        for var, base, offset in where.facts + other_where.facts:
            fact = self._fact(var, base, offset)
            if fact is not None:
                condition = fact if condition is None else And(condition, fact)
        if condition is None:
            return self._differ(first, second)
        with self.analyzer.constraint_scope(condition):
            return self._differ(first, second)

    def _position(self, var: Var, base: str, offset: int) -> PrimExpr | None:
        """The value ``offset`` after the loop's start (``base`` "start") or end ("end"),
        None when the loop's range is not known."""
        loop_range = self.ranges.get(var)
        if loop_range is None:
            return None
        if base == "start":
            return loop_range.min + offset
        return loop_range.min + loop_range.extent + offset

    def _fact(self, var: Var, base: str, offset: int) -> PrimExpr | None:
        if base == "extent":
            loop_range = self.ranges.get(var)
            return None if loop_range is None else EQ(loop_range.extent, IntImm(offset))
        if base == "below_end":
            end = self._position(var, "end", offset)
            return None if end is None else var < end
        position = self._position(var, base, offset)
        return None if position is None else EQ(var, position)

    def _differ(self, first, second) -> bool:
        return any(self.analyzer.can_prove(NE(a, b)) for a, b in zip(first, second))

    def _mapping(self, index: PrimExpr, where: _Where, side: str) -> dict:
        shift = {var: (base, offset) for var, base, offset in where.shift}
        mapping: dict = {}
        for var in variables_of(index):
            if var in shift:
                base, offset = shift[var]
                value = var + offset if base == "step" else self._position(var, base, offset)
                mapping[var] = value if value is not None else self.fresh(var, side)
            elif var in self.loop_vars and var not in where.kept:
                mapping[var] = self.fresh(var, side)
        return mapping


# The backward walk ---------------------------------------------------------------------------
class _Walk:
    """Histories that lead to a wait, walked backwards: which groups must be complete there.

    It looks for the newest group of ``queue`` that is complete and ``conflicts``: first
    ``skip`` groups of that queue are passed (the ones allowed in flight; None until a
    wait on the queue is met when ``follow_waits``). A state is ``(skip, passed, facts)``
    with ``passed`` the groups of every queue walked over and ``facts`` what leaving the
    wait's loops told of their iteration at the wait; the group found settles the merged
    count at ``passed``. ``best`` is the smallest settled count.
    """

    def __init__(self, queue: int, conflicts, follow_waits: bool, horizon: int,
                 enclosing: frozenset):
        self.queue = queue
        self.conflicts = conflicts
        self.follow_waits = follow_waits
        self.horizon = horizon
        self.enclosing = enclosing
        self.best: int | None = None
        self.cut = False  # whether a walk stopped at the horizon without settling
        self._shift: dict[Var, tuple[str, int]] = {}

    def settle(self, value: int) -> None:
        self.best = value if self.best is None else min(self.best, value)

    def where(self, facts: tuple) -> _Where:
        """Where the commit being walked over was made."""
        return _Where(self.enclosing - frozenset(self._shift),
                      tuple((var, base, offset) for var, (base, offset) in self._shift.items()),
                      facts)

    def back(self, items: list, states: set) -> set:
        for item in reversed(items):
            if not states:
                break
            states = self.item(item, states)
            if self.best is not None:
                states = {state for state in states if state[1] < self.best}
        return states

    def item(self, item, states: set) -> set:
        if isinstance(item, _Commit):
            result = set()
            for skip, passed, facts in states:
                if item.queue != self.queue or skip is None:
                    result.add((skip, passed + 1, facts))
                elif skip > 0:
                    result.add((skip - 1, passed + 1, facts))
                elif self.conflicts(item, self.where(facts)):
                    self.settle(passed)
                else:
                    result.add((0, passed + 1, facts))
            return result
        if isinstance(item, _WaitMark):
            if not self.follow_waits or item.queue != self.queue:
                return states
            count = item.in_flight if item.in_flight is not None else 0
            return {(count if skip is None else min(skip, count), passed, facts)
                    for skip, passed, facts in states}
        if isinstance(item, _Maybe):
            return states | self.back(item.body, states)
        if isinstance(item, _Branch):
            return self.back(item.then_body, states) | self.back(item.else_body, states)
        if isinstance(item, _Loop):
            return self.loop(item, item.low, item.high, states, False)
        return states

    def loop(self, loop: _Loop, low: int, high: int | None, states: set,
             encloses_wait: bool) -> set:
        """The states after walking back over ``low``..``high`` whole iterations: of the
        wait's own loop (iterations before the wait's), or of a loop that ran before it
        (its last iterations)."""
        if not _commits(loop.body):
            return states
        result = self._left(loop, states, 0, encloses_wait) if low == 0 else set()
        current = states
        iteration = 0
        while current and (high is None or iteration < high):
            iteration += 1
            # the variable's value in this iteration, relative to the wait's (its own loop)
            # or to the loop's end
            self._shift[loop.var] = ("step", -iteration) if encloses_wait else ("end",
                                                                               -iteration)
            current = self.back(loop.body, current)
            del self._shift[loop.var]
            if iteration >= low + self.horizon:
                # more iterations only pass more groups: what is left is a lower bound
                self.cut = self.cut or bool(current)
                self.unresolved(current)
                break
            if iteration >= low:
                result |= self._left(loop, current, iteration, encloses_wait)
        return result

    @staticmethod
    def _left(loop: _Loop, states: set, iteration: int, encloses_wait: bool) -> set:
        """States leaving the loop at its start after ``iteration`` iterations: when it is
        the wait's own loop, the wait ran that many iterations after its first; otherwise
        the loop ran that many."""
        if encloses_wait:
            fact = (loop.var, "start", iteration)
        elif loop.low != loop.high:
            fact = (loop.var, "extent", iteration)
        else:
            return set(states)
        return {(skip, passed, facts + (fact,)) for skip, passed, facts in states}

    def unresolved(self, states: set) -> None:
        """States that reach the start (or the horizon) without finding the group: for the
        waited queue the wait then holds everything back, no constraint otherwise."""
        if not self.follow_waits:
            for _, passed, _ in states:
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


def _enclosing(path: list[tuple[list, int, object]]) -> frozenset:
    return frozenset(owner.var for _, _, owner in path if isinstance(owner, _Loop))


def _walk(walk: _Walk, skip: int | None, path: list[tuple[list, int, object]]) -> int | None:
    states = {(skip, 0, ())}
    for items, position, owner in reversed(path):
        states = walk.back(items[:position], states)
        if isinstance(owner, _Loop):
            previous = None if owner.high is None else max(owner.high - 1, 0)
            states = walk.loop(owner, 0, previous, states, True)
    walk.unresolved(states)
    return walk.best


class _Window:
    """The accesses a wait guards: those made after it and before the next wait, on any
    path forward, each with where it is made (in a loop's first iteration when that one
    meets a wait on every path); ``reaches_end`` when some path meets the end of the
    function first."""

    def __init__(self, path: list[tuple[list, int, object]]):
        self.entries: list[tuple[tuple, _Where]] = []
        self.reaches_end = False
        kept = _enclosing(path)
        facts: tuple = ()
        for items, position, owner in reversed(path):
            if self.scan(items[position + 1:], _Where(kept, (), facts)):
                return
            if isinstance(owner, _Loop):
                kept = kept - {owner.var}
                if owner.high is None or owner.high > 1:
                    # the next iteration, up to its first wait
                    self.scan(owner.body, _Where(kept, ((owner.var, "step", 1),),
                                                 facts + ((owner.var, "below_end", -1),)))
                # leaving the loop: the wait ran in its last iteration
                facts = facts + ((owner.var, "end", -1),)
        self.reaches_end = True

    def scan(self, items: list, where: _Where) -> bool:
        """Collect accesses up to the first wait; whether every path stops at one."""
        for item in items:
            if isinstance(item, _WaitMark):
                return True
            if isinstance(item, (_Accesses, _Commit)):
                self.entries.extend((access, where) for access in item.accesses)
            elif isinstance(item, _Loop):
                kept = where.kept - {item.var}
                mark = len(self.entries)
                # the first iteration, when it meets a wait on every path; else any
                stops = self.scan(item.body, _Where(
                    kept, where.shift + ((item.var, "start", 0),), where.facts))
                if not stops:
                    del self.entries[mark:]
                    self.scan(item.body, _Where(kept, where.shift, where.facts))
                elif item.low >= 1:
                    return True
            elif isinstance(item, _Maybe):
                self.scan(item.body, where)
            elif isinstance(item, _Branch):
                stops_then = self.scan(item.then_body, where)
                if self.scan(item.else_body, where) and stops_then:
                    return True
        return False


def _merged_count(wait: AsyncWaitQueue, path: list[tuple[list, int, object]], queues: set,
                  horizon: int, elements: _Elements) -> int:
    """The merged count of ``wait`` on one path: the groups after the newest one that it
    or an earlier wait completed and that the accesses it guards touch, of any queue
    (merged, nothing tells the queues apart any more); 0 when the end of the function
    follows before another wait (nothing may be in flight there)."""
    in_flight = as_int(wait.in_flight)
    if in_flight is None:
        raise LoweringError(f"wait count {wait.in_flight!r} is not a constant (merge_queues "
                            "runs after unroll_waits)", wait.span)
    window = _Window(path)
    if window.reaches_end:
        return 0
    enclosing = _enclosing(path)

    def touched(commit: _Commit, where: _Where) -> bool:
        return any(elements.meet(access, where, guarded, guarded_where)
                   for access in commit.accesses
                   for guarded, guarded_where in window.entries)

    own = _Walk(wait.queue, touched, True, horizon, enclosing)
    count = _walk(own, in_flight, path)
    for queue in queues - {wait.queue}:
        other = _walk(_Walk(queue, touched, True, horizon, enclosing), None, path)
        if other is not None:
            count = other if count is None else min(count, other)
    if count is None or (own.best is None and own.cut):
        # nothing found to need (or the group of its own queue that the guarded accesses
        # touch may be further back than the walk went): the group its count needs
        needed = _walk(_Walk(wait.queue, lambda commit, where: True, False, horizon,
                             enclosing), in_flight, path)
        if needed is not None:
            count = needed if count is None else min(count, needed)
    return count if count is not None else in_flight


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
