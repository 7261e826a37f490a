"""Thread synchronization: the pipeliner's output is race-free across threads with the
fewest block barriers (each one, removed, lets the checker find a race), the pass is
idempotent, never adds a barrier where threads use their own data, guards a barrier that
only some unrolled iterations need by a thread-uniform condition, and refuses to place
one under a thread-dependent condition."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tilepipe.backend.cuda import lower
from tilepipe.errors import PipelineError
from tilepipe.ir import (
    For, ForKind, IfThenElse, IRMutator, IRVisitor, PrimFunc, SeqStmt, assert_structural_equal,
    seq,
)
from tilepipe.kernels import examples
from tilepipe.kernels.gemm import gemm, gemm_small
from tilepipe.script import parse
from tilepipe.sim import verify
from tilepipe.transform import inject_software_pipeline, insert_barriers
from tilepipe.transform.thread_sync import is_storage_sync

from pipeline_helpers import program, waits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline_programs import TWO_QUEUES_ACROSS_THREADS  # noqa: E402


def _is_barrier(stmt) -> bool:
    return is_storage_sync(stmt) or (isinstance(stmt, IfThenElse) and stmt.else_case is None
                                     and is_storage_sync(stmt.then_case))


def _barrier_count(func: PrimFunc) -> int:
    count = 0

    class _Counter(IRVisitor):
        def visit_seq_stmt(self, node: SeqStmt) -> None:
            nonlocal count
            count += sum(1 for stmt in node.stmts if _is_barrier(stmt))
            super().visit_seq_stmt(node)

    _Counter().visit(func.body)
    return count


def _without_barrier(func: PrimFunc, position: int) -> PrimFunc:
    """``func`` less its ``position``-th barrier statement (guarded ones whole)."""
    seen = 0

    class _Remover(IRMutator):
        def visit_seq_stmt(self, node: SeqStmt):
            nonlocal seen
            kept = []
            for stmt in node.stmts:
                if _is_barrier(stmt):
                    seen += 1
                    if seen - 1 == position:
                        continue
                kept.append(self.visit(stmt))
            return seq(*kept)

    return func.with_body(_Remover().visit(func.body))


def _assert_race_free_and_minimal(func: PrimFunc) -> None:
    report = verify(func)
    assert report.ok, report.format()
    count = _barrier_count(func)
    assert count > 0
    for position in range(count):
        assert not verify(_without_barrier(func, position)).ok, \
            f"barrier {position} of {count} is not needed:\n{func.script()}"


@pytest.fixture(scope="module")
def small_gemm() -> PrimFunc:
    return inject_software_pipeline(gemm_small())


def test_tensor_core_gemm_pipeline_is_race_free_with_fewest_barriers(small_gemm):
    _assert_race_free_and_minimal(small_gemm)


def test_lowered_tensor_core_gemm_is_race_free_with_fewest_barriers(small_gemm):
    _assert_race_free_and_minimal(lower(small_gemm))


@pytest.mark.parametrize("lowered", [False, True])
def test_tensor_core_gemm_with_a_steady_state_loop_is_race_free_with_fewest_barriers(lowered):
    """Six k tiles through a four-deep ring: the steady-state loop's body starts with the
    barrier that also settles what the prologue read, so none goes before the loop."""
    pipelined = inject_software_pipeline(gemm(32, 32, 192, 32, 32, 32, 16, 16))
    _assert_race_free_and_minimal(lower(pipelined) if lowered else pipelined)


def test_exchange_between_threads_gets_fewest_barriers():
    for num_stages in (1, 2, 3):
        _assert_race_free_and_minimal(inject_software_pipeline(
            examples.shared_exchange(num_stages)))


@pytest.mark.parametrize("copy_first", [False, True])
def test_simt_gemm_pipeline_is_race_free_with_fewest_barriers(copy_first):
    """256 threads each read 32 elements of the tiles that others copied, in loops
    unrolled into 256 statements an iteration: one barrier after the wait, and one more
    before the copies when they come first."""
    _assert_race_free_and_minimal(inject_software_pipeline(
        examples.simt_gemm(64, 64, 64, num_stages=3, copy_first=copy_first)))


@pytest.mark.parametrize("make", [
    lambda: inject_software_pipeline(gemm_small()),
    lambda: lower(inject_software_pipeline(gemm_small())),
    lambda: inject_software_pipeline(examples.shared_exchange(2)),
])
def test_idempotent(make):
    synchronized = make()
    assert_structural_equal(insert_barriers(synchronized), synchronized)


def test_threads_using_their_own_data_get_no_barrier():
    for num_stages in (1, 2, 3):
        pipelined = inject_software_pipeline(examples.simple_compute(num_stages))
        assert _barrier_count(pipelined) == 0
        assert verify(pipelined).ok


def test_guards_read_only_unrolled_loop_variables(small_gemm):
    unrolled: set = set()
    guards: list = []

    class _Collector(IRVisitor):
        def visit_for(self, node: For) -> None:
            if node.kind is ForKind.UNROLLED:
                unrolled.add(node.loop_var)
            super().visit_for(node)

        def visit_if_then_else(self, node: IfThenElse) -> None:
            if _is_barrier(node):
                guards.append(node.condition)
            super().visit_if_then_else(node)

    _Collector().visit(small_gemm.body)
    assert guards, "the epilogue's barriers are needed in some unrolled copies only"
    for condition in guards:
        found: set = set()

        class _Variables(IRVisitor):
            def visit_var(self, node) -> None:
                found.add(node)

        _Variables().visit(condition)
        assert found and found <= unrolled


def test_a_wait_lands_only_the_groups_of_its_own_queue():
    """A wait on the compute's queue leaves the copies in flight: the barrier that makes
    a copied element visible to the other thread follows the copy queue's own wait."""
    pipelined = inject_software_pipeline(parse(TWO_QUEUES_ACROSS_THREADS))
    assert len({queue for queue, _ in waits(pipelined)}) == 2
    _assert_race_free_and_minimal(pipelined)


SYNCHRONOUS_EXCHANGE = """
@T.prim_func
def exchange(A: T.Buffer((4, 32), "float32"), C: T.Buffer((4, 32), "float32")):
    for tx in T.thread_binding(32, thread="threadIdx.x"):
        for i in T.serial(4):
            with T.block("step"):
                S = T.alloc_buffer((32,), dtype="float32", scope="shared")
                S[tx] = A[i, tx]
                C[i, tx] = S[31 - tx]
"""


def test_synchronous_producer_and_consumer_across_threads():
    synchronized = insert_barriers(program(SYNCHRONOUS_EXCHANGE))
    # one before the read of another thread's element, one before the next iteration's
    # write over an element another thread may still read
    assert _barrier_count(synchronized) == 2
    _assert_race_free_and_minimal(synchronized)


def test_own_elements_need_no_barrier():
    own = program(SYNCHRONOUS_EXCHANGE.replace("S[31 - tx]", "S[tx]"))
    assert insert_barriers(own) is own


def test_sharing_under_a_thread_dependent_condition_is_refused():
    divergent = program("""
@T.prim_func
def divergent(A: T.Buffer((32,), "float32"), C: T.Buffer((32,), "float32")):
    for tx in T.thread_binding(32, thread="threadIdx.x"):
        with T.block("step"):
            S = T.alloc_buffer((32,), dtype="float32", scope="shared")
            if tx < 16:
                S[tx] = A[tx]
                C[tx] = S[15 - tx]
""")
    with pytest.raises(PipelineError, match="thread-dependent condition 'tx < 16'") as caught:
        insert_barriers(divergent)
    assert caught.value.span is not None and caught.value.span.line == 10


def test_conflict_before_a_thread_dependent_branch_is_settled_before_it():
    func = program("""
@T.prim_func
def before_branch(A: T.Buffer((32,), "float32"), C: T.Buffer((32,), "float32")):
    for tx in T.thread_binding(32, thread="threadIdx.x"):
        with T.block("step"):
            S = T.alloc_buffer((32,), dtype="float32", scope="shared")
            S[tx] = A[tx]
            if tx < 16:
                C[tx] = S[31 - tx]
""")
    synchronized = insert_barriers(func)
    assert "T.tvm_storage_sync" in synchronized.script().split("if tx < 16")[0]
    _assert_race_free_and_minimal(synchronized)


SHIFTED_EXCHANGE = """
@T.prim_func
def shifted(A: T.Buffer((2, 4), "float32"), C: T.Buffer((2, 4), "float32")):
    for tx in T.thread_binding(2, thread="threadIdx.x"):
        for i in T.serial(4, annotations={"software_pipeline_stage": [3, 3, 3],
                                          "software_pipeline_order": [0, 1, 2]}):
            with T.block("body"):
                S = T.alloc_buffer((2, 1), "float32", scope="shared")
                R = T.alloc_buffer((2, 1), "float32", scope="shared")
                S[tx, 0] = A[tx, i]
                R[tx, 0] = S[tx, 0] * T.float32(2)
                C[tx, i] = R[(tx + 1) % 2, 0] + T.float32(1)
"""


def test_a_statement_in_both_a_loop_body_and_an_unrolled_epilogue():
    # Every stage is 3: the body keeps one iteration and the epilogue unrolls three, and
    # both hold the same statement object (its indices have no loop variable).
    synchronized = inject_software_pipeline(program(SHIFTED_EXCHANGE))
    _assert_race_free_and_minimal(synchronized)


def test_unpipelined_gemm_gets_two_barriers_per_step_none_in_its_copy_loops():
    # A thread's write of a vector lane never meets another thread's write of an earlier
    # lane: that earlier lane would precede the vectorized loop's start.
    from tilepipe.kernels.gemm import gemm
    from tilepipe.kernels.tuning import with_num_stages

    unpipelined = with_num_stages(gemm(32, 32, 96, 32, 32, 32, 16, 16), 1)
    synchronized = inject_software_pipeline(unpipelined)
    assert _barrier_count(synchronized) == 2
    _assert_race_free_and_minimal(synchronized)
