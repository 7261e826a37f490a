"""The schedule's view of a loop body: the accesses, wgmma-ness and inner-pipeline queues
of each statement (one walk), the overlap of two accesses across iterations, the
distances of ring buffers; and the waits of commit groups with several members."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from pipeline_helpers import check_pipeline, producer_consumer, program

from tilepipe.ir import Add, BufferLoad, For, IntImm, post_order_visit
from tilepipe.script import parse
from tilepipe.transform.pipeline import compute_schedule, read_annotation, wgmma
from tilepipe.transform.pipeline.inject import _loop_body
from tilepipe.transform.pipeline.schedule import _RegionTest, mentions

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline_programs import programs  # noqa: E402


def pipelined_loop(func) -> For:
    found = []
    post_order_visit(func.body, lambda node: found.append(node) if isinstance(node, For)
                     and "software_pipeline_stage" in node.annotations else None)
    return found[-1]


def schedule_of(func):
    loop = pipelined_loop(func)
    stmts, local = _loop_body(loop, set())
    return compute_schedule(loop, stmts, local, read_annotation(loop, len(stmts)))


DECLARED_WGMMA = '''
@T.prim_func
def declared(A: T.Buffer((64, 64), "float16"), acc: T.Buffer((32,), "float32")):
    for k in T.serial(4, annotations={"software_pipeline_stage": [0, 1],
                                      "software_pipeline_order": [0, 1],
                                      "software_pipeline_async_stages": [0, 1]}):
        with T.block():
            S = T.alloc_buffer((64, 16), dtype="float16", scope="shared")
            for r in T.serial(64):
                S[r, 0] = A[r, k * 16]
            with T.block():
                T.reads(S[0:64, 0:16])
                T.writes(acc[0:32])
                T.evaluate(T.wgmma(acc[0:32], S[0:64, 0:16], S[0:64, 0:16], 1))
'''


def test_a_declared_block_gives_its_regions_and_still_issues_its_wgmma():
    schedule = schedule_of(program(DECLARED_WGMMA))
    copy, mma = schedule.statements
    assert [region.buffer.name for region in mma.reads] == ["S"]
    assert [region.buffer.name for region in mma.writes] == ["acc"]
    assert (copy.issues_wgmma, mma.issues_wgmma) == (False, True)
    assert [(region.buffer.name, region.region[1].extent.value) for region in copy.writes] \
        == [("S", 1)]  # an access of its own, a single element
    for statement in schedule.statements:
        # The one walk's flag is what the statement itself says.
        assert wgmma.issues_wgmma(statement.stmt) == statement.issues_wgmma


INNER_QUEUE = '''
@T.prim_func
def inner_queue(A: T.Buffer((4, 8), "float32"), D: T.Buffer((4, 8), "float32")):
    for tx in T.thread_binding(4, thread="threadIdx.x"):
        for i in T.serial(8, annotations={"software_pipeline_stage": [0, 1],
                                          "software_pipeline_order": [0, 1],
                                          "software_pipeline_async_stages": [0]}):
            with T.block():
                S = T.alloc_buffer((4, 1), dtype="float32", scope="shared")
                with T.block():
                    T.reads(A[tx, i])
                    T.writes(S[tx, 0])
                    with T.attr(0, "async_commit_queue_scope", 3):
                        with T.attr(0, "async_scope", 1):
                            S[tx, 0] = A[tx, i]
                D[tx, i] = S[tx, 0]
'''


def test_queues_committed_inside_a_declared_block_are_not_reused():
    schedule = schedule_of(program(INNER_QUEUE))
    assert dict(schedule.queues) == {0: 4}
    assert [region.buffer.name for region in schedule.statements[0].writes] == ["S"]


GATHER = '''
@T.prim_func
def gather(A: T.Buffer((4, 64), "float32"), Index: T.Buffer((4, 16), "int32"),
           Place: T.Buffer((16,), "int32"), D: T.Buffer((4, 64), "float32")):
    for tx in T.thread_binding(4, thread="threadIdx.x"):
        for i in T.serial(16, annotations={"software_pipeline_stage": [0, 1],
                                           "software_pipeline_order": [0, 1]}):
            with T.block():
                S = T.alloc_buffer((4, 1), dtype="float32", scope="shared")
                S[tx, 0] = A[tx, Index[tx, i] * 2 + 1]
                D[tx, Place[i] + tx] = S[tx, 0] + A[tx, i]
'''


def test_a_load_in_an_index_is_an_access_of_its_own_recorded_before_the_outer_one():
    copy, use = schedule_of(program(GATHER)).statements
    assert [region.buffer.name for region in copy.reads] == ["Index", "A"]
    assert [region.buffer.name for region in copy.writes] == ["S"]
    # The stored value's loads, then those of the store's own indices.
    assert [region.buffer.name for region in use.reads] == ["S", "A", "Place"]
    assert [region.buffer.name for region in use.writes] == ["D"]
    # Each access is one element: the index itself, extent 1.
    (_, gathered), (_, placed) = copy.reads[1].region, use.writes[0].region
    assert isinstance(gathered.min, Add) and gathered.extent.value == 1
    assert isinstance(placed.min.a, BufferLoad) and placed.extent.value == 1


def test_mentions_finds_a_variable_in_index_arithmetic_and_inside_loads():
    func = program(GATHER)
    i = pipelined_loop(func).loop_var
    copy = schedule_of(func).statements[0]
    tx, index = (range_.min for range_ in copy.reads[1].region)  # Index[tx, i] * 2 + 1
    assert mentions(index, i) and mentions(index, tx)  # inside the load Index[tx, i]
    assert not mentions(index.b, i)  # the constant 1
    assert mentions(tx * 2 + 1, tx) and not mentions(tx * 2 + 1, i)
    assert not mentions(IntImm(3), i) and mentions(i, i) and not mentions(tx, i)


OVERLAPS = '''
@T.prim_func
def overlaps(A: T.Buffer((4, 16), "float32"), D: T.Buffer((4, 16), "float32")):
    for tx in T.thread_binding(4, thread="threadIdx.x"):
        for i in T.serial(16, annotations={"software_pipeline_stage": [0, 0, 1, 2],
                                           "software_pipeline_order": [0, 1, 2, 3],
                                           "software_pipeline_async_stages": [0]}):
            with T.block():
                S = T.alloc_buffer((4, 4), dtype="float32", scope="shared")
                S[tx, i % 4] = A[tx, i]
                S[tx, 3] = A[tx, 0]
                S[tx, 0] = S[tx, 3] + S[tx, i % 4]
                D[tx, i] = S[tx, (i + 2) % 4] + S[tx, 1] + S[tx, 0]
'''


def test_overlapping_distances_are_those_where_the_accesses_may_overlap():
    loop = pipelined_loop(program(OVERLAPS))
    stmts, local = _loop_body(loop, set())
    schedule = compute_schedule(loop, stmts, local, read_annotation(loop, len(stmts)))
    regions = _RegionTest(loop)
    distances = range(-3, 7)
    outcomes = set()
    for first in schedule.statements:
        for second in schedule.statements:
            for left in first.reads + first.writes:
                for right in second.reads + second.writes:
                    expected = [distance for distance in distances if regions.may_overlap(
                        first, left, second, right, distance)]
                    assert list(regions.overlapping(first, left, second, right,
                                                    distances)) == expected
                    outcomes.add(len(expected))
    # Constant accesses that never meet, ones that always do, moving ones that meet at
    # some distances only.
    assert {0, len(distances)} < outcomes


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(programs())
def test_a_ring_buffer_conflicts_only_with_instances_in_the_same_copy(generated):
    schedule = schedule_of(parse(generated.source))
    for dependency in schedule.dependencies:
        count = schedule.versions.get(dependency.buffer, 1)
        distances = dependency.distances
        assert all(distance % count == 0 for distance in distances)
        assert all(later - earlier == count for earlier, later in zip(distances, distances[1:]))


@pytest.mark.parametrize("extent", [1, 2, 3, 9])
def test_copies_of_one_commit_group_each_wait_for_their_ring_slot(extent):
    # Four copies in one group, three stages: every member's overwrite and the consumer's
    # read are checked exact in the simulator.
    func = producer_consumer(4, False, [0, 0, 0, 0, 2], [0, 1, 2, 3, 4], [0], 0, extent)
    check_pipeline(func)
