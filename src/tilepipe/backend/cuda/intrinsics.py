"""The registry that turns intrinsic calls (``T.<name>(...)``) into CUDA C++ text.

A handler receives the :class:`~tilepipe.ir.Call` and the emitter (which prints argument
expressions, element addresses and C++ types) and returns the C++ text of the call: an
expression, or a statement when the call is evaluated for its effect. Other modules add
their intrinsics with :func:`register_intrinsic` (tensor cores, mbarriers, TMA...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ...errors import LoweringError
from ...ir import Call, StringImm, is_float_dtype

if TYPE_CHECKING:
    from .codegen import CudaEmitter

IntrinsicHandler = Callable[[Call, "CudaEmitter"], str]

_HANDLERS: dict[str, IntrinsicHandler] = {}


def register_intrinsic(name: str) -> Callable[[IntrinsicHandler], IntrinsicHandler]:
    """Decorator registering ``handler(call, emitter) -> str`` for ``T.<name>``."""

    def decorate(handler: IntrinsicHandler) -> IntrinsicHandler:
        _HANDLERS[name] = handler
        return handler

    return decorate


def intrinsic_handler(name: str) -> IntrinsicHandler | None:
    """The handler registered for ``name``, loading the optional emitter modules first."""
    _load_extensions()
    return _HANDLERS.get(name)


def _load_extensions() -> None:
    """Import the modules that register further intrinsics (once; absent ones are skipped)."""
    global _EXTENSIONS_LOADED
    if _EXTENSIONS_LOADED:
        return
    _EXTENSIONS_LOADED = True
    import importlib

    for module in _EXTENSION_MODULES:
        try:
            importlib.import_module(module, __package__)
        except ModuleNotFoundError as error:
            if error.name != f"{__package__}{module}":
                raise


_EXTENSION_MODULES = (".tensor_core", ".hopper")
_EXTENSIONS_LOADED = False


def _string_argument(call: Call, position: int) -> str:
    if position >= len(call.args) or not isinstance(call.args[position], StringImm):
        raise LoweringError(
            f"T.{call.op} expects a string as argument {position + 1}", call.span)
    return call.args[position].value


@register_intrinsic("tvm_storage_sync")
def _storage_sync(call: Call, emitter: "CudaEmitter") -> str:
    scope = _string_argument(call, 0)
    if scope == "shared":
        return "__syncthreads()"
    if scope == "warp":
        return "__syncwarp()"
    raise LoweringError(f"T.tvm_storage_sync: unsupported scope '{scope}' (use \"shared\")",
                        call.span)


@register_intrinsic("ptx_commit_group")
def _commit_group(call: Call, emitter: "CudaEmitter") -> str:
    return 'asm volatile("cp.async.commit_group;\\n" ::)'


@register_intrinsic("ptx_wait_group")
def _wait_group(call: Call, emitter: "CudaEmitter") -> str:
    return emitter.wait_group(call.args[0] if call.args else None, call.span)


def _math(function: str) -> IntrinsicHandler:
    def handler(call: Call, emitter: "CudaEmitter") -> str:
        if function == "fabs" and not is_float_dtype(call.dtype):
            name = "abs"
        else:
            name = function + ("f" if call.dtype == "float32" else "")
        arguments = ", ".join(emitter.expr(arg) for arg in call.args)
        return f"{name}({arguments})"

    return handler


for _name in ("exp", "log", "sqrt", "sin", "cos", "tanh", "fabs"):
    register_intrinsic(_name)(_math(_name))
register_intrinsic("abs")(_math("fabs"))
