"""Recognize the asynchronous statements CUDA can run: ``cp.async`` global->shared copies.

``cp.async`` copies 4, 8 or 16 contiguous bytes whose shared and global addresses are
aligned to the copy size. An async statement is such a copy when it is a store of a load
(``S[...] = G[...]``, global source, shared destination, same dtype), possibly over a
vectorized loop whose variable advances both innermost indices by one element. Anything
else raises a :class:`LoweringError` naming the statement and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

from ...errors import LoweringError
from ...ir import (
    EQ, SHARED_SCOPES, Add, BufferLoad, BufferStore, FloorMod, For, ForKind, Mul, PrimExpr,
    Stmt, Sub, Var, as_int, const, dtype_bytes, post_order_visit, substitute,
)
from ...ir.printer import stmt_to_str

COPY_SIZES = (4, 8, 16)



@dataclass(frozen=True)
class AsyncCopy:
    """One ``cp.async``: ``num_bytes`` from ``source[source_indices]`` (global) to
    ``destination[destination_indices]`` (shared), indices of the first element."""

    destination: BufferStore
    destination_indices: tuple[PrimExpr, ...]
    source: BufferLoad
    source_indices: tuple[PrimExpr, ...]
    num_bytes: int

    @property
    def cache_operator(self) -> str:
        """``cg`` (bypass L1) is only defined for 16-byte copies; ``ca`` otherwise."""
        return "cg" if self.num_bytes == 16 else "ca"


def flat_offset(shape: tuple[PrimExpr, ...], indices: tuple[PrimExpr, ...]) -> PrimExpr:
    """Row-major element offset of ``indices`` in a buffer of ``shape``."""
    offset: PrimExpr | None = None
    for extent, index in zip(shape, indices):
        offset = index if offset is None else offset * extent + index
    return offset if offset is not None else const(0)


def is_multiple_of(expr: PrimExpr, factor: int, analyzer=None) -> bool:
    """Whether ``expr`` is provably a multiple of ``factor`` for every value of its vars."""
    if factor == 1 or _structurally_multiple(expr, factor):
        return True
    if analyzer is None:
        return False
    return analyzer.can_prove(EQ(FloorMod(expr, const(factor, expr.dtype)), const(0, expr.dtype)))


def _structurally_multiple(expr: PrimExpr, factor: int) -> bool:
    value = as_int(expr)
    if value is not None:
        return value % factor == 0
    if isinstance(expr, (Add, Sub)):
        return _structurally_multiple(expr.a, factor) and _structurally_multiple(expr.b, factor)
    if isinstance(expr, Mul):
        for left, right in ((expr.a, expr.b), (expr.b, expr.a)):
            constant = as_int(left)
            if constant is not None:
                remaining = factor // gcd(constant, factor)
                return _structurally_multiple(right, remaining)
        return _structurally_multiple(expr.a, factor) or _structurally_multiple(expr.b, factor)
    if isinstance(expr, FloorMod):
        modulus = as_int(expr.b)
        return (modulus is not None and modulus % factor == 0
                and _structurally_multiple(expr.a, factor))
    return False


def _fail(stmt: Stmt, reason: str) -> LoweringError:
    text = stmt_to_str(stmt).strip().splitlines()
    shown = text[0] if text else type(stmt).__name__
    return LoweringError(f"async statement `{shown}` cannot be a cp.async copy: {reason}",
                         stmt.span)


def first_lane_indices(indices: tuple[PrimExpr, ...], lane: Var, start: PrimExpr,
                       analyzer=None) -> tuple[PrimExpr, ...] | None:
    """The indices at ``lane = start`` when the access is contiguous in ``lane``: only the
    last index mentions it, as ``base + lane``. None otherwise."""
    if any(_mentions(index, lane) for index in indices[:-1]):
        return None
    last = indices[-1]
    if last is lane or (isinstance(last, Add) and (last.a is lane or last.b is lane)
                        and not _mentions(last.b if last.a is lane else last.a, lane)):
        advances = True
    elif analyzer is not None:
        step = analyzer.simplify(substitute(last, {lane: lane + 1}) - last)
        advances = as_int(step) == 1
    else:
        advances = False
    if not advances:
        return None
    first = tuple(substitute(index, {lane: start}) for index in indices)
    if analyzer is not None:
        first = tuple(analyzer.simplify(index) for index in first)
    return first


def _mentions(expr: PrimExpr, var: Var) -> bool:
    found = []
    post_order_visit(expr, lambda node: found.append(node) if node is var else None)
    return bool(found)


def match_async_copy(stmt: Stmt, analyzer=None) -> AsyncCopy:
    """The ``cp.async`` that ``stmt`` (a store or a vectorized loop of one) performs."""
    lane: Var | None = None
    lanes = 1
    store = stmt
    if isinstance(stmt, For):
        if stmt.kind is not ForKind.VECTORIZED:
            raise _fail(stmt, f"a {stmt.kind.value} loop is not one copy (vectorize it)")
        lanes = as_int(stmt.extent)
        if lanes is None:
            raise _fail(stmt, "the vectorized loop's extent is not a constant")
        lane = stmt.loop_var
        store = stmt.body
    if not isinstance(store, BufferStore):
        raise _fail(stmt, "it is not a store of a loaded value")
    load = store.value
    if not isinstance(load, BufferLoad):
        raise _fail(stmt, "the stored value is computed, not copied (move the arithmetic "
                          "to a synchronous stage)")
    destination, source = store.buffer, load.buffer
    if source.scope != "global":
        raise _fail(stmt, f"the source {source.name} is in '{source.scope}' memory, not global")
    if destination.scope not in SHARED_SCOPES:
        raise _fail(stmt, f"the destination {destination.name} is in '{destination.scope}' "
                          "memory, not shared")
    if source.dtype != destination.dtype:
        raise _fail(stmt, f"it converts {source.dtype} to {destination.dtype}")
    element_bytes = dtype_bytes(destination.dtype)
    num_bytes = element_bytes * lanes
    if num_bytes not in COPY_SIZES:
        raise _fail(stmt, f"it copies {num_bytes} bytes; cp.async copies 4, 8 or 16")
    destination_indices, source_indices = store.indices, load.indices
    if lane is not None:
        starts = []
        for buffer, indices in ((destination, destination_indices), (source, source_indices)):
            first = first_lane_indices(indices, lane, stmt.min, analyzer)
            if first is None:
                raise _fail(stmt, f"the elements of {buffer.name} are not contiguous in "
                                  f"{lane.name} (it must advance only the last index by one)")
            starts.append(first)
        destination_indices, source_indices = starts
    for buffer, indices in ((destination, destination_indices), (source, source_indices)):
        offset = flat_offset(buffer.shape, indices)
        if not is_multiple_of(offset, lanes, analyzer):
            raise _fail(stmt, f"the address of {buffer.name}[...] is not provably aligned to "
                              f"{num_bytes} bytes (its element offset must be a multiple of "
                              f"{lanes})")
    return AsyncCopy(store, destination_indices, load, source_indices, num_bytes)
