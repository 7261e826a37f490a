"""Shared helpers of the pipeline tests: annotating loops, finding waits, seed programs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tilepipe.ir import (
    AsyncCommitQueue, AsyncWaitQueue, For, IRMutator, IRVisitor, PrimFunc,
)
from tilepipe.script import load_file, parse

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
