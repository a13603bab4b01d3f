"""Windows-style relative paths, as classic scripts wrote them, at the file-opening boundary.

Classic ran on Windows with the Script Bundle unpacked under ``.\\Script Bundle``, so scripts
open ``'.\\Script Bundle\\model.pkl'``, or build ``'Script Bundle\\' + name`` at run time. A
rewrite of string literals at publish cannot see paths built at run time, so the functions
that take a path translate it as they are called: a ``str``/``bytes``/PathLike path holding a
backslash that names nothing as given is retried with ``/`` for ``\\``. A path that exists as
given (a Linux file name may hold a backslash) is never changed, nor one without a backslash,
so the cost for every other call is one ``in`` test.
"""
from __future__ import annotations

import builtins
import functools
import glob
import io
import os

_installed = False

# os functions whose first argument is a path (os.path.exists, isfile, getsize, os.walk,
# pathlib and shutil go through these)
_FIRST_ARG = ("open", "stat", "lstat", "listdir", "scandir", "access", "mkdir", "makedirs", "remove", "unlink",
              "rmdir", "chdir", "utime")
_TWO_ARGS = ("rename", "replace")


def posix_path(path, _lstat=os.lstat):
    """``path`` with ``/`` for ``\\`` when it holds a backslash, names nothing as given, and
    the translated path or its folder exists (so a new file is created where classic made it,
    and a name like ``odd\\name.txt`` in a folder that does not exist stays a plain name)."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if isinstance(path, str):
        if "\\" not in path:
            return path
        swapped = path.replace("\\", "/")
    elif isinstance(path, bytes):
        if b"\\" not in path:
            return path
        swapped = path.replace(b"\\", b"/")
    else:
        return path  # a file descriptor, or what the wrapped function will refuse itself
    if _exists(path, _lstat):
        return path
    if _exists(swapped, _lstat) or _exists(os.path.dirname(swapped) or ".", _lstat):
        return swapped
    return path


def _exists(path, lstat) -> bool:
    try:
        lstat(path)
        return True
    except (OSError, ValueError):
        return False


def _first(fn):
    @functools.wraps(fn)
    def wrapper(path, *args, **kwargs):
        return fn(posix_path(path), *args, **kwargs)

    return wrapper


def _two(fn):
    @functools.wraps(fn)
    def wrapper(src, dst, *args, **kwargs):
        return fn(posix_path(src), posix_path(dst), *args, **kwargs)

    return wrapper


def _pattern(fn):
    @functools.wraps(fn)
    def wrapper(pathname, *args, **kwargs):
        if isinstance(pathname, str) and "\\" in pathname and not any(c in pathname for c in "*?["):
            pathname = posix_path(pathname)
        elif isinstance(pathname, str) and "\\" in pathname:
            pathname = pathname.replace("\\", "/")  # a Windows pattern: backslashes are separators
        return fn(pathname, *args, **kwargs)

    return wrapper


def install() -> None:
    """Translate paths in open/io.open and the os functions that take paths (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    opener = _first(builtins.open)
    builtins.open = opener
    io.open = opener
    for names, wrap in ((_FIRST_ARG, _first), (_TWO_ARGS, _two)):
        for name in names:
            original = getattr(os, name)
            wrapper = wrap(original)
            setattr(os, name, wrapper)
            # shutil and others ask these sets whether fd-based calls are available
            for supported in (os.supports_dir_fd, os.supports_fd, os.supports_follow_symlinks,
                              os.supports_effective_ids):
                if original in supported:
                    supported.add(wrapper)
    glob.glob = _pattern(glob.glob)
    glob.iglob = _pattern(glob.iglob)
