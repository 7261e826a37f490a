"""CUDA C++ generation: cp.async copies, commit groups, immediate waits, shared memory, and
a LoweringError naming the statement for each async statement cp.async cannot run."""

import pytest

import cuda_programs as programs
from tilepipe import LoweringError
from tilepipe.backend.cuda import codegen, generate, lower
from tilepipe.script import parse


def test_simple_compute_source():
    source = codegen(lower(parse(programs.SIMPLE_COMPUTE)), arch="sm_80")
    assert 'extern "C" __global__ void __launch_bounds__(16) simple_compute(' in source
    assert "__shared__ __align__(16) float B[256];" in source
    assert source.count("cp_async<16>(") == 2  # prologue loop and body
    assert source.count("cp_async_commit_group();") == 2
    for count in (3, 2, 1, 0):
        assert f"cp_async_wait_group<{count}>();" in source
    assert "__syncthreads" not in source.split("cp_async_wait_group() {")[-1]


def test_copies_of_4_8_and_16_bytes():
    source = codegen(lower(parse(programs.COPY_SIZES)))
    for size in (4, 8, 16):
        assert source.count(f"cp_async<{size}>(") == 1
    assert "#include <cuda_fp16.h>" in source
    assert source.count("__syncthreads();") == 1  # thread 31 - tx's float crosses threads


@pytest.mark.parametrize("offset, factor, expected", [
    (lambda i, tx: (i % 4) * 16 + tx * 4, 4, True),
    (lambda i, tx: tx * 2, 4, False),
    (lambda i, tx: i * 6 + 3, 3, True),
    (lambda i, tx: (tx // 2) * 8 + 4, 4, True),
    (lambda i, tx: tx + 1, 2, False),
])
def test_alignment_proofs(offset, factor, expected):
    from tilepipe.arith import Analyzer
    from tilepipe.backend.cuda.async_copy import is_multiple_of
    from tilepipe.ir import Var

    i, tx = Var("i"), Var("tx")
    analyzer = Analyzer()
    analyzer.bind(i, (0, 64))
    analyzer.bind(tx, (0, 64))
    assert is_multiple_of(offset(i, tx), factor, analyzer) is expected


def test_launch_shape_and_arguments():
    kernel = generate(lower(parse(programs.EXCHANGE)), arch="sm_90")
    assert [str(extent) for extent in kernel.block] == ["16", "1", "1"]
    assert [param.name for param in kernel.params] == ["A", "C"]
    assert kernel.dynamic_shared_bytes == 0
    assert kernel.source.count("__syncthreads();") == 3


def test_large_shared_memory_is_dynamic():
    text = programs.SIMPLE_COMPUTE.replace("(4, 16, 4)", "(4, 16, 256)")
    kernel = generate(lower(parse(text)), arch="sm_80")
    assert kernel.dynamic_shared_bytes == 4 * 16 * 256 * 4
    assert "extern __shared__ __align__(16) unsigned char shared_pool[];" in kernel.source


ASYNC_TEMPLATE = '''
from tilepipe import script as T

@T.prim_func
def bad(A: T.Buffer((16, 64), "float32"), C: T.Buffer((16, 64), "float32")):
    for tx in T.thread_binding(16, thread="threadIdx.x"):
        with T.block():
            B = T.alloc_buffer((16, 8), dtype="float32", scope="{scope}")
            with T.attr(0, "async_commit_queue_scope", 0):
                with T.attr(0, "async_scope", 1):
                    {copy}
            with T.attr(0, "async_wait_queue_scope", 0):
                with T.attr(0, "async_wait_inflight_count", 0):
                    C[tx, 0] = B[tx, 0]
'''

BAD_COPIES = {
    "computed": ("shared", "B[tx, 0] = A[tx, 0] * T.float32(2)", "computed, not copied"),
    "twelve bytes": ("shared", "for v in T.vectorized(3):\n                        "
                     "B[tx, v] = A[tx, v]", "copies 12 bytes"),
    "strided": ("shared", "for v in T.vectorized(4):\n                        "
                "B[tx, v] = A[tx, v * 2]", "not contiguous"),
    "misaligned": ("shared", "for v in T.vectorized(4):\n                        "
                   "B[tx, v + 1] = A[tx, v]", "not provably aligned"),
    "local destination": ("local", "B[tx, 0] = A[tx, 0]", "not shared"),
    "global source needed": ("shared", "B[tx, 0] = C[tx, 0] + B[tx, 1]", "computed"),
}


@pytest.mark.parametrize("case", sorted(BAD_COPIES))
def test_async_statement_that_is_not_a_cp_async_copy(case):
    scope, copy, reason = BAD_COPIES[case]
    func = parse(ASYNC_TEMPLATE.format(scope=scope, copy=copy), source_name="bad.py")
    with pytest.raises(LoweringError) as error:
        codegen(lower(func))
    message = str(error.value)
    assert reason in message
    assert "bad.py:11:" in message or "bad.py:12:" in message


def test_waits_need_lowering_first():
    func = parse(programs.TWO_QUEUES, source_name="two.py")
    with pytest.raises(LoweringError, match="one cp.async queue"):
        codegen(func)
    with pytest.raises(LoweringError, match="non-negative constant count"):
        codegen(parse(programs.DYNAMIC_COUNT))


def test_unknown_intrinsic_and_architecture():
    text = programs.EXCHANGE.replace('C[tx, 60 + v] = B[1, 15 - tx, v] + T.float32(1)',
                                     'C[tx, 60 + v] = T.mystery(B[1, 15 - tx, v], dtype="float32")')
    with pytest.raises(LoweringError, match="no emitter for T.mystery"):
        codegen(lower(parse(text)))
    with pytest.raises(LoweringError, match="unknown CUDA architecture"):
        codegen(lower(parse(programs.EXCHANGE)), arch="sm_61")


def test_barrier_under_a_thread_dependent_condition_is_rejected():
    text = programs.EXCHANGE.replace(
        "            for i in T.serial(15):",
        "            if tx < 8:\n                T.evaluate(T.tvm_storage_sync(\"shared\"))\n"
        "            for i in T.serial(15):")
    func = parse(text, source_name="divergent.py")
    with pytest.raises(LoweringError, match="would hang the threads that skip it") as error:
        codegen(lower(func))
    assert "divergent.py:" in str(error.value)


def test_decided_conditions_leave_no_branch():
    source = codegen(lower(parse(programs.SIMPLE_COMPUTE)))
    assert "if (" not in source.split("extern \"C\"")[1]  # every T.where is decided
