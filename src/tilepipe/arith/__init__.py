"""Arithmetic: simplification, proofs and bounds under loop ranges, region inference."""

from .analyzer import Analyzer
from .linear import LinearForm, structural_key, variables_of
from .region import declare_regions, detect_affine, infer_regions, relax_region

__all__ = [
    "Analyzer", "LinearForm", "declare_regions", "detect_affine", "infer_regions", "relax_region",
    "structural_key", "variables_of",
]
