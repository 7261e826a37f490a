"""A slow, obviously-correct race finder over the threads' traces, to check the checker.

Every access of every thread of block 0 becomes a window: a synchronous access happens at
its step and in its barrier interval; an asynchronous one (an ``issue`` event) from its
issue until the wait that completes its group (for its own thread, in steps) and until
that wait's barrier interval (for other threads: visible only after the next barrier).
Two accesses to one element, one of them a write, race when their windows meet. Only
the existence of a race is compared with :func:`tilepipe.sim.verify`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from tilepipe.ir import Block, post_order_visit
from tilepipe.sim import trace
from tilepipe.sim.interpreter import Interpreter
from tilepipe.sim.schedule import parse_schedule
from tilepipe.sim.simulate import bind, global_arrays, random_inputs


@dataclass
class Window:
    thread: int
    is_write: bool
    is_async: bool
    queue: int | None
    group: int | None
    step: int              # issue (or access) step in the thread's trace
    interval: int          # barrier interval at issue (or access)
    end_step: float = math.inf       # step of the wait that completes it (async)
    end_interval: float = math.inf   # interval of that wait (async)


def _windows(events: list[dict], thread: int, private: set[str]) -> dict[tuple, list[Window]]:
    """Each element's access windows; ``private`` buffers have one copy per thread."""
    by_element: dict[tuple, list[Window]] = defaultdict(list)
    interval = 0
    committed: dict[int, int] = defaultdict(int)
    completed: dict[int, int] = defaultdict(int)
    pending: list[Window] = []
    for step, event in enumerate(events):
        kind = event["ev"]
        if kind == "barrier":
            interval += 1
        elif kind == "commit":
            committed[event["queue"]] += 1
        elif kind == "wait":
            queue = event["queue"]
            completed[queue] = max(completed[queue], committed[queue] - event["in_flight"])
            for window in pending:
                if window.queue == queue and window.group < completed[queue] \
                        and window.end_step == math.inf:
                    window.end_step, window.end_interval = step, interval
        elif kind in ("read", "write", "issue"):
            is_async = kind == "issue"
            window = Window(thread, event.get("access", kind) == "write", is_async,
                            event.get("queue"), committed[event["queue"]] if is_async else None,
                            step, interval)
            if is_async:
                window.end_step = window.end_interval = math.inf
                pending.append(window)
            owner = thread if event["buffer"] in private else None
            by_element[(event["buffer"], owner, tuple(event["index"]))].append(window)
    return by_element


def _meet(first: Window, second: Window) -> bool:
    if first.thread == second.thread:
        if first.is_async and second.is_async and first.queue == second.queue \
                and first.group == second.group:
            return False  # one group's statements: the checker's same-statement rule
        earlier, later = sorted((first, second), key=lambda window: window.step)
        return earlier.is_async and later.step < earlier.end_step
    return (max(first.interval, second.interval)
            <= min(first.end_interval if first.is_async else first.interval,
                   second.end_interval if second.is_async else second.interval))


def has_race(func, dims=None) -> bool:
    """Whether some pair of accesses in block 0 races, or work is left in flight, or
    the threads pass different numbers of barriers."""
    bound = bind(func, dims)
    allocated: list = []
    post_order_visit(bound.body, lambda node: allocated.extend(node.alloc_buffers)
                     if isinstance(node, Block) else None)
    private = {buffer.name for buffer in allocated
               if buffer.scope != "global" and not buffer.scope.startswith("shared")}
    threads = Interpreter(bound, global_arrays(bound, random_inputs(bound)),
                          parse_schedule("eager"), blocks=range(1)).num_threads
    elements: dict[tuple, list[Window]] = defaultdict(list)
    barrier_counts = set()
    for thread in range(threads):
        events = list(trace(bound, thread=thread))
        barrier_counts.add(sum(event["ev"] == "barrier" for event in events))
        for element, windows in _windows(events, thread, private).items():
            elements[element].extend(windows)
    if len(barrier_counts) > 1:
        return True
    for windows in elements.values():
        if any(window.is_async and window.end_step == math.inf for window in windows):
            return True
        for index, first in enumerate(windows):
            for second in windows[index + 1:]:
                if (first.is_write or second.is_write) and _meet(first, second):
                    return True
    return False
