"""The race detector on correct and hand-made racy programs, and the schedules' effect."""

from pathlib import Path

import numpy as np
import pytest

from tilepipe.script import load_file
from tilepipe.sim import max_safe_counts, random_inputs, simulate, verify
from tilepipe.transform import inject_software_pipeline

import sim_programs as programs
from sim_mutants import barriers, loosened, waits, without_barrier, without_wait

SCHEDULES = ("eager", "lazy", "random:0", "random:7")


@pytest.mark.parametrize("num_stages", [1, 2, 3])
def test_pipelined_program_is_race_free_and_schedule_independent(num_stages):
    func = programs.load(programs.pipelined(num_stages))
    assert verify(func).ok, verify(func).format()
    inputs = random_inputs(func, seed=num_stages)
    for schedule in SCHEDULES:
        out = simulate(func, inputs, schedule=schedule)
        np.testing.assert_allclose(out["C"], programs.expected_pipelined(inputs["A"]))


def test_exchange_program_is_race_free_and_schedule_independent():
    func = programs.load(programs.EXCHANGE)
    report = verify(func)
    assert report.ok and report.format() == "exchange: no race"
    inputs = random_inputs(func, seed=5)
    for schedule in SCHEDULES:
        out = simulate(func, inputs, schedule=schedule)
        np.testing.assert_array_equal(out["C"], programs.expected_exchange(inputs["A"]))


def _only_race(func, kind):
    report = verify(func)
    kinds = [race.kind for race in report.races]
    assert kind in kinds, report.format()
    return next(race for race in report.races if race.kind == kind)


def test_too_loose_wait_reads_before_the_write_lands():
    func = programs.load(programs.pipelined(3))
    body_wait = waits(func)[0]
    mutant = loosened(func, body_wait)
    race = _only_race(mutant, "unlanded-read")
    assert race.buffer == "B"
    assert race.first.action == "async write" and race.second.action == "read"
    assert "B[i % 4, tx, 0] = A[tx, i]" in race.first.span.text  # the prologue
    assert "C[tx, i] = B[i % 4, tx, 0]" in race.second.span.text
    # The first iteration reads the group committed first by the prologue.
    assert dict(race.second.iterations)["i"] == 0 and race.element[0] == 0
    # Lazily landing writes make the mistake show in the results.
    inputs = random_inputs(func)
    lazy = simulate(mutant, inputs, schedule="lazy")["C"]
    assert not np.allclose(lazy, programs.expected_pipelined(inputs["A"]), equal_nan=False)


def test_missing_barrier_after_wait_is_a_cross_thread_race():
    func = programs.load(programs.EXCHANGE)
    after_wait = barriers(func)[0]
    race = _only_race(without_barrier(func, after_wait), "cross-thread")
    assert race.first.action == "async write" and race.second.action == "read"
    assert race.first.thread == 15 - race.second.thread
    assert "C[tx, i] = S[i % 2, 15 - tx]" in race.second.span.text


def test_async_write_into_a_slot_another_thread_still_reads():
    func = programs.load(programs.EXCHANGE)
    after_read = barriers(func)[1]
    race = _only_race(without_barrier(func, after_read), "cross-thread")
    assert race.first.action == "read" and race.second.action == "async write"
    assert race.buffer == "S" and race.first.thread != race.second.thread
    assert "S[(i + 1) % 2, tx] = A[tx, i + 1]" in race.second.span.text


def test_async_work_in_flight_at_the_end():
    func = programs.load(programs.pipelined(1))
    last_wait = waits(func)[-1]
    report = verify(without_wait(func, last_wait))
    kinds = {race.kind for race in report.races}
    assert {"in-flight-at-end", "unlanded-read"} <= kinds, report.format()
    assert "in-flight-at-end" in report.format()


def test_synchronous_cross_thread_conflict():
    func = programs.load(programs.HEADER + '''@T.prim_func
def gather(A: T.Buffer((8,), "float32"), C: T.Buffer((8,), "float32")):
    for tx in T.thread_binding(8, thread="threadIdx.x"):
        with T.block():
            S = T.alloc_buffer((8,), "float32", scope="shared")
            S[tx] = A[tx]
            C[tx] = S[7 - tx]
''')
    race = _only_race(func, "cross-thread")
    assert race.first.action == "write" and race.second.action == "read"


def test_async_compute_stage_reads_shared_memory_late():
    """An async statement that reads shared memory reads it until its group is waited
    for: overwriting its input before that is a race (the seeds' three-stage example
    as TVM emits it has this race)."""
    func = programs.load(programs.HEADER + '''@T.prim_func
def late_read(A: T.Buffer((4,), "float32"), C: T.Buffer((4,), "float32")):
    for tx in T.thread_binding(1, thread="threadIdx.x"):
        with T.block():
            S = T.alloc_buffer((1,), "float32", scope="shared")
            for i in T.serial(4):
                S[0] = A[i]
                with T.attr(0, "async_commit_queue_scope", 1):
                    with T.attr(0, "async_scope", 1):
                        C[i] = S[0] + T.float32(1)
            with T.attr(0, "async_wait_queue_scope", 1):
                with T.attr(0, "async_wait_inflight_count", 0):
                    T.evaluate(0)
''')
    race = _only_race(func, "pending-overwrite")
    assert race.first.action == "async read" and race.second.action == "write"
    inputs = random_inputs(func)
    lazy = simulate(func, inputs, schedule="lazy")["C"]
    np.testing.assert_allclose(lazy, np.full(4, inputs["A"][3] + 1))


def test_two_async_writes_in_flight_to_one_element():
    func = programs.load(programs.HEADER + '''@T.prim_func
def overlap(A: T.Buffer((2,), "float32"), C: T.Buffer((1,), "float32")):
    for i in T.serial(2):
        with T.attr(0, "async_commit_queue_scope", 0):
            with T.attr(0, "async_scope", 1):
                C[0] = A[i]
    with T.attr(0, "async_wait_queue_scope", 0):
        with T.attr(0, "async_wait_inflight_count", 0):
            T.evaluate(0)
''')
    race = _only_race(func, "async-write-overlap")
    assert dict(race.first.iterations)["i"] == 0 and dict(race.second.iterations)["i"] == 1


def test_barrier_reached_by_some_threads_only():
    func = programs.load(programs.HEADER + '''@T.prim_func
def diverged(A: T.Buffer((4,), "float32")):
    for tx in T.thread_binding(4, thread="threadIdx.x"):
        if tx < 2:
            T.tvm_storage_sync("shared")
        A[tx] = A[tx] + T.float32(1)
''')
    race = _only_race(func, "divergent-barrier")
    assert race.second.action == "barrier" and race.first is None
    assert 'T.tvm_storage_sync("shared")' in race.second.span.text


def test_an_earlier_async_read_by_another_thread_is_not_forgotten():
    """Thread 1's async read of S[0] completes and is published; thread 0's is still in
    flight when thread 1 overwrites S[0] after the barrier."""
    func = programs.load(programs.HEADER + '''@T.prim_func
def readers(A: T.Buffer((2,), "float32"), C: T.Buffer((2,), "float32")):
    for tx in T.thread_binding(2, thread="threadIdx.x"):
        with T.block():
            S = T.alloc_buffer((1,), "float32", scope="shared")
            if tx == 0:
                S[0] = A[0]
            T.tvm_storage_sync("shared")
            if tx == 0:
                with T.attr(0, "async_commit_queue_scope", 1):
                    with T.attr(0, "async_scope", 1):
                        C[0] = S[0]
            if tx == 1:
                with T.attr(0, "async_commit_queue_scope", 1):
                    with T.attr(0, "async_scope", 1):
                        C[1] = S[0]
                with T.attr(0, "async_wait_queue_scope", 1):
                    with T.attr(0, "async_wait_inflight_count", 0):
                        T.evaluate(0)
            T.tvm_storage_sync("shared")
            if tx == 1:
                S[0] = A[1]
            with T.attr(0, "async_wait_queue_scope", 1):
                with T.attr(0, "async_wait_inflight_count", 0):
                    T.evaluate(0)
''')
    race = _only_race(func, "cross-thread")
    assert race.first.action == "async read" and race.first.thread == 0
    assert race.second.action == "write" and race.second.thread == 1


def test_a_wait_inside_the_group_it_waits_for_covers_nothing():
    """With every statement in one async stage, TVM 0.27 waits for 0 groups inside the
    copies' own commit group (tvm_one_async_stage.py): the consumer reads tiles not yet
    landed and the last groups stay in flight. tilepipe's pipeline of the same loop is
    race-free, exact, and computes what the loop computes."""
    funcs = {func.name: func for func in
             load_file(Path(__file__).parent / "tvm_one_async_stage.py")}
    kinds = {race.kind for race in verify(funcs["tvm_output"]).races}
    assert {"unlanded-read", "in-flight-at-end"} <= kinds
    pipelined = programs.load(inject_software_pipeline(funcs["before"]).script())
    assert verify(pipelined).ok, verify(pipelined).format()
    assert all(count.exact for count in max_safe_counts(pipelined))
    inputs = random_inputs(funcs["before"], seed=3)
    expected = simulate(funcs["before"], inputs)["C"]
    for schedule in SCHEDULES:
        np.testing.assert_array_equal(simulate(pipelined, inputs, schedule=schedule)["C"],
                                      expected)
