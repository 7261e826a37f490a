"""The CUDA backend: lower a pipelined tile program, generate CUDA C++, compile, launch.

- :func:`lower` (``tilepipe lower``): unroll waits, merge queues, insert barriers;
- :func:`codegen` (``tilepipe cuda``): CUDA C++ with ``cp.async`` copies, commit groups
  and waits; :func:`register_intrinsic` adds emitters of further intrinsics;
- :func:`compile` (nvcc, else NVRTC) -> cubin; :func:`build` -> a callable kernel.
"""

from .codegen import KernelSource, codegen, generate
from .compiler import CompileError, compile, compile_source, find_nvcc
from ...transform.thread_sync import insert_barriers
from .intrinsics import register_intrinsic
from .lower import lower
from .merge_queues import merge_queues
from .runtime import CompiledKernel, DeviceError, build
from .sass import async_instruction_counts, disassemble
from .unroll import unroll_waits

__all__ = [
    "CompileError", "CompiledKernel", "DeviceError", "KernelSource", "async_instruction_counts",
    "build", "codegen", "compile", "compile_source", "disassemble", "find_nvcc", "generate",
    "insert_barriers", "lower", "merge_queues", "register_intrinsic", "unroll_waits",
]
