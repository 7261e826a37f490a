"""Thread synchronization with several async queues: a wait completes the groups of its
own queue only, so an async read on one queue is not taken as done (and made visible by
a barrier) at a wait on another."""

from tilepipe import parse
from tilepipe.sim import verify
from tilepipe.transform.thread_sync import insert_barriers, is_storage_sync
from tilepipe.ir import post_order_visit

TWO_QUEUES = '''
from tilepipe import script as T

@T.prim_func
def two_queues(A: T.Buffer((32,), "float32"), B: T.Buffer((32,), "float32"),
               G: T.Buffer((32,), "float32"), X: T.Buffer((32,), "float32")):
    for tx in T.thread_binding(32, thread="threadIdx.x"):
        with T.block("root"):
            S = T.alloc_buffer((32,), "float32", scope="shared")
            H = T.alloc_buffer((32,), "float32", scope="shared")
            S[tx] = A[tx]
            with T.attr(0, "async_commit_queue_scope", 1):
                with T.attr(0, "async_scope", 1):
                    G[tx] = S[(tx + 1) % 32]
            with T.attr(0, "async_commit_queue_scope", 0):
                with T.attr(0, "async_scope", 1):
                    H[tx] = B[tx]
            with T.attr(0, "async_wait_queue_scope", 0):
                with T.attr(0, "async_wait_inflight_count", 0):
                    X[tx] = H[(tx + 1) % 32]
            with T.attr(0, "async_wait_queue_scope", 1):
                with T.attr(0, "async_wait_inflight_count", 0):
                    S[tx] = T.float32(0)
'''


def barriers(func) -> int:
    found = []
    post_order_visit(func.body, lambda node: found.append(node)
                     if is_storage_sync(node) else None)
    return len(found)


def test_a_wait_on_another_queue_does_not_complete_an_async_read():
    func = parse(TWO_QUEUES)
    assert not verify(func).ok
    synchronized = insert_barriers(func)
    # before the async read of S, before the read of H, and before S is overwritten:
    # the read of S completes only at the wait on its own queue
    assert barriers(synchronized) == 3
    assert verify(synchronized).ok
