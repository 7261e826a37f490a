"""tilepipe: asynchronous software pipelining of tile programs.

``from tilepipe import script as T`` to write programs; :func:`parse` reads printed ones;
:func:`tilepipe.transform.inject_software_pipeline` pipelines them; :func:`simulate` and
:func:`verify` run and check them on any machine.
"""

from .errors import LoweringError, ParseError, PipelineError, RaceError, Span, TilepipeError

__version__ = "0.1.0"

__all__ = [
    "LoweringError", "ParseError", "PipelineError", "RaceError", "Span", "TilepipeError",
    "parse", "simulate", "verify",
]


_SUBPACKAGES = ("arith", "backend", "ir", "kernels", "script", "sim", "transform")


def __getattr__(name: str):
    """Load the heavier layers only when they are first used."""
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    if name == "parse":
        from .script import parse

        return parse
    if name in ("simulate", "verify"):
        from . import sim

        return getattr(sim, name)
    if name == "build":
        from .backend.cuda import build

        return build
    raise AttributeError(f"module 'tilepipe' has no attribute {name!r}")
