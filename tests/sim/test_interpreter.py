"""The interpreter's synchronous semantics: threads, scopes, control flow, errors."""

import numpy as np
import pytest

from tilepipe import TilepipeError
from tilepipe.script import parse
from tilepipe.sim import random_inputs, simulate
from tilepipe.sim.simulate import run

HEADER = "from tilepipe import script as T\n\n\n"


def program(body: str):
    return parse(HEADER + body)


def test_threads_shared_and_local_memory():
    func = program('''
@T.prim_func
def transpose_scale(A: T.Buffer((8, 4), "float32"), C: T.Buffer((4, 8), "float32")):
    for ty in T.thread_binding(4, thread="threadIdx.y"):
        for tx in T.thread_binding(8, thread="threadIdx.x"):
            with T.block():
                S = T.alloc_buffer((8, 4), "float32", scope="shared")
                L = T.alloc_buffer((1,), "float32", scope="local")
                S[tx, ty] = A[tx, ty]
                T.tvm_storage_sync("shared")
                L[0] = S[tx, ty] * T.float32(3)
                C[ty, tx] = L[0] + T.float32(1)
''')
    inputs = random_inputs(func, seed=3)
    out = simulate(func, inputs)
    np.testing.assert_allclose(out["C"], inputs["A"].T * 3 + 1, rtol=1e-6)
    np.testing.assert_array_equal(out["A"], inputs["A"])


def test_divergent_branches_loops_and_predicates():
    func = program('''
@T.prim_func
def divergent(A: T.Buffer((16,), "int32"), C: T.Buffer((16,), "int32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        with T.block():
            T.where(tx < 12)
            C[tx] = 0
            for j in T.serial(tx % 4):
                C[tx] = C[tx] + A[j]
            if tx % 2 == 0:
                C[tx] = C[tx] * 10
            else:
                C[tx] = T.if_then_else(tx < 13 and A[tx + 3] > 4, -1, C[tx])
''')
    inputs = random_inputs(func, seed=1)
    out = simulate(func, inputs)["C"]
    a = inputs["A"]
    expected = inputs["C"].copy()
    for t in range(12):
        value = int(a[: t % 4].sum())
        if t % 2 == 0:
            value *= 10
        elif a[t + 3] > 4:
            value = -1
        expected[t] = value
    np.testing.assert_array_equal(out, expected)


def test_blocks_and_symbolic_sizes_bound_from_inputs():
    func = program('''
@T.prim_func
def add_one(n: T.int32, A: T.Buffer((n, 4), "float32"), C: T.Buffer((n, 4), "float32")):
    for bx in T.thread_binding(n, thread="blockIdx.x"):
        for tx in T.thread_binding(4, thread="threadIdx.x"):
            C[bx, tx] = A[bx, tx] + T.float32(1)
''')
    inputs = random_inputs(func, dims={"n": 3})
    out = simulate(func, inputs, dims={"n": 3})
    np.testing.assert_allclose(out["C"], inputs["A"] + 1)
    assert out["C"].shape == (3, 4)


def test_sizes_come_from_dims_or_input_shapes_else_a_clear_error():
    func = program('''
@T.prim_func
def copy(a: T.handle, c: T.handle):
    m = T.int32()
    A = T.match_buffer(a, (m,), "float32")
    C = T.match_buffer(c, (m,), "float32")
    for i in T.serial(m):
        C[i] = A[i] * T.float32(2)
''')
    with pytest.raises(TilepipeError, match="needs values for m"):
        random_inputs(func)
    inputs = random_inputs(func, dims={"m": 6})
    np.testing.assert_allclose(simulate(func, inputs)["C"], inputs["A"] * 2)


def test_out_of_bounds_names_the_line_and_thread():
    func = program('''
@T.prim_func
def shift(A: T.Buffer((8,), "float32"), C: T.Buffer((8,), "float32")):
    for tx in T.thread_binding(8, thread="threadIdx.x"):
        C[tx] = A[tx + 1]
''')
    with pytest.raises(TilepipeError) as info:
        simulate(func, random_inputs(func))
    message = str(info.value)
    assert "out of bounds of A" in message and "thread 7" in message
    assert "C[tx] = A[tx + 1]" in info.value.span.text


def test_unknown_intrinsic_is_a_clear_error():
    func = program('''
@T.prim_func
def mystery(A: T.Buffer((4,), "float32")):
    for i in T.serial(4):
        T.evaluate(T.frobnicate(A[i]))
''')
    with pytest.raises(TilepipeError, match="does not know the intrinsic T.frobnicate"):
        simulate(func, random_inputs(func))


def test_inputs_are_checked():
    func = program('''
@T.prim_func
def copy(A: T.Buffer((4,), "float32"), C: T.Buffer((4,), "float32")):
    for i in T.serial(4):
        C[i] = A[i]
''')
    with pytest.raises(TilepipeError, match="no input array for buffer parameter 'C'"):
        simulate(func, {"A": np.zeros(4)})
    with pytest.raises(TilepipeError, match="shape"):
        simulate(func, {"A": np.zeros(5), "C": np.zeros(4)})
    with pytest.raises(TilepipeError, match="no buffer parameter named B"):
        simulate(func, {"A": np.zeros(4), "C": np.zeros(4), "B": np.zeros(4)})
    with pytest.raises(TilepipeError, match="unknown schedule"):
        simulate(func, {"A": np.zeros(4), "C": np.zeros(4)}, schedule="sometimes")


def test_uninitialized_shared_memory_reads_as_nan():
    func = program('''
@T.prim_func
def early(C: T.Buffer((4,), "float32")):
    for tx in T.thread_binding(4, thread="threadIdx.x"):
        with T.block():
            S = T.alloc_buffer((4,), "float32", scope="shared")
            C[tx] = S[tx]
''')
    assert np.isnan(simulate(func, {"C": np.zeros(4, np.float32)})["C"]).all()


def test_statements_are_vectorized_over_threads():
    func = program('''
@T.prim_func
def wide(A: T.Buffer((256,), "float32"), C: T.Buffer((256,), "float32")):
    for tx in T.thread_binding(256, thread="threadIdx.x"):
        for j in T.serial(3):
            C[tx] = A[tx] + T.float32(j)
''')
    interpreter, _ = run(func, random_inputs(func))
    assert interpreter.statements_executed == 3
