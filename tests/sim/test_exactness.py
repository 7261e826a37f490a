"""The exactness oracle, and its agreement with the race detector on mutants."""

import numpy as np
import pytest

from tilepipe.sim import max_safe_counts, random_inputs, simulate, verify

import sim_programs as programs
from sim_mutants import barriers, loosened, tightened, wait_mutants, waits, without_barrier


@pytest.mark.parametrize("num_stages", [1, 2, 3])
def test_pipelined_waits_are_exact(num_stages):
    func = programs.load(programs.pipelined(num_stages))
    counts = max_safe_counts(func)
    # The body's wait, then one per unrolled epilogue copy.
    assert [count.unroll for count in counts] == [()] + [(i,) for i in range(num_stages)]
    assert [count.used for count in counts] == [(num_stages,)] + [
        (num_stages - 1 - i,) for i in range(num_stages)]
    for count in counts:
        assert count.max_safe == count.used[0] and count.exact, count.format()
    body = counts[0]
    assert len(body.executions) == 16 - num_stages
    assert body.site == waits(func)[0].span.line


def test_exchange_waits_are_exact():
    counts = max_safe_counts(programs.load(programs.EXCHANGE))
    assert [(count.used, count.max_safe) for count in counts] == [((1,), 1), ((0,), 0)]


@pytest.mark.parametrize("num_stages", [1, 3])
def test_a_tighter_wait_is_safe_but_not_exact(num_stages):
    func = programs.load(programs.pipelined(num_stages))
    mutant = tightened(func, waits(func)[0])
    assert verify(mutant).ok
    body = max_safe_counts(mutant)[0]
    assert body.used == (num_stages - 1,) and body.max_safe == num_stages and not body.exact


@pytest.mark.parametrize("source", [programs.pipelined(1), programs.pipelined(3),
                                    programs.EXCHANGE],
                         ids=["pipelined-1", "pipelined-3", "exchange"])
def test_every_loosened_or_removed_wait_is_rejected(source):
    """Each wait is exact, so allowing one more group in flight (or not waiting at all)
    must be a race; where it changes the lazily scheduled results, that is independent
    evidence of the race."""
    func = programs.load(source)
    inputs = random_inputs(func, seed=11)
    reference = simulate(func, inputs)["C"]
    for name, mutant in wait_mutants(func):
        report = verify(mutant)
        assert not report.ok, name
        lazy = simulate(mutant, inputs, schedule="lazy")["C"]
        if not np.array_equal(lazy, reference):
            assert any(race.kind in ("unlanded-read", "cross-thread", "in-flight-at-end")
                       for race in report.races), name


def test_every_dropped_barrier_is_rejected():
    """Every barrier of the exchange program orders a copy by one thread against an
    access by another: dropping any of them is a cross-thread race."""
    func = programs.load(programs.EXCHANGE)
    for barrier in barriers(func):
        report = verify(without_barrier(func, barrier))
        assert report.races, report.format()
        assert {race.kind for race in report.races} == {"cross-thread"}, report.format()


def test_loosening_agrees_with_the_oracle():
    """A wait loosened beyond its largest safe count is a race; one within it is not."""
    func = programs.load(programs.pipelined(2))
    for wait, count in zip(waits(func)[:1], max_safe_counts(func)[:1]):
        within = tightened(func, wait)
        beyond = loosened(func, wait)
        assert verify(within).ok
        assert not verify(beyond).ok
        assert max_safe_counts(beyond)[0].max_safe == count.max_safe
