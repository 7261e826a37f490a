"""Asynchronous copies in both notations of T.attr: the statement form applies to the
rest of the body; the wait count is an expression of the unrolled loop."""

from tilepipe import script as T


@T.prim_func
def staged(A: T.Buffer((16, 8), "float32"), C: T.Buffer((16, 8), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        with T.block():
            T.reads(A[tx, 0:8])
            T.writes(C[tx, 0:8])
            S = T.alloc_buffer((2, 16), dtype="float32", scope="shared")
            for i in T.unroll(2):
                T.attr(0, "async_commit_queue_scope", 0)
                T.attr(0, "async_scope", 1)
                S[i, tx] = A[tx, i]
            for i in T.unroll(2):
                with T.attr(0, "async_wait_queue_scope", 0):
                    with T.attr(0, "async_wait_inflight_count", 1 - i):
                        C[tx, i] = S[i, tx] + T.float32(1)
                T.tvm_storage_sync("shared")
