"""The tensor-core intrinsics in the simulator (tile semantics, checked against NumPy)
and their CUDA emission (the PTX they become, and the errors for misuse)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tilepipe import simulate
from tilepipe.backend.cuda import codegen
from tilepipe.backend.cuda.compiler import compile_source, find_nvcc
from tilepipe.backend.cuda.sass import disassemble, find_cuobjdump
from tilepipe.errors import LoweringError, TilepipeError
from tilepipe.script import parse

# One warp computes C (16 x 16) = A (16 x 32) @ B (32 x 16) with two k steps of two
# m16n8k16 tiles each; B is loaded transposed, A as it is.
TILE_GEMM = '''
from tilepipe import script as T


@T.prim_func
def tile_gemm(A: T.Buffer((16, 32), "float16"), B: T.Buffer((32, 16), "float16"),
              C: T.Buffer((16, 16), "float32")):
    for lane in T.thread_binding(32, thread="threadIdx.x"):
        with T.block("tile"):
            A_shared = T.alloc_buffer((16, 40), "float16", scope="shared")
            B_shared = T.alloc_buffer((32, 24), "float16", scope="shared")
            A_warp = T.alloc_buffer((2, 16, 16), "float16", scope="warp")
            B_warp = T.alloc_buffer((2, 16, 16), "float16", scope="warp")
            C_warp = T.alloc_buffer((2, 16, 8), "float32", scope="warp")
            for i in T.serial(16):
                A_shared[lane // 2, lane % 2 * 16 + i] = A[lane // 2, lane % 2 * 16 + i]
                B_shared[lane, i] = B[lane, i]
            T.evaluate(T.tvm_storage_sync("shared"))
            for k in T.unroll(2):
                T.evaluate(T.ldmatrix(A_warp[k, 0:16, 0:16], A_shared[0:16, k * 16:k * 16 + 16],
                                      False))
                T.evaluate(T.ldmatrix(B_warp[k, 0:16, 0:16], B_shared[k * 16:k * 16 + 16, 0:16],
                                      True))
            for n in T.unroll(2):
                T.evaluate(T.mma_fill(C_warp[n, 0:16, 0:8], T.float32(FILL)))
                for k in T.unroll(2):
                    T.evaluate(T.mma_sync(C_warp[n, 0:16, 0:8], A_warp[k, 0:16, 0:16],
                                          B_warp[k, n * 8:n * 8 + 8, 0:16]))
                T.evaluate(T.mma_store(C[0:16, n * 8:n * 8 + 8], C_warp[n, 0:16, 0:8]))
'''


# ldmatrix of one and two 8x8 matrices: F holds A, G holds the first 8 columns of A
# transposed (as the (n, k) B operand), so C = A @ A[:, 0:8].
NARROW_LOADS = '''
from tilepipe import script as T


@T.prim_func
def narrow_loads(A: T.Buffer((16, 16), "float16"), C: T.Buffer((16, 8), "float32")):
    for lane in T.thread_binding(32, thread="threadIdx.x"):
        with T.block("tile"):
            A_shared = T.alloc_buffer((16, 16), "float16", scope="shared")
            F = T.alloc_buffer((16, 16), "float16", scope="warp")
            G = T.alloc_buffer((8, 16), "float16", scope="warp")
            C_warp = T.alloc_buffer((16, 8), "float32", scope="warp")
            for i in T.serial(8):
                A_shared[lane // 2, lane % 2 * 8 + i] = A[lane // 2, lane % 2 * 8 + i]
            T.evaluate(T.tvm_storage_sync("shared"))
            T.evaluate(T.ldmatrix(F[0:16, 0:8], A_shared[0:16, 0:8], False))
            T.evaluate(T.ldmatrix(F[0:16, 8:16], A_shared[0:16, 8:16], False))
            T.evaluate(T.ldmatrix(G[0:8, 0:8], A_shared[0:8, 0:8], True))
            T.evaluate(T.ldmatrix(G[0:8, 8:16], A_shared[8:16, 0:8], True))
            T.evaluate(T.mma_fill(C_warp[0:16, 0:8], T.float32(0)))
            T.evaluate(T.mma_sync(C_warp[0:16, 0:8], F[0:16, 0:16], G[0:8, 0:16]))
            T.evaluate(T.mma_store(C[0:16, 0:8], C_warp[0:16, 0:8]))
'''


def tile_gemm(fill: float = 0.0, replace: tuple[str, str] | None = None):
    text = TILE_GEMM.replace("FILL", repr(fill))
    if replace is not None:
        assert replace[0] in text
        text = text.replace(*replace)
    return parse(text)


def _inputs(seed: int):
    random = np.random.default_rng(seed)
    return {"A": random.uniform(-2, 2, (16, 32)).astype(np.float16),
            "B": random.uniform(-2, 2, (32, 16)).astype(np.float16),
            "C": np.zeros((16, 16), np.float32)}


@pytest.mark.parametrize("fill", [0.0, 1.5])
def test_simulated_tile_gemm_equals_numpy(fill):
    inputs = _inputs(seed=int(fill * 2))
    outputs = simulate(tile_gemm(fill), inputs)
    expected = inputs["A"].astype(np.float32) @ inputs["B"].astype(np.float32) + fill
    np.testing.assert_allclose(outputs["C"], expected, rtol=1e-5, atol=1e-5)


def test_ldmatrix_without_transpose_of_b_computes_a_different_product():
    """The transpose flag matters: B loaded as stored gives A @ B^T tile by tile."""
    program = tile_gemm(replace=("B_shared[k * 16:k * 16 + 16, 0:16],\n"
                                 "                                      True",
                                 "B_shared[k * 16:k * 16 + 16, 0:16],\n"
                                 "                                      False"))
    inputs = _inputs(seed=3)
    outputs = simulate(program, inputs)
    a = inputs["A"].astype(np.float32)
    b = inputs["B"].astype(np.float32)
    expected = np.zeros((16, 16), np.float32)
    for n in range(2):
        for k in range(2):
            b_tile = b[16 * k:16 * k + 16, 0:16]  # (n, k) as stored: rows are n
            expected[:, 8 * n:8 * n + 8] += a[:, 16 * k:16 * k + 16] @ b_tile[8 * n:8 * n + 8].T
    np.testing.assert_allclose(outputs["C"], expected, rtol=1e-5, atol=1e-5)


def test_one_and_two_matrix_loads_compose_a_tile():
    a = np.random.default_rng(5).uniform(-2, 2, (16, 16)).astype(np.float16)
    outputs = simulate(parse(NARROW_LOADS), {"A": a, "C": np.zeros((16, 8), np.float32)})
    wide = a.astype(np.float32)
    np.testing.assert_allclose(outputs["C"], wide @ wide[:, 0:8], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("replace,message", [
    (("A_warp[k, 0:16, 0:16],\n                                          B_warp",
      "A_warp[k, 0:16, 0:8],\n                                          B_warp"),
     "A operand must be a 16x16 tile"),
    (("A_shared[0:16, k * 16:k * 16 + 16]", "A[0:16, k * 16:k * 16 + 16]"),
     "must be a float16 buffer in shared or shared.dyn scope"),
    (("A_shared[0:16, k * 16:k * 16 + 16]", "A_shared[0:16, k * 16:k * 16 + 12]"),
     "8x8, 8x16, 16x8 or 16x16"),
    (("A_shared[0:16, k * 16:k * 16 + 16]",
      "A_shared[lane % 2:lane % 2 + 16, k * 16:k * 16 + 16]"),
     "must have one value for all threads"),
    (("T.mma_fill(C_warp[n, 0:16, 0:8], T.float32(0.0))",
      "T.mma_fill(C_warp[n, 0:16, 0:8], T.Cast(\"float32\", lane))"),
     "the lanes of a warp disagree on the fill value"),
    (("C_warp[n, 0:16, 0:8], A_warp", "C_warp[0:2, 0:16, 0:8], A_warp"),
     "must be a 2-D tile"),
])
def test_simulator_rejects_misused_intrinsics(replace, message):
    with pytest.raises(TilepipeError, match=message) as error:
        simulate(tile_gemm(replace=replace), _inputs(seed=0))
    assert error.value.span is not None and error.value.span.line > 0


def test_cuda_emission_uses_ldmatrix_and_mma_ptx():
    source = codegen(tile_gemm(), "sm_80")
    assert source.count("ldmatrix.sync.aligned.m8n8.x4.shared.b16") == 1
    assert source.count("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16") == 1
    assert source.count("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32") == 1
    # Each lane holds a 32nd of every fragment buffer.
    assert "half A_warp[16];" in source and "float C_warp[8];" in source


@pytest.mark.nvcc
def test_one_and_two_matrix_loads_compile_to_ldsm_variants():
    if find_nvcc() is None or find_cuobjdump() is None:
        pytest.skip("needs nvcc and cuobjdump")
    source = codegen(parse(NARROW_LOADS), "sm_80")
    assert source.count("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2]") == 2
    assert source.count("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1]") == 2
    sass = disassemble(compile_source(source, "sm_80"))
    assert len(re.findall(r"LDSM\.16\.M88\.2 ", sass)) == 2
    assert len(re.findall(r"LDSM\.16\.MT88 ", sass)) == 2
    assert len(re.findall(r"HMMA\.16816\.F32 ", sass)) == 1


@pytest.mark.parametrize("replace,message", [
    (("A_warp[k, 0:16, 0:16],\n                                          B_warp",
      "A_warp[k, 0:16, 0:8],\n                                          B_warp"),
     "A operand 'A_warp' must be a 16x16 tile"),
    (("B_warp[k, n * 8:n * 8 + 8, 0:16]", "B_warp[k, n * 4:n * 4 + 8, 0:16]"),
     "must be a multiple of 8"),
    (("A_shared[0:16, k * 16:k * 16 + 16]", "A[0:16, k * 16:k * 16 + 16]"),
     "reads a float16 buffer in shared memory"),
    (("A_shared[0:16, k * 16:k * 16 + 16]", "A_shared[0:16, k * 16 + 4:k * 16 + 20]"),
     "16-byte aligned rows"),
    (("T.mma_fill(C_warp[n, 0:16, 0:8], T.float32(0.0))",
      "T.mma_fill(A_warp[n, 0:16, 0:8], T.float32(0.0))"),
     "must be a float32 buffer in 'warp' scope"),
    (("C[0:16, n * 8:n * 8 + 8], C_warp", "C[0:16, n * 8 + 1:n * 8 + 9], C_warp"),
     "aligned pairs"),
])
def test_cuda_emission_rejects_misused_intrinsics(replace, message):
    with pytest.raises(LoweringError, match=message) as error:
        codegen(tile_gemm(replace=replace), "sm_80")
    assert error.value.span is not None and error.value.span.line > 0
