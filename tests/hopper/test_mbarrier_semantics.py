"""The mbarrier state machine: arrivals, transaction bytes, phases, parity and misuse."""

import numpy as np
import pytest

from tilepipe.sim.mbarrier import BarrierError, BarrierFile, PendingTransfer, PhaseMisuse

ALL = np.arange(4)


def barriers(size=2, threads=4):
    return BarrierFile("full", size, threads)


def test_phase_completes_after_expected_arrivals():
    file = barriers()
    file.init(0, 2)
    file.arrive(0)
    assert file.completed[0] == 0
    blocked = file.wait(0, 0, ALL)
    assert blocked is not None and blocked.phase == 0 and blocked.arrivals_missing == 1
    file.arrive(0)
    assert file.completed[0] == 1
    assert file.wait(0, 0, ALL) is None
    assert file.pending[0] == 2  # reloaded for phase 1


def test_producer_parity_passes_on_a_fresh_barrier():
    file = barriers()
    file.init(1, 4)
    assert file.wait(1, 1, ALL) is None  # the slot starts empty
    assert file.wait(1, 0, ALL) is not None


def test_transaction_bytes_hold_the_phase_until_delivered():
    file = barriers()
    file.init(0, 1)
    landed = []
    file.expect_transaction(0, 256)
    file.arrive(0)
    file.add_transfer(PendingTransfer(0, 256, lambda: landed.append(True)))
    blocked = file.wait(0, 0, ALL)
    assert blocked.bytes_missing == 256 and blocked.arrivals_missing == 0
    file.land(0)
    assert landed == [True]
    assert file.wait(0, 0, ALL) is None


def test_bytes_delivered_before_they_are_expected_still_balance():
    file = barriers()
    file.init(0, 1)
    file.add_transfer(PendingTransfer(0, 64, lambda: None))
    file.land()
    assert file.completed[0] == 0
    file.expect_transaction(0, 64)
    file.arrive(0)
    assert file.completed[0] == 1


def test_many_arrivals_at_once_roll_into_the_next_phase():
    file = barriers()
    file.init(0, 2)
    file.arrive(0, count=5)
    assert file.completed[0] == 2 and file.pending[0] == 1


def test_use_before_init_is_reported():
    with pytest.raises(BarrierError, match=r"before T.mbarrier_init"):
        barriers().arrive(0)


def test_arrivals_beyond_count_while_bytes_due_are_reported():
    file = barriers()
    file.init(0, 1)
    file.expect_transaction(0, 16)
    file.arrive(0)
    with pytest.raises(BarrierError, match="too many arrivals"):
        file.arrive(0)


def test_index_outside_the_buffer_is_reported():
    with pytest.raises(BarrierError, match="outside full"):
        barriers().init(2, 1)


def test_waiter_two_phases_behind_is_phase_misuse():
    file = barriers()
    file.init(0, 1)
    file.arrive(0)
    assert file.wait(0, 0, ALL) is None  # observes phase 0
    file.arrive(0)
    file.arrive(0)  # phases 1 and 2 complete before the next wait
    with pytest.raises(PhaseMisuse, match="phase 1"):
        file.wait(0, 1, ALL)


def test_waiting_every_phase_in_turn_is_not_misuse():
    file = barriers(threads=1)
    file.init(0, 1)
    for phase in range(6):
        assert file.wait(0, phase % 2, [0]) is not None
        file.arrive(0)
        assert file.wait(0, phase % 2, [0]) is None
        assert file.observed[0, 0] == phase


def test_waiting_on_every_other_phase_is_not_misuse():
    """A thread taking part in phases 0, 2, 4 only waits on parity 0 each time; the
    barrier completing phase 1 (but not 2) in between must block it, not be a misuse."""
    file = barriers(threads=2)
    file.init(0, 1)
    for phase in (0, 2, 4):
        assert file.wait(0, 0, [0]) is not None  # phase `phase` is in progress
        file.arrive(0)
        assert file.wait(0, 0, [0]) is None
        assert file.observed[0, 0] == phase
        file.arrive(0)  # the odd phase, which thread 0 does not wait for


def test_waiting_again_on_the_phase_just_observed_passes():
    file = barriers(threads=1)
    file.init(0, 1)
    file.arrive(0)
    assert file.wait(0, 0, [0]) is None
    assert file.wait(0, 0, [0]) is None  # still the latest completed phase
    assert file.observed[0, 0] == 0


def test_skipping_a_phase_of_the_awaited_parity_is_misuse():
    """After observing phase 0, waiting on parity 0 once phases 1, 2 and 3 completed
    would block for phase 4: phase 2 went by unobserved."""
    file = barriers(threads=1)
    file.init(0, 1)
    file.arrive(0)
    assert file.wait(0, 0, [0]) is None
    file.arrive(0, count=3)
    with pytest.raises(PhaseMisuse, match="phase 2 went by unobserved"):
        file.wait(0, 0, [0])


def test_a_first_wait_after_two_completed_phases_is_misuse():
    file = barriers(threads=1)
    file.init(0, 1)
    file.arrive(0, count=2)
    with pytest.raises(PhaseMisuse, match="phase 0 went by unobserved"):
        file.wait(0, 0, [0])
