"""The seeds' asynchronous pipelines: expected outputs and wait counts.

Where a seed's count is not the largest safe one, or its program races under the
synchronization model, the expected program here differs and the test says why.
"""

from __future__ import annotations

import dataclasses

from pipeline_helpers import annotate, commits, program, seed, seed_module, waits

from tilepipe.ir import assert_structural_equal
from tilepipe.transform import inject_software_pipeline


def check(func, expected) -> None:
    pipelined = inject_software_pipeline(func)
    assert_structural_equal(pipelined, dataclasses.replace(expected, name=pipelined.name),
                            compare_regions=False)


def test_simple_compute_async_two_stages():
    check(annotate(seed("simple_compute"), "i", async_stages=[0]),
          seed("simple_compute_async_1_ref"))


def test_simple_compute_async_four_versions():
    func = seed_module("gen_simple_compute").gen_simple_compute(3)
    check(annotate(func, "i", async_stages=[0]), seed("simple_compute_async_3_ref"))


def test_producer_interleaving_counts():
    """The seed's body count 5 is exact. In the epilogue the seed waits for ``2 - i``
    groups, but copy ``i`` needs only the B copy of iteration ``13 + i``, after which
    ``2 * (2 - i)`` groups (one A and one B copy per later iteration) were committed:
    the largest safe count is ``4 - 2 * i``."""
    func = annotate(seed("async_producer_interleaving"), "i", stage=[0, 0, 3],
                    order=[0, 2, 1], async_stages=[0])
    pipelined = inject_software_pipeline(func)
    assert waits(pipelined) == [(0, "5"), (0, "4 - i * 2")]
    # Separate groups for the A and the B copies, around the consumer.
    assert commits(pipelined) == [0, 0, 0, 0]


PRODUCER_INTERLEAVING = '''
@T.prim_func
def simple_compute(A: T.Buffer((16, 16), "float32"), B: T.Buffer((16, 16), "float32"), C: T.Buffer((16, 16), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        with T.block():
            A_shared = T.alloc_buffer((4, 16, 1), dtype="float32", scope="shared")
            B_shared = T.alloc_buffer((4, 16, 1), dtype="float32", scope="shared")
            with T.block():
                for i in T.unroll(3):
                    with T.block():
                        T.where(i < 16)
                        with T.attr(0, "async_commit_queue_scope", 0):
                            with T.attr(0, "async_scope", 1):
                                A_shared[i % 4, tx, 0] = A[tx, i]
                    with T.block():
                        T.where(i < 16)
                        with T.attr(0, "async_commit_queue_scope", 0):
                            with T.attr(0, "async_scope", 1):
                                B_shared[i % 4, tx, 0] = B[tx, i]
            with T.block():
                for i in T.serial(13):
                    with T.block():
                        T.where(i + 3 < 16)
                        with T.attr(0, "async_commit_queue_scope", 0):
                            with T.attr(0, "async_scope", 1):
                                A_shared[(i + 3) % 4, tx, 0] = A[tx, i + 3]
                    with T.block():
                        T.where(i + 3 - 3 < 16)
                        with T.attr(0, "async_wait_queue_scope", 0):
                            with T.attr(0, "async_wait_inflight_count", 5):
                                C[tx, i - 3 + 3] = A_shared[(i - 3 + 3) % 4, tx, 0] + B_shared[(i - 3 + 3) % 4, tx, 0]
                    with T.block():
                        T.where(i + 3 < 16)
                        with T.attr(0, "async_commit_queue_scope", 0):
                            with T.attr(0, "async_scope", 1):
                                B_shared[(i + 3) % 4, tx, 0] = B[tx, i + 3]
            with T.block():
                for i in T.unroll(3):
                    with T.block():
                        T.where(i + 16 - 3 < 16)
                        with T.attr(0, "async_wait_queue_scope", 0):
                            with T.attr(0, "async_wait_inflight_count", 4 - i * 2):
                                C[tx, i - 3 + 16] = A_shared[(i - 3 + 16) % 4, tx, 0] + B_shared[(i - 3 + 16) % 4, tx, 0]
'''


def test_producer_interleaving_structure():
    """The seed's program but for two differences. The epilogue count (above). And the
    prologue: the seed commits the A and B copies of a prologue slot as one group (the
    consumer that separates them in the body is absent there), so before the body's
    first iteration only four groups are committed and its wait of 5 lets the copies of
    iteration 0 be in flight while they are read, a race. Here the A and B copies are
    separate groups in every section, so 5 is exact from the first iteration on."""
    func = annotate(seed("async_producer_interleaving"), "i", stage=[0, 0, 3],
                    order=[0, 2, 1], async_stages=[0])
    check(func, program(PRODUCER_INTERLEAVING))


THREE_STAGE_TWO_ASYNC = '''
@T.prim_func
def three_stage_compute(A: T.Buffer((16, 16), "float32"), D: T.Buffer((16, 16), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        with T.block():
            B = T.alloc_buffer((3, 16, 1), dtype="float32", scope="shared")
            C = T.alloc_buffer((2, 16, 1), dtype="float32", scope="shared")
            with T.block():
                for i in T.unroll(2):
                    with T.block():
                        T.where(i < 16)
                        with T.attr(0, "async_commit_queue_scope", 0):
                            with T.attr(0, "async_scope", 1):
                                B[i % 3, tx, 0] = A[tx, i] * T.float32(2)
                    with T.block():
                        T.where(1 <= i and i - 1 < 16)
                        with T.attr(0, "async_commit_queue_scope", 1):
                            with T.attr(0, "async_wait_queue_scope", 0):
                                with T.attr(0, "async_wait_inflight_count", 1):
                                    with T.attr(0, "async_scope", 1):
                                        C[(i - 1) % 2, tx, 0] = B[(i - 1) % 3, tx, 0] + T.float32(2)
            with T.block():
                for i in T.serial(14):
                    with T.block():
                        T.where(i + 2 < 16)
                        with T.attr(0, "async_commit_queue_scope", 0):
                            with T.attr(0, "async_scope", 1):
                                B[(i + 2) % 3, tx, 0] = A[tx, i + 2] * T.float32(2)
                    with T.block():
                        T.where(i + 2 - 1 < 16)
                        with T.attr(0, "async_commit_queue_scope", 1):
                            with T.attr(0, "async_wait_queue_scope", 0):
                                with T.attr(0, "async_wait_inflight_count", 1):
                                    with T.attr(0, "async_scope", 1):
                                        C[(i - 1 + 2) % 2, tx, 0] = B[(i - 1 + 2) % 3, tx, 0] + T.float32(2)
                    with T.block():
                        T.where(i + 2 - 2 < 16)
                        with T.attr(0, "async_wait_queue_scope", 1):
                            with T.attr(0, "async_wait_inflight_count", 1):
                                D[tx, i - 2 + 2] = C[(i - 2 + 2) % 2, tx, 0] + T.float32(1)
            with T.block():
                for i in T.unroll(2):
                    with T.block():
                        T.where(i + 16 - 1 < 16)
                        with T.attr(0, "async_commit_queue_scope", 1):
                            with T.attr(0, "async_wait_queue_scope", 0):
                                with T.attr(0, "async_wait_inflight_count", 0):
                                    with T.attr(0, "async_scope", 1):
                                        C[(i - 1 + 16) % 2, tx, 0] = B[(i - 1 + 16) % 3, tx, 0] + T.float32(2)
                    with T.block():
                        T.where(i + 16 - 2 < 16)
                        with T.attr(0, "async_wait_queue_scope", 1):
                            with T.attr(0, "async_wait_inflight_count", 1 - i):
                                D[tx, i - 2 + 16] = C[(i - 2 + 16) % 2, tx, 0] + T.float32(1)
'''


def test_three_stage_compute_two_async_stages():
    """The seed's program with three differences.

    * B has three versions, not two: stage 1 reads B asynchronously, so the copy of
      iteration ``j`` is still being read while stage 0 of iteration ``j + 2`` writes
      ``B[(j + 2) % 2]``; with two versions that is a write-after-read race (the seed's
      program has it), with three the read is done (stage 2's wait) before the reuse.
    * The epilogue's queue-0 wait runs only in copy 0 (``T.where(i + 16 - 1 < 16)``), so
      its count is the constant 0, not ``0 - i``.
    * The epilogue's queue-1 counts are 1 then 0: ``1 - i`` rather than the seed's
      ``T.if_then_else(i + 16 - 1 < 16, 1, 0)``, a constant per unrolled copy either way.
    """
    func = annotate(seed("three_stage_compute"), "i", async_stages=[0, 1])
    check(func, program(THREE_STAGE_TWO_ASYNC))
