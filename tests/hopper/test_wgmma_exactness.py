"""The exactness oracle of ``T.wgmma_wait_group``: the warp-specialized GEMM keeps one
wgmma group in flight, the largest safe count (2 lets the producer refill a slot that a
running wgmma still reads); the drain after the loop must be 0; an accumulator read
inside the loop forces 0."""

import pytest
from hopper_programs import gemm

from tilepipe import parse
from tilepipe.kernels.hopper_gemm import hopper_gemm, lower
from tilepipe.sim.wgmma_exactness import max_safe_wgmma_counts
from tilepipe.transform.warp_specialize import warp_specialize

LOOP_WAIT = "T.wgmma_wait_group(1)"
DRAIN = "T.wgmma_wait_group(0)"


def specialized_text(k_tiles=5):
    return warp_specialize(gemm(k_tiles)).script()


def counts(text):
    return {count.used: count.max_safe for count in max_safe_wgmma_counts(parse(text))}


@pytest.mark.parametrize("k_tiles", [4, 7])
def test_warp_specialized_gemm_waits_are_exact(k_tiles):
    found = max_safe_wgmma_counts(warp_specialize(gemm(k_tiles)))
    assert [(count.used, count.max_safe) for count in found] == [((1,), 1), ((0,), 0)]
    assert all(count.exact for count in found)


def test_ready_made_hopper_gemm_waits_are_exact():
    found = max_safe_wgmma_counts(lower(hopper_gemm(64, 32, 128, block_m=64, block_n=32,
                                                    block_k=32, num_stages=2)))
    assert [(count.used, count.max_safe) for count in found] == [((1,), 1), ((0,), 0)]


def test_two_groups_in_flight_is_more_than_safe():
    found = max_safe_wgmma_counts(parse(specialized_text().replace(
        LOOP_WAIT, "T.wgmma_wait_group(2)")))
    loop_wait = found[0]
    assert loop_wait.used == (2,) and loop_wait.max_safe == 1 and not loop_wait.exact
    assert "uses 2, largest safe 1: NOT exact" in loop_wait.format()


def test_waiting_for_every_group_is_safe_but_not_exact():
    assert counts(specialized_text().replace(LOOP_WAIT, "T.wgmma_wait_group(0)")) == {
        (0,): 0}  # both sites use 0: the loop's could use 1, the merged minimum is 0
    found = max_safe_wgmma_counts(parse(specialized_text().replace(
        LOOP_WAIT, "T.wgmma_wait_group(0)")))
    assert [count.max_safe for count in found] == [1, 0]
    assert not found[0].exact and found[1].exact


def test_drain_leaving_a_group_in_flight_is_not_exact():
    """The epilogue reads the accumulator the last wgmma writes: the drain must be 0."""
    text = specialized_text().replace(DRAIN, "T.wgmma_wait_group(1)", 1)
    drain = max_safe_wgmma_counts(parse(text))[1]
    assert drain.used == (1,) and drain.max_safe == 0 and not drain.exact


def test_accumulator_read_inside_the_loop_forces_every_group_complete():
    text = specialized_text().replace(
        LOOP_WAIT + "\n", LOOP_WAIT + "\n                    C[tx // 32 * 16 + tx % 32 // 4, "
        "tx % 4 * 2] = acc[0]\n", 1)
    found = max_safe_wgmma_counts(parse(text))
    assert found[0].used == (1,) and found[0].max_safe == 0
