"""The classic package set: what the default serving environment offers classic scripts.

Anaconda 4.0, which classic scripts ran on, shipped these; the list also holds every package
imported by at least two of the public classic scripts measured in docs/classic-corpus.md.
`/readyz` and the admin page show the versions installed here.
"""
from __future__ import annotations

import functools
import importlib.metadata
import platform

# distribution names (what pip installs), in the order users look for them
CLASSIC_PACKAGES = ("numpy", "pandas", "scipy", "scikit-learn", "matplotlib", "statsmodels", "seaborn", "nltk",
                    "pyriemann")


@functools.cache
def installed_versions() -> dict:
    """Python's version and each classic package's, or None where one is missing."""
    versions: dict = {"python": platform.python_version()}
    for name in CLASSIC_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions
