"""The intrinsic registry: semantics added from outside the interpreter, blocking calls
that let diverged threads go on, deadlocks, and the top-level entry points."""

import numpy as np
import pytest

import tilepipe
from tilepipe import RaceError
from tilepipe.sim import intrinsics, random_inputs, simulate

import sim_programs as programs


@intrinsics.register("test_axpy")
def _axpy(call, args, context):
    a, x, y = args
    return a * x + y


class _Flags:
    """Per-block flags: ``test_raise(k)`` sets flag k; ``test_await(k)`` blocks until
    it is set."""

    def __init__(self):
        self.raised = set()


@intrinsics.register("test_raise")
def _raise(call, args, context):
    context.block_state("test flags", _Flags).raised.add(int(args[0]))
    return 0


@intrinsics.register("test_await", blocking=True)
def _await(call, args, context):
    flags = context.block_state("test flags", _Flags)
    while int(args[0]) not in flags.raised:
        yield f"threads {context.local.tolist()} wait for flag {int(args[0])}"
    return 0


def test_registered_intrinsic_gets_evaluated_arguments():
    func = programs.load(programs.HEADER + '''@T.prim_func
def axpy(X: T.Buffer((8,), "float32"), Y: T.Buffer((8,), "float32")):
    for tx in T.thread_binding(8, thread="threadIdx.x"):
        Y[tx] = T.test_axpy(T.float32(3), X[tx], Y[tx], dtype="float32")
''')
    inputs = random_inputs(func)
    np.testing.assert_allclose(simulate(func, inputs)["Y"], 3 * inputs["X"] + inputs["Y"],
                               rtol=1e-6)
    assert "test_axpy" in intrinsics.registered()


PRODUCER_CONSUMER = programs.HEADER + '''@T.prim_func
def roles(A: T.Buffer((4,), "float32"), C: T.Buffer((4,), "float32")):
    for tx in T.thread_binding(2, thread="threadIdx.x"):
        with T.block():
            S = T.alloc_buffer((4,), "float32", scope="shared")
            if tx == 0:
                for i in T.serial(4):
                    T.evaluate(T.test_await(i + FIRST))
                    C[i] = S[i] + T.float32(1)
            else:
                for i in T.serial(4):
                    S[i] = A[i] * T.float32(2)
                    T.evaluate(T.test_raise(i + 10))
'''


def test_a_blocked_branch_lets_the_other_branch_run():
    func = programs.load(PRODUCER_CONSUMER.replace("FIRST", "10"))
    inputs = random_inputs(func)
    np.testing.assert_allclose(simulate(func, inputs)["C"], inputs["A"] * 2 + 1)


def test_when_no_branch_can_go_on_it_is_a_deadlock():
    func = programs.load(PRODUCER_CONSUMER.replace("FIRST", "11"))
    with pytest.raises(RaceError, match=r"deadlock(.|\n)*threads \[0\] wait for flag 14"):
        simulate(func, random_inputs(func))


def test_top_level_entry_points():
    func = programs.load(programs.pipelined(1))
    assert tilepipe.verify(func).ok
    counts = tilepipe.verify.max_safe_counts(func)
    assert [count.exact for count in counts] == [True, True]
    inputs = random_inputs(func)
    np.testing.assert_allclose(tilepipe.simulate(func, inputs, schedule="lazy")["C"],
                               programs.expected_pipelined(inputs["A"]))
