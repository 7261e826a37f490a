"""Integer intervals with open ends: the fast path of bound reasoning.

An interval is a pair ``(lo, hi)`` of Python ints where ``None`` means unbounded on
that side. Every operation over-approximates: the true set of values always lies inside
the interval it returns, so proofs drawn from it are sound.
"""

from __future__ import annotations

from typing import Optional

Interval = tuple[Optional[int], Optional[int]]  # (lo, hi); None is unbounded

EVERYTHING: Interval = (None, None)

DTYPE_LIMITS = {
    "bool": (0, 1),
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint8": (0, 2**8 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}


def point(value: int) -> Interval:
    return (value, value)


def dtype_interval(dtype: str) -> Interval:
    """The values a dtype can hold where that is a useful bound (narrow and unsigned types)."""
    return DTYPE_LIMITS.get(dtype, EVERYTHING)


def add(a: Interval, b: Interval) -> Interval:
    lo = None if a[0] is None or b[0] is None else a[0] + b[0]
    hi = None if a[1] is None or b[1] is None else a[1] + b[1]
    return (lo, hi)


def negate(a: Interval) -> Interval:
    return (None if a[1] is None else -a[1], None if a[0] is None else -a[0])


def scale(a: Interval, factor: int) -> Interval:
    if factor == 0:
        return (0, 0)
    lo = None if a[0] is None else a[0] * factor
    hi = None if a[1] is None else a[1] * factor
    return (lo, hi) if factor > 0 else (hi, lo)


def multiply(a: Interval, b: Interval) -> Interval:
    if a[0] is not None and a[0] == a[1]:
        return scale(b, a[0])
    if b[0] is not None and b[0] == b[1]:
        return scale(a, b[0])
    if None in a or None in b:
        signs_known = _nonnegative(a) and _nonnegative(b)
        if signs_known:
            hi = None if a[1] is None or b[1] is None else a[1] * b[1]
            return (a[0] * b[0], hi)
        return EVERYTHING
    products = [x * y for x in a for y in b]
    return (min(products), max(products))


def _nonnegative(a: Interval) -> bool:
    return a[0] is not None and a[0] >= 0


def floordiv(a: Interval, divisor: int) -> Interval:
    """Bounds of ``a // divisor`` for a nonzero constant divisor."""
    if divisor < 0:
        return floordiv(negate(a), -divisor)
    lo = None if a[0] is None else a[0] // divisor
    hi = None if a[1] is None else a[1] // divisor
    return (lo, hi)


def floormod(a: Interval, divisor: int) -> Interval:
    """Bounds of ``a % divisor`` (floor semantics) for a nonzero constant divisor."""
    if divisor > 0:
        if a[0] is not None and a[1] is not None and a[0] // divisor == a[1] // divisor:
            base = (a[0] // divisor) * divisor
            return (a[0] - base, a[1] - base)
        return (0, divisor - 1)
    if a[0] is not None and a[1] is not None and a[0] // divisor == a[1] // divisor:
        base = (a[0] // divisor) * divisor
        return (a[0] - base, a[1] - base)
    return (divisor + 1, 0)


def minimum(a: Interval, b: Interval) -> Interval:
    lo = None if a[0] is None or b[0] is None else min(a[0], b[0])
    hi = b[1] if a[1] is None else a[1] if b[1] is None else min(a[1], b[1])
    return (lo, hi)


def maximum(a: Interval, b: Interval) -> Interval:
    lo = b[0] if a[0] is None else a[0] if b[0] is None else max(a[0], b[0])
    hi = None if a[1] is None or b[1] is None else max(a[1], b[1])
    return (lo, hi)


def union(a: Interval, b: Interval) -> Interval:
    lo = None if a[0] is None or b[0] is None else min(a[0], b[0])
    hi = None if a[1] is None or b[1] is None else max(a[1], b[1])
    return (lo, hi)


def intersect(a: Interval, b: Interval) -> Interval:
    lo = b[0] if a[0] is None else a[0] if b[0] is None else max(a[0], b[0])
    hi = b[1] if a[1] is None else a[1] if b[1] is None else min(a[1], b[1])
    return (lo, hi)


def is_point(a: Interval) -> bool:
    return a[0] is not None and a[0] == a[1]
