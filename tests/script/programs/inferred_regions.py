"""Blocks without T.reads / T.writes: their regions are inferred from the body."""

from tilepipe import script as T


@T.prim_func
def copy_through_shared(A: T.Buffer((64, 64), "float16"), C: T.Buffer((64, 64), "float16")):
    for by in T.thread_binding(4, thread="blockIdx.y"):
        for tx in T.thread_binding(16, thread="threadIdx.x"):
            with T.block("tile"):
                S = T.alloc_buffer((16, 64), dtype="float16", scope="shared")
                for k in T.serial(64):
                    with T.block("load"):
                        S[tx, k] = A[by * 16 + tx, k]
                T.tvm_storage_sync("shared")
                for k in T.serial(64):
                    with T.block("store"):
                        C[by * 16 + tx, k] = S[tx, k] + T.float16(1)
