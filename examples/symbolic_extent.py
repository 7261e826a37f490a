"""A loop whose trip count n is only known at run time: tilepipe guards the steady-state
pipeline with a test on n and gives each shorter trip count a pipeline of its own, so
every wait stays a constant and exact for every n. Simulating needs a value for n.

    tilepipe pipeline examples/symbolic_extent.py
    tilepipe verify examples/symbolic_extent.py --dim n=2
    tilepipe run examples/symbolic_extent.py --dim n=7 --out out.npz
"""

from tilepipe import script as T


@T.prim_func
def stream(a: T.handle, c: T.handle):
    n = T.int32()
    A = T.match_buffer(a, (8, n), "float32")
    C = T.match_buffer(c, (8, n), "float32")
    for tx in T.thread_binding(8, thread="threadIdx.x"):
        for i in T.serial(n, annotations={
                "software_pipeline_stage": [0, 3],
                "software_pipeline_order": [0, 1],
                "software_pipeline_async_stages": [0]}):
            with T.block("compute"):
                S = T.alloc_buffer((8, 1), dtype="float32", scope="shared")
                with T.block():
                    S[tx, 0] = A[tx, i]
                with T.block():
                    C[tx, i] = S[tx, 0] * T.float32(3)
