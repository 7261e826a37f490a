"""The declared regions (``T.reads`` / ``T.writes``) of the blocks the pipeline emits.

A statement's own regions are its accesses with the loops inside it relaxed (``S[tx,
e]`` under ``for e in T.serial(4)`` is ``S[tx, 0:4]``), in terms of the pipelined loop's
variable; a block around one instance declares them with the iteration substituted, and
a section or the whole pipeline declares their union per buffer with the iterations
relaxed over the range they run (``A[tx, i + 3]`` over ``i`` in ``[0, 13)`` is
``A[tx, 3:16]``).

Relaxation is interval arithmetic on the index expressions: a variable with a constant
range becomes an interval, sums, differences, products by constants, floor division and
modulo by positive constants keep the form ``base + [low, high]`` where ``base`` does
not move; anything else, or a variable whose range is not constant, widens that
dimension to the whole buffer dimension (sound, never smaller than the accesses).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from ...arith.linear import mentions_any
from ...ir import (
    Add, Block, Buffer, BufferRegion, FloorDiv, FloorMod, For, IfThenElse, IntImm, Mul,
    PrimExpr, Range, SeqStmt, Stmt, Sub, Var, structural_equal,
)

# An index relaxed: ``base + [low, high]`` (``base`` None: constants only), a range kept
# as it is (it mentions nothing relaxed but has a symbolic extent), or None: the whole
# buffer dimension.
Dimension = "tuple[PrimExpr | None, int, int] | Range | None"
Ranges = Mapping[Var, "tuple[int, int] | None"]  # relaxed variables, inclusive bounds


class _Unbounded(Exception):
    """An index whose bounds the interval arithmetic cannot express."""


def _bounds(expr: PrimExpr, ranges: Ranges) -> tuple[PrimExpr | None, int, int, bool]:
    """``(base, low, high, moved)``: ``expr`` lies in ``base + [low, high]`` wherever the
    relaxed variables lie in their ranges; ``moved`` tells whether it mentions one (if
    not, the base is ``expr`` itself and the interval ``[0, 0]``, or ``None`` and the
    value for a constant)."""
    kind = type(expr)
    if kind is IntImm:
        return None, expr.value, expr.value, False
    if kind is Var:
        if expr not in ranges:
            return expr, 0, 0, False
        bounds = ranges[expr]
        if bounds is None:
            raise _Unbounded
        return None, bounds[0], bounds[1], True
    if kind not in _ARITHMETIC:
        if mentions_any(expr, ranges):
            raise _Unbounded
        return expr, 0, 0, False
    left_base, left_low, left_high, left_moved = _bounds(expr.a, ranges)
    right_base, right_low, right_high, right_moved = _bounds(expr.b, ranges)
    if not left_moved and not right_moved:
        return expr, 0, 0, False
    if kind is Add:
        base = right_base if left_base is None else (
            left_base if right_base is None else Add(left_base, right_base))
        return base, left_low + right_low, left_high + right_high, True
    if kind is Sub:
        if right_base is not None:
            if left_base is None:
                raise _Unbounded
            left_base = Sub(left_base, right_base)
        return left_base, left_low - right_high, left_high - right_low, True
    constant = right_base is None and right_low == right_high
    if kind is Mul:
        if not constant:
            if not (left_base is None and left_low == left_high):
                raise _Unbounded
            left_base, left_low, left_high, right_low = (
                right_base, right_low, right_high, left_low)
        factor = right_low
        base = None if left_base is None else Mul(left_base, IntImm(factor, expr.dtype))
        low, high = left_low * factor, left_high * factor
        return base, min(low, high), max(low, high), True
    if not constant or right_low <= 0:
        raise _Unbounded
    divisor = right_low
    if kind is FloorDiv:
        if left_base is not None:
            raise _Unbounded
        return None, left_low // divisor, left_high // divisor, True
    if left_base is None and left_low // divisor == left_high // divisor:
        return None, left_low % divisor, left_high % divisor, True
    return None, 0, divisor - 1, True


_ARITHMETIC = (Add, Sub, Mul, FloorDiv, FloorMod)


def relax_range(range_: Range, ranges: Ranges) -> Dimension:
    """One dimension of a region with the variables of ``ranges`` relaxed."""
    extent = range_.extent
    if type(extent) is IntImm and (type(range_.min) is IntImm or not ranges):
        low = range_.min
        if type(low) is IntImm:
            return None, low.value, low.value + extent.value - 1
        return low, 0, extent.value - 1
    if not ranges:
        return range_
    try:
        if isinstance(range_.extent, IntImm):
            base, low, high, _ = _bounds(range_.min, ranges)
            return base, low, high + range_.extent.value - 1
        if mentions_any(range_.min, ranges) or mentions_any(range_.extent, ranges):
            return None
        return range_
    except _Unbounded:
        return None


def _merge(first: Dimension, second: Dimension) -> Dimension:
    if first is None or second is None:
        return None
    if isinstance(first, Range) or isinstance(second, Range):
        if isinstance(first, Range) and isinstance(second, Range) and (
                first is second or structural_equal(first, second)):
            return first
        return None
    if first[0] is not second[0] and (first[0] is None or second[0] is None
                                      or not structural_equal(first[0], second[0])):
        return None
    return first[0], min(first[1], second[1]), max(first[2], second[2])


def _range(dimension: Dimension, extent: PrimExpr) -> Range:
    if dimension is None:
        return Range(IntImm(0, extent.dtype), extent)
    if isinstance(dimension, Range):
        return dimension
    base, low, high = dimension
    if base is None:
        start: PrimExpr = IntImm(low, extent.dtype)
    elif low == 0:
        start = base
    else:
        start = Add(base, IntImm(low, base.dtype))
    return Range(start, IntImm(high - low + 1, extent.dtype))


class RegionTable:
    """Relaxed regions united per buffer, in order of first access."""

    def __init__(self) -> None:
        self.dimensions: dict[Buffer, list[Dimension]] = {}

    def add(self, region: BufferRegion, ranges: Ranges) -> None:
        self.add_dimensions(region.buffer,
                            [relax_range(range_, ranges) for range_ in region.region])

    def add_dimensions(self, buffer: Buffer, dimensions: Sequence[Dimension]) -> None:
        known = self.dimensions.get(buffer)
        if known is None:
            self.dimensions[buffer] = list(dimensions)
            return
        for index, dimension in enumerate(dimensions):
            known[index] = _merge(known[index], dimension)

    def update(self, other: "RegionTable") -> None:
        for buffer, dimensions in other.dimensions.items():
            self.add_dimensions(buffer, dimensions)

    def regions(self, excluded: Iterable[Buffer] = ()) -> tuple[BufferRegion, ...]:
        left_out = set(excluded)
        return tuple(
            BufferRegion(buffer, tuple(_range(dimension, extent)
                                       for dimension, extent in zip(dimensions, buffer.shape)))
            for buffer, dimensions in self.dimensions.items() if buffer not in left_out)


class MovingRegions:
    """Regions to relax again and again over different ranges of one variable: the
    dimensions that do not mention it are relaxed once."""

    def __init__(self, regions: Iterable[BufferRegion], var: Var):
        self.entries = []  # (buffer, fixed dimensions, moving ranges by dimension)
        for region in regions:
            fixed: list[Dimension] = []
            moving: list[tuple[int, Range]] = []
            for index, range_ in enumerate(region.region):
                if mentions_any(range_.min, (var,)) or mentions_any(range_.extent, (var,)):
                    moving.append((index, range_))
                    fixed.append(None)
                else:
                    fixed.append(relax_range(range_, {}))
            self.entries.append((region.buffer, fixed, moving))

    def add_to(self, table: RegionTable, ranges: Ranges) -> None:
        """Adds the regions, relaxed over ``ranges`` (of that one variable), to ``table``."""
        for buffer, fixed, moving in self.entries:
            dimensions = list(fixed)
            for index, range_ in moving:
                dimensions[index] = relax_range(range_, ranges)
            table.add_dimensions(buffer, dimensions)


def relaxed(regions: Iterable[BufferRegion], ranges: Ranges,
            excluded: Iterable[Buffer] = ()) -> tuple[BufferRegion, ...]:
    """``regions`` with the variables of ``ranges`` relaxed, united per buffer."""
    table = RegionTable()
    for region in regions:
        table.add(region, ranges)
    return table.regions(excluded)


def inner_loops(stmt: Stmt) -> tuple[dict[Var, tuple[int, int] | None], list[Buffer]]:
    """The variables of the loops inside ``stmt`` with their inclusive bounds (None when
    not constant), and the buffers allocated inside it."""
    loops: dict[Var, tuple[int, int] | None] = {}
    allocated: list[Buffer] = []
    pending = [stmt]
    while pending:
        node = pending.pop()
        if isinstance(node, For):
            low, extent = node.min, node.extent
            constant = isinstance(low, IntImm) and isinstance(extent, IntImm)
            loops[node.loop_var] = (low.value, low.value + extent.value - 1) \
                if constant and extent.value > 0 else None
            pending.append(node.body)
        elif isinstance(node, Block):
            allocated.extend(node.alloc_buffers)
            pending.append(node.body)
        elif isinstance(node, SeqStmt):
            pending.extend(node.stmts)
        elif isinstance(node, IfThenElse):
            pending.append(node.then_case)
            if node.else_case is not None:
                pending.append(node.else_case)
        elif hasattr(node, "body") and isinstance(node.body, Stmt):
            pending.append(node.body)
    return loops, allocated


def declared(stmt: Stmt | None) -> tuple[RegionTable, RegionTable]:
    """The regions that the blocks of an emitted sequence (or branch) declare, united."""
    reads, writes = RegionTable(), RegionTable()
    pending = [stmt]
    while pending:
        node = pending.pop(0)
        if isinstance(node, Block):
            for table, regions in ((reads, node.reads), (writes, node.writes)):
                for region in regions:
                    table.add(region, {})
        elif isinstance(node, SeqStmt):
            pending[:0] = node.stmts
        elif isinstance(node, IfThenElse):
            pending[:0] = [node.then_case, node.else_case]
        elif node is not None and hasattr(node, "body") and isinstance(node.body, Stmt):
            pending.insert(0, node.body)
    return reads, writes
