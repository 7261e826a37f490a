"""Passes from IR to IR; :func:`inject_software_pipeline` is the software pipeliner."""

from .pipeline import inject_software_pipeline

__all__ = ["inject_software_pipeline"]
