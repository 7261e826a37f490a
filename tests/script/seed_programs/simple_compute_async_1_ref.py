"""Expected pipeline of gen_simple_compute(1) with async stage 0 (wait counts 1, 0)."""

from tilepipe import script as T


@T.prim_func
def ref(A: T.Buffer[(16, 16), "float32"], C: T.Buffer[(16, 16), "float32"]) -> None:
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        with T.block():
            T.reads(A[tx, 0:16])
            T.writes(C[tx, 0:16])
            B = T.alloc_buffer([2, 16, 1], dtype="float32", scope="shared")
            with T.block():
                T.reads(A[tx, 0])
                T.writes(B[0, tx, 0])
                with T.attr(0, "async_commit_queue_scope", 0):
                    with T.attr(0, "async_scope", 1):
                        B[0 % 2, tx, 0] = A[tx, 0] * T.float32(2)
            with T.block():
                T.reads(A[tx, 1:16], B[0:2, tx, 0])
                T.writes(B[0:2, tx, 0], C[tx, 0:15])
                for i in T.serial(15):
                    with T.block():
                        T.where(i + 1 < 16)
                        T.reads(A[tx, i + 1])
                        T.writes(B[(i + 1) % 2, tx, 0])
                        with T.attr(0, "async_commit_queue_scope", 0):
                            with T.attr(0, "async_scope", 1):
                                B[(i + 1) % 2, tx, 0] = A[tx, i + 1] * T.float32(2)
                    with T.block():
                        T.where(i + 1 - 1 < 16)
                        T.reads(B[(i - 1 + 1) % 2, tx, 0])
                        T.writes(C[tx, i - 1 + 1])
                        with T.attr(0, "async_wait_queue_scope", 0):
                            with T.attr(0, "async_wait_inflight_count", 1):
                                C[tx, i - 1 + 1] = B[(i - 1 + 1) % 2, tx, 0] + T.float32(1)
            with T.block():
                T.reads(B[15 % 2, tx, 0])
                T.writes(C[tx, 15])
                with T.attr(0, "async_wait_queue_scope", 0):
                    with T.attr(0, "async_wait_inflight_count", 0):
                        C[tx, 15] = B[15 % 2, tx, 0] + T.float32(1)
