"""Turn request values into typed columns, following a port's schema (contract.md).

Each type has one cell rule (:func:`convert_cell`), the reference for what is accepted.
The common case, a column whose values are all of the expected JSON type, is converted
whole by NumPy/pandas; only a column that fails that path is walked cell by cell, which
both converts mixed inputs (the classic table format sends numbers as strings) and names
the first bad row.
"""
from __future__ import annotations

import datetime as _dt
import operator
import re

import numpy as np
import pandas as pd

from scorepub_sandbox.table import NAT, Column, Table

MISSING = object()  # a row that lacks the column's key
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# the one truth table for boolean text: matched after strip() and lower()
_BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False}
# the same words in the spellings looked up as they are by the whole-column path (anything else,
# padded or in mixed case, goes cell by cell through _BOOL_WORDS)
_BOOL_EXACT = {form: value for word, value in _BOOL_WORDS.items()
               for form in (word, word.capitalize(), word.upper())}
# pandas also reads "now", "today", "" and "NaT": only values that start with a date go the fast way
_ISO_DATE = re.compile(r"\s*[0-9]{4}-[0-9]{2}-[0-9]{2}")


class InputError(Exception):
    """A request value that does not fit the schema; ``target`` is like ``input1[3].age``."""

    def __init__(self, code: str, target: str, message: str):
        super().__init__(message)
        self.code = code
        self.target = target
        self.message = message


class CellError(ValueError):
    """One value cannot be converted; the message completes "<value> ..."."""


def describe(value) -> str:
    """A short rendering of a caller's value for a message: never the whole payload."""
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- cell rules -------------------------------------------------------------------------

def _cell_string(v):
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, int, float)):
        return str(v)
    raise CellError("is not a string")


def _cell_integer(v):
    if isinstance(v, bool):
        raise CellError("is not an integer")
    if isinstance(v, int):
        if not _INT64_MIN <= v <= _INT64_MAX:
            raise CellError("is out of the 64-bit integer range")
        return v
    if isinstance(v, float):
        if v.is_integer():
            return _cell_integer(int(v))
        raise CellError("is not an integer")
    if isinstance(v, str):
        try:
            if "_" in v:  # Python's int() takes "1_000"; no classic client sends that
                raise ValueError(v)
            return _cell_integer(int(v.strip()))
        except ValueError:
            raise CellError("is not an integer") from None
    raise CellError("is not an integer")


def _cell_double(v):
    if isinstance(v, bool):
        raise CellError("is not a number")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            if "_" in v:
                raise ValueError(v)
            return float(v.strip())
        except ValueError:
            raise CellError("is not a number") from None
    raise CellError("is not a number")


def _cell_boolean(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        value = _BOOL_WORDS.get(v.strip().lower())
        if value is not None:
            return value
    raise CellError("is not a boolean (true or false)")


def _cell_datetime(v):
    """ISO 8601 text to int64 nanoseconds since the epoch, UTC unless an offset is given."""
    if not isinstance(v, str):
        raise CellError("is not an ISO 8601 date-time string")
    try:
        ts = pd.Timestamp(_dt.datetime.fromisoformat(v.strip()))
    except ValueError:
        raise CellError("is not an ISO 8601 date-time") from None
    try:
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        return int(ts.as_unit("ns").value)
    except (ValueError, OverflowError):  # pandas' OutOfBoundsDatetime is a ValueError
        raise CellError("is outside the datetime range (years 1677 to 2262)") from None


_CELL = {
    "string": _cell_string,
    "integer": _cell_integer,
    "double": _cell_double,
    "boolean": _cell_boolean,
    "datetime": _cell_datetime,
}


def convert_cell(type_: str, value):
    """Convert one non-null value to the Python value of ``type_``, or raise CellError."""
    return _CELL[type_](value)


# -- whole columns ----------------------------------------------------------------------

def _fast(type_: str, values: list, kinds: set):
    """Convert a column whose values are all of the natural JSON type; None if not applicable."""
    if type_ == "string" and kinds <= {str}:
        return np.array(values, dtype=object) if values else np.empty(0, dtype=object)
    if type_ == "double" and kinds <= {int, float}:
        return np.array(values, dtype=np.float64)
    if type_ == "integer" and kinds <= {int}:
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:
            return None
    if type_ == "boolean" and kinds <= {bool}:
        return np.array(values, dtype=bool)
    if type_ in ("double", "integer") and kinds == {str} and "_" not in "".join(values):
        try:  # NumPy parses the text in C; anything odd goes cell by cell for the exact error
            return np.array(values, dtype=np.float64 if type_ == "double" else np.int64)
        except (ValueError, OverflowError):
            return None
    if type_ == "boolean" and kinds == {str}:
        mapped = list(map(_BOOL_EXACT.get, values))
        return None if None in mapped else np.array(mapped, dtype=bool)
    if type_ == "datetime" and kinds <= {str}:
        if not all(_ISO_DATE.match(v) for v in values if v is not None):
            return None
        try:
            idx = pd.to_datetime(values, utc=True, format="ISO8601").tz_convert(None).as_unit("ns")
        except (ValueError, TypeError, OverflowError):  # e.g. out of the ns range: the slow path names it
            return None
        return np.asarray(idx.asi8, dtype=np.int64)
    return None


_EMPTY = {
    "string": lambda n: np.empty(n, dtype=object),
    "integer": lambda n: np.zeros(n, dtype=np.int64),
    "double": lambda n: np.full(n, np.nan),
    "boolean": lambda n: np.zeros(n, dtype=bool),
    "datetime": lambda n: np.full(n, NAT, dtype=np.int64),
}


def coerce_values(spec, values: list, port: str) -> Column:
    """Build the column ``spec`` describes from one value per row (None = null)."""
    type_, n = spec.type, len(values)
    kinds = set(map(type, values))
    has_null = type(None) in kinds
    mask = None
    if has_null:
        mask = np.fromiter((v is None for v in values), dtype=bool, count=n)
        if not spec.nullable:
            row = int(np.argmax(mask))
            raise InputError(
                "NullValue", f"{port}[{row}].{spec.name}",
                f"Column '{spec.name}' of row {row}: null is not allowed (the column is not nullable).",
            )
        kinds.discard(type(None))
        if type_ in ("integer", "boolean"):
            fill = 0 if type_ == "integer" else False
            if kinds == {str}:  # keep the column all text, so the vectorized text path applies
                fill = "0" if type_ == "integer" else "false"
            values = [fill if v is None else v for v in values]
        elif type_ == "double" and kinds == {str}:
            values = ["nan" if v is None else v for v in values]
    data = _fast(type_, values, kinds)
    if data is None:
        data = _slow(spec, values, port, mask)
    if type_ == "double" and not spec.nullable:
        bad = np.isnan(data)
        if bad.any():
            row = int(np.argmax(bad))
            raise InputError(
                "NullValue", f"{port}[{row}].{spec.name}",
                f"Column '{spec.name}' of row {row}: NaN is not allowed (the column is not nullable).",
            )
    return Column(spec.name, type_, data, mask if type_ in ("integer", "boolean") else None,
                  nullable=spec.nullable)


def _slow(spec, values, port, null_mask):
    """Cell-by-cell conversion; raises InputError naming the first bad row."""
    rule = _CELL[spec.type]
    out = _EMPTY[spec.type](len(values))
    for i in range(len(values)):
        if null_mask is not None and null_mask[i]:
            continue
        v = values[i]
        try:
            out[i] = rule(v)
        except CellError as exc:
            raise InputError(
                "InputParseError", f"{port}[{i}].{spec.name}",
                f"Column '{spec.name}' of row {i}: {describe(v)} {exc}.",
            ) from None
    return out


def rows_to_table(port: str, port_spec, rows, max_rows: int) -> Table:
    """Convert the native "rows" shape (a list of objects) of one port."""
    if not isinstance(rows, list):
        raise InputError("InputParseError", port, f"'{port}' must be a list of row objects.")
    check_row_count(port, port_spec, len(rows), max_rows)
    if rows and set(map(type, rows)) != {dict}:
        row = next(i for i, r in enumerate(rows) if not isinstance(r, dict))
        raise InputError("InputParseError", f"{port}[{row}]",
                         f"Row {row} of '{port}' is {describe(rows[row])}, not an object.")
    names = [c.name for c in port_spec.columns]
    keys = set().union(*rows) if rows else set()
    extra = _ordered_keys(rows, keys - set(names))
    if extra and port_spec.extra_columns != "allow":
        first = extra[0]
        row = next(i for i, r in enumerate(rows) if first in r)
        raise InputError("UnexpectedColumn", f"{port}[{row}].{first}",
                         f"Column '{_short(first)}' of row {row} is not in the schema of '{port}'.")
    columns = []
    for spec in port_spec.columns:
        try:
            values = list(map(operator.itemgetter(spec.name), rows))
        except KeyError:
            values = [r.get(spec.name, MISSING) for r in rows]
            _fill_missing(port, spec, values)
        columns.append(coerce_values(spec, values, port))
    for name in extra:
        data = np.empty(len(rows), dtype=object)
        data[:] = [r.get(name) for r in rows]
        columns.append(Column(name, "json", data, nullable=True))
    return Table(columns, len(rows))


def _fill_missing(port, spec, values):
    if not spec.has_default:
        row = next(i for i, v in enumerate(values) if v is MISSING)
        raise InputError("MissingColumn", f"{port}[{row}].{spec.name}",
                         f"Row {row} of '{port}' lacks the required column '{spec.name}'.")
    for i, v in enumerate(values):
        if v is MISSING:
            values[i] = spec.default


def _ordered_keys(rows, wanted):
    """``wanted`` keys in order of first appearance (for stable extra columns)."""
    if not wanted:
        return []
    seen = []
    for r in rows:
        for k in r:
            if k in wanted and k not in seen:
                seen.append(k)
        if len(seen) == len(wanted):
            break
    return seen


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_row_count(port, port_spec, n, max_rows):
    upper = min(port_spec.max_rows, max_rows)
    if n < port_spec.min_rows:
        raise InputError("RowCount", port,
                         f"'{port}' has {n} rows; at least {port_spec.min_rows} are required.")
    if n > upper:
        raise InputError("RowCount", port, f"'{port}' has {n} rows; at most {upper} are allowed.")


def columns_to_table(port: str, port_spec, names, data, max_rows: int) -> Table:
    """Convert the column-oriented shape (pandas "split", classic ColumnNames/Values) of one port.

    ``data`` is a list of rows (each a list, one value per name); columns are built by
    transposing once, never through per-row dicts.
    """
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InputError("InputParseError", f"{port}.columns", f"The column names of '{port}' must be a list of strings.")
    if len(set(names)) != len(names):
        dupe = next(n for n in names if names.count(n) > 1)
        raise InputError("InputParseError", f"{port}.columns", f"Column '{_short(dupe)}' of '{port}' is named twice.")
    if not isinstance(data, list):
        raise InputError("InputParseError", f"{port}.data", f"The data of '{port}' must be a list of rows.")
    check_row_count(port, port_spec, len(data), max_rows)
    width = len(names)
    if data and (set(map(type, data)) != {list} or set(map(len, data)) != {width}):
        row = next(i for i, r in enumerate(data) if not isinstance(r, list) or len(r) != width)
        what = f"has {len(data[row])} values" if isinstance(data[row], list) else f"is {describe(data[row])}"
        raise InputError("InputParseError", f"{port}[{row}]",
                         f"Row {row} of '{port}' {what}; it must be a list of {width} values, one per column.")
    # one pass per column over the rows (widths are checked above): no tuples per row
    transposed = {name: list(map(operator.itemgetter(j), data)) for j, name in enumerate(names)}
    return named_columns_to_table(port, port_spec, transposed, len(data))


def named_columns_to_table(port: str, port_spec, columns_by_name: dict, n_rows: int) -> Table:
    """Typed columns from one list of values per column name (names unique, lengths checked)."""
    known = {c.name for c in port_spec.columns}
    extra = [n for n in columns_by_name if n not in known]
    if extra and port_spec.extra_columns != "allow":
        raise InputError("UnexpectedColumn", f"{port}.{_short(extra[0])}",
                         f"Column '{_short(extra[0])}' is not in the schema of '{port}'.")
    columns = []
    for spec in port_spec.columns:
        if spec.name in columns_by_name:
            values = columns_by_name[spec.name]
        elif spec.has_default:
            values = [spec.default] * n_rows
        else:
            raise InputError("MissingColumn", f"{port}.{spec.name}",
                             f"Column '{spec.name}' of '{port}' is required but missing.")
        columns.append(coerce_values(spec, values, port))
    for name in extra:
        values = np.empty(n_rows, dtype=object)
        values[:] = columns_by_name[name]
        columns.append(Column(name, "json", values, nullable=True))
    return Table(columns, n_rows)
