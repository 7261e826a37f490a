"""The reference interpreter with asynchronous semantics, race detector and trace.

:func:`simulate` runs a function on NumPy arrays; :func:`verify` proves it race-free
(or reports each race) and ``verify.max_safe_counts`` checks that every wait is exact;
:func:`trace` lists one thread's synchronization events; :mod:`.intrinsics` is where
opaque calls get their semantics.
"""

from . import intrinsics
from .exactness import WaitCount, max_safe_counts
from .races import Race, VerifyReport, verify
from .simulate import random_inputs, simulate
from .trace import trace

verify.max_safe_counts = max_safe_counts

__all__ = ["Race", "VerifyReport", "WaitCount", "intrinsics", "max_safe_counts",
           "random_inputs", "simulate", "trace", "verify"]
