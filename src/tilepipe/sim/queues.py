"""Per-thread FIFO queues of committed asynchronous groups.

Each thread numbers the groups it commits to a queue 0, 1, 2, ... An asynchronous
statement belongs to the group its thread is forming (the number of groups committed
so far). ``wait(q, n)`` forces every group but the ``n`` most recent to complete; the
queue remembers, per thread and group, the barrier interval in which that happened,
which is when another thread may start to see the group's writes (after the next
barrier). Statements issued outside any commit scope go to a queue of their own that
no wait ever forces.
"""

from __future__ import annotations

import numpy as np

UNCOMMITTED = None
NEVER = np.iinfo(np.int64).max


class AsyncQueues:
    def __init__(self, total_threads: int):
        self.total_threads = total_threads
        self.ids: list[int | None] = []
        self.indices: dict[int | None, int] = {}
        self.committed: list[np.ndarray] = []
        self.completed: list[np.ndarray] = []
        self.landed_interval: list[np.ndarray] = []

    def index(self, queue: int | None) -> int:
        """The dense index of ``queue`` (created on first use)."""
        index = self.indices.get(queue)
        if index is None:
            index = len(self.ids)
            self.indices[queue] = index
            self.ids.append(queue)
            self.committed.append(np.zeros(self.total_threads, dtype=np.int64))
            self.completed.append(np.zeros(self.total_threads, dtype=np.int64))
            self.landed_interval.append(np.full((self.total_threads, 4), NEVER, np.int64))
        return index

    def forming_group(self, index: int, threads: np.ndarray) -> np.ndarray:
        """The group each of ``threads`` is forming on queue ``index``."""
        return self.committed[index][threads]

    def commit(self, index: int, threads: np.ndarray) -> None:
        self.committed[index][threads] += 1

    def force(self, index: int, threads: np.ndarray, in_flight, interval: int) -> None:
        """``threads`` wait until at most ``in_flight`` groups of queue ``index`` remain."""
        committed = self.committed[index][threads]
        start = self.completed[index][threads]
        target = np.maximum(committed - in_flight, start)
        if not (target > start).any():
            return
        landed = self._landed(index, int(target.max()))
        for group in range(int(start.min()), int(target.max())):
            lanes = (start <= group) & (group < target)
            landed[threads[lanes], group] = interval
        self.completed[index][threads] = target

    def _landed(self, index: int, groups: int) -> np.ndarray:
        landed = self.landed_interval[index]
        if landed.shape[1] < groups:
            grown = np.full((self.total_threads, max(groups, 2 * landed.shape[1])), NEVER,
                            np.int64)
            grown[:, :landed.shape[1]] = landed
            self.landed_interval[index] = landed = grown
        return landed

    def is_complete(self, index: int, threads, groups) -> np.ndarray:
        """Whether each (thread, group) has been forced to complete by its thread."""
        return self.completed[index][threads] > groups

    def completion_interval(self, index: int, threads, groups) -> np.ndarray:
        """The barrier interval of the wait that completed each (thread, group); NEVER for
        groups not yet complete."""
        landed = self.landed_interval[index]
        groups = np.asarray(groups)
        inside = groups < landed.shape[1]
        result = np.full(np.broadcast(threads, groups).shape, NEVER, np.int64)
        if inside.any():
            thread_lanes, group_lanes = np.broadcast_arrays(threads, groups)
            result[inside] = landed[thread_lanes[inside], group_lanes[inside]]
        return result
