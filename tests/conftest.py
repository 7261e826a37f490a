"""Hypothesis draws the same examples on every run, so that a test run is reproducible;
``python3 -m pytest tests --hypothesis-profile explore`` draws new ones."""

from hypothesis import settings

settings.register_profile("reproducible", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile("reproducible")
