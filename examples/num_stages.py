"""Pipelining by depth alone, as in Triton and TileLang: software_pipeline_num_stages
makes global->shared copies asynchronous in stage 0 and their consumers stage 3.

    tilepipe pipeline examples/num_stages.py
    tilepipe timeline examples/num_stages.py --compare
"""

from tilepipe import script as T


@T.prim_func
def scaled_copy(A: T.Buffer((32, 64), "float32"), C: T.Buffer((32, 64), "float32")):
    for tx in T.thread_binding(32, thread="threadIdx.x"):
        for i in T.serial(64, annotations={"software_pipeline_num_stages": 4}):
            with T.block("compute"):
                S = T.alloc_buffer((32, 1), dtype="float32", scope="shared")
                with T.block():
                    S[tx, 0] = A[tx, i]
                with T.block():
                    C[tx, i] = S[tx, 0] * T.float32(0.5)
