"""The semantics of opaque intrinsic calls, in a registry other modules extend.

A handler is registered by name and called as ``handler(call, args, context)``: ``call``
is the :class:`tilepipe.ir.Call`, ``args`` its arguments evaluated (expressions become
numbers or per-thread arrays, ``StringImm`` a Python ``str``; buffers and buffer regions
are passed as they are) and ``context`` the executing :class:`tilepipe.sim.context.Context`
(its threads, ``evaluate``, ``load``/``store``, region access, ``barrier``). The return
value is the call's value. A handler registered with ``blocking=True`` is a generator
function: it may ``yield`` a description of why it cannot go on (the interpreter then
runs other threads and resumes it later) and ``return`` the value.

``tvm_storage_sync`` and a few elementwise math functions are defined here; tensor-core
and mbarrier operations are registered by their own modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import TilepipeError


class IntrinsicError(TilepipeError):
    """An intrinsic call the simulator does not know, or called with bad arguments."""


@dataclass(frozen=True)
class Intrinsic:
    name: str
    handler: Callable[..., Any]
    blocking: bool


_REGISTRY: dict[str, Intrinsic] = {}


def register(name: str, blocking: bool = False) -> Callable[[Callable], Callable]:
    """Decorator: ``handler`` gives the semantics of ``T.<name>(...)``."""

    def decorate(handler: Callable) -> Callable:
        _REGISTRY[name] = Intrinsic(name, handler, blocking)
        return handler

    return decorate


def lookup(name: str, span=None) -> Intrinsic:
    """The registered intrinsic ``name``; an :class:`IntrinsicError` when there is none."""
    _load_extensions()
    intrinsic = _REGISTRY.get(name)
    if intrinsic is None:
        known = ", ".join(sorted(_REGISTRY))
        raise IntrinsicError(
            f"the simulator does not know the intrinsic T.{name} (it knows {known})", span)
    return intrinsic


def registered() -> tuple[str, ...]:
    _load_extensions()
    return tuple(sorted(_REGISTRY))


_EXTENSIONS = ("tensor_core", "mbarrier")
_extensions_loaded = False


def _load_extensions() -> None:
    """Import the modules of ``sim`` that register more intrinsics, where they exist."""
    global _extensions_loaded
    if _extensions_loaded:
        return
    _extensions_loaded = True
    import importlib

    for module in _EXTENSIONS:
        try:
            importlib.import_module(f"{__package__}.{module}")
        except ModuleNotFoundError as error:
            if error.name != f"{__package__}.{module}":
                raise


# Barriers ----------------------------------------------------------------------------
BLOCK_BARRIER_SCOPES = ("shared", "shared.dyn", "global")


@register("tvm_storage_sync")
def _storage_sync(call, args, context):
    """``__syncthreads()`` for shared (and global) memory; a warp sync orders nothing
    that the block-level model tracks."""
    scope = args[0] if args else "shared"
    if scope in BLOCK_BARRIER_SCOPES:
        context.barrier()
    elif scope != "warp":
        raise IntrinsicError(
            f"T.tvm_storage_sync: unknown scope {scope!r} (use \"shared\" or \"warp\")",
            call.span)
    return 0


# Elementwise math --------------------------------------------------------------------
def _elementwise(name: str, function: Callable) -> None:
    @register(name)
    def handler(call, args, context):
        if len(args) != 1:
            raise IntrinsicError(f"T.{name} takes one argument, got {len(args)}", call.span)
        return function(args[0]).astype(_numpy_float(call.dtype))

    handler.__doc__ = f"``T.{name}(x)`` elementwise."


def _numpy_float(dtype: str):
    return np.float16 if dtype == "float16" else np.float64 if dtype == "float64" \
        else np.float32


for _name, _function in (("exp", np.exp), ("log", np.log), ("sqrt", np.sqrt),
                         ("tanh", np.tanh), ("fabs", np.abs), ("floor", np.floor),
                         ("ceil", np.ceil), ("exp2", np.exp2), ("rsqrt",
                                                              lambda x: 1.0 / np.sqrt(x))):
    _elementwise(_name, lambda x, f=_function: np.asarray(f(np.asarray(x, np.float64))))
