"""The seed's producer-interleaving input (annotated by the test with stages [0, 0, 3], order [0, 2, 1], async stage 0)."""

from tilepipe import script as T


@T.prim_func
def simple_compute(
    A: T.Buffer[(16, 16), "float32"],
    B: T.Buffer[(16, 16), "float32"],
    C: T.Buffer[(16, 16), "float32"],
):
    for tx in T.thread_binding(0, 16, thread="threadIdx.x"):
        for i in range(16):
            with T.block("compute"):
                T.reads(A[tx, i])
                T.writes(C[tx, i])
                A_shared = T.alloc_buffer((16, 1), dtype="float32", scope="shared")
                B_shared = T.alloc_buffer((16, 1), dtype="float32", scope="shared")
                with T.block():
                    T.reads(A[tx, i])
                    T.writes(A_shared[tx, 0])
                    A_shared[tx, 0] = A[tx, i]
                with T.block():
                    T.reads(B[tx, i])
                    T.writes(B_shared[tx, 0])
                    B_shared[tx, 0] = B[tx, i]
                with T.block():
                    T.reads(A_shared[tx, 0], B_shared[tx, 0])
                    T.writes(C[tx, i])
                    C[tx, i] = A_shared[tx, 0] + B_shared[tx, 0]
