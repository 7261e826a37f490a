"""The tensor-core GEMM kernel: it parses, pipelines with the RFC's nested annotation into
the seed's wait counts, simulates to ``A @ B`` race-free with exact waits once lowered,
and compiles for sm_80 and sm_90 into tensor-core (HMMA), ldmatrix (LDSM) and cp.async
(LDGSTS) instructions."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from tilepipe import build, simulate, verify
from tilepipe.arith import Analyzer
from tilepipe.backend.cuda import lower
from tilepipe.backend.cuda.codegen import generate
from tilepipe.backend.cuda.compiler import compile_source, find_nvcc
from tilepipe.backend.cuda.runtime import DeviceError, _present_arch
from tilepipe.backend.cuda.sass import disassemble, find_cuobjdump
from tilepipe.ir import (
    AsyncCommitQueue, AsyncScope, AsyncWaitQueue, BufferRegion, Call, Evaluate, IfThenElse,
    IntImm, IRMutator, Var, as_int, assert_structural_equal, post_order_visit, seq, substitute,
)
from tilepipe.kernels.gemm import KernelConfigError, gemm, gemm_small
from tilepipe.script import parse
from tilepipe.sim import max_safe_counts
from tilepipe.sim.interpreter import Interpreter, Observer
from tilepipe.sim.schedule import parse_schedule
from tilepipe.sim.simulate import global_arrays
from tilepipe.transform import inject_software_pipeline

SMALL_SHAPES = {"A": (64, 128), "B": (128, 64), "C": (64, 64)}


@pytest.fixture(scope="module")
def small():
    return gemm_small()


@pytest.fixture(scope="module")
def pipelined(small):
    return inject_software_pipeline(small)


@pytest.fixture(scope="module")
def lowered(pipelined):
    return lower(pipelined)


def _inputs(seed: int):
    random = np.random.default_rng(seed)
    return {"A": random.uniform(-1, 1, SMALL_SHAPES["A"]).astype(np.float16),
            "B": random.uniform(-1, 1, SMALL_SHAPES["B"]).astype(np.float16),
            "C": np.zeros(SMALL_SHAPES["C"], np.float32)}


def _reference(inputs):
    return inputs["A"].astype(np.float32) @ inputs["B"].astype(np.float32)


def _nodes(stmt, kind) -> list:
    found = []
    post_order_visit(stmt, lambda node: found.append(node) if isinstance(node, kind) else None)
    return found


class _Loosen(IRMutator):
    """The lowered program with the wait at position ``target`` allowing one more group
    in flight."""

    def __init__(self, target: int):
        self.target = target
        self.position = 0

    def visit_async_wait_queue(self, node: AsyncWaitQueue):
        body = self.visit(node.body)
        in_flight = node.in_flight
        if self.position == self.target:
            in_flight = IntImm(as_int(in_flight) + 1)
        self.position += 1
        return AsyncWaitQueue(node.queue, in_flight, body, node.span)


class _Without(IRMutator):
    """The program without one barrier statement (and the guard around it, if any)."""

    def __init__(self, barrier):
        self.barrier = barrier
        self.removed = 0

    def visit_seq_stmt(self, node):
        kept = []
        for stmt in node.stmts:
            if stmt is self.barrier or (isinstance(stmt, IfThenElse)
                                        and stmt.then_case is self.barrier):
                self.removed += 1
            else:
                kept.append(self.visit(stmt))
        return seq(*kept)


class _GuardFinder(Observer):
    """Runs a program and finds the barrier that guards the data a wait lands: the last
    barrier executed between the wait at position ``target`` and the first synchronous
    read of an element that the groups it completes wrote asynchronously."""

    def __init__(self, wait):
        self.target = wait
        self.open: set = set()
        self.groups: list[set] = []
        self.completed = 0  # how many of the groups have landed
        self.landed: set | None = None
        self.current = None
        self.last_barrier = None
        self.reader = self.guard = None

    def statement(self, stmt, context):
        self.current = stmt

    def access(self, context, storage, threads, flat, is_write):
        elements = {(storage.buffer.name, int(element)) for element in flat}
        if context.async_queue is not None:
            if is_write:
                self.open |= elements
        elif self.landed is not None and self.reader is None and not is_write \
                and elements & self.landed:
            self.reader, self.guard = self.current, self.last_barrier

    def commit(self, stmt, context, queue):
        self.groups.append(self.open)
        self.open = set()

    def wait(self, stmt, context, queue, in_flight, committed):
        (count,) = set(committed.tolist())  # every thread has committed alike
        completed = max(count - int(in_flight), self.completed)
        if stmt is self.target:
            self.landed = set().union(*self.groups[self.completed:completed])
            self.last_barrier = None
        self.completed = completed

    def barrier(self, context):
        self.last_barrier = self.current


def _guard_of(program, wait):
    """The first statement reading the data that ``wait`` lands, and the barrier right
    before it that makes it visible to every thread."""
    finder = _GuardFinder(wait)
    Interpreter(program, global_arrays(program, _inputs(seed=3)), parse_schedule("eager"),
                finder, blocks=range(1)).run()
    return finder.reader, finder.guard


def _is_barrier(stmt) -> bool:
    return isinstance(stmt, Evaluate) and isinstance(stmt.value, Call) and \
        stmt.value.op == "tvm_storage_sync"


def test_gemm_prints_and_parses_back(small):
    assert_structural_equal(parse(small.script()), small)
    assert [tuple(int(extent.value) for extent in param.shape) for param in small.params] == \
        list(SMALL_SHAPES.values())


@pytest.mark.parametrize("arguments,message", [
    ((100, 128, 64), "M = 100 must be a positive multiple of block_m = 128"),
    ((128, 128, 40), "K = 40 must be a positive multiple of block_k = 32"),
    ((128, 128, 64, 128, 128, 32, 40), "warp_m = 40 must be a positive multiple of the mma"),
    ((128, 128, 64, 128, 128, 24), "block_k = 24 must be a positive multiple of the mma"),
    ((64, 64, 64, 16, 64, 16, 16, 16),
     "the 16x16 A tile does not split into 16-byte copies over 128 threads"),
])
def test_gemm_rejects_sizes_it_cannot_tile(arguments, message):
    with pytest.raises(KernelConfigError, match=message):
        gemm(*arguments)


def test_gemm_rejects_a_ring_shallower_than_two():
    with pytest.raises(KernelConfigError, match="num_stages = 1 must be at least 2"):
        gemm(128, 128, 64, num_stages=1)


@pytest.mark.parametrize("schedule", ["eager", "lazy", "random:7"])
def test_gemm_simulates_to_the_product_before_and_after_pipelining(small, pipelined, lowered,
                                                                   schedule):
    inputs = _inputs(seed=1)
    for program in (small, pipelined, lowered):
        outputs = simulate(program, {name: array.copy() for name, array in inputs.items()},
                           schedule=schedule)
        np.testing.assert_allclose(outputs["C"], _reference(inputs), rtol=1e-4, atol=1e-4)


def test_lowered_gemm_is_race_free_with_exact_waits(lowered):
    report = verify(lowered)
    assert report.ok, report.format()
    counts = max_safe_counts(lowered)
    assert counts, "the lowered GEMM has no waits"
    for wait in counts:
        assert wait.used == (wait.max_safe,), wait


@pytest.mark.parametrize("sizes,tiles,num_stages", [
    ((32, 32, 128), (32, 32, 32, 16, 16), 2),
    ((32, 32, 128), (32, 32, 32, 16, 16), 3),
    ((32, 32, 192), (32, 32, 64, 16, 16), 4),   # four k slices per stage
    ((32, 64, 64), (32, 64, 32, 32, 32), 4),    # one warp with two m and two n tiles
    ((32, 32, 64), (32, 32, 32, 16, 16), 4),    # fewer iterations than stages
    ((32, 32, 32), (32, 32, 32, 16, 16), 4),    # a single iteration
])
def test_gemm_variants_are_correct_race_free_and_exact(sizes, tiles, num_stages):
    program = lower(inject_software_pipeline(gemm(*sizes, *tiles, num_stages=num_stages)))
    size_m, size_n, size_k = sizes
    random = np.random.default_rng(sum(sizes))
    inputs = {"A": random.uniform(-1, 1, (size_m, size_k)).astype(np.float16),
              "B": random.uniform(-1, 1, (size_k, size_n)).astype(np.float16),
              "C": np.zeros((size_m, size_n), np.float32)}
    outputs = simulate(program, inputs, schedule="lazy")
    np.testing.assert_allclose(outputs["C"], _reference(inputs), rtol=1e-4, atol=1e-4)
    assert verify(program).ok
    assert all(wait.used == (wait.max_safe,) for wait in max_safe_counts(program))


@pytest.mark.parametrize("drop_barrier", [False, True])
def test_a_looser_body_wait_or_a_missing_barrier_is_a_race_on_the_ldmatrix_reads(
        lowered, drop_barrier):
    """The body's wait lands a stage that the ldmatrix reads; the barrier found by what it
    does (the last one before the first read of that stage, wherever the planner put
    it) is what makes the stage visible to the other warps."""
    body_wait = 1  # the prologue's wait comes first
    if drop_barrier:
        reader, guard = _guard_of(lowered, _nodes(lowered.body, AsyncWaitQueue)[body_wait])
        assert reader is not None and "ldmatrix" in reader.span.text
        assert guard is not None and _is_barrier(guard)
        remover = _Without(guard)
        program = lowered.with_body(remover.visit(lowered.body))
        assert remover.removed == 1
    else:
        program = lowered.with_body(_Loosen(body_wait).visit(lowered.body))
    report = verify(program)
    kind = "cross-thread" if drop_barrier else "unlanded-read"
    reads = [race for race in report.races if race.kind == kind]
    assert reads, report.format()
    assert {race.buffer for race in reads} <= {"A_shared", "B_shared"}
    assert all("ldmatrix" in race.second.span.text for race in reads), report.format()
    if not drop_barrier:  # the mma then multiplies tiles that have not landed
        outputs = simulate(program, _inputs(seed=2), schedule="lazy")
        assert np.isnan(outputs["C"]).any()


def test_benchmark_tiles_simulate_to_the_product_race_free():
    """The 128x128x32 tiles with four 64x64 warps that the GPU benchmark runs, on one
    thread block over five k tiles."""
    program = lower(inject_software_pipeline(gemm(128, 128, 160)))
    random = np.random.default_rng(4)
    inputs = {"A": random.uniform(-1, 1, (128, 160)).astype(np.float16),
              "B": random.uniform(-1, 1, (160, 128)).astype(np.float16),
              "C": np.zeros((128, 128), np.float32)}
    outputs = simulate(program, inputs, schedule="lazy")
    np.testing.assert_allclose(outputs["C"], _reference(inputs), rtol=1e-4, atol=1e-4)
    assert verify(program).ok


def test_pipelined_gemm_has_the_seeds_groups_and_counts(pipelined):
    """The RFC's nested GEMM: the A and B copies of a stage form one commit group; the
    outer loop waits with 2 groups in flight in the prologue and the body, and with
    ``1 - k`` in the epilogue's copy k, where the seed's TVM output gives -1 for k = 2
    (an invalid count): 0 there is the exact one."""
    for commit in _nodes(pipelined.body, AsyncCommitQueue):
        assert len(_nodes(commit.body, AsyncScope)) == 2
    prologue, body, epilogue = (wait.in_flight for wait in _nodes(pipelined.body,
                                                                   AsyncWaitQueue))
    assert (as_int(prologue), as_int(body)) == (2, 2)
    (copy,) = {var for var in _nodes(epilogue, Var)}
    values = [as_int(Analyzer().simplify(substitute(epilogue, {copy: IntImm(k)})))
              for k in range(3)]
    assert values == [1, 0, 0]


def test_pipeline_rings_the_intrinsics_buffer_arguments(pipelined):
    """ldmatrix and mma address the shared tiles in a 4-deep ring and the fragments in a
    double buffer, through the leading dimension the transform adds to their regions."""
    shapes = {}
    for call in _nodes(pipelined.body, Call):
        for region in call.args:
            if isinstance(region, BufferRegion):
                assert len(region.region) == len(region.buffer.shape)
                shapes[region.buffer.name] = tuple(as_int(extent) for extent in region.buffer.shape)
    assert shapes == {"A_shared": (4, 32, 40), "B_shared": (4, 32, 40),
                      "A_warp": (2, 1, 16, 16), "B_warp": (2, 1, 16, 16),
                      "C_warp": (1, 2, 16, 8), "C": (64, 64)}


def test_lowered_gemm_waits_are_immediates_in_execution_order(lowered):
    assert [wait.used for wait in max_safe_counts(lowered)] == [(2,), (2,), (1,), (0,), (0,)]


# Compilation ------------------------------------------------------------------------
_SASS_OPCODE = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9.]*)")


@pytest.fixture(scope="session")
def benchmark_sass():
    """SASS of the 128x128x32 four-stage GEMM for sm_80 and sm_90 (compiled once)."""
    if find_nvcc() is None or find_cuobjdump() is None:
        pytest.skip("needs nvcc and cuobjdump")
    program = lower(inject_software_pipeline(gemm(256, 256, 128)))
    return {arch: disassemble(compile_source(generate(program, arch).source, arch))
            for arch in ("sm_80", "sm_90")}


@pytest.mark.nvcc
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_compiled_gemm_uses_tensor_cores_ldmatrix_and_cp_async(benchmark_sass, arch):
    opcodes = Counter(_SASS_OPCODE.findall(benchmark_sass[arch]))
    by_kind = Counter()
    for opcode, count in opcodes.items():
        by_kind[opcode.split(".")[0]] += count
    # Every mma is one m16n8k16 fp32 HMMA; the A fragments load with ldmatrix.x4, the B
    # fragments with ldmatrix.x4.trans, the same number of each (4 tiles of each per
    # k slice of a warp); the tiles arrive by 16-byte cp.async.cg (bypassing L1).
    assert by_kind["HMMA"] == opcodes["HMMA.16816.F32"] > 0
    assert by_kind["LDSM"] == 2 * opcodes["LDSM.16.M88.4"] == 2 * opcodes["LDSM.16.MT88.4"] > 0
    copies = [opcode for opcode in opcodes if opcode.startswith("LDGSTS")]
    assert copies and all(".BYPASS" in opcode and opcode.endswith(".128") for opcode in copies)
    # A whole k slice of a warp's 4 x 8 MMAs per 4 + 4 ldmatrix, and no spilled fragment.
    assert by_kind["HMMA"] * 8 == by_kind["LDSM"] * 32
    assert by_kind["LDL"] == by_kind["STL"] == 0, "fragments spilled to local memory"


@pytest.fixture(scope="module")
def compiled_gemm():
    """The 128x128x32 four-stage GEMM on a 256x256x128 problem, built for the GPU here
    (sm_80 where there is none)."""
    if find_nvcc() is None:
        pytest.skip("needs nvcc")
    return build(inject_software_pipeline(gemm(256, 256, 128)))


def _problem(seed: int):
    random = np.random.default_rng(seed)
    return (random.uniform(-1, 1, (256, 128)).astype(np.float16),
            random.uniform(-1, 1, (128, 256)).astype(np.float16),
            np.zeros((256, 256), np.float32))


@pytest.mark.nvcc
def test_built_gemm_without_a_gpu_keeps_its_cubin_and_says_why_it_cannot_run(compiled_gemm):
    if _present_arch() is not None:
        pytest.skip("a GPU is present")
    assert compiled_gemm.cubin[:4] == b"\x7fELF"
    with pytest.raises(DeviceError, match="GPU|driver|cuda-python"):
        compiled_gemm(*_problem(seed=0))


@pytest.mark.gpu
def test_gemm_on_the_gpu_equals_the_product(compiled_gemm):
    a, b, c = _problem(seed=0)
    compiled_gemm(a, b, c)
    np.testing.assert_allclose(c, a.astype(np.float32) @ b.astype(np.float32),
                               rtol=1e-3, atol=1e-3)
