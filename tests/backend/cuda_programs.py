"""Pipelined programs in the form the pipeline transform emits (the seeds' ``ref`` shapes),
with copies cp.async can run: rows of four float32 (16 bytes) per thread."""

# simple_compute with stages [0, 3], async stage 0: counts 3 in the body, 2 - i after.
SIMPLE_COMPUTE = '''
from tilepipe import script as T

@T.prim_func
def simple_compute(A: T.Buffer((16, 64), "float32"), C: T.Buffer((16, 64), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        with T.block():
            B = T.alloc_buffer((4, 16, 4), dtype="float32", scope="shared")
            for i in T.unroll(3):
                with T.block():
                    T.where(i < 16)
                    with T.attr(0, "async_commit_queue_scope", 0):
                        with T.attr(0, "async_scope", 1):
                            for v in T.vectorized(4):
                                B[i % 4, tx, v] = A[tx, i * 4 + v]
            for i in T.serial(13):
                with T.block():
                    T.where(i + 3 < 16)
                    with T.attr(0, "async_commit_queue_scope", 0):
                        with T.attr(0, "async_scope", 1):
                            for v in T.vectorized(4):
                                B[(i + 3) % 4, tx, v] = A[tx, (i + 3) * 4 + v]
                with T.block():
                    with T.attr(0, "async_wait_queue_scope", 0):
                        with T.attr(0, "async_wait_inflight_count", 3):
                            for v in T.vectorized(4):
                                C[tx, i * 4 + v] = B[i % 4, tx, v] * T.float32(2) + T.float32(1)
            for i in T.unroll(3):
                with T.block():
                    T.where(i + 13 < 16)
                    with T.attr(0, "async_wait_queue_scope", 0):
                        with T.attr(0, "async_wait_inflight_count", 2 - i):
                            for v in T.vectorized(4):
                                C[tx, (i + 13) * 4 + v] = B[(i + 13) % 4, tx, v] * T.float32(2) + T.float32(1)
'''

# Each thread reads the row thread 15 - tx copied: barriers are needed after each wait and
# before each copy into a slot the previous iteration read.
EXCHANGE = '''
from tilepipe import script as T

@T.prim_func
def exchange(A: T.Buffer((16, 64), "float32"), C: T.Buffer((16, 64), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        with T.block():
            B = T.alloc_buffer((2, 16, 4), dtype="float32", scope="shared")
            with T.attr(0, "async_commit_queue_scope", 0):
                with T.attr(0, "async_scope", 1):
                    for v in T.vectorized(4):
                        B[0, tx, v] = A[tx, v]
            for i in T.serial(15):
                with T.attr(0, "async_commit_queue_scope", 0):
                    with T.attr(0, "async_scope", 1):
                        for v in T.vectorized(4):
                            B[(i + 1) % 2, tx, v] = A[tx, (i + 1) * 4 + v]
                with T.attr(0, "async_wait_queue_scope", 0):
                    with T.attr(0, "async_wait_inflight_count", 1):
                        for v in T.vectorized(4):
                            C[tx, i * 4 + v] = B[i % 2, 15 - tx, v] + T.float32(1)
            with T.attr(0, "async_wait_queue_scope", 0):
                with T.attr(0, "async_wait_inflight_count", 0):
                    for v in T.vectorized(4):
                        C[tx, 60 + v] = B[1, 15 - tx, v] + T.float32(1)
'''

# Two abstract queues: A's copies on queue 0, B's on queue 1, both two tiles ahead.
TWO_QUEUES = '''
from tilepipe import script as T

@T.prim_func
def two_queues(A: T.Buffer((16, 32), "float32"), B: T.Buffer((16, 32), "float32"),
               C: T.Buffer((16, 32), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        with T.block():
            A_shared = T.alloc_buffer((3, 16, 4), dtype="float32", scope="shared")
            B_shared = T.alloc_buffer((3, 16, 4), dtype="float32", scope="shared")
            for i in T.unroll(2):
                with T.attr(0, "async_commit_queue_scope", 0):
                    with T.attr(0, "async_scope", 1):
                        for v in T.vectorized(4):
                            A_shared[i, tx, v] = A[tx, i * 4 + v]
                with T.attr(0, "async_commit_queue_scope", 1):
                    with T.attr(0, "async_scope", 1):
                        for v in T.vectorized(4):
                            B_shared[i, tx, v] = B[tx, i * 4 + v]
            for i in T.serial(6):
                with T.attr(0, "async_commit_queue_scope", 0):
                    with T.attr(0, "async_scope", 1):
                        for v in T.vectorized(4):
                            A_shared[(i + 2) % 3, tx, v] = A[tx, (i + 2) * 4 + v]
                with T.attr(0, "async_commit_queue_scope", 1):
                    with T.attr(0, "async_scope", 1):
                        for v in T.vectorized(4):
                            B_shared[(i + 2) % 3, tx, v] = B[tx, (i + 2) * 4 + v]
                with T.attr(0, "async_wait_queue_scope", 0):
                    with T.attr(0, "async_wait_inflight_count", 2):
                        with T.attr(0, "async_wait_queue_scope", 1):
                            with T.attr(0, "async_wait_inflight_count", 2):
                                for v in T.vectorized(4):
                                    C[tx, i * 4 + v] = A_shared[i % 3, tx, v] + B_shared[i % 3, tx, v]
            for i in T.unroll(2):
                with T.attr(0, "async_wait_queue_scope", 0):
                    with T.attr(0, "async_wait_inflight_count", 1 - i):
                        with T.attr(0, "async_wait_queue_scope", 1):
                            with T.attr(0, "async_wait_inflight_count", 1 - i):
                                for v in T.vectorized(4):
                                    C[tx, (i + 6) * 4 + v] = A_shared[(i + 6) % 3, tx, v] + B_shared[(i + 6) % 3, tx, v]
'''

# A wait whose count depends on a serial loop's variable: lowered to a bounded switch.
DYNAMIC_COUNT = '''
from tilepipe import script as T

@T.prim_func
def dynamic_count(A: T.Buffer((16, 16), "float32"), C: T.Buffer((16, 16), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        with T.block():
            B = T.alloc_buffer((4, 16, 4), dtype="float32", scope="shared")
            for i in T.serial(4):
                with T.attr(0, "async_commit_queue_scope", 0):
                    with T.attr(0, "async_scope", 1):
                        for v in T.vectorized(4):
                            B[i, tx, v] = A[tx, i * 4 + v]
            for i in T.serial(4):
                with T.attr(0, "async_wait_queue_scope", 0):
                    with T.attr(0, "async_wait_inflight_count", 3 - i):
                        for v in T.vectorized(4):
                            C[tx, i * 4 + v] = B[i, tx, v] + T.float32(1)
'''

# One group of three copies: 4 bytes (a float), 8 bytes (four halves), 16 bytes (four floats).
COPY_SIZES = '''
from tilepipe import script as T

@T.prim_func
def copy_sizes(A: T.Buffer((32,), "float32"), H: T.Buffer((32, 4), "float16"),
               F: T.Buffer((32, 4), "float32"), C: T.Buffer((32,), "float32")):
    for tx in T.thread_binding(32, thread="threadIdx.x"):
        with T.block():
            A_shared = T.alloc_buffer((32,), dtype="float32", scope="shared")
            H_shared = T.alloc_buffer((32, 4), dtype="float16", scope="shared")
            F_shared = T.alloc_buffer((32, 4), dtype="float32", scope="shared")
            with T.attr(0, "async_commit_queue_scope", 0):
                with T.attr(0, "async_scope", 1):
                    A_shared[tx] = A[tx]
                with T.attr(0, "async_scope", 1):
                    for v in T.vectorized(4):
                        H_shared[tx, v] = H[tx, v]
                with T.attr(0, "async_scope", 1):
                    for v in T.vectorized(4):
                        F_shared[tx, v] = F[tx, v]
            with T.attr(0, "async_wait_queue_scope", 0):
                with T.attr(0, "async_wait_inflight_count", 0):
                    C[tx] = A_shared[31 - tx] + T.Cast("float32", H_shared[tx, 1]) + F_shared[tx, 3]
'''
