"""Loops that do not start at zero, written with range and every T loop kind."""

from tilepipe import script as T

N = 16
HALO = 2


@T.prim_func
def stencil(A: T.Buffer((N + 2 * HALO,), "float32"), B: T.Buffer((N,), "float32"), n: T.int32):
    for i in range(HALO, N + HALO):
        B[i - HALO] = (A[i - 1] + A[i] + A[i + 1]) / T.float32(3)
    for j in T.serial(1, n):
        B[j % N] = T.max(B[j % N], A[j % N])
    for t in T.unroll(n, n + 4):
        B[t % N] = B[t % N] - T.float32(1)
    for v in T.vectorized(4, 8):
        B[v] = T.float32(0)
