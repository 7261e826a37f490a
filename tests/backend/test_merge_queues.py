"""merge_queues: merged counts are the largest safe ones (the simulator's oracle), in the
steady-state loop as in the straight-line prologue and epilogue - ring slots of another
queue written some iterations earlier are told apart from the slot read now."""

import sys
from pathlib import Path

import numpy as np
import pytest

from tilepipe.backend.cuda import lower
from tilepipe.ir import AsyncCommitQueue, AsyncWaitQueue, as_int, post_order_visit
from tilepipe.script import parse
from tilepipe.sim import max_safe_counts, random_inputs, simulate, verify
from tilepipe.transform import inject_software_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline_programs import TWO_QUEUES_ACROSS_THREADS  # noqa: E402

HEADER = "from tilepipe import script as T\n\n\n@T.prim_func\n"

# Two asynchronous copies into rings of three and four slots, a symbolic extent, inside an
# outer loop: before merging exactness, the waits of the steady-state loop and of the
# epilogue used 3 where 4 is safe.
TWO_RINGS_SYMBOLIC = HEADER + '''\
def pipeline(a0: T.handle, a1: T.handle, c: T.handle):
    n = T.int32()
    A0 = T.match_buffer(a0, (2, 4, n), "float32")
    A1 = T.match_buffer(a1, (2, 4, n), "float32")
    C = T.match_buffer(c, (2, 4, n), "float32")
    for tx in T.thread_binding(4, thread="threadIdx.x"):
        for j in T.serial(2):
            for i in T.serial(0, n, annotations={"software_pipeline_stage": [1, 3, 0, 3, 3],
                                                 "software_pipeline_order": [2, 0, 3, 1, 4],
                                                 "software_pipeline_async_stages": [0, 1]}):
                with T.block("body"):
                    S0 = T.alloc_buffer((4, 1), "float32", scope="shared")
                    R0 = T.alloc_buffer((4, 1), "float32", scope="shared")
                    S1 = T.alloc_buffer((4, 1), "float32", scope="shared")
                    R1 = T.alloc_buffer((4, 1), "float32", scope="shared")
                    S0[tx, 0] = A0[j, tx, i]
                    R0[tx, 0] = S0[tx, 0] * T.float32(2)
                    S1[tx, 0] = A1[j, tx, i]
                    R1[tx, 0] = S1[tx, 0] * T.float32(3)
                    C[j, tx, i] = R0[tx, 0] + R1[tx, 0] + T.float32(1)
'''

# An asynchronous copy before the loop (the Q tile of attention) next to two asynchronous
# stages of the loop: three queues merged into one.
ASYNC_BEFORE_THE_LOOP = HEADER + '''\
def pipeline(a0: T.handle, a1: T.handle, c: T.handle, q: T.handle):
    n = T.int32()
    A0 = T.match_buffer(a0, (2, 4, n), "float32")
    A1 = T.match_buffer(a1, (2, 4, n), "float32")
    C = T.match_buffer(c, (2, 4, n), "float32")
    Q = T.match_buffer(q, (4,), "float32")
    for tx in T.thread_binding(4, thread="threadIdx.x"):
        for j in T.serial(2):
            with T.block():
                P = T.alloc_buffer((4, 1), "float32", scope="shared")
                with T.attr(0, "async_scope", 1):
                    P[tx, 0] = Q[tx]
                for i in T.serial(0, n, annotations={"software_pipeline_stage": [1, 2, 2, 3],
                                                     "software_pipeline_order": [2, 0, 1, 3],
                                                     "software_pipeline_async_stages": [1, 2]}):
                    with T.block("body"):
                        S0 = T.alloc_buffer((4, 1), "float32", scope="shared")
                        S1 = T.alloc_buffer((4, 1), "float32", scope="shared")
                        R1 = T.alloc_buffer((4, 1), "float32", scope="shared")
                        S0[tx, 0] = A0[j, tx, i]
                        S1[tx, 0] = A1[j, tx, i]
                        R1[tx, 0] = S1[tx, 0] * T.float32(3)
                        C[j, tx, i] = (S0[(tx + 2) % 4, 0] + R1[(tx + 2) % 4, 0]
                                       + P[(tx + 2) % 4, 0] + T.float32(1))
'''

# Two pipelines nested, each with its own asynchronous copy: the outer loop copies the A
# tile of the next iteration, the inner one prefetches B elements ``INNER`` iterations
# ahead; merged, the outer wait for the A tile need not drain the inner prefetches, since
# the inner loop's first wait lands the A tile too before it is read.
TWO_LEVELS = HEADER + '''\
def pipeline(A: T.Buffer((3, 4, 6), "float32"), B: T.Buffer((3, 4, 6), "float32"),
             C: T.Buffer((3, 4, 6), "float32")):
    for tx in T.thread_binding(4, thread="threadIdx.x"):
        for i in T.serial(3, annotations={"software_pipeline_stage": [0, 1, 1, 1],
                                          "software_pipeline_order": OUTER_ORDER,
                                          "software_pipeline_async_stages": [0]}):
            with T.block("outer"):
                A_shared = T.alloc_buffer((4, 6), "float32", scope="shared")
                for k in T.serial(6):
                    A_shared[tx, k] = A[i, tx, k]
                for j in T.serial(6, annotations={"software_pipeline_stage": [0, INNER],
                                                  "software_pipeline_order": [0, 1],
                                                  "software_pipeline_async_stages": [0]}):
                    with T.block("inner"):
                        B_shared = T.alloc_buffer((4, 1), "float32", scope="shared")
                        B_shared[tx, 0] = B[i, tx, j]
                        C[i, tx, j] = A_shared[(tx + 1) % 4, j] + B_shared[(tx + 1) % 4, 0]
'''


def _lowered(source):
    return lower(inject_software_pipeline(parse(source)))


def _assert_exact(func, dims):
    report = verify(func, dims=dims)
    assert report.ok, report.format()
    counts = max_safe_counts(func, dims=dims)
    assert counts
    for count in counts:
        assert count.max_safe is None or count.exact, count.format()


def _wait_counts(func):
    found = []
    post_order_visit(func.body, lambda node: found.append(as_int(node.in_flight))
                     if isinstance(node, AsyncWaitQueue) else None)
    return found


def test_three_stage_two_async_is_exact():
    lowered = _lowered(TWO_QUEUES_ACROSS_THREADS)
    _assert_exact(lowered, {})
    # the consumer's wait in the loop lets the three newest groups fly: S1 and R1 of the
    # next iteration and S0 committed two iterations ahead
    assert 3 in _wait_counts(lowered)


@pytest.fixture(scope="module")
def two_rings():
    """TWO_RINGS_SYMBOLIC pipelined and lowered once: the tests only read it."""
    return _lowered(TWO_RINGS_SYMBOLIC)


@pytest.fixture(scope="module")
def async_before_the_loop():
    return _lowered(ASYNC_BEFORE_THE_LOOP)


@pytest.mark.parametrize("extent", [1, 3, 4, 6])
def test_two_rings_with_a_symbolic_extent_are_exact(two_rings, extent):
    _assert_exact(two_rings, {"n": extent})


def test_two_rings_wait_for_the_slot_they_read(two_rings):
    # S1 has four slots: the wait before R1 reads slot i % 4 leaves four groups in flight
    counts = _wait_counts(two_rings)
    assert 4 in counts


@pytest.mark.parametrize("extent", [1, 2, 5])
def test_async_statement_before_the_loop_is_exact(async_before_the_loop, extent):
    _assert_exact(async_before_the_loop, {"n": extent})


@pytest.mark.parametrize("outer_order, inner_stage", [
    ([0, 1, 2, 3], 1),
    ([0, 1, 2, 3], 3),  # three B elements in flight when the outer body waits for A
    ([3, 0, 1, 2], 2),  # the inner epilogue first: the next A tile is copied after it
])
def test_two_nested_levels_of_async_copies_merge_exactly(outer_order, inner_stage):
    source = TWO_LEVELS.replace("OUTER_ORDER", str(outer_order)).replace("INNER",
                                                                         str(inner_stage))
    func = parse(source)
    pipelined = inject_software_pipeline(func)
    queues = set()
    post_order_visit(pipelined.body, lambda node: queues.add(node.queue)
                     if isinstance(node, (AsyncCommitQueue, AsyncWaitQueue)) else None)
    assert len(queues) == 2  # one queue per level before merging
    lowered = lower(pipelined)
    _assert_exact(lowered, {})
    inputs = random_inputs(func, seed=inner_stage)
    expected = simulate(func, {name: array.copy() for name, array in inputs.items()})
    for schedule in ("lazy", "random:5"):
        outputs = simulate(lowered, {name: array.copy() for name, array in inputs.items()},
                           schedule=schedule)
        np.testing.assert_array_equal(outputs["C"], expected["C"])
