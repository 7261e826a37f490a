"""Choosing ``num_stages``: the timing model's cycles for each depth, and the GPU's
measured time where a GPU is present.

Every candidate is planned (:func:`tilepipe.transform.pipeline.planning.plan_pipeline`,
which also rejects depths whose shared memory does not fit the target), pipelined and
costed; the chosen depth is the shallowest whose modelled time is within 1% of the best,
since every further stage costs shared memory and buys nothing.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from ..errors import PipelineError
from ..ir import For, IRMutator, IRVisitor, PrimFunc, Stmt, bind_params
from ..sim.timing import Machine, TimingReport, estimate, machine_named
from ..transform.pipeline.planning import (
    NUM_STAGES, SharedMemoryBudgetError, plan_pipeline, shared_memory_bytes,
)

EXPLICIT_KEYS = ("software_pipeline_stage", "software_pipeline_order",
                 "software_pipeline_async_stages")
NEAR_BEST = 0.01


def pipelined(func: PrimFunc, machine: str | Machine = "A100") -> PrimFunc:
    """``func`` planned for ``machine``'s target and software-pipelined."""
    from ..transform import inject_software_pipeline

    return inject_software_pipeline(plan_pipeline(func, target=machine_named(machine).arch))


# The knob ----------------------------------------------------------------------------
def _is_pipelined(loop: For) -> bool:
    return any(key in loop.annotations for key in (NUM_STAGES, *EXPLICIT_KEYS))


class _Knob(IRMutator):
    """Sets ``num_stages`` on the outermost pipelined loops and drops the explicit
    annotations of those loops and of the loops inside them."""

    def __init__(self, num_stages: int):
        self.num_stages = num_stages
        self.depth = 0

    def visit_for(self, node: For) -> Stmt:
        pipelined_loop = _is_pipelined(node)
        outermost = pipelined_loop and self.depth == 0
        self.depth += pipelined_loop
        new = super().visit_for(node)
        self.depth -= pipelined_loop
        if not pipelined_loop:
            return new
        annotations = {key: value for key, value in new.annotations.items()
                       if key not in EXPLICIT_KEYS and key != NUM_STAGES}
        if outermost:
            annotations[NUM_STAGES] = self.num_stages
        return For(new.loop_var, new.min, new.extent, new.kind, new.body, new.thread_tag,
                   annotations, new.span)


def with_num_stages(func: PrimFunc, num_stages: int) -> PrimFunc:
    """``func`` with its pipelined loops (by ``num_stages`` or by explicit annotations)
    set to be planned ``num_stages`` deep; a PipelineError if nothing is pipelined."""
    has_pipeline = []

    class _Finder(IRVisitor):
        def visit_for(self, node: For) -> None:
            if _is_pipelined(node):
                has_pipeline.append(node)
            super().visit_for(node)

    _Finder().visit(func.body)
    if not has_pipeline:
        raise PipelineError(f"function '{func.name}' has no pipelined loop: annotate one "
                            f"with {NUM_STAGES}", func.span)
    return func.with_body(_Knob(num_stages).visit(func.body))


# Tuning ------------------------------------------------------------------------------
@dataclass
class Candidate:
    """One depth tried: modelled cycles (None when its shared memory does not fit),
    shared bytes, measured milliseconds on a GPU."""

    num_stages: int
    report: TimingReport | None
    shared_bytes: int | None
    measured_ms: float | None = None
    note: str = ""


def gpu_absence_reason() -> str | None:
    """None where a CUDA GPU can be used, else why not (checked without compiling)."""
    try:
        from cuda.bindings import driver
    except ImportError:
        return "cuda-python is not installed"
    try:
        error = driver.cuInit(0)[0]
        if error != driver.CUresult.CUDA_SUCCESS:
            return f"no CUDA driver or GPU ({getattr(error, 'name', error)})"
        error, count = driver.cuDeviceGetCount()
    except RuntimeError:  # the driver library itself is missing
        return "no CUDA driver on this machine"
    if error != driver.CUresult.CUDA_SUCCESS or count == 0:
        return "no CUDA GPU on this machine"
    return None


@dataclass
class Tuning:
    """Every depth tried, and why the GPU column is empty (None when it was measured)."""

    candidates: list[Candidate]
    unmeasured_reason: str | None


def tune(func: PrimFunc, machine: str | Machine = "A100", dims: Mapping[str, int] | None = None,
         stages: Iterable[int] = range(1, 9), measure: bool = True,
         progress: Callable[[int], None] | None = None) -> Tuning:
    """Cost ``func`` at each depth in ``stages``; measure on the GPU where one is present.

    Depths whose shared memory does not fit the target are kept, uncosted, with a note;
    other planning errors (an invalid annotation) are raised. ``progress`` is called after each depth with that depth.
    """
    machine = machine_named(machine)
    func = bind_params(func, dict(dims or {}))
    reason = gpu_absence_reason() if measure else "measurement not asked for"
    candidates: list[Candidate] = []
    for num_stages in stages:
        try:
            planned = plan_pipeline(with_num_stages(func, num_stages), target=machine.arch)
        except SharedMemoryBudgetError as error:
            candidates.append(Candidate(
                num_stages, None, error.needed,
                note=f"does not fit: {error.target} gives {error.available:,} bytes"))
        else:
            program = _inject(planned)
            candidate = Candidate(num_stages, estimate(program, machine),
                                  shared_memory_bytes(program))
            if reason is None:
                candidate.measured_ms = _measure(program, machine.arch)
            candidates.append(candidate)
        if progress is not None:
            progress(num_stages)
    return Tuning(candidates, reason)


def _inject(func: PrimFunc) -> PrimFunc:
    from ..transform import inject_software_pipeline

    return inject_software_pipeline(func)


def _measure(program: PrimFunc, arch: str, repeats: int = 5) -> float:
    """Median milliseconds of a launch of ``program`` on the GPU (copies included)."""
    from ..backend.cuda import build
    from ..sim import random_inputs

    kernel = build(program, arch=arch)
    inputs = random_inputs(program, seed=0)
    arguments = [inputs[buffer.name] for buffer in program.buffer_params]
    kernel(*arguments)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        kernel(*arguments)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def best(candidates: list[Candidate]) -> Candidate:
    """The shallowest candidate within 1% of the fewest modelled cycles."""
    costed = [candidate for candidate in candidates if candidate.report is not None]
    if not costed:
        raise PipelineError("no number of stages fits: " + candidates[0].note)
    fewest = min(candidate.report.total_cycles for candidate in costed)
    return next(candidate for candidate in costed
                if candidate.report.total_cycles <= fewest * (1 + NEAR_BEST))


def tune_command(func: PrimFunc, machine: str, dims: Mapping[str, int]) -> int:
    """``tilepipe tune``: a progress bar while costing, then the table and the choice."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    console = Console()
    machine = machine_named(machine)
    stages = range(1, 9)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"costing {func.name}", total=len(stages))
        tuning = tune(func, machine, dims, stages, progress=lambda _: bar.advance(task))
    chosen = best(tuning.candidates)
    table = Table(title=f"{func.name} on {machine.name}: num_stages by the timing model")
    for column in ("stages", "cycles", "bound", "of bound", "shared bytes", "GPU ms", "note"):
        table.add_column(column, justify="left" if column == "note" else "right")
    for candidate in tuning.candidates:
        report = candidate.report
        table.add_row(
            f"{candidate.num_stages}{' *' if candidate is chosen else ''}",
            f"{report.total_cycles:,.0f}" if report else "-",
            f"{report.bound_cycles:,.0f}" if report else "-",
            f"{100 * report.efficiency:.1f}%" if report else "-",
            f"{candidate.shared_bytes:,}" if candidate.shared_bytes is not None else "-",
            f"{candidate.measured_ms:.3f}" if candidate.measured_ms is not None else "-",
            candidate.note)
    console.print(table)
    if tuning.unmeasured_reason:
        console.print(f"GPU ms: not measured ({tuning.unmeasured_reason})")
    console.print(f"chosen: num_stages = {chosen.num_stages} "
                  f"({chosen.report.total_cycles:,.0f} cycles, "
                  f"{100 * chosen.report.efficiency:.1f}% of the bound)")
    return 0


__all__ = ["Candidate", "Tuning", "best", "gpu_absence_reason", "pipelined", "tune",
           "tune_command", "with_num_stages"]
