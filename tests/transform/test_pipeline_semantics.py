"""Pipelined programs compute what the originals compute, race-free, with exact waits.

Programs are drawn at random: producers copying global tiles into shared buffers, an
optional middle statement, and a consumer, with random stages, orders, asynchronous
stages, loop starts and extents (constant, symbolic, shorter than the stages).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pipeline_helpers import check_pipeline, producer_consumer, program

from tilepipe.script import parse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline_programs import programs  # noqa: E402


@st.composite
def pipelines(draw):
    producers = draw(st.integers(1, 3))
    middle = draw(st.booleans())
    producer_stages = [draw(st.integers(0, 2)) for _ in range(producers)]
    stages = list(producer_stages)
    if middle:
        stages.append(draw(st.integers(producer_stages[0], 3)))
    stages.append(draw(st.integers(max(stages), 3)))
    orders = draw(st.permutations(range(len(stages))))
    # A consumer in the stage of its producer must come after it.
    consumer = len(stages) - 1
    for producer in range(consumer):
        if stages[producer] == stages[consumer]:
            assume(orders[producer] < orders[consumer])
    if middle and stages[0] == stages[producers]:
        assume(orders[0] < orders[producers])
    used = sorted(set(stages))
    async_stages = draw(st.lists(st.sampled_from(used), unique=True, max_size=len(used)))
    start = draw(st.sampled_from([0, 3]))
    extent = draw(st.sampled_from([1, 2, 3, 5, 9, None]))
    dims = {"n": draw(st.sampled_from([1, 2, 4, 9]))} if extent is None else None
    func = producer_consumer(producers, middle, stages, list(orders), sorted(async_stages),
                             start, extent)
    return func, dims


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_random_pipelines(case):
    func, dims = case
    check_pipeline(func, dims)


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_generated_pipelines(program):
    """The shared generator's programs whose threads keep to their own data (those that
    share need the barriers of a later pass, checked with it in tests/sim)."""
    assume(not program.shares_across_threads)
    check_pipeline(parse(program.source), program.dims or None)


@pytest.mark.parametrize("extent", [0, 1, 2, 3, 4, 7])
def test_extents_around_the_depth(extent):
    """Extents below, at and above the deepest stage (3)."""
    func = producer_consumer(2, True, [0, 0, 1, 3], [0, 1, 2, 3], [0, 1], 0, extent)
    check_pipeline(func)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 11])
def test_symbolic_extent(n):
    """One pipelined program, exact for every extent, zero included."""
    func = producer_consumer(2, False, [0, 1, 2], [1, 0, 2], [0, 1], 2, None)
    check_pipeline(func, {"n": n})


def test_async_last_stage_is_drained():
    """Nothing in the loop reads what the last, asynchronous stage writes: it is drained
    after the loop."""
    func = producer_consumer(1, False, [0, 1], [0, 1], [0, 1], 0, 6)
    pipelined = check_pipeline(func)
    assert "T.evaluate(0)" in pipelined.script()


ATTENTION = '''from tilepipe import script as T


@T.prim_func
def attention(Q: T.Buffer((4, 8), "float32"), K: T.Buffer((4, 64), "float32"), O: T.Buffer((4, 8), "float32"), S: T.Buffer((4, 1), "float32"){params}):
    for tx in T.thread_binding(4, thread="threadIdx.x"):
        with T.block():
            Q_shared = T.alloc_buffer((4, 8), dtype="float32", scope="shared")
            with T.attr(0, "async_scope", 1):
                for e in T.serial(8):
                    Q_shared[tx, e] = Q[tx, e]
{between}            for k in T.serial({extent}, annotations={{"software_pipeline_stage": [0, 2], "software_pipeline_order": [0, 1], "software_pipeline_async_stages": [0]}}):
                with T.block():
                    K_shared = T.alloc_buffer((4, 8), dtype="float32", scope="shared")
                    for e in T.serial(8):
                        K_shared[tx, e] = K[tx, k * 8 + e]
                    for e in T.serial(8):
                        O[tx, e] = O[tx, e] + Q_shared[tx, e] * K_shared[tx, e]
'''

READ_Q_BEFORE_LOOP = '''            S[tx, 0] = T.float32(1)
            S[tx, 0] = S[tx, 0] + Q_shared[tx, 0]
'''


@pytest.mark.parametrize("between", ["", READ_Q_BEFORE_LOOP], ids=["loop-reads", "read-before"])
@pytest.mark.parametrize("extent, dims", [("8", None), ("1", None), ("0", None), ("n", {"n": 3}),
                                           ("n", {"n": 0})])
def test_async_statement_before_the_loop(between, extent, dims):
    """The Q tile copied asynchronously before the loop: its own commit group, waited
    for right before the first statement that reads it; the loop's counts include it."""
    params = ", n: T.int32" if extent == "n" else ""
    func = parse(ATTENTION.format(params=params, between=between, extent=extent))
    pipelined = check_pipeline(func, dims)
    text = pipelined.script()
    copy = text.index("Q_shared[tx, e] = Q[tx, e]")
    assert text.rfind('"async_commit_queue_scope", 0', 0, copy) > text.rfind("T.block", 0, copy)
    if between:
        read = text.index("S[tx, 0] + Q_shared[tx, 0]")
        assert text.rfind('"async_wait_inflight_count", 0', 0, read) > copy


PRELOOP_MIXED = '''
@T.prim_func
def pipeline(a0: T.handle, a1: T.handle, c: T.handle, q: T.handle):
    n = T.int32()
    A0 = T.match_buffer(a0, (1, 3 + n), "float32")
    A1 = T.match_buffer(a1, (1, 3 + n), "float32")
    C = T.match_buffer(c, (1, 3 + n), "float32")
    Q = T.match_buffer(q, (1,), "float32")
    for tx in T.thread_binding(1, thread="threadIdx.x"):
        with T.block():
            P = T.alloc_buffer((1, 1), "float32", scope="shared")
            with T.attr(0, "async_scope", 1):
                P[tx, 0] = Q[tx]
            for i in T.serial(3, 3 + n, annotations={"software_pipeline_stage": [2, 0, 1, 3], "software_pipeline_order": [2, 0, 3, 1], "software_pipeline_async_stages": [0, 1, 2]}):
                with T.block("body"):
                    S0 = T.alloc_buffer((1, 1), "float32", scope="shared")
                    S1 = T.alloc_buffer((1, 1), "float32", scope="shared")
                    R1 = T.alloc_buffer((1, 1), "float32", scope="shared")
                    S0[tx, 0] = A0[tx, i]
                    S1[tx, 0] = A1[tx, i]
                    R1[tx, 0] = S1[tx, 0] * T.float32(3)
                    C[tx, i] = S0[tx, 0] + R1[tx, 0] + P[tx, 0] + T.float32(1)
'''


@pytest.mark.parametrize("n", [1, 4, 6])
def test_async_statement_before_a_symbolic_loop_with_mixed_stages(n):
    """The tile from before the loop is read by a statement whose other inputs come from
    three queues; after its first wait only its other data needs waits, so the waits
    are the same for every extent."""
    check_pipeline(program(PRELOOP_MIXED), {"n": n})
