"""How the host starts a sandbox process (the fork server, the probe) under any Python interpreter.

A service version may run in a Python environment of its own that holds its scripts' packages
(numpy, pandas, ...) but none of the server's. Its interpreter is run isolated (``-I``: no
PYTHON* variables, no user site-packages, not the current folder on the path) with :data:`BOOT`,
which loads this package alone from scorepub's install folder (read, never written), so neither
``publisher``, ``serving`` nor the server's site-packages are within its reach.

Standard library only and free of side effects: the host imports it to build the command.
"""
from __future__ import annotations

import importlib
import io
import os
import sys

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

# argv: PACKAGE_DIR, module, args...; loads the package from PACKAGE_DIR under its own name
BOOT = (
    "import importlib.util as u, sys\n"
    "d = sys.argv[1]\n"
    "s = u.spec_from_file_location('scorepub_sandbox', d + '/__init__.py', submodule_search_locations=[d])\n"
    "m = sys.modules['scorepub_sandbox'] = u.module_from_spec(s)\n"
    "s.loader.exec_module(m)\n"
    "from scorepub_sandbox import launch\n"
    "sys.exit(launch.enter(sys.argv[2], sys.argv[3:]))\n"
)


def command(python: str, module: str, *args) -> list[str]:
    """The argv that runs ``scorepub_sandbox.<module>.main(args)`` under ``python``."""
    return [str(python), "-I", "-c", BOOT, PACKAGE_DIR, module, *map(str, args)]


def enter(module: str, args: list[str]) -> int:
    """In the started interpreter: run the module's ``main``. ``-I`` ignores the variables
    the pool sets for this (PYTHONDONTWRITEBYTECODE, PYTHONUNBUFFERED), so they are applied here:
    nothing is written into scorepub's install folder, and a script's prints and its C code's
    writes reach the log in the order they were made."""
    sys.dont_write_bytecode = True
    _unbuffered_stdio()
    return importlib.import_module(f"{__package__}.{module}").main(list(args))


def _unbuffered_stdio() -> None:
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            continue
        raw = io.FileIO(fd, "w", closefd=False)
        unbuffered = io.TextIOWrapper(raw, encoding=stream.encoding, errors=stream.errors, write_through=True)
        setattr(sys, name, unbuffered)
        setattr(sys, f"__{name}__", unbuffered)  # what the worker restores after a call's capture
