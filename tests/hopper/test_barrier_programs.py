"""Hand-written mbarrier programs in the simulator: results, deadlocks, phase misuse,
copies nothing waits for, and producer/consumer warp roles running independently."""

import numpy as np
import pytest

from tilepipe import parse
from tilepipe.errors import RaceError
from tilepipe.sim import random_inputs, simulate, verify
from tilepipe.sim.mbarrier import BarrierError, BarrierRace, PhaseMisuse

SCHEDULES = ("eager", "lazy", "random:1", "random:7")

RING = '''
from tilepipe import script as T

@T.prim_func
def ring(A: T.Buffer((8, 64), "float32"), B: T.Buffer((8, 64), "float32")):
    for tx in T.thread_binding(64, thread="threadIdx.x"):
        with T.block("root"):
            S = T.alloc_buffer((2, 64), "float32", scope="shared")
            full = T.alloc_buffer((2,), "uint64", scope="shared")
            empty = T.alloc_buffer((2,), "uint64", scope="shared")
            if tx == 0:
                for s in range(2):
                    T.evaluate(T.mbarrier_init(full, s, 1))
                    T.evaluate(T.mbarrier_init(empty, s, 64))
            T.evaluate(T.tvm_storage_sync("shared"))
            for k in range(8):
                if tx == 0:
                    T.evaluate(T.mbarrier_wait_parity(empty, k % 2, PRODUCER_PARITY))
                    T.evaluate(T.mbarrier_arrive_expect_tx(full, k % 2, 256))
                    T.evaluate(T.tma_load(S[k % 2, 0:64], A[k, 0:64], full, k % 2))
                T.evaluate(T.mbarrier_wait_parity(full, k % 2, k // 2 % 2))
                B[k, tx] = S[k % 2, tx] * T.float32(2)
                T.evaluate(T.mbarrier_arrive(empty, k % 2))
'''


def ring(replacements=()):
    """The ring program with some of its lines replaced (``(old, new)`` pairs)."""
    text = RING
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    return parse(text.replace("PRODUCER_PARITY", "1 - k // 2 % 2"))


RELEASE = "                T.evaluate(T.mbarrier_arrive(empty, k % 2))\n"
CONSUMER_WAIT = "T.evaluate(T.mbarrier_wait_parity(full, k % 2, k // 2 % 2))"
PRODUCER_WAIT = "T.evaluate(T.mbarrier_wait_parity(empty, k % 2, PRODUCER_PARITY))"


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_ring_of_two_slots_copies_every_row(schedule):
    func = ring()
    inputs = random_inputs(func, seed=3)
    outputs = simulate(func, inputs, schedule=schedule)
    np.testing.assert_array_equal(outputs["B"], inputs["A"] * 2)


def test_ring_is_race_free():
    assert verify(ring()).ok


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_missing_release_deadlocks_naming_barrier_and_phase(schedule):
    func = ring([(RELEASE, "")])
    with pytest.raises(RaceError, match=r"deadlock") as caught:
        simulate(func, random_inputs(func), schedule=schedule)
    message = str(caught.value)
    assert "thread(s) 0 wait on empty[0] for parity 0 (phase 0)" in message
    assert "still lacks 64 arrival(s)" in message


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_producer_on_the_consumer_parity_deadlocks(schedule):
    func = ring([("PRODUCER_PARITY", "k // 2 % 2")])
    with pytest.raises(RaceError, match=r"wait on empty\[0\] for parity 0"):
        simulate(func, random_inputs(func), schedule=schedule)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_read_without_waiting_for_the_copy_is_a_race(schedule):
    func = ring([(CONSUMER_WAIT, "T.evaluate(0)")])
    with pytest.raises(BarrierRace, match=r"race on S\[0, 0\]: thread 0 reads it, but a "
                                          r"TMA copy wrote it at line 20"):
        simulate(func, random_inputs(func), schedule=schedule)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_copy_into_a_slot_not_released_is_a_race(schedule):
    func = ring([(PRODUCER_WAIT, "T.evaluate(0)")])
    with pytest.raises(BarrierRace, match=r"a TMA copy overwrites it, but thread 1 read it "
                                          r"at line 22"):
        simulate(func, random_inputs(func), schedule=schedule)


def test_wait_on_the_parity_of_the_phase_before_the_first_deadlocks_or_races():
    """Waiting on parity 1 first means phase -1 (passes at once) or phase 1 (a thread
    taking part in odd phases only): once phase 0 completed it is phase 1, which never
    comes; before, the wait passes and the read of the slot is not ordered after the
    copy."""
    wrong = CONSUMER_WAIT.replace("k // 2 % 2)", "1 - k // 2 % 2)")
    func = ring([(CONSUMER_WAIT, wrong)])
    with pytest.raises(RaceError, match=r"deadlock: no thread can go on:\n  thread\(s\) "
                                        r"0-63 wait on full\[0\] for parity 1 \(phase 1\)"):
        simulate(func, random_inputs(func), schedule="eager")
    with pytest.raises(BarrierRace):  # landing later, the stale read shows as a race
        simulate(func, random_inputs(func), schedule="lazy")


RUNAWAY = '''
from tilepipe import script as T

@T.prim_func
def runaway(A: T.Buffer((8, 64), "float32"), B: T.Buffer((8, 64), "float32")):
    for tx in T.thread_binding(96, thread="threadIdx.x"):
        with T.block("root"):
            S = T.alloc_buffer((2, 64), "float32", scope="shared")
            full = T.alloc_buffer((2,), "uint64", scope="shared")
            if tx == 0:
                for s in range(2):
                    T.evaluate(T.mbarrier_init(full, s, 1))
            T.evaluate(T.tvm_storage_sync("shared"))
            if tx < 64:
                for k in range(8):
                    T.evaluate(T.mbarrier_wait_parity(full, k % 2, k // 2 % 2))
                    B[k, tx] = S[k % 2, tx]
            elif tx == 64:
                for k in range(8):
                    T.evaluate(T.mbarrier_arrive_expect_tx(full, k % 2, 256))
                    T.evaluate(T.tma_load(S[k % 2, 0:64], A[k, 0:64], full, k % 2))
'''


def test_producer_running_two_phases_ahead_of_its_consumers_is_phase_misuse():
    """Without an empty barrier the producer refills each slot four times before the
    consumers look: their first wait on parity 0 would block for phase 4."""
    func = parse(RUNAWAY)
    with pytest.raises(PhaseMisuse, match=r"thread 0 waits on full\[0\] with parity 0 after "
                                          r"observing phase -1, but the barrier already "
                                          r"completed phase 2"):
        simulate(func, random_inputs(func), schedule="eager")


def test_copy_nothing_waits_for_is_in_flight_at_the_end():
    func = parse('''
from tilepipe import script as T

@T.prim_func
def dangling(A: T.Buffer((64,), "float32")):
    for tx in T.thread_binding(32, thread="threadIdx.x"):
        with T.block("root"):
            S = T.alloc_buffer((64,), "float32", scope="shared")
            full = T.alloc_buffer((1,), "uint64", scope="shared")
            if tx == 0:
                T.evaluate(T.mbarrier_init(full, 0, 1))
                T.evaluate(T.mbarrier_arrive_expect_tx(full, 0, 256))
                T.evaluate(T.tma_load(S[0:64], A[0:64], full, 0))
''')
    for schedule in SCHEDULES:
        with pytest.raises(BarrierError, match=r"completing on full\[0\] is still in flight "
                                               "when the block ends"):
            simulate(func, random_inputs(func), schedule=schedule)


def test_barrier_used_before_init_is_reported_with_its_line():
    func = ring([("                    T.evaluate(T.mbarrier_init(full, s, 1))\n", "")])
    with pytest.raises(BarrierError, match=r"<string>:\d+:\d+: .*full\[0\] before "
                                           r"T.mbarrier_init"):
        simulate(func, random_inputs(func))


def test_verify_reports_a_deadlock_instead_of_raising():
    report = verify(ring([(RELEASE, "")]))
    assert not report.ok
    assert "the run stopped: deadlock" in report.format()
    assert "wait on empty[0] for parity 0 (phase 0)" in report.format()


def test_verify_reports_a_barrier_race():
    report = verify(ring([(CONSUMER_WAIT, "T.evaluate(0)")]))
    assert not report.ok and isinstance(report.stopped, BarrierRace)


def test_verify_command_exits_1_on_a_deadlock(tmp_path, capsys):
    from tilepipe.cli import main

    path = tmp_path / "ring.py"
    path.write_text(RING.replace("PRODUCER_PARITY", "1 - k // 2 % 2").replace(RELEASE, ""))
    assert main(["verify", str(path), "--no-pipeline"]) == 1
    assert "deadlock" in capsys.readouterr().out
