"""The tile-program notation: ``from tilepipe import script as T``.

``@T.prim_func`` turns a function written in the seeds' TVMScript notation into a
:class:`tilepipe.ir.PrimFunc` by reading its source (the body never runs).
:func:`parse`, :func:`parse_module` and :func:`load_file` read printed programs and
files. The names below exist so that Python can evaluate a decorated function's
parameter annotations (``T.Buffer((16, 16), "float32")``, ``T.int32``, ``T.handle``);
every other ``T.<name>`` is only ever read by the parser.
"""

from .loader import load_file, parse, parse_module, prim_func
from .signature import Buffer, handle
from .signature import (  # noqa: F401  (dtype annotations: T.int32, T.float32, ...)
    bfloat16, bool, float16, float32, float64, int8, int16, int32, int64, uint8, uint16,
    uint32, uint64,
)

__all__ = ["Buffer", "handle", "load_file", "parse", "parse_module", "prim_func"]
