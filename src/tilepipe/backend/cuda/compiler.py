"""Compile CUDA C++ to a cubin: nvcc (PATH or CUDA_HOME), else NVRTC through cuda-python.

Results are cached on disk by source, architecture and compiler, so that a kernel is
compiled once (``TILEPIPE_CACHE_DIR``, default ``~/.cache/tilepipe``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ...errors import TilepipeError
from ...ir import PrimFunc

NVCC_FLAGS = ("-O3", "-std=c++17")


class CompileError(TilepipeError):
    """The CUDA compiler rejected the generated source or could not be run."""


def find_nvcc() -> str | None:
    """The nvcc executable: on PATH, else under CUDA_HOME / CUDA_PATH, else None."""
    found = shutil.which("nvcc")
    if found:
        return found
    for variable in ("CUDA_HOME", "CUDA_PATH"):
        root = os.environ.get(variable)
        if root and (Path(root) / "bin" / "nvcc").is_file():
            return str(Path(root) / "bin" / "nvcc")
    return None


def cache_dir() -> Path:
    root = os.environ.get("TILEPIPE_CACHE_DIR") or Path.home() / ".cache" / "tilepipe"
    path = Path(root) / "cubin"
    path.mkdir(parents=True, exist_ok=True)
    return path


def compile(func: PrimFunc, arch: str = "sm_80") -> bytes:  # noqa: A001 - the public name
    """The cubin of ``func`` for ``arch``: pipelined (if it still carries pipeline
    annotations), lowered, generated and compiled here."""
    from .codegen import generate
    from .lower import pipeline_and_lower

    return compile_source(generate(pipeline_and_lower(func), arch).source, arch)


def compile_source(source: str, arch: str = "sm_80") -> bytes:
    """The cubin of a CUDA C++ source for ``arch`` (``sm_80``, ``sm_90a``, ...)."""
    nvcc = find_nvcc()
    compiler = f"nvcc:{_nvcc_version(nvcc)}" if nvcc else "nvrtc"
    key = hashlib.sha256("\0".join((compiler, arch, *NVCC_FLAGS, source)).encode()).hexdigest()
    cached = cache_dir() / f"{key}.cubin"
    if cached.is_file():
        return cached.read_bytes()
    cubin = _nvcc(nvcc, source, arch) if nvcc else _nvrtc(source, arch)
    temporary = cached.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_bytes(cubin)
    temporary.replace(cached)
    return cubin


_VERSIONS: dict[str, str] = {}


def _nvcc_version(nvcc: str) -> str:
    if nvcc not in _VERSIONS:
        result = subprocess.run([nvcc, "--version"], capture_output=True, text=True)
        _VERSIONS[nvcc] = result.stdout.strip().splitlines()[-1] if result.stdout else "?"
    return _VERSIONS[nvcc]


def _nvcc(nvcc: str, source: str, arch: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="tilepipe-") as directory:
        source_path = Path(directory) / "kernel.cu"
        output_path = Path(directory) / "kernel.cubin"
        source_path.write_text(source)
        command = [nvcc, "-cubin", f"-arch={arch}", *NVCC_FLAGS, "-o", str(output_path),
                   str(source_path)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise CompileError(f"nvcc failed for {arch}:\n{result.stderr.strip()}")
        return output_path.read_bytes()


def _nvrtc(source: str, arch: str) -> bytes:
    try:
        from cuda.bindings import nvrtc
    except ImportError:
        raise CompileError("no CUDA compiler: nvcc is not on PATH or under CUDA_HOME, and "
                           "cuda-python (NVRTC) is not installed") from None
    try:
        error, program = nvrtc.nvrtcCreateProgram(source.encode(), b"kernel.cu", 0, [], [])
    except RuntimeError as failure:  # the NVRTC library itself is missing
        raise CompileError(f"no CUDA compiler: nvcc is not found and NVRTC cannot be loaded "
                           f"({failure})") from None
    _check_nvrtc(nvrtc, error, "create the program")
    options = [f"--gpu-architecture={arch}".encode(), b"-std=c++17", b"-default-device"]
    options += [f"--include-path={directory}".encode() for directory in _include_directories()]
    (error,) = nvrtc.nvrtcCompileProgram(program, len(options), options)
    if error != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        _, size = nvrtc.nvrtcGetProgramLogSize(program)
        log = b" " * size
        nvrtc.nvrtcGetProgramLog(program, log)
        raise CompileError(f"NVRTC failed for {arch}:\n{log.decode(errors='replace').strip()}")
    error, size = nvrtc.nvrtcGetCUBINSize(program)
    _check_nvrtc(nvrtc, error, "size the cubin")
    cubin = b" " * size
    (error,) = nvrtc.nvrtcGetCUBIN(program, cubin)
    _check_nvrtc(nvrtc, error, "read the cubin")
    nvrtc.nvrtcDestroyProgram(program)
    return cubin


def _include_directories() -> list[str]:
    """Where the CUDA headers (cuda_fp16.h...) are: the toolkit's or the pip packages'."""
    candidates = [Path(os.environ[variable]) / "include"
                  for variable in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(variable)]
    candidates += sorted(Path("/usr/local").glob("cuda*/include"))
    try:
        import nvidia

        for root in nvidia.__path__:
            candidates += sorted(Path(root).glob("*/include"))
    except ImportError:
        pass
    return [str(path) for path in candidates if (path / "cuda_fp16.h").is_file()]


def _check_nvrtc(nvrtc, error, what: str) -> None:
    if error != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise CompileError(f"NVRTC could not {what}: {error.name}")


__all__ = ["CompileError", "compile", "compile_source", "find_nvcc"]
