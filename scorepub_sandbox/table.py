"""A typed, column-oriented table: what crosses the web/worker boundary and what a schema describes.

Columns hold NumPy arrays, never per-row Python objects where a dtype exists, so a 100k-row
request moves as a handful of buffers. The dtype a script sees for each schema type is fixed
here, in one place (contract.md, "Schema column types and their pandas dtypes").
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

TYPES = ("string", "integer", "double", "boolean", "datetime")
NAT = np.iinfo(np.int64).min  # datetime64's NaT as int64

# classic ColumnType label of each type, as the classic table format reports it
CLASSIC_LABELS = {
    "string": "String",
    "integer": "Int64",
    "double": "Double",
    "boolean": "Boolean",
    "datetime": "DateTime",
    "json": "String",
}


@dataclasses.dataclass
class Column:
    """One column.

    ``data`` by type: string -> object array of str/None; integer -> int64; double -> float64
    (NaN missing); boolean -> bool; datetime -> int64 nanoseconds since the epoch, UTC (NaT is
    int64 min); json (outputs only: a column of mixed JSON values) -> object array.
    ``mask`` marks missing values of integer and boolean columns (True = missing).
    """

    name: str
    type: str
    data: np.ndarray
    mask: np.ndarray | None = None
    nullable: bool = False
    label: str | None = None  # classic ColumnType; defaults from ``type``

    @property
    def classic_label(self) -> str:
        return self.label or CLASSIC_LABELS[self.type]

    def to_series(self) -> pd.Series:
        """The pandas Series a script receives for this column."""
        return pd.Series(self.frame_value(), name=self.name, copy=False)

    def frame_value(self):
        """What ``pd.DataFrame({...})`` should get for this column: its dtype exactly, no copy."""
        t = self.type
        if t in ("string", "json"):
            return pd.Series(self.data, dtype=object, copy=False)  # not pandas 3's inferred "str"
        if t == "datetime":
            return self.data.view("datetime64[ns]")
        if t in ("integer", "boolean") and self.nullable:
            mask = self.mask if self.mask is not None else np.zeros(len(self.data), dtype=bool)
            return (pd.arrays.IntegerArray if t == "integer" else pd.arrays.BooleanArray)(self.data, mask)
        return self.data

    def to_pylist(self) -> list:
        """Values as JSON-ready Python objects: missing -> None, datetimes -> ISO 8601 strings."""
        t = self.type
        if t in ("string", "json"):
            return self.data.tolist()
        if t == "double":
            values = self.data.tolist()
            bad = ~np.isfinite(self.data)
            if bad.any():
                for i in np.flatnonzero(bad).tolist():
                    values[i] = None
            return values
        if t == "datetime":
            return datetime_strings(self.data)
        values = self.data.tolist()
        if self.mask is not None and self.mask.any():
            for i in np.flatnonzero(self.mask).tolist():
                values[i] = None
        return values


@dataclasses.dataclass
class Table:
    columns: list[Column]
    n_rows: int

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame with a default RangeIndex and the schema's dtypes, in column order."""
        if not self.columns:
            return pd.DataFrame(index=pd.RangeIndex(self.n_rows))
        frame = pd.DataFrame({c.name: c.frame_value() for c in self.columns}, index=pd.RangeIndex(self.n_rows),
                             copy=False)
        frame.columns = pd.Index(self.names, dtype=object)
        return frame

    def to_rows(self) -> list[dict]:
        lists = [c.to_pylist() for c in self.columns]
        names = self.names
        return [dict(zip(names, row)) for row in zip(*lists)] if lists else [{} for _ in range(self.n_rows)]


def datetime_strings(data: np.ndarray) -> list:
    """ISO 8601 strings for int64 nanoseconds, in the finest unit any value needs; NaT -> None."""
    missing = data == NAT
    present = data[~missing]
    unit = "ns"
    for candidate, step in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if not (present % step).any():
            unit = candidate
            break
    out = np.datetime_as_string(data.view("datetime64[ns]"), unit=unit).tolist()
    for i in np.flatnonzero(missing).tolist():
        out[i] = None
    return out
