"""The seeds' simple_compute: a shared staging buffer filled by an asynchronous copy
three iterations ahead of its use (stages [0, 3], async stage 0).

    tilepipe pipeline examples/simple_compute_async.py
    tilepipe verify examples/simple_compute_async.py
"""

from tilepipe import script as T


@T.prim_func
def simple_compute(A: T.Buffer((16, 16), "float32"), C: T.Buffer((16, 16), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        for i in T.serial(16, annotations={
                "software_pipeline_stage": [0, 3],
                "software_pipeline_order": [0, 1],
                "software_pipeline_async_stages": [0]}):
            with T.block("compute"):
                B = T.alloc_buffer((16, 1), dtype="float32", scope="shared")
                with T.block():
                    B[tx, 0] = A[tx, i] * T.float32(2)
                with T.block():
                    C[tx, i] = B[tx, 0] + T.float32(1)
