"""Hand-pipelined programs (the form the pipeline transform produces) for the sim tests.

``PIPELINED`` is the seeds' ``simple_compute`` with its copy stage async, ``num_stages``
iterations ahead over a ring of ``num_stages + 1`` slots. ``EXCHANGE`` shares data
across threads: each thread reads the row that thread ``15 - tx`` copied, so each wait
needs a barrier after it, and each ring slot a barrier before it is written again.
"""

from tilepipe.script import parse

HEADER = "from tilepipe import script as T\n\n\n"


def pipelined(num_stages: int) -> str:
    slots = num_stages + 1
    body_count = 16 - num_stages
    return HEADER + f'''@T.prim_func
def pipelined(A: T.Buffer((16, 16), "float32"), C: T.Buffer((16, 16), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        with T.block():
            B = T.alloc_buffer(({slots}, 16, 1), "float32", scope="shared")
            for i in T.unroll({num_stages}):
                with T.attr(0, "async_commit_queue_scope", 0):
                    with T.attr(0, "async_scope", 1):
                        B[i % {slots}, tx, 0] = A[tx, i] * T.float32(2)
            for i in T.serial({body_count}):
                with T.attr(0, "async_commit_queue_scope", 0):
                    with T.attr(0, "async_scope", 1):
                        B[(i + {num_stages}) % {slots}, tx, 0] = A[tx, i + {num_stages}] * T.float32(2)
                with T.attr(0, "async_wait_queue_scope", 0):
                    with T.attr(0, "async_wait_inflight_count", {num_stages}):
                        C[tx, i] = B[i % {slots}, tx, 0] + T.float32(1)
            for i in T.unroll({num_stages}):
                with T.attr(0, "async_wait_queue_scope", 0):
                    with T.attr(0, "async_wait_inflight_count", {num_stages - 1} - i):
                        C[tx, i + {body_count}] = B[(i + {body_count}) % {slots}, tx, 0] + T.float32(1)
'''


EXCHANGE = HEADER + '''@T.prim_func
def exchange(A: T.Buffer((16, 16), "float32"), C: T.Buffer((16, 16), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        with T.block():
            S = T.alloc_buffer((2, 16), "float32", scope="shared")
            with T.attr(0, "async_commit_queue_scope", 0):
                with T.attr(0, "async_scope", 1):
                    S[0, tx] = A[tx, 0]
            for i in T.serial(15):
                with T.attr(0, "async_commit_queue_scope", 0):
                    with T.attr(0, "async_scope", 1):
                        S[(i + 1) % 2, tx] = A[tx, i + 1]
                with T.attr(0, "async_wait_queue_scope", 0):
                    with T.attr(0, "async_wait_inflight_count", 1):
                        T.tvm_storage_sync("shared")
                        C[tx, i] = S[i % 2, 15 - tx]
                T.tvm_storage_sync("shared")
            with T.attr(0, "async_wait_queue_scope", 0):
                with T.attr(0, "async_wait_inflight_count", 0):
                    T.tvm_storage_sync("shared")
                    C[tx, 15] = S[1, 15 - tx]
'''


def load(text: str):
    return parse(text, source_name="<test program>")


def expected_pipelined(a):
    return a * 2 + 1


def expected_exchange(a):
    return a[::-1, :]
