"""Disassembly of cubins (``cuobjdump -sass``) and a count of their cp.async instructions.

cuobjdump is found on PATH, under CUDA_HOME, or in the ``nvidia-cuda-cuobjdump`` pip
package (whose sibling ``nvidia-cuda-nvdisasm`` provides the disassembler it runs).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from ...errors import TilepipeError


def find_cuobjdump() -> str | None:
    found = shutil.which("cuobjdump")
    if found:
        return found
    candidates = []
    for variable in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(variable):
            candidates.append(Path(os.environ[variable]) / "bin")
    try:
        import nvidia

        for root in nvidia.__path__:
            candidates.extend(sorted(Path(root).glob("*/bin")))
    except ImportError:
        pass
    for directory in candidates:
        if (directory / "cuobjdump").is_file():
            return str(directory / "cuobjdump")
    return None


def disassemble(cubin: bytes) -> str:
    """The SASS text of a cubin."""
    tool = find_cuobjdump()
    if tool is None:
        raise TilepipeError("cuobjdump not found: install the nvidia-cuda-cuobjdump and "
                            "nvidia-cuda-nvdisasm packages or put the CUDA toolkit on PATH")
    environment = dict(os.environ)
    environment["PATH"] = str(Path(tool).parent) + os.pathsep + environment.get("PATH", "")
    with tempfile.TemporaryDirectory(prefix="tilepipe-") as directory:
        path = Path(directory) / "kernel.cubin"
        path.write_bytes(cubin)
        result = subprocess.run([tool, "-sass", str(path)], capture_output=True, text=True,
                                env=environment)
    if result.returncode != 0:
        raise TilepipeError(f"cuobjdump failed: {result.stderr.strip()}")
    return result.stdout


_INSTRUCTION = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);")


def async_instruction_counts(sass: str) -> Counter:
    """How many ``LDGSTS`` (cp.async), ``LDGDEPBAR`` (commit) and ``DEPBAR <n>`` (wait_group
    n) instructions the SASS holds, and ``BAR.SYNC`` barriers; keys ``"LDGSTS"``,
    ``"LDGDEPBAR"``, ``("DEPBAR", n)``, ``"BAR.SYNC"``."""
    counts: Counter = Counter()
    for opcode, operands in _INSTRUCTION.findall(sass):
        if opcode.startswith("LDGSTS"):
            counts["LDGSTS"] += 1
        elif opcode == "LDGDEPBAR":
            counts["LDGDEPBAR"] += 1
        elif opcode.startswith("DEPBAR"):
            count = re.search(r"SB0,\s*(0x[0-9a-f]+|\d+)", operands)
            if count:
                counts[("DEPBAR", int(count.group(1), 0))] += 1
        elif opcode.startswith("BAR.SYNC"):
            counts["BAR.SYNC"] += 1
    return counts
