"""Insert the block barriers (``T.tvm_storage_sync("shared")``) that make a program race-free.

The planner walks the program in execution order keeping, per thread, the shared-memory
accesses made since the last barrier and the async groups still in flight. An async
write becomes an access of its own at the wait that completes its group (other threads
may see it only after that wait and a later barrier). A barrier goes right before the
first statement whose access conflicts with a pending one of another thread: a read
after a wait of data other threads copied, a write (sync or async) into a ring slot other
threads may still read; before a loop when the conflict is with what came before it.
Loops are walked to a fixed point so that conflicts between
iterations are found. Two accesses are never another thread's when, for every thread axis
of the launch, both index one dimension by that axis' variable alone, or when the analyzer
proves that different threads reach different elements, taking accesses of the same loop
iteration as such (a copy into ring slot ``(k + 2) % 3`` never meets a read of slot
``k % 3`` of the same iteration ``k``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...arith import Analyzer
from ...ir import (
    EQ, NE, And, AsyncCommitQueue, AsyncScope, AsyncWaitQueue, AttrStmt, Block, Buffer,
    BufferLoad, BufferRegion, BufferStore, Call, Evaluate, For, ForKind, IfThenElse, IRMutator,
    IntImm, IRVisitor, Not, Or, PrimExpr, PrimFunc, Range, SeqStmt, Stmt, StringImm, Var, as_int, post_order_visit, seq,
    substitute,
)
from .async_copy import SHARED_SCOPES

MAX_TRACKED_GROUPS = 12
MAX_DISTANCE = 8  # iterations back that an access is still told apart exactly
MAX_UNROLLED = 16  # unrolled loops up to this extent are walked one iteration at a time
MAX_ROUNDS = 32


def storage_sync() -> Evaluate:
    """The statement ``T.tvm_storage_sync("shared")``."""
    return Evaluate(Call("int32", "tvm_storage_sync", (StringImm("shared"),)))


def is_storage_sync(stmt: Stmt) -> bool:
    return (isinstance(stmt, Evaluate) and isinstance(stmt.value, Call)
            and stmt.value.op == "tvm_storage_sync")


def insert_barriers(func: PrimFunc) -> PrimFunc:
    """``func`` with the fewest barriers, each right before the access that needs it."""
    planner = _Planner(_thread_axes(func.body))
    planner.plan(func.body)
    if not planner.barriers:
        return func
    return func.with_body(_Inserter(planner.barriers).visit(func.body))


def _thread_axes(body: Stmt) -> dict[Var, str]:
    """Thread variables (threads within a block) and their axis, for axes of extent > 1."""
    axes: dict[Var, str] = {}
    wide: set[str] = set()

    class _Collector(IRVisitor):
        def visit_for(self, node: For) -> None:
            if node.kind is ForKind.THREAD_BINDING and node.thread_tag.startswith("threadIdx"):
                axes[node.loop_var] = node.thread_tag
                if as_int(node.extent) != 1:
                    wide.add(node.thread_tag)
            super().visit_for(node)

    _Collector().visit(body)
    return {var: tag for var, tag in axes.items() if tag in wide}


@dataclass(frozen=True, eq=False)
class _Access:
    """One shared-memory access of a statement: the element at ``indices``, or with
    ``extents`` the region from there that an intrinsic touches with any of the threads
    that run it (warp-collective operations: no thread owns an element)."""

    buffer: Buffer
    indices: tuple
    write: bool
    extents: tuple | None = None

    @property
    def variables(self) -> frozenset:
        return frozenset(_variables(self.indices + (self.extents or ())))


@dataclass(frozen=True)
class _State:
    """Entries are ``(access, carried)``: ``carried`` maps the loop variables whose loop
    has advanced (or exited) since the access to how many iterations back it was made
    (None: further back than MAX_DISTANCE, or in another run of the loop)."""

    pending: frozenset  # accesses since the last barrier (landed async writes included)
    groups: tuple  # committed async groups in flight, oldest first (frozensets of entries)
    open: frozenset  # async accesses issued but not yet committed

    def carry(self, var: Var, leaving: bool = False) -> "_State":
        """The state one iteration of ``var``'s loop later (or after the loop)."""

        def moved(entries: frozenset) -> frozenset:
            result = set()
            for access, carried in entries:
                if var in access.variables:
                    distances = dict(carried)
                    distance = distances.get(var, 0)
                    distances[var] = (None if leaving or distance is None
                                      or distance >= MAX_DISTANCE else distance + 1)
                    carried = frozenset(distances.items())
                result.add((access, carried))
            return frozenset(result)

        return _State(moved(self.pending), tuple(moved(group) for group in self.groups),
                      moved(self.open))

    def join(self, other: "_State") -> "_State":
        length = max(len(self.groups), len(other.groups))
        left = (frozenset(),) * (length - len(self.groups)) + self.groups
        right = (frozenset(),) * (length - len(other.groups)) + other.groups
        return _State(self.pending | other.pending,
                      tuple(a | b for a, b in zip(left, right)), self.open | other.open)


_EMPTY = _State(frozenset(), (), frozenset())


class _Planner:
    def __init__(self, thread_axes: dict[Var, str]):
        self.thread_axes = thread_axes
        self.axes = frozenset(thread_axes.values())
        self.analyzer = Analyzer()
        self.barriers: set[Stmt] = set()
        self._accesses: dict[Stmt, frozenset] = {}
        self._private_pairs: dict[tuple, bool] = {}
        self._thread_copies: dict[tuple[int, str], Var] = {}
        self.ranges: dict[Var, Range] = {}  # where each loop variable is now
        self.full_ranges: dict[Var, Range] = {}  # the whole range of an unrolled one
        self.unrolled_values: dict[Var, int] = {}  # unrolled loops being walked: iteration
        self.enclosing: set[Var] = set()  # variables of the loops around the current point

    def accesses(self, stmt: Stmt) -> frozenset:
        """The accesses of ``stmt``, the same objects on every visit (for the fixed point)."""
        found = self._accesses.get(stmt)
        if found is None:
            found = self._accesses[stmt] = _accesses(stmt)

            def note_range(node) -> None:
                if isinstance(node, For):
                    self.ranges.setdefault(node.loop_var, Range(node.min, node.extent))

            post_order_visit(stmt, note_range)
        return found

    def plan(self, body: Stmt) -> None:
        self.visit(body, _EMPTY)

    # Conflicts ----------------------------------------------------------------------------
    def _private(self, first: _Access, second: _Access, carried: frozenset) -> bool:
        """Whether two threads can never touch one element through these accesses
        (``second`` made before, in other iterations of the ``carried`` loops)."""
        values = tuple((var, self.unrolled_values[var]) for var in
                       (first.variables | second.variables) if var in self.unrolled_values)
        key = (first, second, carried, values)
        known = self._private_pairs.get(key)
        if known is None:
            known = self._private_pairs[key] = (
                self._separated_by_axes(first, second)
                or self._proved_disjoint(first, second, carried))
        return known

    def _separated_by_axes(self, first: _Access, second: _Access) -> bool:
        """Every thread axis indexes one dimension, by itself, in both accesses."""
        if first.extents is not None or second.extents is not None:
            return False
        separated = set()
        for a, b in zip(first.indices, second.indices):
            axis = self.thread_axes.get(a) if isinstance(a, Var) else None
            if axis is not None and isinstance(b, Var) and self.thread_axes.get(b) == axis:
                separated.add(axis)
        return separated >= self.axes

    def _proved_disjoint(self, first: _Access, second: _Access, carried: frozenset) -> bool:
        """Prove ``thread1 != thread2 -> element1 != element2`` (for a region: the regions
        are disjoint, whatever the threads) over the loop ranges. The earlier access shares
        with the current one the variables of the loops around both that have not advanced
        since (the same iteration), takes ``var - 1`` for a loop one iteration back, and
        gets its own copy of the others and of the thread variables."""
        analyzer = Analyzer()
        for var, range_ in self.ranges.items():
            if var not in self.thread_axes:
                analyzer.bind(var, range_)
        sides = []
        distances = dict(carried)
        for side, access in enumerate((first, second)):
            renamed: dict[Var, Var] = {}
            shifted: dict[Var, PrimExpr] = {}
            for var in access.variables:
                if var in self.thread_axes:
                    renamed[var] = self._thread_copy(side, self.thread_axes[var])
                elif side == 1 and var in self.enclosing and distances.get(var):
                    shifted[var] = var - distances[var]  # that many iterations back
                elif side == 1 and (var in distances or var not in self.enclosing):
                    renamed[var] = Var(f"{var.name}_earlier", var.dtype)
            for var, copy in renamed.items():
                range_ = self.full_ranges.get(var, self.ranges.get(var))
                if range_ is not None:
                    analyzer.bind(copy, Range(substitute(range_.min, renamed),
                                              substitute(range_.extent, renamed)))
            renamed = {**renamed, **shifted}
            extents = access.extents or (IntImm(1),) * len(access.indices)
            sides.append([(substitute(index, renamed), substitute(extent, renamed))
                          for index, extent in zip(access.indices, extents)])
        condition = None
        if first.extents is None and second.extents is None:
            for axis in sorted(self.axes):
                equal = EQ(self._thread_copy(0, axis), self._thread_copy(1, axis))
                condition = equal if condition is None else And(condition, equal)
            if condition is None:  # one thread
                return True
        for (low, extent), (other_low, other_extent) in zip(*sides):
            apart = Or(low + extent <= other_low, other_low + other_extent <= low)
            condition = apart if condition is None else Or(condition, apart)
        return condition is not None and analyzer.can_prove(condition)

    def _thread_copy(self, side: int, axis: str) -> Var:
        key = (side, axis)
        if key not in self._thread_copies:
            self._thread_copies[key] = Var(f"{axis.replace('.', '_')}_{side}")
        return self._thread_copies[key]

    def _conflicts(self, accesses, pending) -> bool:
        return any(a.buffer is b.buffer and (a.write or b.write)
                   and not self._private(a, b, carried)
                   for a in accesses for b, carried in pending)

    def _barrier_before(self, stmt: Stmt, accesses, state: _State) -> _State:
        if stmt in self.barriers or self._conflicts(accesses, state.pending):
            self.barriers.add(stmt)
            return _State(frozenset(), state.groups, state.open)
        return state

    # Walk -----------------------------------------------------------------------------------
    def visit(self, stmt: Stmt, state: _State) -> _State:
        if isinstance(stmt, SeqStmt):
            for child in stmt.stmts:
                state = self.visit(child, state)
            return state
        if is_storage_sync(stmt):
            return _State(frozenset(), state.groups, state.open)
        if isinstance(stmt, (BufferStore, Evaluate)):
            accesses = self.accesses(stmt)
            state = self._barrier_before(stmt, accesses, state)
            return _State(state.pending | _fresh(accesses), state.groups, state.open)
        if isinstance(stmt, AsyncScope):
            accesses = self.accesses(stmt.body)
            state = self._barrier_before(stmt, accesses, state)
            return _State(state.pending, state.groups, state.open | _fresh(accesses))
        if isinstance(stmt, AsyncCommitQueue):
            state = self.visit(stmt.body, state)
            groups = (state.groups + (state.open,))
            if len(groups) > MAX_TRACKED_GROUPS:  # the oldest ones complete together
                groups = (groups[0] | groups[1],) + groups[2:]
            return _State(state.pending, groups, frozenset())
        if isinstance(stmt, AsyncWaitQueue):
            return self.visit(stmt.body, self._wait(stmt, state))
        if isinstance(stmt, For):
            return self._loop(stmt, state)
        if isinstance(stmt, IfThenElse):
            then_state = self.visit(stmt.then_case, state)
            else_state = state if stmt.else_case is None else self.visit(stmt.else_case, state)
            return then_state.join(else_state)
        if isinstance(stmt, Block):
            if stmt.predicate is not None and self.analyzer.can_prove(Not(stmt.predicate)):
                return state
            inner = self.visit(stmt.body, state)
            if stmt.predicate is None or self.analyzer.can_prove(stmt.predicate):
                return inner
            return inner.join(state)
        if isinstance(stmt, AttrStmt):
            return self.visit(stmt.body, state)
        return state

    def _wait(self, wait: AsyncWaitQueue, state: _State) -> _State:
        count = as_int(wait.in_flight)
        if count is None:  # unknown: everything may have landed, and may land again later
            landed = frozenset().union(*state.groups) if state.groups else frozenset()
            return _State(state.pending | landed, state.groups, state.open)
        completed = max(len(state.groups) - count, 0)
        landed = frozenset().union(*state.groups[:completed]) if completed else frozenset()
        return _State(state.pending | landed, state.groups[completed:], state.open)

    def _loop(self, loop: For, state: _State) -> _State:
        self.analyzer.bind(loop.loop_var, Range(loop.min, loop.extent))
        self.ranges[loop.loop_var] = Range(loop.min, loop.extent)
        if loop.kind is ForKind.THREAD_BINDING:
            return self.visit(loop.body, state)
        # A conflict with what came before the loop is settled once, before the loop.
        state = self._barrier_before(loop, self.accesses(loop.body), state)
        extent = as_int(self.analyzer.simplify(loop.extent))
        if loop.kind is ForKind.UNROLLED and extent is not None and extent <= MAX_UNROLLED:
            return self._unrolled(loop, extent, state)
        entry = state
        self.enclosing.add(loop.loop_var)
        for _ in range(MAX_ROUNDS):
            barriers = len(self.barriers)
            out = self.visit(loop.body, entry)
            following = state.join(out.carry(loop.loop_var))
            if following == entry and len(self.barriers) == barriers:
                break
            entry = following
        self.enclosing.discard(loop.loop_var)
        after = out.carry(loop.loop_var, leaving=True)
        if self.analyzer.can_prove(loop.extent >= 1):
            return after
        return after.join(state)


    def _unrolled(self, loop: For, extent: int, state: _State) -> _State:
        """Walk an unrolled loop one iteration at a time, its variable a known value (so
        predicates are decided and ring slots told apart); a barrier that one iteration
        needs is in every copy."""
        var = loop.loop_var
        self.full_ranges[var] = Range(loop.min, loop.extent)
        self.enclosing.add(var)
        start = self.analyzer.simplify(loop.min)
        for iteration in range(extent):
            value = Range(self.analyzer.simplify(start + iteration), IntImm(1))
            self.analyzer.bind(var, value)
            self.ranges[var] = value
            self.unrolled_values[var] = iteration
            state = self.visit(loop.body, state)
            if iteration + 1 < extent:
                state = state.carry(var)
        self.enclosing.discard(var)
        del self.unrolled_values[var]
        self.analyzer.bind(var, Range(loop.min, loop.extent))
        self.ranges[var] = Range(loop.min, loop.extent)
        return state.carry(var, leaving=True)


def _fresh(accesses: frozenset) -> frozenset:
    """Entries for accesses made now (carried over no loop)."""
    return frozenset((access, frozenset()) for access in accesses)


def _variables(exprs) -> list[Var]:
    found: dict[Var, None] = {}

    class _Collector(IRVisitor):
        def visit_var(self, node: Var) -> None:
            found.setdefault(node, None)

    collector = _Collector()
    for expr in exprs:
        collector.visit(expr)
    return list(found)


def _accesses(stmt: Stmt) -> frozenset:
    """The shared-memory accesses ``stmt`` makes (loads, stores, intrinsic arguments)."""
    found: list[_Access] = []

    class _Collector(IRVisitor):
        def visit_buffer_load(self, node: BufferLoad) -> None:
            if node.buffer.scope in SHARED_SCOPES:
                found.append(_Access(node.buffer, node.indices, False))
            super().visit_buffer_load(node)

        def visit_buffer_store(self, node: BufferStore) -> None:
            if node.buffer.scope in SHARED_SCOPES:
                found.append(_Access(node.buffer, node.indices, True))
            super().visit_buffer_store(node)

        def visit_call(self, node: Call) -> None:
            # An intrinsic writes the buffer of its first buffer argument (ldmatrix,
            # mma_store, tma_load...) and reads those of the others, somewhere in them.
            first = True
            for argument in node.args:
                if not isinstance(argument, (Buffer, BufferRegion, BufferLoad)):
                    self.visit(argument)
                    continue
                region = (BufferRegion.full(argument) if isinstance(argument, Buffer) else
                          argument if isinstance(argument, BufferRegion) else None)
                buffer = argument.buffer if region is None else region.buffer
                if buffer.scope in SHARED_SCOPES:
                    if region is None:
                        found.append(_Access(buffer, argument.indices, first))
                    else:
                        found.append(_Access(buffer, tuple(r.min for r in region.region), first,
                                             tuple(r.extent for r in region.region)))
                first = False

    _Collector().visit(stmt)
    return frozenset(found)


class _Inserter(IRMutator):
    """Puts a barrier before each planned statement, hoisted out of the blocks and commit
    scopes it would open (never out of a wait, a loop or a branch)."""

    def __init__(self, barriers: set[Stmt]):
        self.barriers = barriers

    def visit_seq_stmt(self, node: SeqStmt) -> Stmt:
        return seq(*(self.visit(stmt) for stmt in node.stmts))

    def visit(self, node):
        result = super().visit(node)
        if isinstance(node, Stmt) and node in self.barriers:
            return seq(storage_sync(), result)
        if isinstance(result, (Block, AsyncCommitQueue)) and _starts_with_sync(result.body):
            rest = _drop_first(result.body)
            if isinstance(result, Block):
                hoisted = Block(result.name, rest, result.reads, result.writes,
                                result.alloc_buffers, result.predicate, result.annotations,
                                result.span)
            else:
                hoisted = AsyncCommitQueue(result.queue, rest, result.span)
            return seq(storage_sync(), hoisted)
        return result


def _starts_with_sync(body: Stmt) -> bool:
    first = body.stmts[0] if isinstance(body, SeqStmt) else body
    return is_storage_sync(first) and isinstance(body, SeqStmt)


def _drop_first(body: SeqStmt) -> Stmt:
    return seq(*body.stmts[1:])
