"""Two functions in one file (pick one with --func) and a constant shared by both."""

from tilepipe import script as T

TILE = 8


@T.prim_func
def fill(A: T.Buffer((TILE, TILE), "int32")):
    for i, in_range in T.grid(TILE, TILE):
        A[i, in_range] = i * TILE + in_range


@T.prim_func
def clear(A: T.Buffer((TILE * TILE,), "int32")):
    for i in T.serial(TILE * TILE):
        A[i] = 0
