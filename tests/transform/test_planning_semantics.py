"""Pipelines planned from num_stages, run in the simulator: race-free, exact waits, and
the same results as the program as written."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tilepipe.kernels.gemm import gemm_small
from tilepipe.kernels.tuning import with_num_stages
from tilepipe.sim import random_inputs, simulate, verify
from tilepipe.transform import inject_software_pipeline
from tilepipe.transform.pipeline.planning import plan_pipeline


def planned(func, num_stages):
    return inject_software_pipeline(plan_pipeline(with_num_stages(func, num_stages)))


def assert_exact_and_equal(written, program, pipelined=True):
    report = verify(program)
    assert report.ok, report.format()
    counts = verify.max_safe_counts(program)
    assert bool(counts) == pipelined
    assert all(count.exact for count in counts), "\n".join(
        count.format() for count in counts)
    inputs = random_inputs(written, seed=1)
    expected = simulate(written, {name: array.copy() for name, array in inputs.items()})
    got = simulate(program, inputs, schedule="lazy")
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("num_stages", [2, 3, 5])
@pytest.mark.parametrize("extent", [16, 3])
def test_planned_copy_and_use(num_stages, extent):
    written = copies_then_sum(1, extent, num_stages)
    assert_exact_and_equal(plan_pipeline(with_num_stages(written, 1)),
                           planned(written, num_stages))


@pytest.mark.parametrize("num_stages", [2, 3, 4])
def test_planned_small_gemm(num_stages):
    # Warps share the shared tiles, so the program is checked with the thread barriers
    # the CUDA lowering gives it.
    from tilepipe.backend.cuda import lower

    written = plan_pipeline(with_num_stages(gemm_small(), 1))
    assert_exact_and_equal(written, lower(planned(gemm_small(), num_stages)))


def copies_then_sum(num_copies, extent, num_stages):
    """``num_copies`` inputs each copied into a shared buffer, then summed into C."""
    from tilepipe.ir import (
        Block, Buffer, BufferLoad, BufferStore, For, ForKind, IntImm, PrimFunc, Var, seq,
    )
    from tilepipe.transform.pipeline.planning import NUM_STAGES

    inputs = [Buffer(f"A{index}", (IntImm(extent), IntImm(4)), "float32", "global")
              for index in range(num_copies)]
    shared = [Buffer(f"S{index}", (IntImm(4),), "float32", "shared")
              for index in range(num_copies)]
    C = Buffer("C", (IntImm(extent), IntImm(4)), "float32", "global")
    tx, i = Var("tx"), Var("i")
    copies = [Block(f"copy{index}", BufferStore(buffer, BufferLoad(source, (i, tx)), (tx,)))
              for index, (source, buffer) in enumerate(zip(inputs, shared))]
    total = BufferLoad(shared[0], (tx,))
    for buffer in shared[1:]:
        total = total + BufferLoad(buffer, (tx,))
    use = Block("use", BufferStore(C, total, (i, tx)))
    loop = For(i, IntImm(0), IntImm(extent), ForKind.SERIAL,
               Block("body", seq(*copies, use), alloc_buffers=tuple(shared)),
               annotations={NUM_STAGES: num_stages})
    body = For(tx, IntImm(0), IntImm(4), ForKind.THREAD_BINDING, loop,
               thread_tag="threadIdx.x")
    return PrimFunc("copies_then_sum", (*inputs, C), body)


@settings(max_examples=12, deadline=None)
@given(num_copies=st.integers(1, 2), extent=st.integers(1, 7), num_stages=st.integers(1, 5))
def test_planned_pipelines_of_generated_loops(num_copies, extent, num_stages):
    written = copies_then_sum(num_copies, extent, num_stages)
    program = inject_software_pipeline(plan_pipeline(written))
    assert_exact_and_equal(plan_pipeline(with_num_stages(written, 1)), program,
                           pipelined=num_stages > 1)
