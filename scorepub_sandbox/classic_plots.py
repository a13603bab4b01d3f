"""Plots as the classic "Python Device" port made them: Agg only, and one call's figures only.

Classic scripts ask for backends that cannot work here (``matplotlib.use('TkAgg')``: no
tkinter, no display) and draw through pyplot's implicit state, which a warm worker would
carry from one call to the next (the third call's PNG showing three lines).

A version's Python environment need not have matplotlib: then there is nothing to set up.
"""
from __future__ import annotations

import functools
import importlib.util
import sys


def available() -> bool:
    """Whether this interpreter can import matplotlib (looked up, not imported)."""
    return importlib.util.find_spec("matplotlib") is not None


def force_agg() -> None:
    """Select Agg now, and keep it whatever backend a script asks for later (where matplotlib is
    installed at all)."""
    if not available():
        return
    import matplotlib

    matplotlib.use("Agg")
    if getattr(matplotlib.use, "_scorepub_agg", False):
        return

    @functools.wraps(matplotlib.use)
    def use(backend, *args, **kwargs):
        return use.__wrapped__("Agg", *args, **kwargs)

    use._scorepub_agg = True
    matplotlib.use = use
    import matplotlib.pyplot as plt

    @functools.wraps(plt.switch_backend)
    def switch_backend(newbackend):
        return switch_backend.__wrapped__("agg")

    plt.switch_backend = switch_backend


def close_figures() -> None:
    """Close every pyplot figure (after each call), if the script imported pyplot at all."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close("all")
