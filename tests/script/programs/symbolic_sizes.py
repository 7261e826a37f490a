"""Symbolic sizes: a T.handle matched to a buffer whose shape uses declared variables."""

from tilepipe import script as T


@T.prim_func
def scale_rows(a: T.handle, b: T.handle):
    m = T.int32()
    k = T.var("int32")
    A = T.match_buffer(a, (m, k), "float32")
    B = T.match_buffer(b, (m, k), "float32")
    for row in T.thread_binding(m, thread="blockIdx.x"):
        for col in T.serial(k):
            with T.block("scale"):
                T.reads(A[row, col])
                T.writes(B[row, col])
                B[row, col] = A[row, col] * T.float32(0.5)
