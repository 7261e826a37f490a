"""Nested blocks with predicates, annotations, allocations in several scopes and
every loop kind under thread bindings."""

from tilepipe import script as T


@T.prim_func
def reduce_tiles(A: T.Buffer((8, 32, 4), "float32"), out: T.Buffer((8, 32), "float32")):
    T.func_attr({"global_symbol": "reduce_tiles", "tir.noalias": True})
    for bx in T.thread_binding(8, thread="blockIdx.x"):
        for tx in T.thread_binding(32, thread="threadIdx.x"):
            with T.block("outer"):
                T.reads(A[bx, tx, 0:4])
                T.writes(out[bx, tx])
                T.block_attr({"pragma": "tile", "stages": [0, 1]})
                acc = T.alloc_buffer((1,), dtype="float32", scope="local")
                vec = T.alloc_buffer((4,), dtype="float32", scope="local")
                acc[0] = T.float32(0)
                for v in T.vectorized(4):
                    with T.block("load"):
                        T.where(tx < 32)
                        T.reads(A[bx, tx, v])
                        T.writes(vec[v])
                        vec[v] = A[bx, tx, v]
                for k in T.unroll(4, annotations={"pragma_unroll_explicit": 1}):
                    with T.block("accumulate"):
                        T.reads(acc[0], vec[k])
                        T.writes(acc[0])
                        acc[0] = acc[0] + T.if_then_else(vec[k] > T.float32(0), vec[k], -vec[k])
                out[bx, tx] = acc[0]
