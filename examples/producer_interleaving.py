"""Two asynchronous producers with their consumer between them (the seeds'
producer-interleaving case): each copy is its own commit group, so every wait is exact
from the first iteration on.

    tilepipe pipeline examples/producer_interleaving.py
    tilepipe trace examples/producer_interleaving.py | head
"""

from tilepipe import script as T


@T.prim_func
def interleaved(A: T.Buffer((16, 16), "float32"), B: T.Buffer((16, 16), "float32"),
                C: T.Buffer((16, 16), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        for i in T.serial(16, annotations={
                "software_pipeline_stage": [0, 0, 3],
                "software_pipeline_order": [0, 2, 1],
                "software_pipeline_async_stages": [0]}):
            with T.block("compute"):
                A_shared = T.alloc_buffer((16, 1), dtype="float32", scope="shared")
                B_shared = T.alloc_buffer((16, 1), dtype="float32", scope="shared")
                with T.block():
                    A_shared[tx, 0] = A[tx, i]
                with T.block():
                    B_shared[tx, 0] = B[tx, i]
                with T.block():
                    C[tx, i] = A_shared[tx, 0] + B_shared[tx, 0]
