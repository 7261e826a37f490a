"""``tilepipe demo``: the GEMM kernel through every stage of tilepipe.

parse (print and read back) -> pipeline -> verify in the simulator -> timeline in the
timing model (picture written, ASCII shown) -> CUDA C++ -> nvcc -> a run on the GPU.
Each step prints its result in a few lines; a step that cannot run on this machine (no
nvcc, no GPU) or that depends on a failed one says so and why. The verification runs on
the small GEMM (same program structure, sizes the simulator checks in seconds); the
other steps use the full-size one.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import RaceError, TilepipeError

MACHINE = "A100"
ARCH = "sm_80"
SIZES = {"M": 256, "N": 256, "K": 1024}
TILES = {"block_m": 128, "block_n": 128, "block_k": 32}
REPORT_LINES = 4  # of a race report, in the demo's summary
TOLERANCE = 1e-2  # fp16 inputs, fp32 accumulation: the simulator and NumPy agree closely
NUM_STAGES = 4


class Skip(Exception):
    """A step that cannot run here; the message says why."""


@dataclass
class _Step:
    title: str
    run: Callable[[], list[str]]
    needs: tuple[str, ...] = ()


class _Demo:
    """The steps, and what they pass along: the programs and the compiled kernel."""

    def __init__(self, out_dir: Path, console):
        self.out_dir = out_dir
        self.console = console
        self.func = None
        self.small = None
        self.pipelined = None
        self.small_pipelined = None
        self.kernel = None

    # Steps ----------------------------------------------------------------------------
    def parse(self) -> list[str]:
        from .ir import structural_equal
        from .kernels.gemm import gemm, gemm_small
        from .kernels.tuning import with_num_stages
        from .script import parse

        self.func = with_num_stages(gemm(**SIZES, **TILES), NUM_STAGES)
        self.small = with_num_stages(gemm_small(), NUM_STAGES)
        text = self.func.script()
        if not structural_equal(parse(text, source_name="<gemm printed>"), self.func):
            raise TilepipeError("printing the GEMM and parsing it back changed the program")
        sizes = " x ".join(f"{name}={value}" for name, value in SIZES.items())
        tiles = "x".join(str(value) for value in TILES.values())
        warps = _threads(self.func) // 32
        return [f"{self.func.name} ({sizes}, tiles {tiles}, {warps} warps, "
                f"software_pipeline_num_stages = {NUM_STAGES}): "
                f"{len(text.splitlines())} lines of TVMScript",
                "printed and parsed back: structurally equal"]

    def pipeline(self) -> list[str]:
        from .ir import AsyncCommitQueue, AsyncWaitQueue, For, post_order_visit
        from .transform import inject_software_pipeline
        from .transform.pipeline.planning import plan_pipeline, shared_memory_bytes

        started = time.perf_counter()
        planned = plan_pipeline(self.func, target=ARCH)
        self.pipelined = inject_software_pipeline(planned)
        self.small_pipelined = inject_software_pipeline(plan_pipeline(self.small, target=ARCH))
        elapsed = time.perf_counter() - started
        plans, waits, commits = [], [], []

        def collect(node):
            if isinstance(node, For) and "software_pipeline_stage" in node.annotations:
                plans.append(f"'{node.loop_var.name}' stages "
                             f"{list(node.annotations['software_pipeline_stage'])} orders "
                             f"{list(node.annotations['software_pipeline_order'])}")
            elif isinstance(node, AsyncWaitQueue):
                waits.append(repr(node.in_flight))
            elif isinstance(node, AsyncCommitQueue):
                commits.append(node)

        post_order_visit(planned.body, collect)
        post_order_visit(self.pipelined.body, collect)
        return [f"planned from num_stages: {'; '.join(reversed(plans))}",
                f"prologue / body / epilogue and block barriers in {elapsed:.2f} s: {len(commits)} commit "
                f"sites, wait counts {', '.join(dict.fromkeys(waits))}",
                f"shared memory {shared_memory_bytes(self.pipelined):,} bytes "
                f"(rings: {_rings(self.pipelined)})"]

    def verify(self) -> list[str]:
        import numpy as np

        from .sim import random_inputs, simulate, verify

        from .backend.cuda import lower

        started = time.perf_counter()
        # The program the GPU runs: pipelined, then given its thread barriers.
        program = lower(self.small_pipelined)
        report = verify(program)
        counts = verify.max_safe_counts(program)
        inputs = random_inputs(program, seed=0)
        outputs = simulate(program, inputs)
        elapsed = time.perf_counter() - started
        expected = inputs["A"].astype(np.float32) @ inputs["B"].astype(np.float32)
        error = float(np.max(np.abs(outputs["C"] - expected)))
        if not report.ok:
            shown = report.format().splitlines()[:REPORT_LINES]
            raise RaceError(f"the pipelined small GEMM has {len(report.races)} race(s):\n"
                            + "\n".join(shown))
        if error > TOLERANCE:
            raise RaceError(f"the pipelined small GEMM computes a wrong C: it differs from "
                            f"A @ B by up to {error:.3g}")
        exact = [count for count in counts if count.exact]
        (rows, depth), (_, columns) = inputs["A"].shape, inputs["B"].shape
        barriers = program.script().count("T.tvm_storage_sync(")
        lines = [f"small GEMM {rows}x{columns}x{depth}, pipelined and lowered with its "
                 f"{barriers} barriers, in the "
                 f"simulator ({elapsed:.1f} s): race-free; C matches A @ B in NumPy to "
                 f"{error:.1e}",
                 f"{len(exact)} of {len(counts)} wait sites use the largest safe count"]
        lines.extend(count.format() for count in counts if not count.exact)
        return lines

    def timeline(self) -> list[str]:
        from .sim.timeline import ascii_comparison, draw_timeline
        from .sim.timing import estimate

        before = estimate(self.func, MACHINE)
        after = estimate(self.pipelined, MACHINE)
        titles = ["as written", "pipelined"]
        picture = draw_timeline([before, after], self.out_dir / "gemm_timeline.png", titles)
        self.console.print(ascii_comparison([before, after], titles), highlight=False,
                           markup=False)
        return [f"one block on {MACHINE}: {before.total_cycles:,.0f} cycles as written, "
                f"{after.total_cycles:,.0f} pipelined "
                f"({before.total_cycles / after.total_cycles:.2f}x); the bound is "
                f"{after.bound_cycles:,.0f} ({100 * after.efficiency:.1f}% reached)",
                f"picture: {picture.resolve()}"]

    def cuda(self) -> list[str]:
        from .backend.cuda import codegen, lower

        source = codegen(lower(self.pipelined), arch=ARCH)
        lines = source.splitlines()
        copies = _calls(source, "cp_async<")
        return [f"{len(lines)} lines of CUDA C++ for {ARCH}: {copies} cp.async copy sites "
                f"(cp_async<bytes>), {_calls(source, 'cp_async_commit_group')} commits, "
                f"{_calls(source, 'cp_async_wait_group<')} waits, "
                f"{_calls(source, '__syncthreads')} barriers"]

    def nvcc(self) -> list[str]:
        from .backend.cuda import build
        from .backend.cuda.compiler import find_nvcc

        nvcc = find_nvcc()
        if nvcc is None:
            raise Skip("nvcc not found (PATH, CUDA_HOME); NVRTC would be used on a CUDA "
                       "machine")
        started = time.perf_counter()
        self.kernel = build(self.pipelined, arch=ARCH)
        elapsed = time.perf_counter() - started
        lines = [f"{nvcc} compiled it in {elapsed:.1f} s: cubin of {len(self.kernel.cubin):,} "
                 "bytes"]
        lines.extend(self._sass_summary())
        return lines

    def _sass_summary(self) -> list[str]:
        from .backend.cuda.sass import async_instruction_counts, disassemble, find_cuobjdump

        if find_cuobjdump() is None:
            return ["SASS not inspected: cuobjdump not found"]
        counts = async_instruction_counts(disassemble(self.kernel.cubin))
        waits = sorted(key[1] for key in counts if isinstance(key, tuple))
        return [f"SASS: {counts['LDGSTS']} LDGSTS (cp.async), {counts['LDGDEPBAR']} LDGDEPBAR "
                f"(commit), DEPBAR waits of {waits}, {counts['BAR.SYNC']} BAR.SYNC"]

    def gpu(self) -> list[str]:
        import numpy as np

        from .kernels.tuning import gpu_absence_reason
        from .sim import random_inputs

        reason = gpu_absence_reason()
        if reason is not None:
            raise Skip(reason)
        inputs = random_inputs(self.pipelined, seed=0)
        self.kernel(inputs["A"], inputs["B"], inputs["C"])
        started = time.perf_counter()
        self.kernel(inputs["A"], inputs["B"], inputs["C"])
        elapsed = time.perf_counter() - started
        expected = inputs["A"].astype(np.float32) @ inputs["B"].astype(np.float32)
        error = float(np.max(np.abs(inputs["C"] - expected)))
        return [f"ran on the GPU in {elapsed * 1e3:.2f} ms (copies included); C matches "
                f"NumPy to {error:.1e}"]


def _calls(source: str, name: str) -> int:
    """Statements of ``source`` that call ``name`` (its definitions left out)."""
    pattern = re.compile(r"^\s*" + re.escape(name) + r"[\w<>]*\(.*\);")
    return sum(1 for line in source.splitlines() if pattern.match(line))


def _threads(func) -> int:
    """Threads per block of ``func``: the product of its threadIdx extents."""
    from .ir import For, ForKind, as_int, post_order_visit

    extents = []

    def collect(node) -> None:
        if isinstance(node, For) and node.kind is ForKind.THREAD_BINDING \
                and node.thread_tag.startswith("threadIdx"):
            extents.append(as_int(node.extent))

    post_order_visit(func.body, collect)
    threads = 1
    for extent in extents:
        threads *= extent
    return threads


def _rings(func) -> str:
    """The shared-memory buffers of ``func`` with their number of versions (the first
    dimension the pipeliner added)."""
    from .ir import Block, post_order_visit

    rings = []

    def collect(node) -> None:
        if isinstance(node, Block):
            rings.extend(f"{buffer.name} {buffer.shape[0]}-deep" for buffer in
                         node.alloc_buffers if buffer.scope.startswith("shared"))

    post_order_visit(func.body, collect)
    return ", ".join(rings)


def run_demo(args) -> int:
    """Run every step, print each result; exit status 1 if a step failed."""
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    out_dir = Path(getattr(args, "out_dir", "."))
    out_dir.mkdir(parents=True, exist_ok=True)
    demo = _Demo(out_dir, console)
    steps = [
        _Step("parse", demo.parse),
        _Step("pipeline", demo.pipeline, ("parse",)),
        _Step("verify", demo.verify, ("pipeline",)),
        _Step("timeline", demo.timeline, ("pipeline",)),
        _Step("CUDA", demo.cuda, ("pipeline",)),
        _Step("nvcc", demo.nvcc, ("CUDA",)),
        _Step("GPU run", demo.gpu, ("nvcc",)),
    ]
    console.print("[bold]tilepipe demo[/bold]: a tensor-core GEMM through every stage")
    done: set[str] = set()
    failed = False
    for number, step in enumerate(steps, start=1):
        heading = f"{number}. {step.title}"
        missing = [need for need in step.needs if need not in done]
        if missing:
            console.print(f"[yellow]-[/yellow] {heading}: skipped, it needs the "
                          f"{', '.join(missing)} step")
            continue
        try:
            lines = step.run()
        except Skip as reason:
            console.print(f"[yellow]-[/yellow] {heading}: skipped, {reason}")
            continue
        except TilepipeError as error:
            failed = True
            console.print(f"[red]x[/red] {heading}: failed", markup=True)
            console.print(f"    {error}", markup=False)
            continue
        done.add(step.title)
        console.print(f"[green]ok[/green] {heading}")
        for line in lines:
            console.print(f"    {line}", markup=False)
    return 1 if failed else 0


__all__ = ["run_demo"]
