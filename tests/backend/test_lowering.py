"""The CUDA lowering passes: immediate wait counts, one merged queue, fewest barriers; every
lowered program is race-free in the simulator and computes what the unlowered one does."""

import sys
from pathlib import Path

import numpy as np
import pytest

from tilepipe.backend.cuda import lower, merge_queues, unroll_waits
from tilepipe.backend.cuda.lower import pipeline_and_lower
from tilepipe.ir import (
    AsyncCommitQueue, AsyncWaitQueue, IfThenElse, IRMutator, SeqStmt, as_int,
    assert_structural_equal, post_order_visit, seq,
)
from tilepipe.kernels.examples import shared_exchange
from tilepipe.kernels.gemm import gemm, gemm_small
from tilepipe.ir.printer import script
from tilepipe.script import parse
from tilepipe.sim import random_inputs, simulate, verify
from tilepipe.transform import inject_software_pipeline
from tilepipe.transform.thread_sync import is_storage_sync

import cuda_programs as programs
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline_programs import TWO_QUEUES_ACROSS_THREADS  # noqa: E402


def waits(func):
    found = []
    post_order_visit(func.body, lambda n: found.append(n) if isinstance(n, AsyncWaitQueue)
                     else None)
    return found


def counts(func):
    """(queue, count) of every wait, in program order."""
    order = []

    def visit(node):
        if isinstance(node, AsyncWaitQueue):
            order.append(node)

    post_order_visit(func.body, visit)
    # post-order puts nested waits first; sort by source position where spans exist
    return [(wait.queue, as_int(wait.in_flight)) for wait in order]


def barriers(func):
    return script(func).count("T.tvm_storage_sync(")


@pytest.fixture(scope="module")
def simple_compute():
    return parse(programs.SIMPLE_COMPUTE)


@pytest.fixture(scope="module")
def exchange():
    return parse(programs.EXCHANGE)


@pytest.fixture(scope="module")
def two_queues():
    return parse(programs.TWO_QUEUES)


def test_unroll_makes_epilogue_counts_immediate(simple_compute):
    lowered = unroll_waits(simple_compute)
    assert sorted(count for _, count in counts(lowered)) == [0, 1, 2, 3]
    text = script(lowered)
    assert "2 - i" not in text
    # the prologue keeps its loop (no wait in it); the epilogue copies read slots 1, 2, 3
    assert "for i in T.unroll(3)" in text
    for slot in (1, 2, 3):
        assert f"B[{slot}, tx, v]" in text


def test_unroll_drops_copies_predicated_off():
    text = programs.SIMPLE_COMPUTE.replace("T.where(i + 13 < 16)", "T.where(i + 13 < 15)")
    lowered = unroll_waits(parse(text))
    assert sorted(count for _, count in counts(lowered)) == [1, 2, 3]


def test_dynamic_count_becomes_a_bounded_switch():
    func = parse(programs.DYNAMIC_COUNT)
    lowered = lower(func)
    assert all(as_int(wait.in_flight) is not None for wait in waits(lowered))
    assert sorted(count for _, count in counts(lowered)) == [0, 1, 2, 3]
    switches = []
    post_order_visit(lowered.body, lambda n: switches.append(n) if isinstance(n, IfThenElse)
                     else None)
    assert switches
    assert verify(lowered).ok
    inputs = random_inputs(func, seed=1)
    np.testing.assert_allclose(simulate(lowered, inputs)["C"], inputs["A"] + 1)


def test_merge_queues_counts_groups_of_every_queue(two_queues):
    merged = merge_queues(unroll_waits(two_queues))
    commits = []
    post_order_visit(merged.body, lambda n: commits.append(n.queue)
                     if isinstance(n, AsyncCommitQueue) else None)
    assert set(commits) == {0}
    text = script(merged)
    # body: A(i) has B(i), A(i+1), B(i+1), A(i+2), B(i+2) after it, B(i) four: the two
    # waits in a row become one of 4; the epilogue's 3 and 2, then 1 and 0, likewise
    expected = [4, 2, 0]
    found = [int(line.split(",")[-1].strip(" ):")) for line in text.splitlines()
             if "async_wait_inflight_count" in line]
    assert found == expected
    report = verify(merged)
    assert report.ok, report.format()


def test_merged_counts_are_exact(two_queues):
    merged = lower(two_queues)
    for entry in verify.max_safe_counts(merged):
        assert entry.max_safe is None or set(entry.used) == {entry.max_safe}, entry


def test_thread_private_data_needs_no_barrier(simple_compute):
    assert barriers(lower(simple_compute)) == 0


def test_shared_data_gets_barriers_after_wait_and_before_overwrite(exchange):
    assert not verify(exchange).ok  # as written, threads race on the ring
    lowered = lower(exchange)
    text = script(lowered)
    assert barriers(lowered) == 3  # body: before the copy, after the wait; epilogue wait
    lines = [line.strip() for line in text.splitlines()]
    for index, line in enumerate(lines):
        if "async_wait_inflight_count" in line:
            assert lines[index + 1].startswith("T.tvm_storage_sync(")
    report = verify(lowered)
    assert report.ok, report.format()


@pytest.mark.parametrize("make", [
    gemm_small,
    lambda: gemm(32, 32, 192, 32, 32, 32, 16, 16),  # a steady-state loop
    lambda: shared_exchange(2),
])
def test_barriers_planned_by_the_pipeliner_still_hold_after_lowering_one_queue(make):
    """Lowering a pipelined program with one queue without planning its barriers again
    gives the program that planning them again gives (as pipeline_and_lower does)."""
    func = make()
    kept = pipeline_and_lower(func)
    assert_structural_equal(kept, lower(inject_software_pipeline(func)))
    report = verify(kept)
    assert report.ok, report.format()


def test_barriers_are_planned_again_when_queues_merge():
    """Merged, the queues land their groups at other waits, so the barriers of a program
    with several queues are planned again even when said to be planned: here there are
    none left, and lowering still gives a race-free program."""
    pipelined = inject_software_pipeline(parse(TWO_QUEUES_ACROSS_THREADS))
    assert len({wait.queue for wait in waits(pipelined)}) == 2
    unsynchronized = pipelined.with_body(_WithoutBarriers().visit(pipelined.body))
    assert barriers(unsynchronized) == 0 and not verify(unsynchronized).ok
    report = verify(lower(unsynchronized, barriers_planned=True))
    assert report.ok, report.format()


class _WithoutBarriers(IRMutator):
    def visit_seq_stmt(self, node: SeqStmt):
        return seq(*(self.visit(stmt) for stmt in node.stmts if not _is_barrier(stmt)))


def _is_barrier(stmt) -> bool:
    """A barrier, or one under a guard."""
    return is_storage_sync(stmt) or (isinstance(stmt, IfThenElse) and stmt.else_case is None
                                     and is_storage_sync(stmt.then_case))


def test_lowering_is_idempotent(exchange):
    once = lower(exchange)
    assert script(lower(once)) == script(once)


@pytest.mark.parametrize("name", ["SIMPLE_COMPUTE", "EXCHANGE", "TWO_QUEUES", "DYNAMIC_COUNT"])
def test_lowered_programs_are_race_free_and_equal(name):
    func = parse(getattr(programs, name))
    lowered = lower(func)
    report = verify(lowered)
    assert report.ok, report.format()
    inputs = random_inputs(func, seed=3)
    expected = simulate(func, inputs, schedule="eager")
    for schedule in ("eager", "lazy", "random:7"):
        outputs = simulate(lowered, inputs, schedule=schedule)
        for key in expected:
            np.testing.assert_array_equal(outputs[key], expected[key])


def test_lowered_program_prints_a_valid_file(exchange):
    lowered = lower(exchange)
    text = script(lowered)
    assert text.startswith("from tilepipe import script as T")
    assert script(parse(text)) == text
