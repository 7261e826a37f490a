"""The launch shape of a program: how many blocks and threads its bindings ask for.

Every ``T.thread_binding`` loop names an axis (``threadIdx.x`` ... ``blockIdx.z``); the
launch extent of an axis is the largest extent bound to it. Threads of a block are
numbered ``x + X * (y + Y * z)``, blocks likewise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import TilepipeError
from ..ir import For, ForKind, IRVisitor, PrimExpr, Stmt

THREAD_AXES = ("threadIdx.x", "threadIdx.y", "threadIdx.z")
BLOCK_AXES = ("blockIdx.x", "blockIdx.y", "blockIdx.z")
WARP_SIZE = 32


class LaunchError(TilepipeError):
    """A thread binding the simulator cannot launch."""


@dataclass(frozen=True)
class Launch:
    """Extents of the thread and block axes (1 for axes no loop binds)."""

    thread_extents: tuple[int, int, int]
    block_extents: tuple[int, int, int]

    @property
    def num_threads(self) -> int:
        x, y, z = self.thread_extents
        return x * y * z

    @property
    def num_blocks(self) -> int:
        x, y, z = self.block_extents
        return x * y * z

    @property
    def num_warps(self) -> int:
        return -(-self.num_threads // WARP_SIZE)

    def thread_coordinate(self, axis: str, local_ids: np.ndarray) -> np.ndarray:
        """The coordinate along ``axis`` of the threads numbered ``local_ids``."""
        position = THREAD_AXES.index(axis)
        stride = int(np.prod(self.thread_extents[:position]))
        return (local_ids // stride) % self.thread_extents[position]

    def block_coordinate(self, axis: str, block: int) -> int:
        position = BLOCK_AXES.index(axis)
        stride = int(np.prod(self.block_extents[:position]))
        return (block // stride) % self.block_extents[position]


def launch_of(body: Stmt, evaluate: Callable[[PrimExpr], object]) -> Launch:
    """The launch shape that ``body``'s thread bindings ask for; ``evaluate`` folds
    their extents, which must not depend on loop variables."""
    extents: dict[str, int] = {}

    class _Bindings(IRVisitor):
        def visit_for(self, node: For) -> None:
            if node.kind is ForKind.THREAD_BINDING and not _is_virtual(node.thread_tag):
                tag = node.thread_tag
                if tag not in THREAD_AXES + BLOCK_AXES:
                    raise LaunchError(f"unknown thread axis {tag!r} (use one of "
                                      f"{', '.join(THREAD_AXES + BLOCK_AXES)})", node.span)
                extent = evaluate(node.extent)
                if not isinstance(extent, (int, np.integer)):
                    raise LaunchError(
                        f"the extent of the {tag} binding of '{node.loop_var.name}' must be "
                        "one number for all threads", node.span)
                extents[tag] = max(extents.get(tag, 1), int(extent))
            super().visit_for(node)

    _Bindings().visit(body)
    return Launch(tuple(extents.get(axis, 1) for axis in THREAD_AXES),
                  tuple(extents.get(axis, 1) for axis in BLOCK_AXES))


def _is_virtual(tag: str | None) -> bool:
    """``vthread`` bindings run as serial loops in the simulator."""
    return tag is not None and tag.startswith("vthread")
