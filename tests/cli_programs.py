"""Program files for the command-line tests: the ``tile_copy`` loop that the timeline and
tune commands are run on, and writing a program text where a command can read it."""

from __future__ import annotations

from pathlib import Path

TILE_COPY = '''
from tilepipe import script as T


@T.prim_func
def tile_copy(A: T.Buffer[(64, WIDTH), "float16"], C: T.Buffer[(64, WIDTH), "float32"]):
    for tx in T.thread_binding(0, 128, thread="threadIdx.x"):
        for i in T.serial(0, 64, annotations={"software_pipeline_num_stages": STAGES}):
            with T.block():
                T.reads(A[i, tx * ELEMENTS:tx * ELEMENTS + ELEMENTS])
                T.writes(C[i, tx * ELEMENTS:tx * ELEMENTS + ELEMENTS])
                B = T.alloc_buffer((WIDTH,), dtype="float16", scope="shared")
                with T.block():
                    T.reads(A[i, tx * ELEMENTS:tx * ELEMENTS + ELEMENTS])
                    T.writes(B[tx * ELEMENTS:tx * ELEMENTS + ELEMENTS])
                    for v in T.vectorized(ELEMENTS):
                        B[tx * ELEMENTS + v] = A[i, tx * ELEMENTS + v]
                with T.block():
                    T.reads(B[tx * ELEMENTS:tx * ELEMENTS + ELEMENTS])
                    T.writes(C[i, tx * ELEMENTS:tx * ELEMENTS + ELEMENTS])
                    for v in T.serial(ELEMENTS):
                        C[i, tx * ELEMENTS + v] = T.Cast("float32", B[tx * ELEMENTS + v]) * \\
                            T.float32(2)
'''


def tile_copy_source(elements: int, num_stages: int) -> str:
    """64 rows, each copied by 128 threads, ``elements`` float16 apiece, into shared
    memory and written back doubled as float32; the loop over rows has ``num_stages``."""
    return TILE_COPY.replace("WIDTH", str(128 * elements)).replace(
        "ELEMENTS", str(elements)).replace("STAGES", str(num_stages))


def write_program(directory: Path, text: str, name: str) -> str:
    """The path of the file ``name`` in ``directory``, holding ``text``."""
    path = directory / name
    path.write_text(text)
    return str(path)
