"""GEMM speed on a GPU: tilepipe's tensor-core kernel against cuBLAS and Triton.

For each problem size (fp16 inputs, fp32 accumulation, ``C = A @ B``) the table gives
the median TFLOP/s over repeated launches of

* ``tilepipe``: :func:`tilepipe.kernels.gemm.gemm` (128x128x32 tiles, 4-stage cp.async
  ring, double-buffered ldmatrix fragments), built with :func:`tilepipe.build`;
* ``cuBLAS``: ``torch.matmul`` on fp16 tensors (needs PyTorch; its result is fp16);
* ``Triton s3`` / ``Triton s4``: a Triton matmul with the same 128x128x32 tiles and
  ``num_stages`` 3 and 4 (needs Triton and PyTorch),
* ``tilepipe Hopper`` (on compute capability 9.x only):
  :func:`tilepipe.kernels.hopper_gemm.hopper_gemm` warp-specialized (TMA copies into a
  4-slot ring, mbarriers, two consumer warpgroups issuing wgmma on 128x128x64 tiles), built
  for sm_90a with :func:`tilepipe.backend.cuda.hopper.build_hopper`; it computes
  ``A @ B^T`` from a K-major ``B``, so it is given ``B`` transposed once, before timing,

each with its error against an fp32 reference, and tilepipe's speed as a fraction of the
others'. A time is the wall time of one call followed by a device synchronization, so it
includes the launch (tilepipe's callable launches through cuda-python and synchronizes
itself). Columns whose library is missing are left out. Without a GPU it says so and
exits with status 1.

    python3 benchmarks/gemm_gpu.py [--sizes 4096 8192] [--repeats 20] [--warmup 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

import numpy as np

BLOCK_M, BLOCK_N, BLOCK_K = 128, 128, 32
TRITON_STAGES = (3, 4)


def gpu_name() -> str | None:
    """The name of GPU 0, or None where there is no usable GPU."""
    try:
        from cuda.bindings import driver
    except ImportError:
        return None
    try:
        if driver.cuInit(0)[0] != driver.CUresult.CUDA_SUCCESS:
            return None
        error, count = driver.cuDeviceGetCount()
        if error != driver.CUresult.CUDA_SUCCESS or count == 0:
            return None
        error, device = driver.cuDeviceGet(0)
        error, name = driver.cuDeviceGetName(64, device)
    except RuntimeError:  # no driver library
        return None
    return name.split(b"\0", 1)[0].decode()


def optional_module(name: str):
    try:
        return __import__(name)
    except ImportError:
        return None


def median_seconds(run: Callable[[], None], synchronize: Callable[[], None], repeats: int,
                   warmup: int) -> float:
    """Median wall time of ``run`` (each followed by ``synchronize``)."""
    for _ in range(warmup):
        run()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def relative_error(result: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(result - reference) / np.linalg.norm(reference))


# Contenders ---------------------------------------------------------------------------
def tilepipe_gemm(size: int):
    """The compiled kernel; it takes device (or host) arrays ``A, B, C``."""
    from tilepipe import build
    from tilepipe.kernels.gemm import gemm
    from tilepipe.transform import inject_software_pipeline

    return build(inject_software_pipeline(gemm(size, size, size, BLOCK_M, BLOCK_N, BLOCK_K)))


def triton_matmul(triton, num_stages: int):
    """A Triton fp16 matmul with fp32 accumulation, 128x128x32 tiles, ``num_stages``."""
    import triton.language as tl

    @triton.jit
    def kernel(a, b, c, size_m, size_n, size_k, stride_am, stride_bk, stride_cm,
               BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
        row = tl.program_id(1) * BM + tl.arange(0, BM)
        column = tl.program_id(0) * BN + tl.arange(0, BN)
        depth = tl.arange(0, BK)
        a_pointers = a + row[:, None] * stride_am + depth[None, :]
        b_pointers = b + depth[:, None] * stride_bk + column[None, :]
        accumulator = tl.zeros((BM, BN), dtype=tl.float32)
        for _ in range(0, size_k, BK):
            accumulator += tl.dot(tl.load(a_pointers), tl.load(b_pointers))
            a_pointers += BK
            b_pointers += BK * stride_bk
        tl.store(c + row[:, None] * stride_cm + column[None, :], accumulator)

    def run(a, b, c):
        size_m, size_k = a.shape
        size_n = b.shape[1]
        grid = (size_n // BLOCK_N, size_m // BLOCK_M)
        kernel[grid](a, b, c, size_m, size_n, size_k, a.stride(0), b.stride(0), c.stride(0),
                     BM=BLOCK_M, BN=BLOCK_N, BK=BLOCK_K, num_warps=4, num_stages=num_stages)

    return run


# The Hopper path (sm_90a: TMA, mbarriers, wgmma, warp specialization) -----------------
HOPPER_BLOCK_K = 64


def compute_capability_major() -> int | None:
    """The major compute capability of GPU 0 (None without one)."""
    try:
        from cuda.bindings import driver

        error, device = driver.cuDeviceGet(0)
        attribute = driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
        error, major = driver.cuDeviceGetAttribute(attribute, device)
    except (ImportError, RuntimeError):
        return None
    return major if error == driver.CUresult.CUDA_SUCCESS else None


def measure_hopper(size: int, repeats: int, warmup: int) -> dict[str, tuple[float, float]]:
    """``{"tilepipe Hopper": (TFLOP/s, relative error)}`` for one ``size``^3 problem, on
    device arrays when PyTorch is there (else host arrays, copies included)."""
    from tilepipe.backend.cuda.hopper import build_hopper
    from tilepipe.kernels.hopper_gemm import hopper_gemm, lower

    torch = optional_module("torch")
    random = np.random.default_rng(size)
    a_host = random.uniform(-1, 1, (size, size)).astype(np.float16)
    b_host = random.uniform(-1, 1, (size, size)).astype(np.float16)
    reference = a_host.astype(np.float32) @ b_host.astype(np.float32)
    b_transposed = np.ascontiguousarray(b_host.T)
    kernel = build_hopper(lower(hopper_gemm(size, size, size, block_k=HOPPER_BLOCK_K)))
    flops = 2.0 * size ** 3
    if torch is not None:
        a = torch.from_numpy(a_host).cuda()
        b = torch.from_numpy(b_transposed).cuda()
        c = torch.empty((size, size), dtype=torch.float32, device="cuda")
        seconds = median_seconds(lambda: kernel(a, b, c), torch.cuda.synchronize, repeats,
                                 warmup)
        return {"tilepipe Hopper": (flops / seconds / 1e12,
                                    relative_error(c.cpu().numpy(), reference))}
    c_host = np.empty((size, size), np.float32)
    kernel(a_host, b_transposed, c_host)
    error = relative_error(c_host, reference)
    seconds = median_seconds(lambda: kernel(a_host, b_transposed, c_host), lambda: None,
                             repeats, warmup)
    return {"tilepipe Hopper (with copies)": (flops / seconds / 1e12, error)}


# The table ----------------------------------------------------------------------------
def measure(size: int, repeats: int, warmup: int) -> dict[str, tuple[float, float]]:
    """``{contender: (TFLOP/s, relative error)}`` for one ``size``^3 problem."""
    torch = optional_module("torch")
    triton = optional_module("triton") if torch is not None else None
    random = np.random.default_rng(size)
    a_host = random.uniform(-1, 1, (size, size)).astype(np.float16)
    b_host = random.uniform(-1, 1, (size, size)).astype(np.float16)
    flops = 2.0 * size ** 3
    results: dict[str, tuple[float, float]] = {}

    if torch is not None:
        a = torch.from_numpy(a_host).cuda()
        b = torch.from_numpy(b_host).cuda()
        reference = (a.float() @ b.float()).cpu().numpy()
        synchronize = torch.cuda.synchronize
    else:
        a, b = a_host, b_host
        reference = a_host.astype(np.float32) @ b_host.astype(np.float32)

        def synchronize() -> None:
            """The tilepipe kernel call returns after the kernel finished."""

    kernel = tilepipe_gemm(size)
    if torch is not None:
        c = torch.empty((size, size), dtype=torch.float32, device="cuda")
        seconds = median_seconds(lambda: kernel(a, b, c), synchronize, repeats, warmup)
        results["tilepipe"] = (flops / seconds / 1e12,
                               relative_error(c.cpu().numpy(), reference))
    else:
        c_host = np.empty((size, size), np.float32)
        # Host arrays are copied in and out on each call: time only the first run's
        # correctness here and the launches on device memory below.
        kernel(a_host, b_host, c_host)
        error = relative_error(c_host, reference)
        seconds = median_seconds(lambda: kernel(a_host, b_host, c_host), synchronize,
                                 repeats, warmup)
        results["tilepipe (with copies)"] = (flops / seconds / 1e12, error)

    if torch is not None:
        seconds = median_seconds(lambda: torch.matmul(a, b), synchronize, repeats, warmup)
        results["cuBLAS"] = (flops / seconds / 1e12,
                             relative_error(torch.matmul(a, b).float().cpu().numpy(),
                                            reference))
    if triton is not None:
        for stages in TRITON_STAGES:
            run = triton_matmul(triton, stages)
            c = torch.empty((size, size), dtype=torch.float32, device="cuda")
            seconds = median_seconds(lambda: run(a, b, c), synchronize, repeats, warmup)
            results[f"Triton s{stages}"] = (flops / seconds / 1e12,
                                            relative_error(c.cpu().numpy(), reference))
    return results


def format_table(rows: dict[int, dict[str, tuple[float, float]]]) -> str:
    contenders = list(dict.fromkeys(name for row in rows.values() for name in row))
    ours = [name for name in contenders if name.startswith("tilepipe")]
    pairs = [(mine, name) for mine in ours for name in contenders if name not in ours]
    header = ["size"] + [f"{name} TFLOP/s" for name in contenders] + \
        [f"{mine} / {name}" for mine, name in pairs] + [f"{name} error" for name in contenders]
    lines = [header]
    for size, row in rows.items():
        line = [f"{size}^3"]
        line += [f"{row[name][0]:.1f}" if name in row else "-" for name in contenders]
        line += [f"{row[mine][0] / row[name][0]:.2f}" if mine in row and name in row else "-"
                 for mine, name in pairs]
        line += [f"{row[name][1]:.1e}" if name in row else "-" for name in contenders]
        lines.append(line)
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths))
                     for line in lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    name = gpu_name()
    if name is None:
        print("gemm_gpu: no CUDA GPU is available here (or no driver / cuda-python); "
              "nothing was measured", file=sys.stderr)
        return 1
    bad = [size for size in args.sizes if size % BLOCK_M or size % BLOCK_N or size % BLOCK_K]
    if bad:
        print(f"gemm_gpu: sizes must be multiples of {BLOCK_M}: {bad}", file=sys.stderr)
        return 2
    print(f"GPU: {name}; fp16 inputs, fp32 accumulation; median of {args.repeats} runs")
    rows = {size: measure(size, args.repeats, args.warmup) for size in args.sizes}
    if compute_capability_major() == 9:
        for size in args.sizes:
            rows[size].update(measure_hopper(size, args.repeats, args.warmup))
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
