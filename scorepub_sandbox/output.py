"""What a script returned, translated into the output table (contract.md, "What the script
returns" and "Output translation"). Runs inside the worker, before anything leaves it."""
from __future__ import annotations

import base64
import datetime as dt
import math

import numpy as np
import pandas as pd

from .table import Column, Table


class ReturnValueError(Exception):
    """The script returned something that is not a DataFrame (nor a sequence starting with one)."""


def _kind(value) -> str:
    return "None" if value is None else f"a value of type {type(value).__name__}"


def pick_frame(returned) -> pd.DataFrame:
    if isinstance(returned, pd.DataFrame):
        return returned
    if isinstance(returned, (tuple, list)) or (isinstance(returned, np.ndarray) and returned.dtype == object
                                               and returned.ndim > 0):
        if len(returned) == 0:
            raise ReturnValueError(f"azureml_main returned an empty {type(returned).__name__}; "
                                   "return a DataFrame or a sequence whose first element is a DataFrame")
        first = returned[0] if not isinstance(returned, np.ndarray) else returned.flat[0]
        if isinstance(first, pd.DataFrame):
            return first
        raise ReturnValueError(f"azureml_main returned a {type(returned).__name__} whose first element is "
                               f"{_kind(first)}, not a DataFrame")
    raise ReturnValueError(f"azureml_main returned {_kind(returned)}; return a DataFrame or a sequence "
                           "whose first element is a DataFrame")


def unique_names(names: list[str]) -> list[str]:
    """First occurrence keeps its name; later ones get " (1)", " (2)", ... skipping taken names."""
    taken, seen, out = set(names), set(), []
    for name in names:
        if name not in seen:
            seen.add(name)
            out.append(name)
            continue
        k = 1
        while f"{name} ({k})" in taken:
            k += 1
        new = f"{name} ({k})"
        taken.add(new)
        seen.add(new)
        out.append(new)
    return out


def translate(returned) -> tuple[Table, list[str]]:
    """The output table and the notes for the call log."""
    frame = pick_frame(returned)
    notes = []
    if not (isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1):
        notes.append(f"the returned index ({type(frame.index).__name__}) was dropped")
    names = unique_names([str(n) for n in frame.columns])
    columns = [_column(names[i], series, notes) for i, (_, series) in enumerate(frame.items())]
    return Table(columns, len(frame)), notes


def _column(name: str, s: pd.Series, notes: list) -> Column:
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        s = s.astype(object)
        dtype = s.dtype
    if pd.api.types.is_bool_dtype(dtype):
        if isinstance(dtype, np.dtype):
            return Column(name, "boolean", s.to_numpy(dtype=bool))
        mask = s.isna().to_numpy()
        return Column(name, "boolean", s.to_numpy(dtype=bool, na_value=False), mask if mask.any() else None, True)
    if pd.api.types.is_integer_dtype(dtype):
        label = "Int32" if dtype.itemsize <= 4 else "Int64"
        if dtype.kind == "u" and dtype.itemsize == 8 and len(s) and s.max() > np.iinfo(np.int64).max:
            return _column(name, s.astype("float64"), notes)
        mask = s.isna().to_numpy() if not isinstance(dtype, np.dtype) else None
        data = s.to_numpy(dtype=np.int64, na_value=0) if mask is not None else s.to_numpy(dtype=np.int64)
        return Column(name, "integer", data, mask if mask is not None and mask.any() else None, mask is not None,
                      label)
    if pd.api.types.is_float_dtype(dtype):
        data = s.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isinf(data).any():
            notes.append(f"column '{name}': inf/-inf returned as null")
            data = np.where(np.isinf(data), np.nan, data)
        return Column(name, "double", data, nullable=True)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        if getattr(dtype, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        try:  # pandas 2 has units other than ns (as_unit); pandas 1.5's datetime64 is always ns
            data = (s.dt.as_unit("ns") if hasattr(s.dt, "as_unit") else s).to_numpy().view(np.int64)
        except pd.errors.OutOfBoundsDatetime:  # e.g. 9999-12-31 in a datetime64[us] column: ISO text as it is
            data = np.empty(len(s), dtype=object)
            data[:] = [_cell(v, []) for v in s.astype(object)]
            return Column(name, "string", data, nullable=True, label="DateTime")
        return Column(name, "datetime", data, nullable=True)
    return _object_column(name, s, notes)


def _object_column(name: str, s: pd.Series, notes: list) -> Column:
    values = s.to_numpy(dtype=object)
    kinds = set(map(type, values))
    if kinds <= {str, type(None)}:
        return Column(name, "string", values, nullable=True)
    inf_seen = []
    cells = [_cell(v, inf_seen) for v in values]
    if inf_seen:
        notes.append(f"column '{name}': inf/-inf returned as null")
    data = np.empty(len(cells), dtype=object)
    data[:] = cells
    present = {type(c) for c in cells if c is not None}
    if present <= {str}:
        return Column(name, "string", data, nullable=True)
    if present <= {bool}:
        label = "Boolean"
    elif present <= {int}:
        label = "Int64"
    elif present <= {int, float}:
        label = "Double"
    else:
        label = "String"
    return Column(name, "json", data, nullable=True, label=label)


def _cell(v, inf_seen):
    """One object cell as a JSON value (contract.md, "Output translation")."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return None
        if math.isinf(v):
            inf_seen.append(True)
            return None
        return float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, (pd.Timestamp, dt.datetime, np.datetime64)):
        ts = pd.Timestamp(v)
        if ts is pd.NaT:
            return None
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        return ts.isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode("ascii")
    try:
        return str(v)
    except Exception as exc:  # a hostile __str__ must not take the call down
        return f"<unprintable {type(v).__name__}: {type(exc).__name__}>"
