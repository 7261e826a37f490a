"""Shared helpers of the pipeline tests: annotating loops, finding waits, seed programs,
a generated producer/consumer program and the simulator check of a pipeline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from tilepipe.ir import (
    AsyncCommitQueue, AsyncWaitQueue, For, IRMutator, IRVisitor, PrimFunc,
)
from tilepipe.script import load_file, parse
from tilepipe.sim import max_safe_counts, random_inputs, simulate, verify
from tilepipe.transform import inject_software_pipeline

SEED_DIR = Path(__file__).parent.parent / "script" / "seed_programs"


def seed(name: str) -> PrimFunc:
    """The one function of ``tests/script/seed_programs/<name>.py``."""
    (func,) = load_file(SEED_DIR / f"{name}.py")
    return func


def seed_module(name: str):
    spec = importlib.util.spec_from_file_location(name, SEED_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def annotate(func: PrimFunc, loop_name: str, **annotations) -> PrimFunc:
    """``func`` with the loops whose variable is ``loop_name`` given ``annotations``
    (``stage=[...]`` sets ``software_pipeline_stage``, likewise ``order``,
    ``async_stages``); a value of None removes the key."""
    keys = {"stage": "software_pipeline_stage", "order": "software_pipeline_order",
            "async_stages": "software_pipeline_async_stages"}

    class _Annotator(IRMutator):
        def visit_for(self, node: For):
            node = super().visit_for(node)
            if node.loop_var.name != loop_name:
                return node
            merged = dict(node.annotations)
            for short, value in annotations.items():
                key = keys.get(short, short)
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = tuple(value) if isinstance(value, list) else value
            return For(node.loop_var, node.min, node.extent, node.kind, node.body,
                       node.thread_tag, merged, node.span)

    return func.with_body(_Annotator().visit(func.body))


def program(text: str) -> PrimFunc:
    return parse("from tilepipe import script as T\n" + text)


def waits(func: PrimFunc) -> list[tuple[int, str]]:
    """Every wait in printing order as (queue, count as printed)."""
    found: list[tuple[int, str]] = []

    class _Finder(IRVisitor):
        def visit_async_wait_queue(self, node: AsyncWaitQueue) -> None:
            found.append((node.queue, repr(node.in_flight)))
            super().visit_async_wait_queue(node)

    _Finder().visit(func.body)
    return found


def commits(func: PrimFunc) -> list[int]:
    found: list[int] = []

    class _Finder(IRVisitor):
        def visit_async_commit_queue(self, node: AsyncCommitQueue) -> None:
            found.append(node.queue)
            super().visit_async_commit_queue(node)

    _Finder().visit(func.body)
    return found


def check_pipeline(func: PrimFunc, dims: dict[str, int] | None = None) -> PrimFunc:
    """Pipeline ``func`` and check it against the original in the simulator."""
    pipelined = parse(inject_software_pipeline(func).script())
    report = verify(pipelined, dims)
    assert report.ok, report.format()
    counts = max_safe_counts(pipelined, dims)
    inexact = [count.format() for count in counts if not count.exact]
    assert not inexact, inexact
    inputs = random_inputs(func, seed=7, dims=dims)
    expected = simulate(func, {name: value.copy() for name, value in inputs.items()}, dims=dims)
    actual = simulate(pipelined, {name: value.copy() for name, value in inputs.items()},
                      dims=dims)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-6, err_msg=name)
    return pipelined


def producer_consumer(producers: int, middle: bool, stages: list[int], orders: list[int],
                      async_stages: list[int], start: int, extent: int | None) -> PrimFunc:
    """``producers`` copies ``S<k> <- A`` (and ``M <- S0`` when ``middle``) feeding
    ``D[i]``; ``extent`` None makes it the scalar parameter ``n``."""
    stop = f"{start} + n" if extent is None else str(start + extent)
    params = ", n: T.int32" if extent is None else ""
    allocs = "".join(
        f'                S{k} = T.alloc_buffer((4, 1), dtype="float32", scope="shared")\n'
        for k in range(producers))
    body = "".join(f"                S{k}[tx, 0] = A[tx, i + {k}] * T.float32({k + 2})\n"
                   for k in range(producers))
    terms = [f"S{k}[tx, 0]" for k in range(producers)]
    if middle:
        allocs += '                M = T.alloc_buffer((4, 1), dtype="float32", scope="shared")\n'
        body += "                M[tx, 0] = S0[tx, 0] + T.float32(1)\n"
        terms.append("M[tx, 0]")
    body += f"                D[tx, i] = {' + '.join(terms)}\n"
    annotations = (f'{{"software_pipeline_stage": {stages}, "software_pipeline_order": '
                   f'{orders}, "software_pipeline_async_stages": {async_stages}}}')
    text = f'''from tilepipe import script as T


@T.prim_func
def producer_consumer(A: T.Buffer((4, 64), "float32"), D: T.Buffer((4, 64), "float32"){params}):
    for tx in T.thread_binding(4, thread="threadIdx.x"):
        for i in T.serial({start}, {stop}, annotations={annotations}):
            with T.block():
{allocs}{body}'''
    return parse(text)
