"""Scalar parameters used in loop extents, conditions and values."""

from tilepipe import script as T


@T.prim_func
def saxpy(X: T.Buffer((1024,), "float32"), Y: T.Buffer((1024,), "float32"), n: T.int32,
          alpha: T.float32, accumulate: T.bool):
    for i in T.serial(n):
        if accumulate and i < 1024:
            Y[i] = alpha * X[i] + Y[i]
        elif i < 1024:
            Y[i] = alpha * X[i]
        else:
            T.evaluate(0)
