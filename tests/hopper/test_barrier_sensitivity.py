"""Every broken synchronization of a lowered pipeline is caught, under every schedule: a
missing wait or release, or a wait on the wrong parity, ends the run with a race, a
deadlock or a phase misuse naming the barrier."""

import pytest
from hopper_programs import pipeline_source

from tilepipe import parse
from tilepipe.errors import RaceError
from tilepipe.ir import Call, Evaluate, IntImm, IRMutator, Sub
from tilepipe.sim import random_inputs, simulate
from tilepipe.transform.barriers import lower_to_barriers
from tilepipe.transform.warp_specialize import warp_specialize

CONFIGS = [
    dict(threads=32, rows=2, start=0, extent=6, stages=[0, 1], orders=[0, 1],
         two_buffers=False, second_consumer=False),
    dict(threads=64, rows=2, start=1, extent=7, stages=[0, 1, 2], orders=[1, 2, 0],
         two_buffers=True, second_consumer=False),
    dict(threads=32, rows=4, start=0, extent=5, stages=[0, 0, 1, 2], orders=[0, 1, 2, 3],
         two_buffers=True, second_consumer=True),
]
MUTATIONS = {
    "no wait for the data": ("mbarrier_wait_parity", "full", "drop"),
    "no wait for the slot": ("mbarrier_wait_parity", "empty", "drop"),
    "no release": ("mbarrier_arrive", "empty", "drop"),
    "data wait on the other parity": ("mbarrier_wait_parity", "full", "flip"),
    "slot wait on the other parity": ("mbarrier_wait_parity", "empty", "flip"),
}


class _Mutate(IRMutator):
    def __init__(self, op: str, barrier: str, action: str):
        self.op, self.barrier, self.action = op, barrier, action
        self.changed = 0

    def visit_evaluate(self, node: Evaluate):
        call = node.value
        if not (isinstance(call, Call) and call.op == self.op
                and call.args[0].name.endswith(self.barrier)):
            return node
        self.changed += 1
        if self.action == "drop":
            return Evaluate(IntImm(0), node.span)
        barriers, index, parity = call.args
        flipped = Call(call.dtype, call.op, (barriers, index, Sub(IntImm(1), parity)),
                       call.span)
        return Evaluate(flipped, node.span)


@pytest.mark.parametrize("form", ["one role", "warp-specialized"])
@pytest.mark.parametrize("mutation", list(MUTATIONS))
@pytest.mark.parametrize("config", range(len(CONFIGS)))
def test_broken_synchronization_is_caught(form, mutation, config):
    func = parse(pipeline_source(**CONFIGS[config]))
    lowered = lower_to_barriers(func) if form == "one role" else warp_specialize(func)
    mutator = _Mutate(*MUTATIONS[mutation])
    mutant = lowered.with_body(mutator.visit(lowered.body))
    assert mutator.changed
    inputs = random_inputs(func, seed=0)
    for schedule in ("eager", "lazy", "random:4"):
        with pytest.raises(RaceError):
            simulate(mutant, inputs, schedule=schedule)
