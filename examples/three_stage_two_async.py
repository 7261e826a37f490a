"""Three stages, two of them asynchronous: stage 1 consumes stage 0's copy and is itself
an asynchronous producer for stage 2, so it waits on queue 0 and commits to queue 1.

    tilepipe pipeline examples/three_stage_two_async.py
    tilepipe verify examples/three_stage_two_async.py
"""

from tilepipe import script as T


@T.prim_func
def three_stage(A: T.Buffer((16, 16), "float32"), D: T.Buffer((16, 16), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        for i in T.serial(16, annotations={
                "software_pipeline_stage": [0, 1, 2],
                "software_pipeline_order": [0, 1, 2],
                "software_pipeline_async_stages": [0, 1]}):
            with T.block("compute"):
                B = T.alloc_buffer((16, 1), dtype="float32", scope="shared")
                C = T.alloc_buffer((16, 1), dtype="float32", scope="shared")
                with T.block():
                    B[tx, 0] = A[tx, i] * T.float32(2)
                with T.block():
                    C[tx, 0] = B[tx, 0] + T.float32(2)
                with T.block():
                    D[tx, i] = C[tx, 0] + T.float32(1)
