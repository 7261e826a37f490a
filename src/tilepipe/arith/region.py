"""Region inference: which part of each buffer a statement reads and writes.

Every access is relaxed over the loops inside the statement (their variables take every
value of their ranges) to a symbolic per-dimension ``[lo, hi]``; the accesses to one
buffer are then united dimension by dimension. Variables bound outside the statement
stay symbolic, so the region of ``A[tx, i + 3]`` inside a loop over ``k`` is the point
``A[tx, i + 3]`` and, over ``i`` in ``[0, 13)``, ``A[tx, 3:16]``.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from ..ir import (
    Block, Buffer, BufferLoad, BufferRegion, BufferStore, Call, FloorDiv, FloorMod, For, IntImm,
    IRMutator, IRVisitor, Max, Min, PrimExpr, PrimFunc, Range, Stmt, Var,
)
from .analyzer import Analyzer
from .linear import LinearForm, mentions_any, structural_key

Bounds = tuple[PrimExpr, PrimExpr]  # (lo, hi), both inclusive


class _Relaxer:
    """Symbolic inclusive bounds of expressions over the variables of ``ranges``."""

    def __init__(self, ranges: Mapping[Var, Range], analyzer: Analyzer):
        self.ranges = ranges
        self.analyzer = analyzer
        self.var_bounds: dict[Var, Bounds | None] = {}

    def mentions_relaxed(self, expr: PrimExpr) -> bool:
        return mentions_any(expr, self.ranges)

    def bounds(self, expr: PrimExpr) -> Bounds | None:
        """``(lo, hi)`` with ``lo <= expr <= hi`` wherever the relaxed variables lie in
        their ranges, free of those variables; None when no such bounds are known."""
        if not self.mentions_relaxed(expr):
            simplified = self.analyzer.simplify(expr)
            return simplified, simplified
        form = self.analyzer.linear_form(expr)
        low = LinearForm.of_constant(form.constant)
        high = LinearForm.of_constant(form.constant)
        for atom, coefficient in form.items():
            atom_bounds = self._atom_bounds(atom)
            if atom_bounds is None:
                return None
            first, last = (self.analyzer.linear_form(part) for part in atom_bounds)
            if coefficient < 0:
                first, last = last, first
            low = low.add(first, coefficient)
            high = high.add(last, coefficient)
        dtype = expr.dtype
        return low.to_expr(dtype), high.to_expr(dtype)

    def _atom_bounds(self, atom: PrimExpr) -> Bounds | None:
        if isinstance(atom, Var):
            if atom not in self.ranges:
                return atom, atom
            if atom not in self.var_bounds:
                self.var_bounds[atom] = None  # a range that mentions its own variable
                range_ = self.ranges[atom]
                first = self.bounds(range_.min)
                last = self.bounds(range_.min + range_.extent - 1)
                if first is not None and last is not None:
                    self.var_bounds[atom] = (first[0], last[1])
            return self.var_bounds[atom]
        if not self.mentions_relaxed(atom):
            return atom, atom
        if isinstance(atom, (FloorDiv, FloorMod)) and isinstance(atom.b, IntImm) \
                and atom.b.value > 0:
            return self._division_bounds(atom)
        if isinstance(atom, (Min, Max)):
            left = self.bounds(atom.a)
            right = self.bounds(atom.b)
            if left is None or right is None:
                return None
            kind = type(atom)
            return (self.analyzer.simplify(kind(left[0], right[0])),
                    self.analyzer.simplify(kind(left[1], right[1])))
        return None

    def _division_bounds(self, atom: FloorDiv | FloorMod) -> Bounds | None:
        numerator = self.bounds(atom.a)
        divisor = atom.b
        if isinstance(atom, FloorDiv):
            if numerator is None:
                return None
            return (self.analyzer.simplify(FloorDiv(numerator[0], divisor)),
                    self.analyzer.simplify(FloorDiv(numerator[1], divisor)))
        whole = (IntImm(0, atom.dtype), IntImm(divisor.value - 1, atom.dtype))
        if numerator is None:
            return whole
        first = self.analyzer.simplify(FloorDiv(numerator[0], divisor))
        last = self.analyzer.simplify(FloorDiv(numerator[1], divisor))
        if structural_key(first) != structural_key(last):
            return whole
        return (self.analyzer.simplify(numerator[0] - first * divisor),
                self.analyzer.simplify(numerator[1] - first * divisor))


def _region_from_bounds(buffer: Buffer, bounds: Sequence[Bounds | None],
                        analyzer: Analyzer, span=None) -> BufferRegion:
    ranges = []
    for dimension, bound in enumerate(bounds):
        if bound is None:
            ranges.append(Range(IntImm(0, buffer.shape[dimension].dtype),
                                buffer.shape[dimension]))
        else:
            low, high = bound
            ranges.append(Range(low, analyzer.simplify(high - low + 1)))
    return BufferRegion(buffer, tuple(ranges), span)


def relax_region(region: BufferRegion, ranges: Mapping[Var, Range],
                 analyzer: Analyzer | None = None) -> BufferRegion:
    """``region`` with the variables of ``ranges`` taking every value of their ranges.

    A dimension whose bounds cannot be expressed covers the whole buffer dimension.
    """
    analyzer = analyzer if analyzer is not None else Analyzer()
    relaxer = _Relaxer(ranges, analyzer)
    return _region_from_bounds(region.buffer, _relax_ranges(relaxer, region.region),
                               analyzer, region.span)


def _relax_ranges(relaxer: _Relaxer, region: Iterable[Range]) -> list[Bounds | None]:
    bounds = []
    for range_ in region:
        first = relaxer.bounds(range_.min)
        last = relaxer.bounds(range_.min + range_.extent - 1)
        bounds.append(None if first is None or last is None else (first[0], last[1]))
    return bounds


class _AccessCollector(IRVisitor):
    """Unites the relaxed accesses of a statement, per buffer, in order of first access."""

    def __init__(self, excluded: Iterable[Buffer], analyzer: Analyzer):
        self.excluded = set(excluded)
        self.analyzer = analyzer
        self.loops: dict[Var, Range] = {}
        self.reads: dict[Buffer, list[Bounds | None]] = {}
        self.writes: dict[Buffer, list[Bounds | None]] = {}

    def _record(self, table: dict, buffer: Buffer, bounds: list[Bounds | None]) -> None:
        if buffer in self.excluded:
            return
        known = table.get(buffer)
        if known is None:
            table[buffer] = bounds
            return
        for dimension, (old, new) in enumerate(zip(known, bounds)):
            if old is None or new is None:
                known[dimension] = None
            else:
                known[dimension] = (self.analyzer.simplify(Min(old[0], new[0])),
                                    self.analyzer.simplify(Max(old[1], new[1])))

    def _access(self, indices: Sequence[PrimExpr]) -> list[Bounds | None]:
        relaxer = _Relaxer(self.loops, self.analyzer)
        return [relaxer.bounds(index) for index in indices]

    def visit_buffer_load(self, node: BufferLoad) -> None:
        super().visit_buffer_load(node)
        self._record(self.reads, node.buffer, self._access(node.indices))

    def visit_buffer_store(self, node: BufferStore) -> None:
        self.visit(node.value)
        for index in node.indices:
            self.visit(index)
        self._record(self.writes, node.buffer, self._access(node.indices))

    def visit_call(self, node: Call) -> None:
        for arg in node.args:
            if isinstance(arg, BufferRegion):
                for range_ in arg.region:
                    self.visit(range_)
                self._record(self.reads, arg.buffer,
                             _relax_ranges(_Relaxer(self.loops, self.analyzer), arg.region))
            elif isinstance(arg, PrimExpr):
                self.visit(arg)

    def visit_for(self, node: For) -> None:
        self.visit(node.min)
        self.visit(node.extent)
        range_ = Range(node.min, node.extent)
        self.loops[node.loop_var] = range_
        self.analyzer.bind(node.loop_var, range_)
        self.visit(node.body)
        del self.loops[node.loop_var]

    def visit_block(self, node: Block) -> None:
        self.excluded.update(node.alloc_buffers)
        if node.predicate is not None:
            self.visit(node.predicate)
        if not node.reads and not node.writes:
            self.visit(node.body)
            return
        relaxer = _Relaxer(self.loops, self.analyzer)
        for table, regions in ((self.reads, node.reads), (self.writes, node.writes)):
            for region in regions:
                self._record(table, region.buffer, _relax_ranges(relaxer, region.region))


def infer_regions(stmt: Stmt, alloc_buffers: Iterable[Buffer] = (),
                  analyzer: Analyzer | None = None
                  ) -> tuple[tuple[BufferRegion, ...], tuple[BufferRegion, ...]]:
    """The ``(reads, writes)`` regions of ``stmt``: one region per buffer, in order of
    first access, uniting every access over the loops inside ``stmt``.

    Buffers in ``alloc_buffers`` and those allocated by blocks inside are left out. A
    block inside that declares its reads or writes contributes its declared regions
    rather than its body's accesses. ``analyzer`` may carry the ranges of variables bound
    outside ``stmt``; it is copied, never changed.
    """
    analyzer = analyzer.copy() if analyzer is not None else Analyzer()
    collector = _AccessCollector(alloc_buffers, analyzer)
    collector.visit(stmt)
    reads = tuple(_region_from_bounds(buffer, bounds, analyzer)
                  for buffer, bounds in collector.reads.items())
    writes = tuple(_region_from_bounds(buffer, bounds, analyzer)
                   for buffer, bounds in collector.writes.items())
    return reads, writes


def declare_regions(func: PrimFunc) -> PrimFunc:
    """``func`` with the inferred regions written on every block that declares none, as
    TVMScript shows them (a block with neither ``T.reads`` nor ``T.writes`` leaves its
    regions to inference, so the meaning does not change). Inner blocks first, so that an
    outer block relaxes its inner blocks' regions rather than walking their bodies."""
    body = _RegionDeclarer().visit(func.body)
    return func if body is func.body else func.with_body(body)


class _RegionDeclarer(IRMutator):
    def visit_block(self, node: Block) -> Stmt:
        block = super().visit_block(node)
        if block.reads or block.writes:
            return block
        reads, writes = infer_regions(block.body, block.alloc_buffers)
        if not reads and not writes:
            return block
        return Block(block.name, block.body, reads, writes, block.alloc_buffers,
                     block.predicate, block.annotations, block.span)


def detect_affine(expr: PrimExpr, variables: Sequence[Var]
                  ) -> tuple[tuple[int, ...], PrimExpr] | None:
    """``(coefficients, constant)`` with ``expr == sum(c * v) + constant`` where the
    coefficients are integers and ``constant`` mentions none of ``variables``; None when
    ``expr`` is not affine in them."""
    form = Analyzer().linear_form(expr)
    positions = {var: index for index, var in enumerate(variables)}
    coefficients = [0] * len(variables)
    rest = LinearForm.of_constant(form.constant)
    for atom, coefficient in form.items():
        if isinstance(atom, Var) and atom in positions:
            coefficients[positions[atom]] = coefficient
            continue
        if mentions_any(atom, positions):
            return None
        rest = rest.add(LinearForm.of_atom(atom), coefficient)
    return tuple(coefficients), rest.to_expr(expr.dtype)
