"""What converted Python 2.7 code needs at run time, and how its lines map back to the original.

The conversion itself (fissix) is the publisher's (``publisher/python2.py``); a template needs only
the helpers that converted ``/`` and ``/=`` call (put into builtins) and, for tracebacks on the
published lines, the line map and the published source's text.
"""
from __future__ import annotations

import io
import numbers
import sys
import tokenize

DIV_NAME = "__py2_div__"
IDIV_NAME = "__py2_idiv__"


def py2_div(a, b):
    """Python 2's ``/``: floor division when both sides are integers (Python ints and bools,
    NumPy integer scalars, NumPy integer arrays, as NumPy 1.11 on Python 2 did), true
    division otherwise (floats, and pandas objects, whose ``/`` was true division in pandas
    0.18 on Python 2 as well)."""
    if isinstance(a, numbers.Integral) and isinstance(b, numbers.Integral):
        return a // b
    np = sys.modules.get("numpy")
    if np is not None and (type(a) is np.ndarray or type(b) is np.ndarray) and _integer(a, np) and _integer(b, np):
        return np.floor_divide(a, b)
    return a / b


def py2_idiv(a, b):
    """Python 2's ``a /= b``, as ``a = __py2_idiv__(a, b)``: integers floor; an array or a
    pandas object is divided in place (so other names for it see the change, as before)."""
    if isinstance(a, numbers.Integral) and isinstance(b, numbers.Integral):
        return a // b
    np = sys.modules.get("numpy")
    if np is not None and type(a) is np.ndarray and _integer(a, np) and _integer(b, np):
        return np.floor_divide(a, b, out=a)
    a /= b
    return a


def _integer(x, np) -> bool:
    return isinstance(x, numbers.Integral) or (type(x) is np.ndarray and x.dtype.kind in "iub")


def decode(source: bytes) -> tuple[str, str]:
    """The text of a source file and its encoding: its PEP 263 cookie, else UTF-8; Latin-1 only
    so that undecodable bytes never raise here (such a file is not taken as Python 2)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
        return source.decode(encoding), encoding
    except (SyntaxError, LookupError, UnicodeDecodeError):
        return source.decode("latin-1"), "latin-1"


def source_lines(text: str) -> list[str]:
    """Lines as Python counts them: ends are \\n, \\r\\n or \\r only (``str.splitlines`` also
    splits at form feeds and other separators, which would shift every line after them)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def original_line(line_map: list[int] | None, line: int) -> int:
    if line_map is None or not 1 <= line <= len(line_map):
        return line
    return line_map[line - 1]
