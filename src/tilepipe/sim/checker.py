"""The access history behind the race detector and the exactness oracle.

Every access is checked against what earlier accesses to the same element could still
be doing, using the window in which each asynchronous access may happen: from its issue
until the wait that forces its group (for its own thread), and until the first barrier
after that wait (for every other thread). The check therefore holds for every schedule,
not only for the one the interpreter happens to run.

Per element the history keeps the last write, the last asynchronous read and the
synchronous readers of the current barrier interval (the first two distinct threads).
A conflict (same element, one access writes, not the same statement instance of the
same thread) is a race when the earlier access may still be in flight or not yet
visible; a conflict with an asynchronous access also bounds the in-flight count of the
latest wait its thread executed on that queue (see :mod:`tilepipe.sim.exactness`).
Writes of in-order asynchronous statements (``T.wgmma``'s accumulator updates) of one
thread and queue are ordered among themselves (:mod:`tilepipe.sim.async_wgmma`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import AsyncScope, BufferStore, Evaluate, IRVisitor, Stmt
from .async_wgmma import issues_in_order
from .interpreter import Observer
from .memory import GLOBAL, THREAD, Storage
from .queues import NEVER

# Race kinds.
UNLANDED_READ = "unlanded-read"
PENDING_OVERWRITE = "pending-overwrite"
ASYNC_WRITE_OVERLAP = "async-write-overlap"
CROSS_THREAD = "cross-thread"
CROSS_BLOCK = "cross-block"
IN_FLIGHT_AT_END = "in-flight-at-end"
DIVERGENT_BARRIER = "divergent-barrier"

KIND_MEANINGS = {
    UNLANDED_READ: "read of an element whose asynchronous write has not landed",
    PENDING_OVERWRITE: "write to an element that a pending asynchronous statement still "
                       "reads or writes",
    ASYNC_WRITE_OVERLAP: "two asynchronous writes to one element in flight together",
    CROSS_THREAD: "threads conflict without a barrier in between (an asynchronous write "
                  "is visible to other threads only after its thread's wait and a later "
                  "barrier)",
    CROSS_BLOCK: "two thread blocks conflict on global memory",
    IN_FLIGHT_AT_END: "asynchronous work still in flight at the end of the program",
    DIVERGENT_BARRIER: "a barrier that only some threads of the block reach (they would "
                       "wait forever for the others)",
}


@dataclass
class Instance:
    """One execution of a statement (or one issue of an asynchronous statement)."""

    node: Stmt
    env: dict
    threads: np.ndarray
    is_async: bool


@dataclass
class Conflict:
    """A race found between an earlier access and a later one (first occurrence)."""

    kind: str
    storage: Storage
    element: int
    first_instance: int | None
    first_thread: int | None
    first_write: bool
    second_instance: int
    second_thread: int
    second_write: bool
    occurrences: int = 1


@dataclass
class WaitExecution:
    """One execution of a wait, by the threads of one context."""

    node: Stmt
    unroll: tuple[int, ...]
    used: tuple[int, ...]
    safe: int | None = None


class _Shadow:
    """The history of every element of one storage array."""

    def __init__(self, size: int):
        def filled(value):
            return np.full(size, value, dtype=np.int64)

        self.write_thread, self.write_queue = filled(-1), filled(-1)
        self.write_in_order = np.zeros(size, dtype=bool)
        self.write_group, self.write_interval, self.write_instance = (
            filled(0), filled(0), filled(-1))
        self.read_interval, self.read_thread, self.read_instance = (
            filled(-1), filled(-1), filled(-1))
        self.second_thread, self.second_instance = filled(-1), filled(-1)
        # The latest asynchronous read, and an earlier one by another thread that was
        # still in flight (or not yet visible) when the latest came.
        self.async_reads = (_AsyncReads(size), _AsyncReads(size))


class _AsyncReads:
    """One asynchronous read per element: thread, queue, group, statement instance."""

    def __init__(self, size: int):
        self.thread = np.full(size, -1, dtype=np.int64)
        self.queue = np.full(size, -1, dtype=np.int64)
        self.group = np.zeros(size, dtype=np.int64)
        self.instance = np.full(size, -1, dtype=np.int64)

    def set(self, flat, threads, queue, groups, instance) -> None:
        self.thread[flat] = threads
        self.queue[flat] = queue
        self.group[flat] = groups
        self.instance[flat] = instance

    def copy_from(self, other: "_AsyncReads", flat) -> None:
        self.set(flat, other.thread[flat], other.queue[flat], other.group[flat],
                 other.instance[flat])


@dataclass
class _Issue:
    instance: int
    queue: int
    threads: np.ndarray
    groups: np.ndarray


class Checker(Observer):
    """Finds races and records the constraints on every wait's in-flight count."""

    def __init__(self):
        self.instances: list[Instance] = []
        self.conflicts: dict[tuple, Conflict] = {}
        self.executions: list[WaitExecution] = []
        self._shadows: dict[int, tuple[Storage, _Shadow]] = {}
        self._current = -1
        self._in_order = False  # whether the current instance is an in-order async one
        self._issues: list[_Issue] = []
        self._last_wait: dict[int, np.ndarray] = {}
        self._wait_committed: dict[int, np.ndarray] = {}
        self._limit: dict[int, np.ndarray] = {}

    # Observer ----------------------------------------------------------------------
    def attach(self, interpreter) -> None:
        super().attach(interpreter)
        self.num_threads = interpreter.num_threads
        self.total_threads = interpreter.queues.total_threads

    def begin_block(self, block: int) -> None:
        self._shadows = {key: value for key, value in self._shadows.items()
                         if value[0].owner == GLOBAL}
        self._issues = []

    def statement(self, stmt: Stmt, context) -> None:
        self._current = self._new_instance(stmt, context, False)
        self._in_order = False

    def issue(self, scope: AsyncScope, context, queue: int, groups: np.ndarray) -> None:
        self._current = self._new_instance(scope, context, True)
        self._in_order = issues_in_order(scope)
        self._issues.append(_Issue(self._current, queue, context.threads, groups))

    def _new_instance(self, node, context, is_async: bool) -> int:
        self.instances.append(Instance(node, dict(context.env), context.threads, is_async))
        return len(self.instances) - 1

    def access(self, context, storage: Storage, threads: np.ndarray, flat: np.ndarray,
               is_write: bool) -> None:
        queue = context.async_queue
        shadow = self._shadow(storage, queue is not None)
        if shadow is None:
            return
        interval = self.interpreter.interval
        instance = self._current
        self._against_write(storage, shadow, threads, flat, is_write, queue, interval)
        if is_write:
            self._against_async_read(storage, shadow, threads, flat)
            self._against_readers(storage, shadow, threads, flat, interval)
            self._within(storage, threads, flat, queue)
        groups = (self.interpreter.queues.forming_group(queue, threads) if queue is not None
                  else 0)
        if is_write:
            shadow.write_thread[flat] = threads
            shadow.write_queue[flat] = -1 if queue is None else queue
            shadow.write_group[flat] = groups
            shadow.write_interval[flat] = interval
            shadow.write_instance[flat] = instance
            shadow.write_in_order[flat] = self._in_order
        elif queue is not None:
            latest, earlier = shadow.async_reads
            other = (latest.thread[flat] >= 0) & (latest.thread[flat] != threads)
            if other.any():
                kept = flat[other]
                _, visible = self._status(latest.queue[kept], latest.thread[kept],
                                          latest.group[kept])
                earlier.copy_from(latest, kept[~visible])
            latest.set(flat, threads, queue, groups, instance)
        else:
            stale = shadow.read_interval[flat] != interval
            fresh = flat[stale]
            shadow.read_interval[fresh] = interval
            shadow.read_thread[fresh] = threads[stale]
            shadow.read_instance[fresh] = instance
            shadow.second_thread[fresh] = -1
            other = shadow.read_thread[flat] != threads
            shadow.second_thread[flat[other]] = threads[other]
            shadow.second_instance[flat[other]] = instance

    def _shadow(self, storage: Storage, is_async: bool) -> _Shadow | None:
        """Per-thread storage matters only once an asynchronous statement touches it:
        a thread's own synchronous accesses are ordered by its program."""
        entry = self._shadows.get(id(storage))
        if entry is None or entry[0] is not storage:
            if storage.owner == THREAD and not is_async:
                return None
            entry = (storage, _Shadow(storage.array.size))
            self._shadows[id(storage)] = entry
        return entry[1]

    # Checks ------------------------------------------------------------------------
    def _status(self, queues: np.ndarray, threads: np.ndarray, groups: np.ndarray):
        """For asynchronous accesses: complete (forced by their thread) and visible to
        other threads (forced before the current barrier interval)."""
        state = self.interpreter.queues
        if (queues == queues[0]).all():
            queue = int(queues[0])
            complete = state.is_complete(queue, threads, groups)
            interval = state.completion_interval(queue, threads, groups)
            return complete, interval < self.interpreter.interval
        complete = np.zeros(len(threads), dtype=bool)
        interval = np.full(len(threads), NEVER, dtype=np.int64)
        for queue in np.unique(queues):
            lanes = queues == queue
            complete[lanes] = state.is_complete(int(queue), threads[lanes], groups[lanes])
            interval[lanes] = state.completion_interval(int(queue), threads[lanes],
                                                        groups[lanes])
        return complete, interval < self.interpreter.interval

    def _against_write(self, storage, shadow, threads, flat, is_write, queue, interval):
        prior_thread = shadow.write_thread[flat]
        lanes = (prior_thread >= 0) & ~((prior_thread == threads)
                                        & (shadow.write_instance[flat] == self._current))
        if self._in_order:  # in-order statements of one thread and queue never race
            lanes &= ~((prior_thread == threads) & shadow.write_in_order[flat]
                       & (shadow.write_queue[flat] == queue))
        if not lanes.any():
            return
        lanes = np.flatnonzero(lanes)
        flat, threads, prior_thread = flat[lanes], threads[lanes], prior_thread[lanes]
        prior_queue = shadow.write_queue[flat]
        prior_group = shadow.write_group[flat]
        prior_async = prior_queue >= 0
        same = prior_thread == threads
        races = {}
        if prior_async.any():
            complete, visible = np.ones(len(flat), bool), np.ones(len(flat), bool)
            complete[prior_async], visible[prior_async] = self._status(
                prior_queue[prior_async], prior_thread[prior_async], prior_group[prior_async])
            pending_own = same & prior_async & ~complete
            if is_write:
                races[ASYNC_WRITE_OVERLAP if queue is not None else PENDING_OVERWRITE] = \
                    pending_own
            else:
                races[UNLANDED_READ] = pending_own
            races[CROSS_THREAD] = ~same & prior_async & ~visible
            self._constrain(prior_queue[prior_async], prior_thread[prior_async],
                            prior_group[prior_async])
        sync_cross = ~same & ~prior_async & (shadow.write_interval[flat] == interval)
        if CROSS_THREAD in races:
            races[CROSS_THREAD] = races[CROSS_THREAD] | sync_cross
        else:
            races[CROSS_THREAD] = sync_cross
        if storage.owner == GLOBAL:
            races[CROSS_BLOCK] = (prior_thread // self.num_threads
                                  != threads // self.num_threads)
        for kind, found in races.items():
            if found.any():
                lane = int(np.argmax(found))
                self._report(kind, storage, int(flat[lane]), int(shadow.write_instance[flat[lane]]),
                             int(prior_thread[lane]), True, int(threads[lane]), is_write)

    def _against_async_read(self, storage, shadow, threads, flat):
        for reads in shadow.async_reads:
            prior_thread = reads.thread[flat]
            lanes = (prior_thread >= 0) & ~((prior_thread == threads)
                                            & (reads.instance[flat] == self._current))
            if not lanes.any():
                continue
            lanes = np.flatnonzero(lanes)
            lane_flat, lane_threads, prior = flat[lanes], threads[lanes], prior_thread[lanes]
            prior_queue, prior_group = reads.queue[lane_flat], reads.group[lane_flat]
            complete, visible = self._status(prior_queue, prior, prior_group)
            self._constrain(prior_queue, prior, prior_group)
            same = prior == lane_threads
            for kind, found in ((PENDING_OVERWRITE, same & ~complete),
                                (CROSS_THREAD, ~same & ~visible)):
                if found.any():
                    lane = int(np.argmax(found))
                    self._report(kind, storage, int(lane_flat[lane]),
                                 int(reads.instance[lane_flat[lane]]), int(prior[lane]), False,
                                 int(lane_threads[lane]), True)

    def _against_readers(self, storage, shadow, threads, flat, interval):
        current = shadow.read_interval[flat] == interval
        if not current.any():
            return
        for thread_of, instance_of in ((shadow.read_thread, shadow.read_instance),
                                       (shadow.second_thread, shadow.second_instance)):
            readers = thread_of[flat]
            found = current & (readers >= 0) & (readers != threads)
            if found.any():
                lane = int(np.argmax(found))
                self._report(CROSS_THREAD, storage, int(flat[lane]),
                             int(instance_of[flat[lane]]), int(readers[lane]), False,
                             int(threads[lane]), True)
                return

    def _within(self, storage, threads, flat, queue):
        """Two threads of one statement writing the same element."""
        if len(flat) < 2:
            return
        order = np.lexsort((threads, flat))
        flat_sorted, threads_sorted = flat[order], threads[order]
        clash = (flat_sorted[1:] == flat_sorted[:-1]) & (threads_sorted[1:] != threads_sorted[:-1])
        if clash.any():
            lane = int(np.argmax(clash))
            kind = ASYNC_WRITE_OVERLAP if queue is not None else CROSS_THREAD
            self._report(kind, storage, int(flat_sorted[lane]), self._current,
                         int(threads_sorted[lane]), True, int(threads_sorted[lane + 1]), True)

    def _report(self, kind, storage, element, first_instance, first_thread, first_write,
                second_thread, second_write) -> None:
        first_node = self.instances[first_instance].node if first_instance >= 0 else None
        key = (kind, storage.buffer, first_node, self.instances[self._current].node)
        conflict = self.conflicts.get(key)
        if conflict is not None:
            conflict.occurrences += 1
            return
        self.conflicts[key] = Conflict(kind, storage, element, first_instance, first_thread,
                                       first_write, self._current, second_thread, second_write)

    def barrier(self, context) -> None:
        if len(context) < self.num_threads:
            key = (DIVERGENT_BARRIER, None, None, self.instances[self._current].node)
            if key not in self.conflicts:
                self.conflicts[key] = Conflict(DIVERGENT_BARRIER, None, -1, None, None, False,
                                               self._current, int(context.threads[0]), False)

    # Waits -------------------------------------------------------------------------
    def _constrain(self, queues: np.ndarray, threads: np.ndarray, groups: np.ndarray) -> None:
        """Conflicting asynchronous accesses (thread, queue, group) bound the latest wait
        of their thread on their queue: that wait must complete their group."""
        single = (queues == queues[0]).all()
        for queue in (queues[:1] if single else np.unique(queues)):
            limit = self._limit.get(int(queue))
            if limit is None:
                continue
            if single:
                lane_threads, lane_groups = threads, groups
            else:
                lanes = queues == queue
                lane_threads, lane_groups = threads[lanes], groups[lanes]
            committed_before = self._wait_committed[int(queue)][lane_threads]
            bound = lane_groups < committed_before
            np.maximum.at(limit, lane_threads[bound], lane_groups[bound])

    def wait(self, stmt, context, queue: int, in_flight, committed: np.ndarray) -> None:
        if queue not in self._limit:
            self._last_wait[queue] = np.full(self.total_threads, -1, dtype=np.int64)
            self._wait_committed[queue] = np.zeros(self.total_threads, dtype=np.int64)
            self._limit[queue] = np.full(self.total_threads, -1, dtype=np.int64)
        self._close(queue, context.threads)
        unroll = tuple(int(np.ravel(context.env[var])[0]) for var in context.unrolled)
        used = tuple(sorted({int(value) for value in np.ravel(in_flight)}))
        self.executions.append(WaitExecution(stmt, unroll, used))
        self._last_wait[queue][context.threads] = len(self.executions) - 1
        self._wait_committed[queue][context.threads] = committed
        self._limit[queue][context.threads] = -1

    def _close(self, queue: int, threads: np.ndarray) -> None:
        """Fold the constraints gathered since the threads' previous wait into it."""
        records = self._last_wait[queue][threads]
        limits = self._limit[queue][threads]
        lanes = (records >= 0) & (limits >= 0)
        if not lanes.any():
            return
        safe = self._wait_committed[queue][threads][lanes] - 1 - limits[lanes]
        for record in np.unique(records[lanes]):
            value = int(safe[records[lanes] == record].min())
            execution = self.executions[int(record)]
            execution.safe = value if execution.safe is None else min(execution.safe, value)

    def end_block(self, block: int) -> None:
        threads = np.arange(block * self.num_threads, (block + 1) * self.num_threads)
        for queue, limit in self._limit.items():
            # Nothing may be in flight at the end: the last wait must complete every
            # group committed before it.
            committed = self._wait_committed[queue][threads]
            has_groups = (self._last_wait[queue][threads] >= 0) & (committed > 0)
            limit[threads[has_groups]] = committed[has_groups] - 1
            self._close(queue, threads)
            self._last_wait[queue][threads] = -1
        state = self.interpreter.queues
        for issue in self._issues:
            pending = ~state.is_complete(issue.queue, issue.threads, issue.groups)
            if pending.any():
                thread = int(issue.threads[int(np.argmax(pending))])
                key = (IN_FLIGHT_AT_END, None, self.instances[issue.instance].node, None)
                if key not in self.conflicts:
                    self.conflicts[key] = Conflict(IN_FLIGHT_AT_END, None, -1, None, None,
                                                   True, issue.instance, thread, True)


def leaf_of(node: Stmt) -> Stmt:
    """The first store or evaluate in ``node`` (what a report shows of an asynchronous
    statement), or ``node`` itself."""
    if isinstance(node, (BufferStore, Evaluate)):
        return node
    found: list[Stmt] = []

    class _First(IRVisitor):
        def visit(self, child):
            if not found:
                if isinstance(child, (BufferStore, Evaluate)):
                    found.append(child)
                else:
                    super().visit(child)

    _First().visit(node)
    return found[0] if found else node

