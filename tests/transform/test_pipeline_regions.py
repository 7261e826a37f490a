"""The declared regions of the blocks the pipeline emits: every access made inside a
block, in every execution, lies in the region the block declares for its buffer (walked
exhaustively over every loop value), and the regions read like the seeds'."""

from __future__ import annotations

import operator
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from pipeline_helpers import program, seed

from tilepipe.ir import (
    EQ, GE, GT, LE, LT, NE, Add, And, AsyncCommitQueue, AsyncScope, AsyncWaitQueue, Block,
    BufferLoad, BufferStore, Call, Cast, Evaluate, FloatImm, FloorDiv, FloorMod, For,
    IfThenElse, IntImm, Max, Min, Mul, Not, Or, PrimExpr, Select, SeqStmt, StringImm, Sub, Var, bind_params,
)
from tilepipe.kernels import examples
from tilepipe.script import parse
from tilepipe.transform import inject_software_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline_programs import programs  # noqa: E402

_OPERATORS = {Add: operator.add, Sub: operator.sub, Mul: operator.mul,
              FloorDiv: operator.floordiv, FloorMod: operator.mod, Min: min, Max: max,
              EQ: operator.eq, NE: operator.ne, LT: operator.lt, LE: operator.le,
              GT: operator.gt, GE: operator.ge, And: lambda a, b: a and b,
              Or: lambda a, b: a or b}


class _Coverage:
    """Runs the loop structure of a program (not its data) and checks each access
    against the regions of every enclosing block that declares any."""

    def __init__(self) -> None:
        self.env: dict[Var, int] = {}
        self.scopes: list[tuple[Block, dict, dict]] = []
        self.accesses = 0

    def value(self, expr):
        kind = type(expr)
        if kind is IntImm:
            return expr.value
        if kind in (FloatImm, StringImm):
            return expr.value
        if kind is Var:
            return self.env[expr]
        if kind in _OPERATORS:
            return _OPERATORS[kind](self.value(expr.a), self.value(expr.b))
        if kind is Not:
            return not self.value(expr.a)
        if kind is Select:
            chosen = expr.true_value if self.value(expr.condition) else expr.false_value
            return self.value(chosen)
        if kind is Cast:
            return self.value(expr.value)
        if kind is BufferLoad:
            self.access(expr.buffer, expr.indices, "read")
            return 0
        if kind is Call:
            for arg in expr.args:
                if isinstance(arg, PrimExpr):
                    self.value(arg)
            return 0
        raise AssertionError(f"unexpected {kind.__name__}")

    def access(self, buffer, indices, kind: str) -> None:
        point = [self.value(index) for index in indices]
        self.accesses += 1
        for block, reads, writes in reversed(self.scopes):
            if buffer in block.alloc_buffers:
                break  # blocks around the one allocating the buffer do not see it
            declared = reads if kind == "read" else writes
            assert buffer in declared, (
                f"{kind} of {buffer.name}{point} in a block declaring no region of it:\n"
                f"{block}")
            assert all(low <= coordinate < high for coordinate, (low, high)
                       in zip(point, declared[buffer])), (
                f"{kind} of {buffer.name}{point} outside {declared[buffer]}:\n{block}")

    def regions(self, regions) -> dict:
        return {region.buffer: [(self.value(range_.min),
                                 self.value(range_.min) + self.value(range_.extent))
                                for range_ in region.region] for region in regions}

    def run(self, stmt) -> None:
        if isinstance(stmt, SeqStmt):
            for item in stmt.stmts:
                self.run(item)
        elif isinstance(stmt, For):
            start, extent = self.value(stmt.min), self.value(stmt.extent)
            for value in range(start, start + extent):
                self.env[stmt.loop_var] = value
                self.run(stmt.body)
            self.env.pop(stmt.loop_var, None)
        elif isinstance(stmt, Block):
            if stmt.predicate is not None and not self.value(stmt.predicate):
                return
            self.scopes.append((stmt, self.regions(stmt.reads), self.regions(stmt.writes)))
            self.run(stmt.body)
            self.scopes.pop()
        elif isinstance(stmt, BufferStore):
            self.value(stmt.value)
            self.access(stmt.buffer, stmt.indices, "write")
        elif isinstance(stmt, IfThenElse):
            if self.value(stmt.condition):
                self.run(stmt.then_case)
            elif stmt.else_case is not None:
                self.run(stmt.else_case)
        elif isinstance(stmt, AsyncWaitQueue):
            self.value(stmt.in_flight)
            self.run(stmt.body)
        elif isinstance(stmt, (AsyncScope, AsyncCommitQueue)):
            self.run(stmt.body)
        elif isinstance(stmt, Evaluate):
            self.value(stmt.value)
        else:
            raise AssertionError(f"unexpected {type(stmt).__name__}")


def check_coverage(func) -> int:
    """Checks the pipelined ``func``; returns the number of accesses checked."""
    pipelined = inject_software_pipeline(func)
    coverage = _Coverage()
    coverage.run(pipelined.body)
    assert coverage.accesses > 0
    return coverage.accesses


NESTED = '''
@T.prim_func
def nested(A: T.Buffer((4, 3, 8), "float32"), C: T.Buffer((4, 3, 8), "float32")):
    for tx in T.thread_binding(4, thread="threadIdx.x"):
        for i in T.serial(3, annotations={"software_pipeline_stage": [0, 1, 1, 1],
                                          "software_pipeline_order": [0, 1, 2, 3],
                                          "software_pipeline_async_stages": [0]}):
            with T.block():
                A_shared = T.alloc_buffer((4, 8), dtype="float32", scope="shared")
                for j in T.serial(8):
                    A_shared[tx, j] = A[tx, i, j]
                for j in T.serial(8, annotations={"software_pipeline_stage": [0, 2],
                                                  "software_pipeline_order": [0, 1],
                                                  "software_pipeline_async_stages": [0]}):
                    with T.block():
                        B = T.alloc_buffer((4, 1), dtype="float32", scope="shared")
                        B[tx, 0] = A_shared[tx, j]
                        C[tx, i, j] = B[tx, 0] + T.float32(1)
'''


def test_regions_of_the_seed_examples_cover_their_accesses():
    for func in (examples.simple_compute(1), examples.simple_compute(3),
                 examples.simple_compute(2, async_copy=False), examples.shared_exchange(3),
                 seed("three_stage_compute"), program(NESTED)):
        check_coverage(func)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_regions_cover_every_access_of_generated_pipelines(generated):
    func = bind_params(parse(generated.source), generated.dims)
    check_coverage(func)


def test_section_regions_are_the_accesses_relaxed_over_the_iterations():
    """The seeds' simple_compute with three stages: the prologue copies tiles 0..2 into
    versions 0..2, the body copies tiles 3..15 and reads every version, the epilogue
    reads versions 1..3 (iterations 13..15) and the pipeline block declares neither
    the ring buffer it allocates nor more than the accesses."""
    pipelined = inject_software_pipeline(examples.simple_compute(3))
    text = pipelined.script()
    expected = program(text)  # reads back with the same regions
    assert expected.script() == text
    lines = [line.strip() for line in text.splitlines()]
    assert lines[lines.index("with T.block():") + 1:][:2] == [
        "T.reads(A[tx, 0:64])", "T.writes(C[tx, 0:64])"]
    assert "T.reads(A[tx, 0:12])" in lines and "T.writes(B[0:3, tx, 0:4])" in lines
    assert "T.reads(A[tx, 12:64], B[0:4, tx, 0:4])" in lines
    assert "T.writes(B[0:4, tx, 0:4], C[tx, 0:52])" in lines
    assert "T.reads(B[1:4, tx, 0:4])" in lines and "T.writes(C[tx, 52:64])" in lines
    assert "T.reads(A[tx, (i + 3) * 4:(i + 3) * 4 + 4])" in lines
    assert "T.writes(B[(i + 3) % 4, tx, 0:4])" in lines
    assert "T.reads()" not in lines


def test_a_symbolic_extent_widens_the_dimensions_that_move():
    func = parse('''from tilepipe import script as T


@T.prim_func
def copy(n: T.int32, A: T.Buffer((4, 64), "float32"), C: T.Buffer((4, 64), "float32")):
    for tx in T.thread_binding(4, thread="threadIdx.x"):
        for i in T.serial(n, annotations={"software_pipeline_stage": [0, 1],
                                          "software_pipeline_order": [0, 1],
                                          "software_pipeline_async_stages": [0]}):
            with T.block():
                S = T.alloc_buffer((4, 1), "float32", scope="shared")
                S[tx, 0] = A[tx, i]
                C[tx, i] = S[tx, 0]
''')
    text = inject_software_pipeline(func).script()
    assert "T.reads(A[tx, 0:64])" in text and "T.writes(C[tx, 0:64])" in text
    for extent in (1, 2, 5):
        check_coverage(bind_params(func, {"n": extent}))
