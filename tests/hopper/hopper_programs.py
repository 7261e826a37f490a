"""Programs of the barrier lowering, warp specialization and wgmma tests: the ``scaled_rows``
loop, one warpgroup's wgmma GEMM, generated pipelined loops, and the two barrier forms
they are lowered to."""

from hypothesis import strategies as st

from tilepipe import parse
from tilepipe.transform.barriers import lower_to_barriers
from tilepipe.transform.warp_specialize import warp_specialize

# Register reallocation is left out so that any thread count can be specialized.
FORMS = {"barriers": lower_to_barriers,
         "warp-specialized": lambda func: warp_specialize(func, reallocate_registers=False)}

SCALED_ROWS = '''
from tilepipe import script as T

@T.prim_func
def scaled_rows(SIGNATURE
    for tx in T.thread_binding(THREADS, thread="threadIdx.x"):
        with T.block("root"):
            A_shared = T.alloc_buffer((2, WIDTH), "float32", scope="shared")
            for k in T.serial(TRIPS, annotations={"software_pipeline_stage": STAGES,
                                                  "software_pipeline_order": [0, 1],
                                                  "software_pipeline_async_stages": [0]}):
                with T.block("copy"):
                    T.reads(A[2 * k:2 * k + 2, 0:WIDTH])
                    T.writes(A_shared[0:2, 0:WIDTH])
                    for r in T.serial(2):
                        for c in T.serial(WIDTH):
                            A_shared[r, c] = A[2 * k + r, c]
                with T.block("compute"):
                    C[2 * k + tx // WIDTH, tx % WIDTH] = \\
                        A_shared[tx // WIDTH, tx % WIDTH] * T.float32(3)
'''
SYMBOLIC_SIGNATURE = '''a: T.handle, c: T.handle, n: T.int32):
    rows = T.int32()
    A = T.match_buffer(a, (rows, 64), "float32")
    C = T.match_buffer(c, (rows, 64), "float32")'''
ADD_ONE = "            C[tx // WIDTH, tx % WIDTH] = C[tx // WIDTH, tx % WIDTH] + T.float32(1)\n"


def scaled_rows_source(threads: int = 128, stages=(0, 1), extent: int | None = 6,
                       then_add_one: bool = False) -> str:
    """A loop over ``extent`` steps (the parameter ``n`` where None) that copies two rows
    of A, ``threads // 2`` wide, into shared memory asynchronously (stage ``stages[0]``)
    and writes them times 3 into C (stage ``stages[1]``), one element per thread; with
    ``then_add_one`` each thread adds 1 to its element of C's first rows after the loop."""
    if extent is None:
        signature, trips = SYMBOLIC_SIGNATURE, "n"
    else:
        rows = max(2 * extent, 2)
        signature = f'A: T.Buffer(({rows}, 64), "float32"), C: T.Buffer(({rows}, 64), "float32")):'
        trips = str(extent)
    text = SCALED_ROWS + (ADD_ONE if then_add_one else "")
    for name, value in (("SIGNATURE", signature), ("THREADS", str(threads)),
                        ("WIDTH", str(threads // 2)), ("TRIPS", trips),
                        ("STAGES", str(list(stages)))):
        text = text.replace(name, value)
    return text


def pipeline_source(threads, rows, start, extent, stages, orders, two_buffers,
                     second_consumer):
    """A loop copying ``rows``-row tiles of A (and B) into shared memory asynchronously
    and computing C (and D) from them, with the given stages and orders."""
    total = start + extent
    elements = rows * 32 // threads
    names = ["copy_a"] + (["copy_b"] if two_buffers else []) + ["compute"] + (
        ["scale"] if second_consumer else [])
    stage_of = dict(zip(names, stages))
    async_stages = sorted({stage_of["copy_a"], stage_of.get("copy_b", stage_of["copy_a"])})
    b_term = " + B_shared[(tx + THREADS * e) // 32, (tx + THREADS * e) % 32]" \
        if two_buffers else ""
    statements = {
        "copy_a": '''
                with T.block("copy_a"):
                    T.reads(A[ROWS * k:ROWS * k + ROWS, 0:32])
                    T.writes(A_shared[0:ROWS, 0:32])
                    for r in T.serial(ROWS):
                        for c in T.serial(32):
                            A_shared[r, c] = A[ROWS * k + r, c]''',
        "copy_b": '''
                with T.block("copy_b"):
                    T.reads(B[ROWS * k:ROWS * k + ROWS, 0:32])
                    T.writes(B_shared[0:ROWS, 0:32])
                    for r in T.serial(ROWS):
                        for c in T.serial(32):
                            B_shared[r, c] = B[ROWS * k + r, c]''',
        "compute": f'''
                with T.block("compute"):
                    for e in T.serial(ELEMENTS):
                        C[ROWS * k + (tx + THREADS * e) // 32, (tx + THREADS * e) % 32] = \\
                            A_shared[(tx + THREADS * e) // 32, (tx + THREADS * e) % 32]{b_term}''',
        "scale": '''
                with T.block("scale"):
                    for e in T.serial(ELEMENTS):
                        D[ROWS * k + (tx + THREADS * e) // 32, (tx + THREADS * e) % 32] = \\
                            A_shared[(tx + THREADS * e) // 32, (tx + THREADS * e) % 32] * \\
                            T.float32(2)''',
    }
    body = "".join(statements[name] for name in names)
    params = ['A: T.Buffer((TOTAL_ROWS, 32), "float32")']
    if two_buffers:
        params.append('B: T.Buffer((TOTAL_ROWS, 32), "float32")')
    params.append('C: T.Buffer((TOTAL_ROWS, 32), "float32")')
    if second_consumer:
        params.append('D: T.Buffer((TOTAL_ROWS, 32), "float32")')
    allocations = '            A_shared = T.alloc_buffer((ROWS, 32), "float32", scope="shared")\n'
    if two_buffers:
        allocations += ('            B_shared = T.alloc_buffer((ROWS, 32), "float32", '
                        'scope="shared")\n')
    text = f'''
from tilepipe import script as T

@T.prim_func
def generated({", ".join(params)}):
    for tx in T.thread_binding(THREADS, thread="threadIdx.x"):
        with T.block("root"):
{allocations}            for k in T.serial(START, START + EXTENT, annotations={{
                    "software_pipeline_stage": {list(stages)},
                    "software_pipeline_order": {list(orders)},
                    "software_pipeline_async_stages": {async_stages}}}):{body}
'''
    for name, value in (("TOTAL_ROWS", max(total, 1) * rows), ("THREADS", threads),
                        ("ROWS", rows), ("START", start), ("EXTENT", extent),
                        ("ELEMENTS", elements)):
        text = text.replace(name, str(value))
    return text


@st.composite
def pipelines(draw):
    two_buffers = draw(st.booleans())
    second_consumer = draw(st.booleans())
    copy_a = draw(st.integers(0, 1))
    copies = [copy_a] + ([copy_a + draw(st.integers(0, 1))] if two_buffers else [])
    compute = max(copies) + draw(st.integers(1, 2))  # async stages hold only copies
    consumers = [compute] + ([compute + draw(st.integers(0, 1))] if second_consumer else [])
    stages = copies + consumers
    count = len(stages)
    orders = draw(st.permutations(range(count)))
    # A consumer in its producer's stage must come after it: else keep the body order.
    if any(stages[consumer] == stages[producer] and orders[consumer] < orders[producer]
           for consumer in range(len(copies), count) for producer in range(len(copies))):
        orders = list(range(count))
    return dict(threads=draw(st.sampled_from([32, 64])), rows=draw(st.sampled_from([2, 4])),
                start=draw(st.integers(0, 2)), extent=draw(st.integers(0, 7)),
                stages=stages, orders=list(orders), two_buffers=two_buffers,
                second_consumer=second_consumer)


GEMM = '''
from tilepipe import script as T

@T.prim_func
def small_gemm(A: T.Buffer((64, KSIZE), "float16"), B: T.Buffer((NSIZE, KSIZE), "float16"),
               C: T.Buffer((64, NSIZE), "float32")):
    for tx in T.thread_binding(128, thread="threadIdx.x"):
        with T.block("root"):
            A_shared = T.alloc_buffer((64, BK), "float16", scope="shared")
            B_shared = T.alloc_buffer((NSIZE, BK), "float16", scope="shared")
            acc = T.alloc_buffer((NHALF,), "float32", scope="local")
            for r in T.serial(NHALF):
                acc[r] = T.float32(0)
            for k in T.serial(KTILES, annotations={"software_pipeline_stage": [0, 0, STAGE],
                                                  "software_pipeline_order": [0, 1, 2],
                                                  "software_pipeline_async_stages": [0]}):
                with T.block("copy_a"):
                    T.reads(A[0:64, k * BK:k * BK + BK])
                    T.writes(A_shared[0:64, 0:BK])
                    for i, j in T.grid(64, BK):
                        A_shared[i, j] = A[i, k * BK + j]
                with T.block("copy_b"):
                    T.reads(B[0:NSIZE, k * BK:k * BK + BK])
                    T.writes(B_shared[0:NSIZE, 0:BK])
                    for i, j in T.grid(NSIZE, BK):
                        B_shared[i, j] = B[i, k * BK + j]
                T.evaluate(T.wgmma(acc[0:NHALF], A_shared[0:64, 0:BK], B_shared[0:NSIZE, 0:BK], 1))
            for r in T.serial(NHALF):
                C[16 * (tx // 32) + tx % 32 // 4 + 8 * (r // 2 % 2),
                  8 * (r // 4) + 2 * (tx % 4) + r % 2] = acc[r]
'''


def gemm(k_tiles: int, n: int = 16, stage: int = 2, block_k: int = 32):
    """One warpgroup's 64 x n tile of A @ B^T over ``k_tiles`` slices of ``block_k``."""
    text = GEMM
    for name, value in (("KSIZE", max(k_tiles, 1) * block_k), ("NSIZE", n),
                        ("NHALF", n // 2), ("KTILES", k_tiles), ("STAGE", stage),
                        ("BK", block_k)):
        text = text.replace(name, str(value))
    return parse(text)
