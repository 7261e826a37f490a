"""``trace``: one thread's synchronization events, in execution order (docs/trace.md).

Events are dicts: ``issue`` (an element an asynchronous statement will write, or read
outside global memory), ``commit``, ``wait`` (with the evaluated in-flight count, the
source line of the wait as ``site`` and the values of the enclosing unrolled loops),
``read`` and ``write`` (synchronous element accesses) and ``barrier``. Asynchronous
statements are issued eagerly, so their issue events come where they are issued.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..errors import TilepipeError
from ..ir import PrimFunc
from .interpreter import Interpreter, Observer
from .memory import GLOBAL, THREAD, WARP
from .schedule import EAGER, parse_schedule
from .simulate import bind, global_arrays, random_inputs


class _Tracer(Observer):
    def __init__(self, thread: int):
        self.thread = thread
        self.events: list[dict] = []

    def _lane(self, context) -> int | None:
        position = int(np.searchsorted(context.threads, self.thread))
        if position < len(context.threads) and context.threads[position] == self.thread:
            return position
        return None

    def access(self, context, storage, threads, flat, is_write) -> None:
        mine = np.flatnonzero(threads == self.thread)
        if not len(mine):
            return
        is_async = context.async_queue is not None
        if is_async and not is_write and storage.owner == GLOBAL:
            return
        queue = self.interpreter.queues.ids[context.async_queue] if is_async else None
        for lane in mine:
            index = [int(value) for value in np.unravel_index(int(flat[lane]),
                                                               storage.array.shape)]
            if storage.owner in (THREAD, WARP):
                index = index[1:]
            if is_async:
                self.events.append({"ev": "issue", "queue": queue,
                                    "buffer": storage.buffer.name, "index": index,
                                    "access": "write" if is_write else "read"})
            else:
                self.events.append({"ev": "write" if is_write else "read",
                                    "buffer": storage.buffer.name, "index": index})

    def commit(self, stmt, context, queue) -> None:
        if self._lane(context) is not None:
            self.events.append({"ev": "commit", "queue": stmt.queue})

    def wait(self, stmt, context, queue, in_flight, committed) -> None:
        lane = self._lane(context)
        if lane is None:
            return
        count = in_flight[lane] if isinstance(in_flight, np.ndarray) else in_flight
        unroll = [int(np.ravel(context.env[var])[0]) for var in context.unrolled]
        self.events.append({"ev": "wait", "queue": stmt.queue, "in_flight": int(count),
                            "site": stmt.span.line if stmt.span is not None else None,
                            "unroll": unroll})

    def barrier(self, context) -> None:
        if self._lane(context) is not None:
            self.events.append({"ev": "barrier"})


def trace(func: PrimFunc, thread: int = 0, dims=None) -> Iterator[dict]:
    """The events of thread ``thread`` (linear index in block 0), in execution order."""
    func = bind(func, dims)
    tracer = _Tracer(thread)
    interpreter = Interpreter(func, global_arrays(func, random_inputs(func)),
                              parse_schedule(EAGER), tracer, blocks=range(1))
    if not 0 <= thread < interpreter.num_threads:
        raise TilepipeError(f"thread {thread} does not exist: a block of '{func.name}' has "
                            f"{interpreter.num_threads} thread(s)", func.span)
    interpreter.run()
    return iter(tracer.events)
