"""Backend test fixtures: each kernel is lowered and compiled once per session; tests
marked ``gpu`` run only where a CUDA GPU is present."""

import pytest

from tilepipe.backend.cuda.runtime import _present_arch


def pytest_collection_modifyitems(config, items):
    if _present_arch() is not None:
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
