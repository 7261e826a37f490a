"""Every statement of the loop in one asynchronous stage (``before``: two tile copies and
their consumer, all stage 0, stage 0 async), and ``tvm_output``: what Apache TVM 0.27's
InjectSoftwarePipeline emits for it, written in tilepipe's notation (its empty prologue
and epilogue blocks left out).

TVM puts the consumer into the copies' commit group and waits for 0 groups inside that
group, before it is committed: the wait covers none of the copies it is meant for, and
nothing drains the last groups after the loop. ``tilepipe verify --no-pipeline`` on this
file (``--func tvm_output``) reports the races; tilepipe's own pipeline of ``before``
commits the consumer as a group of its own, waits for the copies' group before it and
drains after the loop.
"""

from tilepipe import script as T


@T.prim_func
def before(A: T.Buffer((32, 256), "float32"), C: T.Buffer((32, 4), "float32")):
    for tx in T.thread_binding(32, thread="threadIdx.x"):
        for i in T.serial(32, annotations={"software_pipeline_stage": [0, 0, 0], "software_pipeline_order": [0, 1, 2], "software_pipeline_async_stages": [0]}):
            with T.block():
                S0 = T.alloc_buffer((32, 4), "float32", scope="shared")
                S1 = T.alloc_buffer((32, 4), "float32", scope="shared")
                for e in T.serial(4):
                    S0[tx, e] = A[tx, (i * 2 + 0) * 4 + e]
                for e in T.serial(4):
                    S1[tx, e] = A[tx, (i * 2 + 1) * 4 + e]
                for e in T.serial(4):
                    C[tx, e] = C[tx, e] + S0[tx, e] + S1[tx, e]


@T.prim_func
def tvm_output(A: T.Buffer((32, 256), "float32"), C: T.Buffer((32, 4), "float32")):
    for tx in T.thread_binding(32, thread="threadIdx.x"):
        with T.block():
            S0 = T.alloc_buffer((32, 4), "float32", scope="shared")
            S1 = T.alloc_buffer((32, 4), "float32", scope="shared")
            for i in T.serial(32):
                with T.block():
                    with T.attr(0, "async_commit_queue_scope", 0):
                        with T.attr(0, "async_scope", 1):
                            for e in T.serial(4):
                                S0[tx, e] = A[tx, i * 2 * 4 + e]
                        with T.attr(0, "async_scope", 1):
                            for e in T.serial(4):
                                S1[tx, e] = A[tx, (i * 2 + 1) * 4 + e]
                        with T.attr(0, "async_wait_queue_scope", 0):
                            with T.attr(0, "async_wait_inflight_count", 0):
                                with T.attr(0, "async_scope", 1):
                                    for e in T.serial(4):
                                        C[tx, e] = C[tx, e] + S0[tx, e] + S1[tx, e]
