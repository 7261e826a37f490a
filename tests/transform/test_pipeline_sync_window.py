"""Long loops are replayed shortened to ``steady_window`` body iterations: the pipelined
program is the one a replay of every iteration gives, waits, counts and drains alike."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pipeline_helpers import producer_consumer, program

from tilepipe.transform import inject_software_pipeline
from tilepipe.transform.pipeline import sync

# Body iterations replayed for the reference: more than any extent below, so nothing is
# shortened. The extents are above a prologue plus ``steady_window`` (at most 18 slots
# for these programs), so the default replay is shortened.
EVERY_ITERATION = 64
EXTENTS = [20, 41]


def assert_same_as_a_full_replay(func) -> None:
    shortened = inject_software_pipeline(func).script()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sync, "steady_window", lambda schedule: EVERY_ITERATION)
        full = inject_software_pipeline(func).script()
    assert shortened == full


@st.composite
def stages_and_orders(draw, statements: int, consumers: dict[int, list[int]]):
    """Stages (each consumer in a stage no earlier than its producers), orders (a
    consumer after its producers of the same stage) and asynchronous stages."""
    stages: list[int] = []
    for index in range(statements):
        low = max((stages[producer] for producer in consumers.get(index, [])), default=0)
        stages.append(draw(st.integers(low, 3)))
    orders = draw(st.permutations(range(statements)))
    for consumer, producers in consumers.items():
        for producer in producers:
            if stages[producer] == stages[consumer]:
                assume(orders[producer] < orders[consumer])
    used = sorted(set(stages))
    async_stages = draw(st.lists(st.sampled_from(used), min_size=1, max_size=len(used),
                                 unique=True))
    return stages, list(orders), sorted(async_stages)


@st.composite
def producer_consumer_loops(draw):
    producers = draw(st.integers(1, 3))
    middle = draw(st.booleans())
    statements = producers + middle + 1
    consumers = {statements - 1: list(range(statements - 1))}
    if middle:
        consumers[producers] = [0]
    stages, orders, async_stages = draw(stages_and_orders(statements, consumers))
    return producer_consumer(producers, middle, stages, orders, async_stages,
                             draw(st.sampled_from([0, 3])), draw(st.sampled_from(EXTENTS)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(producer_consumer_loops())
def test_shortened_replay_of_producer_consumer_loops(func):
    assert_same_as_a_full_replay(func)


PRELOOP = '''
@T.prim_func
def preloop(A: T.Buffer((1, 64), "float32"), C: T.Buffer((1, 64), "float32"), Q: T.Buffer((1,), "float32")):
    for tx in T.thread_binding(1, thread="threadIdx.x"):
        with T.block():
            P = T.alloc_buffer((1, 1), "float32", scope="shared")
            with T.attr(0, "async_scope", 1):
                P[tx, 0] = Q[tx]
            for i in T.serial(EXTENT, annotations={"software_pipeline_stage": STAGES, "software_pipeline_order": ORDERS, "software_pipeline_async_stages": ASYNC}):
                with T.block():
                    S = T.alloc_buffer((1, 1), "float32", scope="shared")
                    R = T.alloc_buffer((1, 1), "float32", scope="shared")
                    S[tx, 0] = A[tx, i]
                    R[tx, 0] = S[tx, 0] * T.float32(3)
                    C[tx, i] = R[tx, 0] + P[tx, 0]
'''


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stages_and_orders(3, {1: [0], 2: [1]}), st.sampled_from(EXTENTS))
def test_shortened_replay_with_a_group_committed_before_the_loop(annotation, extent):
    """The waits for the tile copied before the loop grow with the slot; the shortened
    replay still finds the least."""
    stages, orders, async_stages = annotation
    text = (PRELOOP.replace("EXTENT", str(extent)).replace("STAGES", str(stages))
            .replace("ORDERS", str(orders)).replace("ASYNC", str(async_stages)))
    assert_same_as_a_full_replay(program(text))
