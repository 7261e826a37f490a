"""Thread synchronization: the block barriers (``T.tvm_storage_sync("shared")``) that make
a program whose threads share shared-memory tiles race-free, on any target.

The planner walks the program in execution order keeping, per thread, the shared-memory
accesses made since the last barrier and, per queue, the async groups still in flight. An
async access (a copy's write, an async computation's read) becomes an access of its own
at the wait that completes its group (a wait on one queue completes none of another's;
other threads may see it only after that wait and a later barrier). A barrier goes right before the first statement whose access
conflicts with a pending one of another thread: a read after a wait of data other threads
copied, a write (sync or async) into a ring slot other threads may still read, a plain
shared-memory write read by other threads; before a loop (or a branch on a
thread-dependent condition) when the conflict is with what came before it, unless the
barriers that the loop's body needs anyway settle it (a walk of the loop from the
unsynchronized state finds no new conflict). Serial loops are walked to a fixed point so
that conflicts between iterations are found; unrolled loops (the pipeline's prologue and
epilogue) one iteration at a time, their variable a known value, so that decided
predicates, wait counts and ring slots are exact. A barrier that only some unrolled
iterations need is guarded by a condition on the unrolled loop's variable, which every
thread evaluates alike. Two accesses are never another thread's when, for every thread
axis of the launch, both index one dimension by that axis' variable alone, or when the
analyzer proves that different threads reach different elements, taking accesses of the
same loop iteration as such (a copy into ring slot ``(k + 2) % 3`` never meets a read of
slot ``k % 3`` of the same iteration ``k``).

The pass is idempotent: on its own output it finds every conflict already settled.
"""

from __future__ import annotations

from copy import copy as shallow_copy
from dataclasses import dataclass
from functools import cached_property

from ..arith import Analyzer, structural_key, variables_of
from ..ir import (
    EQ, SHARED_SCOPES, And, AsyncCommitQueue, AsyncScope, AsyncWaitQueue, AttrStmt, Block,
    Buffer, BufferLoad, BufferRegion, BufferStore, Call, Evaluate, For, ForKind, IRMutator,
    IRVisitor, IfThenElse, IntImm, Not, Or, PrimExpr, PrimFunc, Range, SeqStmt, Stmt,
    StringImm, Var, as_int, post_order_visit, seq, substitute,
)
from ..errors import PipelineError
from ..ir.printer import expr_to_str


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
    body = _Unsharer().visit(func.body)
    planner = _Planner(_thread_axes(body))
    planner.plan(body)
    if not planner.barriers:
        return func
    return func.with_body(_Inserter(planner.guards()).visit(body))


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

    def specialized(self, values: dict) -> "_Access":
        """The access with variables replaced by their ``values``."""
        if self.variables.isdisjoint(values):
            return self
        extents = None if self.extents is None else _specialize(self.extents, values)
        return _Access(self.buffer, _specialize(self.indices, values), self.write, extents)

    @cached_property
    def variables(self) -> frozenset:
        """The variables of the indices and extents (asked for at every loop step)."""
        return frozenset().union(*map(variables_of, self.indices + (self.extents or ())))

    @cached_property
    def dimensions(self) -> tuple:
        """Per dimension, a key of its index and extent equal for equal expressions."""
        extents = self.extents or (None,) * len(self.indices)
        return tuple((structural_key(index), None if extent is None else structural_key(extent))
                     for index, extent in zip(self.indices, extents))


@dataclass(frozen=True)
class _State:
    """Entries are ``(access, carried)``: ``carried`` maps the loop variables whose loop
    has advanced (or exited) since the access to how many iterations back it was made
    (None: further back than MAX_DISTANCE, or in another run of the loop). The accesses
    since the last barrier are kept apart as reads and writes: a read only conflicts with
    a write, and most pending accesses are reads."""

    reads: frozenset  # reads since the last barrier (landed async reads included)
    writes: frozenset  # writes since the last barrier (landed async writes included)
    # per queue (sorted by queue), its committed groups in flight, oldest first
    # (frozensets of entries): a wait on one queue leaves the others' groups in flight
    groups: tuple
    open: frozenset  # async accesses issued but not yet committed

    def with_pending(self, entries: frozenset) -> "_State":
        """The state with ``entries`` made (or landed) since the last barrier."""
        if not entries:
            return self
        reads = frozenset(entry for entry in entries if not entry[0].write)
        return _State(self.reads | reads, self.writes | (entries - reads), self.groups,
                      self.open)

    def synchronized(self) -> "_State":
        """The state right after a barrier."""
        return _State(frozenset(), frozenset(), self.groups, self.open)

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

        return _State(moved(self.reads), moved(self.writes),
                      tuple((queue, tuple(moved(group) for group in groups))
                            for queue, groups in self.groups), moved(self.open))

    def join(self, other: "_State") -> "_State":
        mine, theirs = dict(self.groups), dict(other.groups)
        groups = []
        for queue in sorted(mine.keys() | theirs.keys()):
            left, right = mine.get(queue, ()), theirs.get(queue, ())
            length = max(len(left), len(right))
            left = (frozenset(),) * (length - len(left)) + left
            right = (frozenset(),) * (length - len(right)) + right
            groups.append((queue, tuple(a | b for a, b in zip(left, right))))
        return _State(self.reads | other.reads, self.writes | other.writes, tuple(groups),
                      self.open | other.open)

    def in_flight(self, queue: int) -> tuple:
        """The groups of ``queue`` in flight, oldest first."""
        return dict(self.groups).get(queue, ())

    def with_groups(self, queue: int, groups: tuple) -> "_State":
        """The state with ``groups`` in flight on ``queue``."""
        others = [(other, kept) for other, kept in self.groups if other != queue]
        return _State(self.reads, self.writes,
                      tuple(sorted(others + [(queue, groups)], key=lambda item: item[0])),
                      self.open)


_EMPTY = _State(frozenset(), frozenset(), (), frozenset())


class _Planner:
    def __init__(self, thread_axes: dict[Var, str]):
        self.thread_axes = thread_axes
        self.axes = frozenset(thread_axes.values())
        self.analyzer = Analyzer()
        # statement -> the iterations of the unrolled loops around it (tuples of values,
        # outermost first) that need a barrier right before it, and that reach it at all
        self.barriers: dict[Stmt, set[tuple]] = {}
        self.reached: dict[Stmt, set[tuple]] = {}
        self.unrolled_around: dict[Stmt, tuple] = {}  # the variables of those loops
        self.divergent: list[tuple[PrimExpr, Stmt]] = []  # thread-dependent conditions around
        self._accesses: dict[tuple, frozenset] = {}
        self._statement_accesses: dict[Stmt, frozenset] = {}
        self._held_variables: set[Var] = set()  # of the accesses a state may hold
        self._private_pairs: dict[tuple, bool] = {}
        self._thread_copies: dict[tuple[int, str], Var] = {}
        self._earlier_copies: dict[Var, Var] = {}
        self._proofs: dict[tuple, tuple] = {}
        self._apart_dimensions: dict[tuple, bool] = {}
        self._range_keys: dict[Range, tuple] = {}
        self.ranges: dict[Var, Range] = {}  # where each loop variable is now
        self.unrolled_values: dict[Var, PrimExpr] = {}  # unrolled loops being walked: value
        self.enclosing: set[Var] = set()  # variables of the loops around the current point
        # Probing walks a loop without the barrier before it, planning nothing new.
        self._probing = False
        self._probe_failed = False

    def accesses(self, stmt: Stmt) -> frozenset:
        """The accesses of ``stmt`` in the current iteration of the unrolled loops being
        walked (their variables replaced by their values, so that an access stays exact
        after its loop is left), the same objects on every visit (for the fixed point)."""
        key = (stmt, self._iteration())
        found = self._accesses.get(key)
        if found is None:
            found = self._statement_accesses.get(stmt)
            if found is None:
                found = self._statement_accesses[stmt] = _accesses(stmt)

                def note_range(node) -> None:
                    if isinstance(node, For):
                        self.ranges.setdefault(node.loop_var, Range(node.min, node.extent))

                post_order_visit(stmt, note_range)
            if self.unrolled_values:
                found = frozenset(access.specialized(self.unrolled_values) for access in found)
            self._accesses[key] = found
        return found

    def _made(self, accesses: frozenset) -> frozenset:
        """Entries for ``accesses`` made now, whose variables the state may now hold."""
        for access in accesses:
            self._held_variables |= access.variables
        return _fresh(accesses)

    def _carry(self, state: _State, var: Var, leaving: bool = False) -> _State:
        """``state`` one iteration of ``var``'s loop later (or after the loop); as it is
        when no access it holds can mention ``var`` (an unrolled loop's accesses are made
        with its value)."""
        if var not in self._held_variables:
            return state
        return state.carry(var, leaving)

    def plan(self, body: Stmt) -> None:
        self.visit(body, _EMPTY)

    # Conflicts ----------------------------------------------------------------------------
    def _private(self, first: _Access, second: _Access, carried: frozenset) -> bool:
        """Whether two threads can never touch one element through these accesses
        (``second`` made before, in other iterations of the ``carried`` loops)."""
        key = (first, second, carried)
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
        since (the same iteration), takes ``var - d`` for a loop ``d`` iterations back (the
        accesses never meet when that iteration precedes the loop's start), and gets its
        own copy of the others and of the thread variables. A dimension that
        keeps the two apart by itself (ring slots of one iteration) settles it alone, and
        is remembered by its shape, the iterations back and the variables' ranges: the
        accesses of other unrolled iterations ask again."""
        if first.extents is None and second.extents is None and not self.axes:
            return True  # one thread
        variables = first.variables | second.variables
        context = (carried, variables & self.enclosing,
                   frozenset((var, self._range_key(var)) for var in variables))
        keys = [(dimension, other, context)
                for dimension, other in zip(first.dimensions, second.dimensions)]
        if any(self._apart_dimensions.get(key) for key in keys):
            return True
        sides, bounds = self._renamed(first, second, carried)
        aparts = [Or(low + extent <= other_low, other_low + other_extent <= low)
                  for (low, extent), (other_low, other_extent) in zip(*sides)]
        absent = self._no_earlier_iteration(second, carried)
        if absent is not None:
            aparts = [Or(apart, absent) for apart in aparts]
        for key, apart in zip(keys, aparts):
            known = self._apart_dimensions.get(key)
            if known is None:
                known = self._apart_dimensions[key] = self._proves(apart, bounds)
            if known:
                return True
        condition = None
        if first.extents is None and second.extents is None:
            for axis in sorted(self.axes):
                equal = EQ(self._thread_copy(0, axis), self._thread_copy(1, axis))
                condition = equal if condition is None else And(condition, equal)
        for apart in aparts:
            condition = apart if condition is None else Or(condition, apart)
        return condition is not None and self._proves(condition, bounds)

    def _no_earlier_iteration(self, earlier: _Access, carried: frozenset) -> PrimExpr | None:
        """The condition under which an access made ``d`` iterations back of an
        enclosing loop cannot exist (the current iteration is among the loop's first
        ``d``), None when no loop of ``earlier``'s indices has advanced."""
        condition = None
        for var, distance in carried:
            if distance and var in self.enclosing and var in earlier.variables:
                range_ = self.ranges.get(var)
                if range_ is not None:
                    before = var < range_.min + distance
                    condition = before if condition is None else Or(condition, before)
        return condition

    def _renamed(self, first: _Access, second: _Access, carried: frozenset):
        """Per side, the (index, extent) of each dimension with the variables renamed as
        :meth:`_proved_disjoint` says, and the ranges of the copies."""
        bounds: dict[Var, Range] = {}
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
                    renamed[var] = self._earlier_copy(var)
            for var, copy in renamed.items():
                range_ = self.ranges.get(var)
                if range_ is not None:
                    bounds[copy] = Range(substitute(range_.min, renamed),
                                         substitute(range_.extent, renamed))
            renamed = {**renamed, **shifted}
            extents = access.extents or (IntImm(1),) * len(access.indices)
            sides.append([(substitute(index, renamed), substitute(extent, renamed))
                          for index, extent in zip(access.indices, extents)])
        return sides, bounds

    def _proves(self, condition: PrimExpr, bounds: dict[Var, Range]) -> bool:
        """``condition`` holds over the ranges of its variables (the loops' ranges, and
        ``bounds`` for the copies), remembered by the condition's shape and those ranges:
        accesses of other unrolled iterations often ask the same question."""
        ranges: dict[Var, Range] = {}
        waiting = list(variables_of(condition))
        while waiting:
            var = waiting.pop()
            range_ = bounds.get(var)
            if range_ is None and var not in self.thread_axes:
                range_ = self.ranges.get(var)
            if var in ranges or range_ is None:
                continue
            ranges[var] = range_
            waiting.extend(variables_of(range_))
        key = (structural_key(condition),) + tuple(sorted(
            (id(var), structural_key(range_)) for var, range_ in ranges.items()))
        known = self._proofs.get(key)
        if known is None:
            analyzer = Analyzer()
            for var, range_ in ranges.items():
                analyzer.bind(var, range_)
            # The condition and ranges are kept so that the identities in the key stay unique.
            known = self._proofs[key] = (condition, ranges, analyzer.can_prove(condition))
        return known[2]

    def _range_key(self, var: Var) -> tuple | None:
        """A key of the range ``var`` has now, equal for equal ranges."""
        range_ = self.ranges.get(var)
        if range_ is None:
            return None
        key = self._range_keys.get(range_)
        if key is None:
            key = self._range_keys[range_] = structural_key(range_)
        return key

    def _thread_copy(self, side: int, axis: str) -> Var:
        key = (side, axis)
        if key not in self._thread_copies:
            self._thread_copies[key] = Var(f"{axis.replace('.', '_')}_{side}")
        return self._thread_copies[key]

    def _earlier_copy(self, var: Var) -> Var:
        """The variable standing for ``var`` in another iteration than the current one."""
        if var not in self._earlier_copies:
            self._earlier_copies[var] = Var(f"{var.name}_earlier", var.dtype)
        return self._earlier_copies[var]

    def _conflicts(self, accesses, state: _State) -> bool:
        """Whether an access of ``accesses`` conflicts with a pending one of another
        thread (one of the two writing)."""
        for access in accesses:
            for entries in ((state.reads, state.writes) if access.write else (state.writes,)):
                for other, carried in entries:
                    if other.buffer is access.buffer \
                            and not self._private(access, other, carried):
                        return True
        return False

    def _barrier_count(self) -> int:
        return sum(len(iterations) for iterations in self.barriers.values())

    def guards(self) -> dict[Stmt, PrimExpr | None]:
        """Each statement that needs a barrier before it, with the thread-uniform condition
        on the unrolled loops around it under which it does (None: always)."""
        guards: dict[Stmt, PrimExpr | None] = {}
        for stmt, iterations in self.barriers.items():
            reached = self.reached[stmt]
            if iterations == reached:
                guards[stmt] = None
                continue
            variables = self.unrolled_around[stmt]
            varying = [position for position in range(len(variables))
                       if len({iteration[position] for iteration in reached}) > 1]
            if len(varying) == 1:
                (position,) = varying
                guards[stmt] = _one_of(variables[position],
                                       [iteration[position] for iteration in iterations],
                                       [iteration[position] for iteration in reached])
                continue
            condition = None
            for iteration in sorted(iterations, key=str):
                match = None
                for position in varying:
                    equal = EQ(variables[position], iteration[position])
                    match = equal if match is None else And(match, equal)
                condition = match if condition is None else Or(condition, match)
            guards[stmt] = condition
        return guards

    def _iteration(self) -> tuple:
        return tuple(self.unrolled_values.values())

    def _barrier_before(self, stmt: Stmt, accesses, state: _State) -> _State:
        iteration = self._iteration()
        self.reached.setdefault(stmt, set()).add(iteration)
        self.unrolled_around[stmt] = tuple(self.unrolled_values)
        needed = self.barriers.get(stmt, ())
        if self._probing and iteration not in needed:
            if self._conflicts(accesses, state):
                self._probe_failed = True
            return state
        if iteration in needed or self._conflicts(accesses, state):
            if self.divergent:
                condition, branch = self.divergent[-1]
                raise PipelineError(
                    f"threads share data inside a branch on the thread-dependent condition "
                    f"'{expr_to_str(condition)}'{_at(branch)}: the block barrier it needs "
                    f"cannot run in only some threads (move the sharing out of the branch)",
                    stmt.span or branch.span)
            self.barriers.setdefault(stmt, set()).add(iteration)
            return state.synchronized()
        return state

    def _depends_on_threads(self, condition: PrimExpr) -> bool:
        return any(var in self.thread_axes for var in variables_of(condition))

    def _branch(self, stmt: Stmt, condition: PrimExpr, state: _State):
        """Settle before a branch on a thread-dependent condition every conflict of its
        statements with what came before (a barrier inside would run in some threads only)."""
        if not self._depends_on_threads(condition):
            return state, False
        state = self._barrier_before(stmt, self.accesses(stmt), state)
        self.divergent.append((condition, stmt))
        return state, True

    # Walk -----------------------------------------------------------------------------------
    def visit(self, stmt: Stmt, state: _State) -> _State:
        if self._probe_failed:
            return state
        if isinstance(stmt, SeqStmt):
            for child in stmt.stmts:
                state = self.visit(child, state)
            return state
        if is_storage_sync(stmt):
            return state.synchronized()
        if isinstance(stmt, (BufferStore, Evaluate)):
            accesses = self.accesses(stmt)
            state = self._barrier_before(stmt, accesses, state)
            return state.with_pending(self._made(accesses))
        if isinstance(stmt, AsyncScope):
            accesses = self.accesses(stmt.body)
            state = self._barrier_before(stmt, accesses, state)
            return _State(state.reads, state.writes, state.groups,
                          state.open | self._made(accesses))
        if isinstance(stmt, AsyncCommitQueue):
            state = self.visit(stmt.body, state)
            groups = state.in_flight(stmt.queue) + (state.open,)
            if len(groups) > MAX_TRACKED_GROUPS:  # the oldest ones complete together
                groups = (groups[0] | groups[1],) + groups[2:]
            state = state.with_groups(stmt.queue, groups)
            return _State(state.reads, state.writes, state.groups, frozenset())
        if isinstance(stmt, AsyncWaitQueue):
            return self.visit(stmt.body, self._wait(stmt, state))
        if isinstance(stmt, For):
            return self._loop(stmt, state)
        if isinstance(stmt, IfThenElse):
            if self.analyzer.can_prove(stmt.condition):
                return self.visit(stmt.then_case, state)
            if self.analyzer.can_prove(Not(stmt.condition)):
                return state if stmt.else_case is None else self.visit(stmt.else_case, state)
            state, divergent = self._branch(stmt, stmt.condition, state)
            then_state = self.visit(stmt.then_case, state)
            else_state = state if stmt.else_case is None else self.visit(stmt.else_case, state)
            if divergent:
                self.divergent.pop()
            return then_state.join(else_state)
        if isinstance(stmt, Block):
            if stmt.predicate is None or self.analyzer.can_prove(stmt.predicate):
                return self.visit(stmt.body, state)
            if self.analyzer.can_prove(Not(stmt.predicate)):
                return state
            state, divergent = self._branch(stmt, stmt.predicate, state)
            inner = self.visit(stmt.body, state)
            if divergent:
                self.divergent.pop()
            return inner.join(state)
        if isinstance(stmt, AttrStmt):
            return self.visit(stmt.body, state)
        return state

    def _wait(self, wait: AsyncWaitQueue, state: _State) -> _State:
        count = as_int(self.analyzer.simplify(wait.in_flight))
        if count is None:  # unknown: everything may have landed, and may land again later
            landed = frozenset().union(*state.in_flight(wait.queue))
            return state.with_pending(landed)
        groups = state.in_flight(wait.queue)
        completed = max(len(groups) - count, 0)
        state = state.with_pending(frozenset().union(*groups[:completed]))
        return state.with_groups(wait.queue, groups[completed:])

    def _loop(self, loop: For, state: _State) -> _State:
        self.analyzer.bind(loop.loop_var, Range(loop.min, loop.extent))
        self.ranges[loop.loop_var] = Range(loop.min, loop.extent)
        if loop.kind is ForKind.THREAD_BINDING:
            return self.visit(loop.body, state)
        if self._probing:
            planned = self._iteration() in self.barriers.get(loop, ())
            return self._iterations(loop, state.synchronized() if planned else state)
        # A conflict with what came before the loop is settled once, before the loop,
        # unless the barriers that the body needs anyway settle it already.
        synchronized = self._barrier_before(loop, self.accesses(loop.body), state)
        out = self._iterations(loop, synchronized)
        if synchronized is state:
            return out
        unsynchronized = self._probe(loop, state)
        if unsynchronized is None:
            return out
        planned = self.barriers[loop]
        planned.discard(self._iteration())
        if not planned:
            del self.barriers[loop]
        return unsynchronized

    def _probe(self, loop: For, state: _State) -> _State | None:
        """The state after ``loop`` entered from ``state`` with no new barrier anywhere,
        or None when the barriers planned so far leave a conflict."""
        self._probing = True
        try:
            out = self._iterations(loop, state)
            return None if self._probe_failed else out
        finally:
            self._probing = self._probe_failed = False

    def _iterations(self, loop: For, state: _State) -> _State:
        """The state after the iterations of a (non thread) loop entered with ``state``."""
        extent = as_int(self.analyzer.simplify(loop.extent))
        if loop.kind is ForKind.UNROLLED and extent is not None and extent <= MAX_UNROLLED:
            return self._unrolled(loop, extent, state)
        entry = state
        self.enclosing.add(loop.loop_var)
        for _ in range(MAX_ROUNDS):
            barriers = self._barrier_count()
            out = self.visit(loop.body, entry)
            following = state.join(self._carry(out, loop.loop_var))
            if following == entry and self._barrier_count() == barriers:
                break
            entry = following
        self.enclosing.discard(loop.loop_var)
        after = self._carry(out, loop.loop_var, leaving=True)
        if self.analyzer.can_prove(loop.extent >= 1):
            return after
        return after.join(state)

    def _unrolled(self, loop: For, extent: int, state: _State) -> _State:
        """Walk an unrolled loop one iteration at a time, its variable a known value (so
        predicates are decided and ring slots told apart); a barrier that one iteration
        needs is in every copy."""
        var = loop.loop_var
        self.enclosing.add(var)
        start = self.analyzer.simplify(loop.min)
        for iteration in range(extent):
            value = Range(self.analyzer.simplify(start + iteration), IntImm(1))
            self.analyzer.bind(var, value)
            self.ranges[var] = value
            self.unrolled_values[var] = value.min
            state = self.visit(loop.body, state)
            if iteration + 1 < extent:
                state = self._carry(state, var)
        self.enclosing.discard(var)
        del self.unrolled_values[var]
        self.analyzer.bind(var, Range(loop.min, loop.extent))
        self.ranges[var] = Range(loop.min, loop.extent)
        return self._carry(state, var, leaving=True)


def _one_of(var: Var, chosen: list, values: list) -> PrimExpr:
    """``var`` is one of the ``chosen`` among the ``values`` it takes: a bound or two
    when they are consecutive integers, else a disjunction of equalities."""
    numbers = sorted({as_int(value) for value in chosen})
    everything = sorted({as_int(value) for value in values})
    if None not in numbers and None not in everything and \
            numbers == list(range(numbers[0], numbers[-1] + 1)):
        if len(numbers) == 1 and everything[0] < numbers[0] < everything[-1]:
            return EQ(var, IntImm(numbers[0]))
        condition = None
        if numbers[0] > everything[0]:
            condition = IntImm(numbers[0]) <= var
        if numbers[-1] < everything[-1]:
            upper = var <= numbers[-1]
            condition = upper if condition is None else And(condition, upper)
        return condition
    condition = None
    for value in sorted(set(chosen), key=str):
        equal = EQ(var, value)
        condition = equal if condition is None else Or(condition, equal)
    return condition


def _specialize(exprs: tuple, values: dict) -> tuple:
    return tuple(substitute(expr, values) for expr in exprs)


def _at(stmt: Stmt) -> str:
    return f" (line {stmt.span.line})" if stmt.span is not None else ""


def _fresh(accesses: frozenset) -> frozenset:
    """Entries for accesses made now (carried over no loop)."""
    return frozenset((access, frozenset()) for access in accesses)


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


class _Unsharer(IRMutator):
    """Gives each place of a statement its own node: the pipeline's prologue, body and
    epilogue may hold one statement object in several places, and the planner tells
    places apart by node identity."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def visit(self, node):
        result = super().visit(node)
        if isinstance(result, Stmt):
            if id(result) in self.seen:
                result = shallow_copy(result)
            self.seen.add(id(result))
        return result


class _Inserter(IRMutator):
    """Puts a barrier (guarded where only some unrolled iterations need it) before each
    planned statement, hoisted out of the blocks and commit scopes it would open (never
    out of a wait, a loop or a branch)."""

    def __init__(self, guards: dict[Stmt, PrimExpr | None]):
        self.guards = guards

    def visit_seq_stmt(self, node: SeqStmt) -> Stmt:
        return seq(*(self.visit(stmt) for stmt in node.stmts))

    def visit(self, node):
        result = super().visit(node)
        if isinstance(node, Stmt) and node in self.guards:
            guard = self.guards[node]
            barrier = storage_sync() if guard is None else IfThenElse(guard, storage_sync())
            return seq(barrier, result)
        if isinstance(result, (Block, AsyncCommitQueue)) and isinstance(result.body, SeqStmt) \
                and _is_barrier(result.body.stmts[0]):
            barrier, rest = result.body.stmts[0], seq(*result.body.stmts[1:])
            if isinstance(result, Block):
                hoisted = Block(result.name, rest, result.reads, result.writes,
                                result.alloc_buffers, result.predicate, result.annotations,
                                result.span)
            else:
                hoisted = AsyncCommitQueue(result.queue, rest, result.span)
            return seq(barrier, hoisted)
        return result


def _is_barrier(stmt: Stmt) -> bool:
    """A barrier, or one under a guard on unrolled loops (as the inserter writes them)."""
    return is_storage_sync(stmt) or (isinstance(stmt, IfThenElse) and stmt.else_case is None
                                     and is_storage_sync(stmt.then_case))
