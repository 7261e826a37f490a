"""The threads that execute a statement together, and what a statement can do.

Threads of a block run in lock step: a :class:`Context` holds the ids of the threads
that take part (sorted), and every variable is either one number for all of them or an
array with one value per thread ("lanes"). A condition that differs between threads
splits the context into the threads that take each branch.

Intrinsic handlers receive the executing context; :meth:`Context.evaluate`,
:meth:`Context.load`, :meth:`Context.store`, :meth:`Context.read_region`,
:meth:`Context.write_region` and :meth:`Context.barrier` are what they may use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from ..ir import BufferRegion, PrimExpr
from .launch import WARP_SIZE

if TYPE_CHECKING:
    from ..ir import Buffer
    from .interpreter import Interpreter


def is_lanes(value: Any) -> bool:
    """Whether ``value`` holds one value per thread rather than one for all."""
    return isinstance(value, np.ndarray) and value.ndim == 1


class Context:
    """``threads``: global thread ids (block * threads per block + local id);
    ``local``: ids within the block; ``env``: variable values; ``unrolled``: the
    variables of the enclosing ``T.unroll`` loops, outermost first; ``commit_queue``:
    the queue of the innermost commit scope (None outside one); ``async_queue``: the
    dense queue index of the asynchronous statement being executed (None when the
    statement is synchronous)."""

    __slots__ = ("machine", "threads", "local", "env", "unrolled", "commit_queue",
                 "async_queue")

    def __init__(self, machine: "Interpreter", threads: np.ndarray, local: np.ndarray,
                 env: dict, unrolled: tuple = (), commit_queue: int | None = None,
                 async_queue: int | None = None):
        self.machine = machine
        self.threads = threads
        self.local = local
        self.env = env
        self.unrolled = unrolled
        self.commit_queue = commit_queue
        self.async_queue = async_queue

    def __len__(self) -> int:
        return len(self.threads)

    def subset(self, lanes: np.ndarray) -> "Context":
        """The threads selected by the boolean array ``lanes``, with their values."""
        env = {var: value[lanes] if is_lanes(value) else value
               for var, value in self.env.items()}
        return Context(self.machine, self.threads[lanes], self.local[lanes], env,
                       self.unrolled, self.commit_queue, self.async_queue)

    def copy(self, **changes) -> "Context":
        """The same threads with a copy of the environment (and ``changes`` applied)."""
        fields = dict(threads=self.threads, local=self.local, env=dict(self.env),
                      unrolled=self.unrolled, commit_queue=self.commit_queue,
                      async_queue=self.async_queue)
        fields.update(changes)
        return Context(self.machine, **fields)

    def lanes(self, value: Any) -> np.ndarray:
        """``value`` as one entry per thread."""
        if is_lanes(value):
            return value
        return np.full(len(self.threads), value)

    # What intrinsic handlers use ---------------------------------------------------
    def evaluate(self, expr: PrimExpr) -> Any:
        return self.machine.evaluate(expr, self)

    def load(self, buffer: "Buffer", indices: list, span=None) -> Any:
        """Read ``buffer[indices]`` (numbers or lanes) for every thread."""
        return self.machine.load(self, buffer, indices, span)

    def store(self, buffer: "Buffer", indices: list, value: Any, span=None) -> None:
        self.machine.store(self, buffer, indices, value, span)

    def read_region(self, region: BufferRegion, span=None) -> np.ndarray:
        """A copy of a region whose bounds are the same for every thread (of the one
        thread or warp that owns it, for per-thread and per-warp buffers)."""
        return self.machine.region_access(self, region, None, span)

    def write_region(self, region: BufferRegion, values: np.ndarray, span=None) -> None:
        self.machine.region_access(self, region, values, span)

    def barrier(self) -> None:
        """``__syncthreads()``: completed writes become visible to every thread."""
        self.machine.barrier(self)

    def per_warp(self) -> Iterator["Context"]:
        """One context per warp with threads here, for warp-collective operations."""
        warps = self.local // WARP_SIZE
        for warp in np.unique(warps):
            yield self.subset(warps == warp)

    def block_state(self, key: str, factory: Callable[[], Any]) -> Any:
        """Per-block state of an extension (made by ``factory`` on first use). If it has
        a ``step(schedule)`` method the interpreter calls it before every statement;
        ``finish()`` at the end of the block."""
        return self.machine.block_state(key, factory)
