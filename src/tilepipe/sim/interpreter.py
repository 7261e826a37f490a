"""The reference interpreter: runs a PrimFunc on NumPy arrays, threads in lock step.

Blocks run one after the other; the threads of a block run together, vectorized over
the thread index (see :mod:`tilepipe.sim.context`). Statements outside every
``threadIdx`` binding run on every thread of the block, as CUDA runs them. Asynchronous statements belong to
the group their thread is forming on the queue of the innermost commit scope; when
their element accesses happen is up to the :class:`~tilepipe.sim.schedule.Schedule`.
An :class:`Observer` sees every statement, access and synchronization: the race
detector, the exactness oracle and the trace are observers.

Statement executors are generators so that threads blocked in an intrinsic (an mbarrier
wait) can yield and let the threads of another branch run; when no branch can make
progress the program is deadlocked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import RaceError, TilepipeError
from ..ir import (
    EQ, GE, GT, LE, LT, NE, Add, And, AsyncCommitQueue, AsyncScope, AsyncWaitQueue,
    AttrStmt, Block, Buffer, BufferLoad, BufferRegion, BufferStore, Call, Cast, Div,
    Evaluate, FloatImm, FloorDiv, FloorMod, For, ForKind, IfThenElse, IntImm, Max, Min,
    Mul, Not, Or, PrimExpr, PrimFunc, Select, SeqStmt, Stmt, StringImm, Sub, Var,
    is_float_dtype,
)
from . import intrinsics
from .async_wgmma import issues_in_order
from .context import Context, is_lanes
from .launch import BLOCK_AXES, THREAD_AXES, WARP_SIZE, launch_of
from .memory import THREAD, WARP, AccessError, Memory, Storage, numpy_dtype
from .queues import AsyncQueues
from .schedule import RANDOM, Schedule


class SimulationError(TilepipeError):
    """A program the interpreter cannot run: unbound variable, bad count, ..."""


class Observer:
    """Receives what the interpreter does; every method is optional to override."""

    def attach(self, interpreter: "Interpreter") -> None:
        self.interpreter = interpreter

    def begin_block(self, block: int) -> None:
        pass

    def end_block(self, block: int) -> None:
        pass

    def statement(self, stmt: Stmt, context: Context) -> None:
        """A synchronous leaf statement (store or evaluate) starts."""

    def issue(self, scope: AsyncScope, context: Context, queue: int,
              groups: np.ndarray) -> None:
        """An asynchronous statement is issued into ``groups`` of queue ``queue``."""

    def access(self, context: Context, storage: Storage, threads: np.ndarray,
               flat: np.ndarray, is_write: bool) -> None:
        """``threads[k]`` reads or writes element ``flat[k]`` of ``storage.array``."""

    def commit(self, stmt: AsyncCommitQueue, context: Context, queue: int) -> None:
        pass

    def wait(self, stmt: AsyncWaitQueue, context: Context, queue: int, in_flight,
             committed: np.ndarray) -> None:
        """After the wait forced its groups; ``committed`` is per thread."""

    def barrier(self, context: Context) -> None:
        pass


@dataclass
class PendingStatement:
    """An asynchronous statement issued but not yet run, for the lanes of ``context``."""

    body: Stmt
    context: Context
    queue: int
    groups: np.ndarray
    in_order: bool = False


_MISSING = object()


class Interpreter:
    """Runs one function (already bound to concrete sizes) on given global arrays."""

    def __init__(self, func: PrimFunc, arrays: dict[Buffer, np.ndarray], schedule: Schedule,
                 observer: Observer | None = None, blocks: range | None = None):
        self.func = func
        self.schedule = schedule
        self.observer = observer
        self.launch = launch_of(func.body, self._constant)
        self.num_threads = self.launch.num_threads
        self.blocks = range(self.launch.num_blocks) if blocks is None else blocks
        self.memory = Memory(self.num_threads, self.launch.num_warps)
        for buffer, array in arrays.items():
            self.memory.bind_global(buffer, array)
        self.queues = AsyncQueues(self.num_threads * self.launch.num_blocks)
        self.pending: list[PendingStatement] = []
        self.interval = 0
        self.block = 0
        self.statements_executed = 0
        self._block_states: dict[str, Any] = {}
        self._stepping: list[Any] = []
        if observer is not None:
            observer.attach(self)

    # Running -----------------------------------------------------------------------
    def run(self) -> None:
        for block in self.blocks:
            self.block = block
            self.interval += 1
            self.memory.begin_block()
            self._block_states = {}
            self._stepping = []
            if self.observer is not None:
                self.observer.begin_block(block)
            base = block * self.num_threads
            context = Context(self, np.arange(base, base + self.num_threads),
                              np.arange(self.num_threads), {})
            for reasons in self.execute(self.func.body, context):
                raise RaceError("deadlock: no thread can go on:\n  "
                                + "\n  ".join(_describe(reason) for reason in _flat(reasons)))
            for state in self._block_states.values():
                if hasattr(state, "finish"):
                    state.finish()
            self._land_all()
            if self.observer is not None:
                self.observer.end_block(block)

    def execute(self, stmt: Stmt, context: Context) -> Iterator:
        try:
            executor = _EXECUTORS[type(stmt)]
        except KeyError:
            raise SimulationError(f"the simulator cannot run a {type(stmt).__name__}",
                                  getattr(stmt, "span", None)) from None
        return executor(self, stmt, context)

    def _seq(self, stmt: SeqStmt, context: Context):
        for child in stmt.stmts:
            yield from self.execute(child, context)

    def _attr(self, stmt: AttrStmt, context: Context):
        yield from self.execute(stmt.body, context)

    def _before_leaf(self, stmt: Stmt, context: Context) -> None:
        if context.async_queue is not None:  # part of an asynchronous statement
            return
        if self.pending and self.schedule.kind == RANDOM:
            self._land_random()
        for state in self._stepping:
            state.step(self.schedule)
        if self.observer is not None:
            self.observer.statement(stmt, context)

    def _store(self, stmt: BufferStore, context: Context):
        self._before_leaf(stmt, context)
        value = self.evaluate(stmt.value, context)
        indices = [self.evaluate(index, context) for index in stmt.indices]
        self.store(context, stmt.buffer, indices, value, stmt.span)
        self.statements_executed += 1
        yield from ()

    def _evaluate_stmt(self, stmt: Evaluate, context: Context):
        self._before_leaf(stmt, context)
        call = stmt.value
        if isinstance(call, Call):
            intrinsic = intrinsics.lookup(call.op, call.span)
            if intrinsic.blocking:
                args = self._call_args(call, context)
                yield from intrinsic.handler(call, args, context)
                self.statements_executed += 1
                return
        self.evaluate(call, context)
        self.statements_executed += 1

    def _if(self, stmt: IfThenElse, context: Context):
        condition = self.evaluate(stmt.condition, context)
        yield from self._branch(condition, stmt.then_case, stmt.else_case, context)

    def _branch(self, condition, then_case: Stmt, else_case: Stmt | None, context: Context):
        if not is_lanes(condition):
            chosen = then_case if condition else else_case
            if chosen is not None:
                yield from self.execute(chosen, context)
            return
        condition = condition.astype(bool)
        parts = [(condition, then_case), (~condition, else_case)]
        runs = [self.execute(case, context if lanes.all() else context.subset(lanes))
                for lanes, case in parts if case is not None and lanes.any()]
        if len(runs) == 1:
            yield from runs[0]
        elif runs:
            yield from self._interleave(runs)

    def _interleave(self, runs: list[Iterator]):
        """Run diverged thread groups; a group that blocks lets the others go on."""
        active = runs
        while active:
            progress = self.statements_executed
            waiting, reasons = [], []
            for run in active:
                try:
                    reasons.append(next(run))
                    waiting.append(run)
                except StopIteration:
                    pass
            active = waiting
            if active and self.statements_executed == progress:
                yield tuple(reasons)

    def _for(self, stmt: For, context: Context):
        if stmt.kind is ForKind.THREAD_BINDING and stmt.thread_tag in THREAD_AXES:
            yield from self._thread_loop(stmt, context)
            return
        low = self.evaluate(stmt.min, context)
        extent = self.evaluate(stmt.extent, context)
        if stmt.kind is ForKind.THREAD_BINDING and stmt.thread_tag in BLOCK_AXES:
            coordinate = self.launch.block_coordinate(stmt.thread_tag, self.block)
            if coordinate < self._uniform(extent, stmt.extent, stmt):
                yield from self._with_var(stmt, context, low + coordinate)
            return
        if is_lanes(low) or is_lanes(extent):
            yield from self._divergent_loop(stmt, context, low, extent)
            return
        low, extent = self._integer(low, stmt.min), self._integer(extent, stmt.extent)
        unrolled = stmt.kind is ForKind.UNROLLED
        outer_unrolled = context.unrolled
        if unrolled:
            context.unrolled = outer_unrolled + (stmt.loop_var,)
        previous = context.env.get(stmt.loop_var, _MISSING)
        try:
            for value in range(low, low + extent):
                context.env[stmt.loop_var] = value
                yield from self.execute(stmt.body, context)
        finally:
            _restore(context.env, stmt.loop_var, previous)
            context.unrolled = outer_unrolled

    def _with_var(self, stmt: For, context: Context, value):
        previous = context.env.get(stmt.loop_var, _MISSING)
        context.env[stmt.loop_var] = value
        try:
            yield from self.execute(stmt.body, context)
        finally:
            _restore(context.env, stmt.loop_var, previous)

    def _thread_loop(self, stmt: For, context: Context):
        low = self._uniform(self.evaluate(stmt.min, context), stmt.min, stmt)
        extent = self._uniform(self.evaluate(stmt.extent, context), stmt.extent, stmt)
        coordinates = self.launch.thread_coordinate(stmt.thread_tag, context.local)
        lanes = coordinates < extent
        if not lanes.any():
            return
        if not lanes.all():
            context, coordinates = context.subset(lanes), coordinates[lanes]
        yield from self._with_var(stmt, context, low + coordinates)

    def _divergent_loop(self, stmt: For, context: Context, low, extent):
        lows = context.lanes(low).astype(np.int64)
        ends = lows + context.lanes(extent).astype(np.int64)
        if len(lows) == 0:
            return
        for value in range(int(lows.min()), int(ends.max())):
            lanes = (lows <= value) & (value < ends)
            if lanes.any():
                yield from self._with_var(stmt, context.subset(lanes), value)

    def _block(self, stmt: Block, context: Context):
        for buffer in stmt.alloc_buffers:
            shape = tuple(self._integer(self._uniform(self.evaluate(extent, context), extent,
                                                      stmt), extent)
                          for extent in buffer.shape)
            if any(extent < 0 for extent in shape):
                raise SimulationError(f"buffer {buffer.name} has a negative extent {shape}",
                                      buffer.span or stmt.span)
            self.memory.allocate(buffer, shape)
        if stmt.predicate is None:
            yield from self.execute(stmt.body, context)
        else:
            condition = self.evaluate(stmt.predicate, context)
            yield from self._branch(condition, stmt.body, None, context)

    # Asynchrony --------------------------------------------------------------------
    def _async_scope(self, stmt: AsyncScope, context: Context):
        if context.async_queue is not None:  # nested: part of the enclosing statement
            yield from self.execute(stmt.body, context)
            return
        if self.pending and self.schedule.kind == RANDOM:
            self._land_random()
        queue = self.queues.index(context.commit_queue)
        groups = self.queues.forming_group(queue, context.threads)
        if self.observer is not None:
            self.observer.issue(stmt, context, queue, groups)
        now = self.schedule.issue_now(len(context))
        in_order = issues_in_order(stmt)
        if in_order:
            now &= ~self._behind(queue, context.threads)
        if not now.all():
            later = context.subset(~now)
            later.async_queue = queue
            self.pending.append(PendingStatement(stmt.body, later, queue, groups[~now],
                                                 in_order))
        if now.any():
            running = context.copy(async_queue=queue) if now.all() \
                else context.subset(now)
            running.async_queue = queue
            yield from self.execute(stmt.body, running)
        self.statements_executed += 1

    def _commit(self, stmt: AsyncCommitQueue, context: Context):
        outer = context.commit_queue
        context.commit_queue = stmt.queue
        try:
            yield from self.execute(stmt.body, context)
        finally:
            context.commit_queue = outer
        queue = self.queues.index(stmt.queue)
        self.queues.commit(queue, context.threads)
        if self.observer is not None:
            self.observer.commit(stmt, context, queue)

    def _wait(self, stmt: AsyncWaitQueue, context: Context):
        in_flight = self.evaluate(stmt.in_flight, context)
        counts = context.lanes(in_flight)
        if counts.dtype.kind not in "iub" or (counts < 0).any():
            raise SimulationError(
                f"the in-flight count of a wait must be a non-negative integer, got "
                f"{counts.min() if counts.dtype.kind in 'iub' else in_flight}", stmt.span)
        queue = self.queues.index(stmt.queue)
        committed = self.queues.committed[queue][context.threads].copy()
        self.queues.force(queue, context.threads, counts, self.interval)
        self._land_forced(queue)
        if self.observer is not None:
            self.observer.wait(stmt, context, queue, in_flight, committed)
        yield from self.execute(stmt.body, context)

    def _land(self, pending: PendingStatement, lanes: np.ndarray) -> None:
        running = pending.context if lanes.all() else pending.context.subset(lanes)
        for reasons in self.execute(pending.body, running):
            raise SimulationError("an asynchronous statement cannot block",
                                  getattr(pending.body, "span", None))
        if lanes.all():
            self.pending.remove(pending)
        else:
            pending.context = pending.context.subset(~lanes)
            pending.groups = pending.groups[~lanes]

    def _land_forced(self, queue: int) -> None:
        for pending in list(self.pending):
            if pending.queue == queue:
                lanes = self.queues.is_complete(queue, pending.context.threads, pending.groups)
                if lanes.any():
                    self._land(pending, lanes)

    def _land_random(self) -> None:
        for pending in list(self.pending):
            lanes = self.schedule.landing(len(pending.context))
            if pending.in_order:
                lanes &= ~self._behind(pending.queue, pending.context.threads, pending)
            if lanes.any():
                self._land(pending, lanes)

    def _behind(self, queue: int, threads: np.ndarray,
                until: PendingStatement | None = None) -> np.ndarray:
        """Which of ``threads`` still have an earlier in-order statement pending on
        ``queue`` (issued before ``until``, or at all): in-order statements of a thread
        and queue land in issue order (see :mod:`tilepipe.sim.async_wgmma`)."""
        behind = np.zeros(len(threads), dtype=bool)
        for pending in self.pending:
            if pending is until:
                break
            if pending.in_order and pending.queue == queue:
                behind |= np.isin(threads, pending.context.threads)
        return behind

    def _land_all(self) -> None:
        while self.pending:
            self._land(self.pending[0], np.ones(len(self.pending[0].context), dtype=bool))

    def barrier(self, context: Context) -> None:
        self.interval += 1
        if self.observer is not None:
            self.observer.barrier(context)

    def block_state(self, key: str, factory: Callable[[], Any]) -> Any:
        state = self._block_states.get(key)
        if state is None:
            state = self._block_states[key] = factory()
            if hasattr(state, "step"):
                self._stepping.append(state)
        return state

    # Memory ------------------------------------------------------------------------
    def _key(self, storage: Storage, context: Context, indices: list, span) -> tuple:
        if len(indices) != len(storage.shape):
            raise AccessError(
                f"{storage.buffer.name} has {len(storage.shape)} dimension(s) but is indexed "
                f"with {len(indices)}", span)
        for position, (index, extent) in enumerate(zip(indices, storage.shape)):
            if is_lanes(index):
                if index.dtype.kind not in "iu":
                    raise AccessError(f"index {position} of {storage.buffer.name} is not an "
                                      "integer", span)
                if len(index) and (index.min() < 0 or index.max() >= extent):
                    bad = (index < 0) | (index >= extent)
                    self._out_of_bounds(storage, context, indices, int(np.argmax(bad)), span)
            elif not 0 <= index < extent:
                if not isinstance(index, (int, np.integer)):
                    raise AccessError(f"index {position} of {storage.buffer.name} is not an "
                                      f"integer: {index!r}", span)
                self._out_of_bounds(storage, context, indices, 0, span)
        if storage.owner == THREAD:
            return (context.local,) + tuple(indices)
        if storage.owner == WARP:
            return (context.local // WARP_SIZE,) + tuple(indices)
        return tuple(indices)

    def _out_of_bounds(self, storage: Storage, context: Context, indices, lane: int, span):
        element = [int(index[lane]) if is_lanes(index) else int(index) for index in indices]
        thread = int(context.local[lane]) if len(context) else 0
        raise AccessError(
            f"index {element} is out of bounds of {storage.buffer.name} (shape "
            f"{list(storage.shape)}) in thread {thread} of block {self.block}", span)

    def load(self, context: Context, buffer: Buffer, indices: list, span) -> Any:
        storage = self.memory.storage(buffer, span)
        key = self._key(storage, context, indices, span)
        if self.observer is not None:
            self._observe(context, storage, key, False)
        return storage.array[key]

    def store(self, context: Context, buffer: Buffer, indices: list, value: Any, span) -> None:
        storage = self.memory.storage(buffer, span)
        key = self._key(storage, context, indices, span)
        if self.observer is not None:
            self._observe(context, storage, key, True)
        if is_lanes(value) and not any(is_lanes(part) for part in key):
            value = value[-1]  # every thread writes the one element: the last one wins
        storage.array[key] = value

    def _observe(self, context: Context, storage: Storage, key: tuple, is_write: bool):
        if len(context) == 0:
            return
        flat = 0
        for index, stride in zip(key, storage.element_strides):
            flat = flat + index * stride
        if not is_lanes(flat):
            flat = np.full(len(context), flat, dtype=np.int64)
        self.observer.access(context, storage, context.threads, flat, is_write)

    def region_access(self, context: Context, region: BufferRegion, values, span):
        """Read (``values`` None) or write a uniform region; see Context.read_region."""
        storage = self.memory.storage(region.buffer, span)
        bounds = []
        for range_ in region.region:
            low = self._integer(self._uniform(self.evaluate(range_.min, context), range_.min,
                                              None), range_.min)
            extent = self._integer(self._uniform(self.evaluate(range_.extent, context),
                                                 range_.extent, None), range_.extent)
            bounds.append((low, extent))
        if len(bounds) != len(storage.shape) or any(
                low < 0 or low + extent > size for (low, extent), size
                in zip(bounds, storage.shape)):
            raise AccessError(f"region {[(low, low + extent) for low, extent in bounds]} is "
                              f"outside {region.buffer.name} (shape {list(storage.shape)})",
                              span)
        slices = tuple(slice(low, low + extent) for low, extent in bounds)
        if storage.owner in (THREAD, WARP):
            owners = context.local if storage.owner == THREAD else context.local // WARP_SIZE
            if len(np.unique(owners)) != 1:
                raise AccessError(
                    f"{region.buffer.name} is per {storage.owner}: a region of it can only be "
                    f"accessed by one {storage.owner} at a time", span)
            slices = (int(owners[0]),) + slices
        if self.observer is not None and len(context):
            self._observe_region(context, storage, slices, values is not None)
        if values is None:
            return storage.array[slices].copy()
        storage.array[slices] = values
        return None

    def _observe_region(self, context: Context, storage: Storage, slices: tuple,
                        is_write: bool) -> None:
        shape = tuple(part.stop - part.start for part in slices if isinstance(part, slice))
        grid = iter(np.indices(shape).reshape(len(shape), -1))
        size = int(np.prod(shape, dtype=np.int64))
        key = tuple(np.full(size, part) if isinstance(part, int) else next(grid) + part.start
                    for part in slices)
        flat = np.ravel_multi_index(key, storage.array.shape)
        self.observer.access(context, storage, np.full(size, context.threads[0]), flat,
                             is_write)

    # Expressions -------------------------------------------------------------------
    def evaluate(self, expr: Any, context: Context) -> Any:
        try:
            evaluator = _EVALUATORS[type(expr)]
        except KeyError:
            raise SimulationError(f"the simulator cannot evaluate a {type(expr).__name__}",
                                  getattr(expr, "span", None)) from None
        return evaluator(self, expr, context)

    def _var(self, expr: Var, context: Context):
        try:
            return context.env[expr]
        except KeyError:
            raise SimulationError(
                f"variable '{expr.name}' has no value here: if it is a size or a scalar "
                "parameter, bind it (dims=... or --dim NAME=VALUE)", expr.span) from None

    def _binary(self, expr, context: Context):
        a = self.evaluate(expr.a, context)
        b = self.evaluate(expr.b, context)
        return _BINARY[type(expr)](a, b)

    def _division(self, expr, context: Context):
        a = self.evaluate(expr.a, context)
        b = self.evaluate(expr.b, context)
        floating = is_float_dtype(expr.dtype)
        if not floating and (b == 0 if type(b) is int else np.any(np.asarray(b) == 0)):
            raise SimulationError("integer division by zero", expr.span)
        if isinstance(expr, FloorDiv):
            return np.floor(a / b) if floating else a // b
        if isinstance(expr, FloorMod):
            return a - np.floor(a / b) * b if floating else a % b
        if floating:
            return a / b
        quotient = np.abs(a) // np.abs(b)
        return np.where(np.sign(a) * np.sign(b) < 0, -quotient, quotient) \
            if is_lanes(quotient) else (-quotient if (a < 0) != (b < 0) else quotient)

    def _logical(self, expr, context: Context):
        """``and`` / ``or`` evaluate their right side only for threads that need it, so
        that a guard such as ``i < n and A[i] > 0`` never reads out of bounds."""
        a = self.evaluate(expr.a, context)
        deciding = isinstance(expr, Or)
        if not is_lanes(a):
            if bool(a) == deciding:
                return deciding
            return self.evaluate(expr.b, context)
        a = a.astype(bool)
        undecided = a != deciding
        if not undecided.any():
            return a
        b = self._on_lanes(expr.b, context, undecided, deciding)
        return a | b if deciding else a & b

    def _on_lanes(self, expr: PrimExpr, context: Context, lanes: np.ndarray, fill) -> Any:
        """``expr`` for the threads in ``lanes``; ``fill`` elsewhere."""
        if lanes.all():
            return self.evaluate(expr, context)
        value = self.evaluate(expr, context.subset(lanes))
        if not is_lanes(value):
            value = np.full(int(lanes.sum()), value)
        result = np.full(len(lanes), fill, dtype=value.dtype)
        result[lanes] = value
        return result

    def _select(self, expr: Select, context: Context):
        condition = self.evaluate(expr.condition, context)
        if not is_lanes(condition):
            return self.evaluate(expr.true_value if condition else expr.false_value, context)
        condition = condition.astype(bool)
        true_value = self._on_lanes(expr.true_value, context, condition, 0)
        false_value = self._on_lanes(expr.false_value, context, ~condition, 0)
        return np.where(condition, true_value, false_value)

    def _not(self, expr: Not, context: Context):
        value = self.evaluate(expr.a, context)
        return ~value.astype(bool) if is_lanes(value) else not value

    def _cast(self, expr: Cast, context: Context):
        value = self.evaluate(expr.value, context)
        target = numpy_dtype(expr.dtype, expr.span)
        if is_lanes(value):
            return value.astype(target)
        return target.type(value)

    def _load(self, expr: BufferLoad, context: Context):
        indices = [self.evaluate(index, context) for index in expr.indices]
        return self.load(context, expr.buffer, indices, expr.span)

    def _call(self, expr: Call, context: Context):
        intrinsic = intrinsics.lookup(expr.op, expr.span)
        if intrinsic.blocking:
            raise SimulationError(f"T.{expr.op} blocks: call it as a statement, not inside "
                                  "an expression", expr.span)
        return intrinsic.handler(expr, self._call_args(expr, context), context)

    def _call_args(self, call: Call, context: Context) -> list:
        args = []
        for arg in call.args:
            if isinstance(arg, StringImm):
                args.append(arg.value)
            elif isinstance(arg, (Buffer, BufferRegion)):
                args.append(arg)
            else:
                args.append(self.evaluate(arg, context))
        return args

    # Helpers -----------------------------------------------------------------------
    def _constant(self, expr: PrimExpr) -> Any:
        return self.evaluate(expr, Context(self, np.zeros(0, np.int64), np.zeros(0, np.int64),
                                           {}))

    def _uniform(self, value, expr, stmt) -> Any:
        if is_lanes(value):
            raise SimulationError(
                f"{expr!r} must have one value for all threads here",
                getattr(stmt, "span", None) or getattr(expr, "span", None))
        return value

    @staticmethod
    def _integer(value, expr) -> int:
        if not isinstance(value, (int, np.integer, bool, np.bool_)):
            raise SimulationError(f"{expr!r} must be an integer, got {value!r}",
                                  getattr(expr, "span", None))
        return int(value)


def _restore(env: dict, var: Var, previous) -> None:
    if previous is _MISSING:
        env.pop(var, None)
    else:
        env[var] = previous


def _flat(reasons) -> Iterator:
    if isinstance(reasons, tuple):
        for reason in reasons:
            yield from _flat(reason)
    else:
        yield reasons


def _describe(reason) -> str:
    return reason.describe() if hasattr(reason, "describe") else str(reason)


def _minimum(a, b):
    return np.minimum(a, b) if is_lanes(a) or is_lanes(b) else min(a, b)


def _maximum(a, b):
    return np.maximum(a, b) if is_lanes(a) or is_lanes(b) else max(a, b)


_BINARY: dict[type, Callable] = {
    Add: lambda a, b: a + b,
    Sub: lambda a, b: a - b,
    Mul: lambda a, b: a * b,
    Min: _minimum,
    Max: _maximum,
    EQ: lambda a, b: a == b,
    NE: lambda a, b: a != b,
    LT: lambda a, b: a < b,
    LE: lambda a, b: a <= b,
    GT: lambda a, b: a > b,
    GE: lambda a, b: a >= b,
}

_EVALUATORS: dict[type, Callable] = {
    Var: Interpreter._var,
    IntImm: lambda self, expr, context: bool(expr.value) if expr.dtype == "bool"
    else expr.value,
    FloatImm: lambda self, expr, context: numpy_dtype(expr.dtype).type(expr.value),
    StringImm: lambda self, expr, context: expr.value,
    Div: Interpreter._division,
    FloorDiv: Interpreter._division,
    FloorMod: Interpreter._division,
    And: Interpreter._logical,
    Or: Interpreter._logical,
    Not: Interpreter._not,
    Select: Interpreter._select,
    Cast: Interpreter._cast,
    BufferLoad: Interpreter._load,
    Call: Interpreter._call,
    **{op: Interpreter._binary for op in _BINARY},
}

_EXECUTORS: dict[type, Callable] = {
    SeqStmt: Interpreter._seq,
    AttrStmt: Interpreter._attr,
    BufferStore: Interpreter._store,
    Evaluate: Interpreter._evaluate_stmt,
    IfThenElse: Interpreter._if,
    For: Interpreter._for,
    Block: Interpreter._block,
    AsyncScope: Interpreter._async_scope,
    AsyncCommitQueue: Interpreter._commit,
    AsyncWaitQueue: Interpreter._wait,
}
