"""The Hopper GEMM end to end: simulated equal to A @ B^T in both barrier forms, CUDA
C++ for sm_90a with tensor-map parameters, and nvcc's SASS with TMA (UTMALDG), mbarrier
(SYNCS) and warpgroup MMA (HGMMA) instructions in the numbers the program asks for."""

import re
from collections import Counter

import numpy as np
import pytest

from tilepipe import parse
from tilepipe.backend.cuda import codegen, generate
from tilepipe.backend.cuda.compiler import compile_source, find_nvcc
from tilepipe.backend.cuda.sass import disassemble, find_cuobjdump
from tilepipe.errors import LoweringError
from tilepipe.ir import Call, post_order_visit
from tilepipe.kernels.hopper_gemm import HopperGemmError, hopper_gemm, lower
from tilepipe.sim import random_inputs, simulate, verify

SASS_OPCODE = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Za-z0-9_.]*)")


@pytest.mark.parametrize("specialize", [True, False])
def test_small_gemm_simulates_to_a_times_b_transposed(specialize):
    func = lower(hopper_gemm(128, 64, 192, block_n=64, num_stages=2), specialize)
    inputs = random_inputs(func, seed=11)
    expected = inputs["A"].astype(np.float32) @ inputs["B"].astype(np.float32).T
    for schedule in ("eager", "lazy"):
        outputs = simulate(func, inputs, schedule=schedule)
        np.testing.assert_allclose(outputs["C"], expected, rtol=1e-5, atol=1e-4)
    assert verify(func).ok


def test_kernel_source_declares_tensor_maps_and_one_block_per_sm():
    kernel = generate(lower(hopper_gemm(4096, 4096, 4096)), "sm_90a")
    assert kernel.block[0].value == 384 and kernel.grid[0].value == 32
    assert [spec.buffer for spec in kernel.tensor_maps] == ["A", "B"]
    assert all(spec.box == (128, 64) and spec.swizzle == "128B" for spec in kernel.tensor_maps)
    source = kernel.source
    assert "__launch_bounds__(384, 1)" in source
    assert "const __grid_constant__ CUtensorMap A_tensor_map" in source
    assert "__align__(1024) unsigned char shared_pool" in source
    assert "tilepipe_hopper::setmaxnreg_increase<232>()" in source
    assert "tilepipe_hopper::wgmma_wait_group<1>()" in source


@pytest.fixture(scope="module")
def gemm_sass():
    if find_nvcc() is None or find_cuobjdump() is None:
        pytest.skip("nvcc or cuobjdump is not installed")
    program = lower(hopper_gemm(4096, 4096, 4096))
    cubin = compile_source(codegen(program, "sm_90a"), "sm_90a")
    return program, Counter(SASS_OPCODE.findall(disassemble(cubin)))


def _calls(program, op):
    found = []
    post_order_visit(program.body, lambda node: found.append(node)
                     if isinstance(node, Call) and node.op == op else None)
    return found


@pytest.mark.nvcc
def test_sass_has_one_tma_load_per_copy(gemm_sass):
    program, opcodes = gemm_sass
    assert opcodes["UTMALDG.2D"] == len(_calls(program, "tma_load")) == 2


@pytest.mark.nvcc
def test_sass_has_one_hgmma_per_sixteen_wide_slice_of_k(gemm_sass):
    program, opcodes = gemm_sass
    (mma,) = _calls(program, "wgmma")
    depth = mma.args[1].region[-1].extent.value
    assert opcodes["HGMMA.64x128x16.F32"] == depth // 16 == 4
    assert opcodes["WARPGROUP.ARRIVE"] >= 1 and opcodes["WARPGROUP.DEPBAR.LE"] >= 1


@pytest.mark.nvcc
def test_sass_has_mbarrier_and_register_reallocation(gemm_sass):
    _, opcodes = gemm_sass
    arrivals = sum(count for opcode, count in opcodes.items()
                   if opcode.startswith("SYNCS.ARRIVE"))
    assert arrivals >= 3  # expect_tx by the producer, releases in and after the loop
    assert opcodes["SYNCS.PHASECHK.TRANS64.TRYWAIT"] >= 2  # full and empty waits
    assert any(opcode.startswith("USETMAXREG") for opcode in opcodes)


def test_operand_rows_that_no_swizzle_fits_are_rejected():
    text = lower(hopper_gemm(128, 64, 96, block_n=64, block_k=32)).script()
    narrow = parse(text.replace("(128, 32)", "(128, 48)").replace("0:32]", "0:48]"))
    with pytest.raises(LoweringError, match="whole rows of 32, 64 or 128 bytes"):
        codegen(narrow, "sm_90a")


def test_tma_needs_the_sm90a_target():
    with pytest.raises(LoweringError, match="needs the sm_90a target"):
        codegen(lower(hopper_gemm(128, 64, 128, block_n=64)), "sm_90")


def test_sizes_the_kernel_cannot_tile_are_rejected():
    with pytest.raises(HopperGemmError, match="block_m = 96 must be a positive multiple of 64"):
        hopper_gemm(192, 128, 128, block_m=96)


def test_build_keeps_the_cubin_and_says_there_is_no_gpu():
    from tilepipe.backend.cuda.hopper import build_hopper
    from tilepipe.backend.cuda.runtime import DeviceError, _present_arch

    if find_nvcc() is None:
        pytest.skip("nvcc is not installed")
    kernel = build_hopper(lower(hopper_gemm(256, 256, 256)))
    assert kernel.cubin and "cp.async.bulk.tensor.2d" in kernel.source
    if _present_arch() is None:
        inputs = random_inputs(kernel.lowered, seed=0)
        with pytest.raises(DeviceError, match="no CUDA GPU"):
            kernel(inputs["A"], inputs["B"], inputs["C"])


@pytest.mark.gpu
def test_gemm_on_a_hopper_gpu_matches_numpy():
    from tilepipe.backend.cuda.hopper import build_hopper
    from tilepipe.backend.cuda.runtime import _present_arch

    if _present_arch() not in ("sm_90", "sm_90a"):
        pytest.skip("needs a Hopper GPU")
    kernel = build_hopper(lower(hopper_gemm(512, 512, 512)))
    inputs = random_inputs(kernel.lowered, seed=0)
    kernel(inputs["A"], inputs["B"], inputs["C"])
    expected = inputs["A"].astype(np.float32) @ inputs["B"].astype(np.float32).T
    np.testing.assert_allclose(inputs["C"], expected, rtol=1e-2, atol=1e-2)


def test_mbarrier_intrinsics_call_their_device_functions_on_the_slot():
    source = codegen(lower(hopper_gemm(128, 64, 128, block_n=64), False), "sm_90a")
    calls = [line.strip() for line in source.splitlines() if "tilepipe_hopper::mbarrier" in line]
    assert "tilepipe_hopper::mbarrier_init(reinterpret_cast<uint64_t*>(&full[slot]), 1);" in calls
    assert ("tilepipe_hopper::mbarrier_arrive_expect_tx(reinterpret_cast<uint64_t*>("
            "&full[(k % 4)]), 24576);") in calls
    assert ("tilepipe_hopper::mbarrier_arrive(reinterpret_cast<uint64_t*>("
            "&empty[((k + 1) % 4)]));") in calls
    assert sum(call.startswith("tilepipe_hopper::mbarrier_wait_parity(") for call in calls) == 2


def test_mbarrier_intrinsic_with_the_wrong_arguments_is_rejected():
    text = lower(hopper_gemm(128, 64, 128, block_n=64), False).script()
    wrong = parse(text.replace("T.mbarrier_arrive(empty, (k + 1) % 4)",
                               "T.mbarrier_arrive(empty, (k + 1) % 4, 1)"))
    with pytest.raises(LoweringError, match=r"T.mbarrier_arrive takes 2 arguments: "
                                            r"T.mbarrier_arrive\(barriers, index\)"):
        codegen(wrong, "sm_90a")
