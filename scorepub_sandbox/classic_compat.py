"""Classic (pandas 0.18 / numpy 1.11) APIs for scripts written for Azure ML Studio (classic).

Classic ran Anaconda 4.0, and its "Execute Python Script" modules call APIs that pandas and numpy
have removed since (``df.ix``, ``pd.rolling_mean``, ``np.float``...). ``install()`` runs once in
the template process, before score.py is imported, and brings them back with the semantics that
pandas 0.18 and numpy 1.11 documented.

The rule (so that scikit-learn, statsmodels, seaborn... in the same process see no difference):
a shim only changes a call that would raise without it.
* Missing names are added, and only when the name does not exist (``hasattr`` is checked first).
* A few existing methods are wrapped (``functools.wraps``); the wrapper acts only on argument forms
  that modern pandas rejects (an extra positional argument, a removed keyword) and otherwise calls
  the original with the very same arguments.
* The same holds on an older pandas or numpy (a version's own environment, e.g. pandas 1.5 with
  numpy 1.26): what it still has (``DataFrame.append``, ``fillna(method=)``...) stays its own.
* Old module paths (``pandas.tools.plotting``...) are served by a finder appended to the end of
  ``sys.meta_path``: it is asked only after every real finder has failed.
* ``pickle.load``/``loads`` retry a Python 2 pickle with ``encoding='latin1'`` only after the
  original call raised ``UnicodeDecodeError``.
* Old frequency aliases (``'M'``, ``'A'``, ``'H'``, ``'15T'``...) are translated only after the
  original call raised its "Invalid frequency" ``ValueError``: the call is retried once with the
  modern spelling (``'ME'``, ``'YE'``, ``'h'``, ``'15min'``; for periods ``'Y'``, ``'h'``...).
* matplotlib 1.5's ``plot(..., axes=ax)``: ``Axes.plot`` (which ``pyplot.plot`` calls) retries
  on ``ax`` only after the original raised "got multiple values for argument 'axes'". It is
  patched at install() when ``matplotlib.axes`` is already imported (the template imports pyplot
  first), else by a one-shot hook at the front of ``sys.meta_path`` that runs after the real
  import of ``matplotlib.axes`` and then removes itself (it finds nothing for any other name).

Pure Python: no network, no files. This module imports only the standard library (and the
standard-library-only classic_freq); ``install()``
imports pandas and numpy (already loaded by the template). ``CATALOGUE`` lists what it provides.
"""
from __future__ import annotations

import datetime as _dt
import functools
import importlib.abc
import importlib.util
import inspect
import math
import pickle
import sys
import warnings
from typing import Callable, NamedTuple

pd = None  # set by install(): the shims use modern pandas/numpy through these
np = None


class Shim(NamedTuple):
    old: str
    new: str


CATALOGUE: list[Shim] = []
_ENTRIES: list[tuple[str, str, str, Callable]] = []  # (owner, name, mode, fn)
_LABEL = {"DataFrame": "DataFrame.", "Series": "Series.", "pd": "pd.", "np": "np.", "pickle": "pickle.",
          "Axes": "Axes."}
_installed = False


def _shim(owners: str, name: str, new: str, mode: str = "add", form: str = ""):
    """Register a shim. mode: 'add' sets fn, 'value' sets fn() (built at install), 'wrap' sets
    fn(original) around an existing attribute; `form` names the old argument form a wrap serves."""
    def deco(fn):
        for owner in owners.split():
            _ENTRIES.append((owner, name, mode, fn))
            CATALOGUE.append(Shim(_LABEL[owner] + name + form, new))
        return fn
    return deco


def _value(owners: str, name: str, new: str, make: Callable) -> None:
    _shim(owners, name, new, "value")(make)


# -- .ix ------------------------------------------------------------------------------------------

def _is_int(k) -> bool:
    return isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))


def _is_null_slice(k) -> bool:
    return isinstance(k, slice) and k.start is None and k.stop is None and k.step is None


def _is_bool_key(key) -> bool:
    if isinstance(key, (pd.Series, pd.Index, np.ndarray)):
        return pd.api.types.is_bool_dtype(key.dtype)
    return isinstance(key, list) and bool(key) and all(isinstance(k, (bool, np.bool_)) for k in key)


def _classify(labels, key, setting: bool):
    """('pos'|'label'|'labels', key) for one axis, by the 0.18 .ix rules (pandas/core/indexing.py
    _IXIndexer, Index._convert_slice_indexer/_convert_list_indexer):
    * an axis is "integer" when its inferred type is 'integer' and "floating" when 'floating';
    * a scalar int is a label on integer/floating axes, a position otherwise (when setting, a label
      that exists wins and a missing one on a non-integer axis is a position);
    * a slice with int/None bounds is positional unless the axis is integer/floating (or mixed
      and the bounds are labels); label slices include both ends;
    * a list of ints is positional unless the axis is integer/floating; boolean masks are masks;
    * everything else is a label ('labels' for a list: missing labels give NaN rows on get)."""
    inferred = labels.inferred_type
    numeric = inferred in ("integer", "floating", "mixed-integer-float")
    if isinstance(key, slice):
        bounds = [v for v in (key.start, key.stop) if v is not None]
        if not bounds or numeric or not all(_is_int(v) for v in bounds):
            return "label", key
        if inferred == "mixed-integer":
            try:
                for v in bounds:
                    labels.get_loc(v)
                return "label", key
            except KeyError:
                pass
        return "pos", key
    if _is_int(key):
        if isinstance(labels, pd.MultiIndex):
            if key in labels.levels[0] or labels.levels[0].inferred_type == "integer":
                return "label", key
            return "pos", key
        if setting:
            try:
                labels.get_loc(key)
                return "label", key
            except (KeyError, TypeError, ValueError):
                return ("label" if inferred == "integer" else "pos"), key
        return ("label" if numeric else "pos"), key
    if pd.api.types.is_list_like(key) and not (isinstance(key, tuple) and isinstance(labels, pd.MultiIndex)):
        if _is_bool_key(key) or isinstance(key, (pd.DataFrame, dict)):
            return "label", key
        arr = key.values if isinstance(key, (pd.Index, pd.Series)) else np.asarray(key)
        if arr.ndim == 1 and arr.dtype.kind in "iu" and not numeric and not isinstance(labels, pd.MultiIndex):
            if inferred == "mixed-integer":
                found = labels.get_indexer(arr)
                if (found >= 0).all():
                    return "pos", found
            return "pos", arr
        return "labels", key
    return "label", key


def _take(obj, axis: int, key):
    """Select along one axis of obj with .ix semantics."""
    labels = obj.axes[axis]
    kind, key = _classify(labels, key, setting=False)
    if kind == "pos":
        return obj.iloc[key] if axis == 0 else obj.iloc[:, key]
    if kind == "labels" and labels.is_unique and not isinstance(labels, pd.MultiIndex):
        wanted = pd.Index(key)
        if not wanted.isin(labels).all() and wanted.is_unique:
            return obj.reindex(wanted, axis=axis)  # 0.18 reindexed: missing labels gave NaN
    return obj.loc[key] if axis == 0 else obj.loc[:, key]


def _positions(labels, key):
    """Positions of labels on one axis (KeyError when one is missing)."""
    if isinstance(key, slice):
        return labels.slice_indexer(key.start, key.stop, key.step)
    if _is_bool_key(key):
        if isinstance(key, pd.Series):
            key = key.reindex(labels, fill_value=False)
        return np.asarray(key, dtype=bool)
    if pd.api.types.is_list_like(key) and not isinstance(key, tuple):
        found = labels.get_indexer_for(key)
        if (found < 0).any():
            raise KeyError(key)
        return found
    return labels.get_loc(key)


class _IXIndexer:
    """pandas 0.18 ``.ix``: "A primarily label-location based indexer, with integer position
    fallback. .ix[] supports mixed integer and label based access. It is primarily label based,
    but will fall back to integer positional access unless the corresponding axis is of integer
    type." Gets and sets ``obj.ix[rows]``, ``obj.ix[rows, cols]`` with labels, positions, slices
    (label slices include the stop), lists and boolean masks; setting a missing label enlarges
    (a new column or row), as .loc does. Modern: ``.loc`` for labels, ``.iloc`` for positions."""

    __slots__ = ("_obj",)

    def __init__(self, obj):
        self._obj = obj

    def _split(self, key):
        obj = self._obj
        if callable(key):
            key = key(obj)
        if type(key) is tuple:
            key = tuple(k(obj) if callable(k) else k for k in key)
        if obj.ndim == 1 or type(key) is not tuple:
            return key, slice(None)
        if len(key) == 1:
            return key[0], slice(None)
        if len(key) != 2:
            raise pd.errors.IndexingError("Too many indexers")
        return key

    def __getitem__(self, key):
        obj = self._obj
        if obj.ndim == 2 and type(key) is tuple and isinstance(obj.index, pd.MultiIndex):
            try:  # 0.18 tried a tuple as a row label of a MultiIndex first
                return obj.loc[key]
            except (KeyError, TypeError, IndexError, pd.errors.IndexingError):
                pass
        rows, cols = self._split(key)
        if obj.ndim == 1:
            return _take(obj, 0, rows)
        if _is_null_slice(cols):
            return _take(obj, 0, rows)
        part = _take(obj, 1, cols)
        return part if _is_null_slice(rows) else _take(part, 0, rows)

    def __setitem__(self, key, value):
        obj = self._obj
        rows, cols = self._split(key)
        rk, rows = _classify(obj.index, rows, setting=True)
        if obj.ndim == 1:
            if rk == "pos":
                obj.iloc[rows] = value
            else:
                obj.loc[rows] = value
            return
        ck, cols = _classify(obj.columns, cols, setting=True)
        if rk != "pos" and ck != "pos":
            obj.loc[rows, cols] = value
        elif rk == "pos" and ck == "pos":
            obj.iloc[rows, cols] = value
        else:  # mixed: labels to positions when they all exist, else positions to labels
            try:
                if rk == "pos":
                    where = (rows, _positions(obj.columns, cols))
                else:
                    where = (_positions(obj.index, rows), cols)
            except KeyError:
                if rk == "pos":
                    obj.loc[obj.index[rows], cols] = value
                else:
                    obj.loc[rows, obj.columns[cols]] = value
                return
            obj.iloc[where] = value


_value("DataFrame Series", "ix", ".loc[...] (labels) / .iloc[...] (positions)",
       lambda: property(_IXIndexer, doc=_IXIndexer.__doc__))


# -- DataFrame and Series methods ------------------------------------------------------------------

@_shim("DataFrame", "as_matrix", ".values (or df[columns].values)")
def _df_as_matrix(self, columns=None):
    """0.18: "Convert the frame to its Numpy-array representation. columns: If None, return all
    columns, otherwise, returns specified columns" (reindexed, so a missing column is NaN);
    heterogeneous frames give an object (or common) dtype, as .values does."""
    return self.values if columns is None else self.reindex(columns=columns).values


@_shim("Series", "as_matrix", ".values")
def _s_as_matrix(self, columns=None):
    """0.18: the values as a NumPy array (.values)."""
    return self.values


@_shim("DataFrame", "get_value", ".at[index, col] (.iat when takeable)")
def _df_get_value(self, index, col, takeable=False):
    """0.18: "Quickly retrieve single value at passed column and index"; takeable: positions."""
    return self.iat[index, col] if takeable else self.at[index, col]


@_shim("Series", "get_value", ".at[label] (.iat when takeable)")
def _s_get_value(self, label, takeable=False):
    """0.18: "Quickly retrieve single value at passed index label"."""
    return self.iat[label] if takeable else self.at[label]


@_shim("DataFrame", "set_value", ".at[index, col] = value")
def _df_set_value(self, index, col, value, takeable=False):
    """0.18: "Put single value at passed column and index"; a missing label pair enlarges the
    frame (0.18 did so in place with .loc) and the frame is returned."""
    if takeable:
        self.iat[index, col] = value
    elif index in self.index and col in self.columns:
        self.at[index, col] = value
    else:
        self.loc[index, col] = value  # enlarging: .at would warn (pandas 3.1)
    return self


@_shim("Series", "set_value", ".at[label] = value")
def _s_set_value(self, label, value, takeable=False):
    """0.18: "Quickly set single value at passed label"; a missing label enlarges the Series
    (in place) and the Series is returned."""
    if takeable:
        self.iat[label] = value
    elif label in self.index:
        self.at[label] = value
    else:
        self.loc[label] = value
    return self


def _inplace(inplace) -> dict:
    """inplace=True only when asked for: pandas 3.1 warns about any inplace= (PDEP-8)."""
    return {"inplace": True} if inplace else {}


@_shim("DataFrame", "sort", ".sort_values(by=columns) / .sort_index()")
def _df_sort(self, columns=None, axis=0, ascending=True, inplace=False, kind="quicksort",
             na_position="last", **kwargs):
    """0.18: "Sort DataFrame either by labels (along either axis) or by the values in column(s)":
    columns=None -> sort_index(axis, ascending, inplace); else sort_values(by=columns, ...).
    Not in place by default (returns the sorted frame)."""
    if columns is None:
        return self.sort_index(axis=axis, ascending=ascending, **_inplace(inplace))
    return self.sort_values(by=columns, axis=axis, ascending=ascending, kind=kind, na_position=na_position,
                            **_inplace(inplace))


@_shim("Series", "sort", ".sort_values(inplace=True)")
def _s_sort(self, axis=0, ascending=True, kind="quicksort", na_position="last", inplace=True):
    """0.18: "Sort values and index labels by value. This is an inplace sort by default"
    (returns None); Series.order is the copying equivalent."""
    if not inplace:
        return self.sort_values(ascending=ascending, kind=kind, na_position=na_position)
    with warnings.catch_warnings():  # in place is what 0.18 did by default, not the caller's choice
        warnings.filterwarnings("ignore", "The inplace keyword", DeprecationWarning)
        return self.sort_values(ascending=ascending, kind=kind, na_position=na_position, inplace=True)


@_shim("Series", "order", ".sort_values()")
def _s_order(self, na_last=None, ascending=True, kind="quicksort", na_position="last", inplace=False):
    """0.18: sorted copy (sort_values); the old na_last=True/False means na_position last/first."""
    if na_last is not None:
        na_position = "last" if na_last else "first"
    return self.sort_values(ascending=ascending, kind=kind, na_position=na_position, **_inplace(inplace))


@_shim("DataFrame", "append", "pd.concat([df, other])")
def _df_append(self, other, ignore_index=False, verify_integrity=False):
    """0.18: "Append rows of other to the end of this frame, returning a new object. Columns not
    in this frame are added as new columns." other: DataFrame, Series/dict (a row: needs
    ignore_index=True or a Series name, else TypeError), or a list of these."""
    if isinstance(other, (pd.Series, dict)):
        if isinstance(other, dict):
            other = pd.Series(other, dtype=object if not other else None)
        if other.name is None and not ignore_index:
            raise TypeError("Can only append a Series if ignore_index=True or if the Series has a name")
        index = None if other.name is None else pd.Index([other.name], name=self.index.name)
        combined = self.columns.tolist() + self.columns.union(other.index).difference(self.columns).tolist()
        other = other.reindex(combined)
        other = pd.DataFrame(np.asarray(other.values, dtype=object).reshape(1, len(other)), index=index,
                             columns=combined).infer_objects()
        if not self.columns.equals(pd.Index(combined)):
            self = self.reindex(columns=combined)
    elif isinstance(other, list) and other and not isinstance(other[0], pd.DataFrame):
        other = pd.DataFrame(other)
        if (self.columns.get_indexer(other.columns) >= 0).all():
            other = other.reindex(columns=self.columns)
    frames = [self] + list(other) if isinstance(other, (list, tuple)) else [self, other]
    return pd.concat(frames, ignore_index=ignore_index, verify_integrity=verify_integrity)


@_shim("Series", "append", "pd.concat([s, other])")
def _s_append(self, to_append, ignore_index=False, verify_integrity=False):
    """0.18: "Concatenate two or more Series" (to_append: a Series or a list/tuple of them)."""
    items = [self] + list(to_append) if isinstance(to_append, (list, tuple)) else [self, to_append]
    return pd.concat(items, ignore_index=ignore_index, verify_integrity=verify_integrity)


def _convert_column(col, convert_dates, convert_numeric, convert_timedeltas):
    """0.18 core.common._possibly_convert_objects for one object column."""
    if not (col.dtype == object or isinstance(col.dtype, pd.StringDtype)):
        return col
    if convert_dates == "coerce":
        new = pd.to_datetime(col, errors="coerce")
        if not new.isna().all():  # "if we are all nans then leave me alone"
            col = new
    if convert_timedeltas == "coerce" and col.dtype == object:
        new = pd.to_timedelta(col, errors="coerce")
        if not new.isna().all():
            col = new
    if col.dtype == object or isinstance(col.dtype, pd.StringDtype):
        if convert_numeric:
            new = pd.to_numeric(col, errors="coerce")
            if not new.isna().all():
                col = new
        elif col.dtype == object:
            col = col.infer_objects()  # the soft conversion (numbers, datetimes, timedeltas)
    return col


@_shim("DataFrame", "convert_objects", ".apply(pd.to_numeric, errors='coerce') / .infer_objects()")
def _df_convert_objects(self, convert_dates=True, convert_numeric=False, convert_timedeltas=True, copy=True):
    """0.18: "Attempt to infer better dtype for object columns": convert_numeric=True coerces to
    numbers "with unconvertible values becoming NaN" (a column that would become all NaN is left
    alone); convert_dates/timedeltas='coerce' force conversion with NaT; True converts softly.
    Only object (and string) columns change."""
    out = self.copy() if copy else self
    for i in range(out.shape[1]):
        col = out.iloc[:, i]
        new = _convert_column(col, convert_dates, convert_numeric, convert_timedeltas)
        if new is not col:
            out.isetitem(i, new)
    return out


@_shim("Series", "convert_objects", "pd.to_numeric(s, errors='coerce') / .infer_objects()")
def _s_convert_objects(self, convert_dates=True, convert_numeric=False, convert_timedeltas=True, copy=True):
    """0.18: as DataFrame.convert_objects, for one Series."""
    out = _convert_column(self, convert_dates, convert_numeric, convert_timedeltas)
    return out.copy() if copy and out is self else out


@_shim("DataFrame Series", "iteritems", ".items()")
def _iteritems(self):
    """0.18: DataFrame: iterate over (column name, Series) pairs; Series: (index, value)."""
    return self.items()


@_shim("DataFrame", "lookup", "df.to_numpy()[df.index.get_indexer(rows), df.columns.get_indexer(cols)]")
def _df_lookup(self, row_labels, col_labels):
    """0.18: "Label-based fancy indexing function for DataFrame. Given equal-length arrays of row
    and column labels, return an array of the values corresponding to each (row, col) pair";
    an object result is converted to a better dtype where possible."""
    if len(row_labels) != len(col_labels):
        raise ValueError("Row labels must have same size as column labels")
    ridx, cidx = self.index.get_indexer(row_labels), self.columns.get_indexer(col_labels)
    if (ridx == -1).any():
        raise KeyError("One or more row labels was not found")
    if (cidx == -1).any():
        raise KeyError("One or more column labels was not found")
    result = self.values[ridx, cidx]
    if result.dtype == object:
        result = pd.Series(result, dtype=object).infer_objects().to_numpy()
    return result


_shim("DataFrame", "irow", ".iloc[i]")(lambda self, i, copy=False: self.iloc[i])
_shim("DataFrame", "icol", ".iloc[:, i]")(lambda self, i: self.iloc[:, i])
_shim("DataFrame", "iget_value", ".iat[i, j]")(lambda self, i, j: self.iat[i, j])
_shim("Series", "iget", ".iloc[i]")(lambda self, i, axis=0: self.iloc[i])
_shim("Series", "iget_value", ".iat[i]")(lambda self, i, axis=0: self.iloc[i])
_shim("Series", "irow", ".iloc[i]")(lambda self, i, axis=0: self.iloc[i])


@_shim("Series", "valid", ".dropna()")
def _s_valid(self, inplace=False, **kwargs):
    """0.18: "Return Series without null values" (dropna)."""
    return self.dropna(**_inplace(inplace), **kwargs)


@_shim("Series", "nonzero", ".to_numpy().nonzero()")
def _s_nonzero(self):
    """0.18: "Return the indices of the elements that are non-zero" (a tuple of position arrays,
    as numpy.nonzero on the data)."""
    return np.asarray(self).nonzero()


@_shim("Series", "reshape", ".to_numpy().reshape(...)")
def _s_reshape(self, *args, **kwargs):
    """0.18: the values reshaped to an ndarray; the Series itself when the shape is unchanged."""
    shape = args[0] if len(args) == 1 and hasattr(args[0], "__iter__") else args
    if tuple(shape) == self.shape:
        return self
    return np.asarray(self).reshape(shape, **kwargs)


@_shim("DataFrame", "applymap", ".map(func)")
def _df_applymap(self, func):
    """0.18: "Apply a function to a DataFrame that is intended to operate elementwise"."""
    return self.map(func)


@_shim("DataFrame Series", "mad", "(x - x.mean()).abs().mean()")
def _mad(self, axis=None, skipna=None, level=None):
    """0.18: "Return the mean absolute deviation of the values for the requested axis" (about the
    mean, numeric columns only)."""
    if level is not None:
        raise NotImplementedError("mad(level=...) is not provided by scorepub's classic layer")
    skipna = True if skipna is None else skipna
    if self.ndim == 1:
        return (self - self.mean(skipna=skipna)).abs().mean(skipna=skipna)
    axis = 0 if axis is None else self._get_axis_number(axis)
    data = self.select_dtypes(include=["number", "bool"])
    demeaned = data - data.mean(axis=0) if axis == 0 else data.sub(data.mean(axis=1), axis=0)
    return demeaned.abs().mean(axis=axis, skipna=skipna)


@_shim("DataFrame Series", "reindex_axis", ".reindex(labels, axis=axis)")
def _reindex_axis(self, labels, axis=0, method=None, level=None, copy=True, limit=None, fill_value=None):
    """0.18: "Conform input object to new index with optional filling logic" along one axis
    (missing labels get fill_value, NaN by default)."""
    kwargs = {} if fill_value is None else {"fill_value": fill_value}
    return self.reindex(labels, axis=axis, method=method, level=level, limit=limit, **kwargs)


@_shim("DataFrame Series", "bool", "bool(x.item())")
def _bool(self):
    """0.18: "Return the bool of a single element PandasObject"; ValueError unless it has exactly
    one boolean element."""
    v = self.squeeze()
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    raise ValueError(f"bool cannot act on a non-boolean single element {type(self).__name__}")


_value("DataFrame", "from_items", "pd.DataFrame(dict(items))", lambda: classmethod(_df_from_items))


def _df_from_items(cls, items, columns=None, orient="columns"):
    """0.18: "Convert (key, value) pairs to DataFrame. The keys will be the axis index (usually
    the columns, but depends on the specified orientation)"; orient='index' needs columns."""
    items = list(items)
    if orient == "index":
        if columns is None:
            raise TypeError("Must pass columns with orient='index'")
        return cls([v for _, v in items], index=[k for k, _ in items], columns=columns)
    return cls(dict(items), columns=[k for k, _ in items] if columns is None else columns)


_value("DataFrame", "from_csv", "pd.read_csv(path, index_col=0, parse_dates=True)",
       lambda: classmethod(_df_from_csv))


def _df_from_csv(cls, path, header=0, sep=",", index_col=0, parse_dates=True, encoding=None,
                 tupleize_cols=False, infer_datetime_format=False):
    """0.18: read_csv with the index in column 0 and dates parsed (read_csv is preferred)."""
    return pd.read_csv(path, header=header, sep=sep, index_col=index_col, parse_dates=parse_dates,
                       encoding=encoding)


_value("Series", "from_csv", "pd.read_csv(path, header=None, index_col=0).iloc[:, 0]",
       lambda: classmethod(_s_from_csv))


def _s_from_csv(cls, path, sep=",", parse_dates=True, header=None, index_col=0, encoding=None,
                infer_datetime_format=False):
    """0.18: the first data column of DataFrame.from_csv (names dropped without a header)."""
    result = _df_from_csv(pd.DataFrame, path, header=header, sep=sep, index_col=index_col,
                          parse_dates=parse_dates, encoding=encoding).iloc[:, 0]
    if header is None:
        result.index.name = result.name = None
    return result


# -- wrapped methods: only the argument forms modern pandas rejects change --------------------------

def _n_positional(fn) -> int:
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               for p in inspect.signature(fn).parameters.values())


def _still_removed(fn, removed: tuple) -> tuple:
    """The keywords of ``removed`` that ``fn`` no longer takes: an older pandas (1.5 still has
    fillna(method=), read_csv(squeeze=)...) keeps its own meaning for the rest, and its own
    internal calls with them (ffill calls fillna(method='ffill')) must not come back here."""
    params = inspect.signature(fn).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return removed
    return tuple(k for k in removed if k not in params)


def _legacy(old: tuple, removed: tuple = (), convert=None, method: bool = True):
    """Factory for a wrapper around an existing callable whose 0.18 signature took the parameters
    `old` positionally (now keyword-only) or accepted the now `removed` keywords. A call with no
    extra positional argument and none of `removed` goes straight to the original; otherwise the
    extra positionals are named as 0.18 named them, and convert(original, args, kwargs) (or the
    original) handles the call."""
    def factory(original):
        off = 1 if method else 0
        n = _n_positional(original) - off
        gone = _still_removed(original, removed)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            extra = len(args) - off - n
            if extra <= 0 and not any(k in kwargs for k in gone):
                return original(*args, **kwargs)
            if extra > 0:
                names = old[n:n + extra]
                if len(names) < extra or any(k in kwargs for k in names):
                    return original(*args, **kwargs)  # wrong in 0.18 too: let it raise
                kwargs.update(zip(names, args[off + n:]))
                args = args[:off + n]
            return convert(original, args, kwargs) if convert else original(*args, **kwargs)

        wrapper.__classic_compat__ = True
        return wrapper
    return factory


_DROP = ("labels", "axis", "level", "inplace", "errors")
_shim("DataFrame Series", "drop", "drop(labels, axis=1)", "wrap", "(labels, axis)")(_legacy(_DROP))
_shim("DataFrame", "sort_values", "sort_values(by, ascending=...)", "wrap", "(by, axis, ascending)")(
    _legacy(("by", "axis", "ascending", "inplace", "kind", "na_position")))
_shim("Series", "sort_values", "sort_values(ascending=...)", "wrap", "(axis, ascending)")(
    _legacy(("axis", "ascending", "inplace", "kind", "na_position")))
_shim("DataFrame", "dropna", "dropna(axis=..., how=...)", "wrap", "(axis, how)")(
    _legacy(("axis", "how", "thresh", "subset", "inplace")))
_shim("Series", "dropna", "dropna(axis=...)", "wrap", "(axis)")(_legacy(("axis", "inplace")))
_shim("DataFrame", "set_index", "set_index(keys, drop=...)", "wrap", "(keys, drop)")(
    _legacy(("keys", "drop", "append", "inplace", "verify_integrity")))
_shim("DataFrame", "reset_index", "reset_index(level, drop=...)", "wrap", "(level, drop)")(
    _legacy(("level", "drop", "inplace", "col_level", "col_fill")))
_shim("Series", "reset_index", "reset_index(level, drop=...)", "wrap", "(level, drop)")(
    _legacy(("level", "drop", "name", "inplace")))


def _sort_index_by(original, args, kwargs):
    """0.18 sort_index(by=...): "by argument to sort_index is deprecated, pls use
    .sort_values(by=...)" -> sort_values(by, axis, ascending, inplace)."""
    by = kwargs.pop("by", None)
    if by is None:
        return original(*args, **kwargs)
    if kwargs.get("level") is not None:
        raise ValueError("unable to simultaneously sort by and level")
    keep = {k: kwargs[k] for k in ("axis", "ascending", "inplace") if k in kwargs}
    return args[0].sort_values(by, **keep)


_SORT_INDEX = ("axis", "level", "ascending", "inplace", "kind", "na_position", "sort_remaining", "by")
_shim("DataFrame", "sort_index", "sort_values(by=...)", "wrap", "(by=)")(_legacy(_SORT_INDEX, ("by",), _sort_index_by))
_shim("Series", "sort_index", "sort_index(ascending=...)", "wrap", "(axis, level, ascending)")(_legacy(_SORT_INDEX[:-1]))


def _downcast(obj, downcast):
    """0.18 fillna(downcast='infer'): float columns holding only whole numbers become int64."""
    def one(col):
        if col.dtype.kind == "f" and col.notna().all() and (col % 1 == 0).all():
            return col.astype("int64")
        return col
    if downcast != "infer":
        return obj.astype(downcast) if isinstance(downcast, dict) else obj
    return one(obj) if obj.ndim == 1 else obj.apply(one)


def _fillna(original, args, kwargs):
    """0.18 fillna(value=None, method=None, axis=None, inplace=False, limit=None, downcast=None):
    method 'pad'/'ffill' propagates the last valid value forward, 'backfill'/'bfill' backward."""
    method, downcast = kwargs.pop("method", None), kwargs.pop("downcast", None)
    self = args[0]
    if method is None:
        result = original(*args, **kwargs)
    else:
        if len(args) > 1 and args[1] is not None or kwargs.get("value") is not None:
            raise ValueError("Cannot specify both 'value' and 'method'.")
        fill = {"pad": "ffill", "ffill": "ffill", "backfill": "bfill", "bfill": "bfill"}.get(method)
        if fill is None:
            raise ValueError(f"Invalid fill method. Expecting pad (ffill) or backfill (bfill). Got {method}")
        kwargs.pop("value", None)
        result = getattr(self, fill)(**{k: v for k, v in kwargs.items() if v is not None})
    if downcast is not None and result is not None:
        result = _downcast(result, downcast)
    return result


_shim("DataFrame Series", "fillna", ".ffill() / .bfill()", "wrap", "(method=, downcast=)")(
    _legacy(("value", "method", "axis", "inplace", "limit", "downcast"), ("method", "downcast"), _fillna))


def _resample(original, args, kwargs):
    """0.18 resample(rule, how=None, axis=0, fill_method=None, closed=None, label=None,
    convention='start', kind=None, loffset=None, limit=None, base=0): how aggregates
    (r.aggregate(how)), fill_method fills after it (or upsamples), loffset shifts the labels,
    kind='period'/'timestamp' converts the result's index, base offsets the bins."""
    how, fill, kind = kwargs.pop("how", None), kwargs.pop("fill_method", None), kwargs.pop("kind", None)
    loffset, limit, base = kwargs.pop("loffset", None), kwargs.pop("limit", None), kwargs.pop("base", 0)
    if kwargs.pop("axis", 0) not in (0, "index"):
        raise NotImplementedError("resample(axis=1) is not provided by scorepub's classic layer")
    if base:
        rule = _offset(args[1] if len(args) > 1 else kwargs["rule"])
        kwargs["offset"] = pd.Timedelta(rule.nanos // rule.n * base, "ns")
    r = original(*args, **kwargs)
    if how is not None:
        r = r.aggregate(how)
    if fill is not None:
        r = getattr(r, {"pad": "ffill", "backfill": "bfill"}.get(fill, fill))(limit=limit)
    if isinstance(r, (pd.Series, pd.DataFrame)):
        if loffset is not None:
            r.index = r.index + _offset(loffset)
        if kind == "period":
            r = r.to_period()
        elif kind == "timestamp":
            r = r.to_timestamp()
    return r


_shim("DataFrame Series", "resample", ".resample(rule).mean() / .agg(how)", "wrap", "(how=, fill_method=, loffset=, kind=, base=)")(
    _legacy((), ("how", "fill_method", "kind", "loffset", "limit", "base", "axis"), _resample))


def _between(original):
    @functools.wraps(original)
    def between(self, left, right, *args, **kwargs):
        """0.18 Series.between(left, right, inclusive=True): a bool inclusive means both ends
        (True) or neither (False); modern pandas takes 'both'/'neither'/'left'/'right'."""
        inclusive = args[0] if args else kwargs.get("inclusive")
        if isinstance(inclusive, (bool, np.bool_)):
            args, kwargs = (), {"inclusive": "both" if inclusive else "neither"}
        return original(self, left, right, *args, **kwargs)
    between.__classic_compat__ = True
    return between


_shim("Series", "between", "between(left, right, inclusive='both')", "wrap", "(inclusive=bool)")(_between)


# -- pandas functions ---------------------------------------------------------------------------------

def _concat(original, args, kwargs):
    """0.18 concat(objs, axis=0, join='outer', join_axes=None, ...): join_axes "Specific indexes
    to use for the other n - 1 axes instead of performing inner/outer set logic"."""
    join_axes = kwargs.pop("join_axes", None)
    result = original(*args, **kwargs)
    if join_axes is not None and result.ndim == 2:
        other = 1 - result._get_axis_number(kwargs.get("axis", 0))
        result = result.reindex(join_axes[0], axis=other)
    return result


_shim("pd", "concat", "pd.concat(objs, axis=1)", "wrap", "(objs, axis, join_axes=)")(_legacy(
    ("objs", "axis", "join", "join_axes", "ignore_index", "keys", "levels", "names", "verify_integrity",
     "copy"), ("join_axes",), _concat, method=False))


def _read_csv(original, args, kwargs):
    """0.18 read_csv keywords that are gone: squeeze ("If the parsed data only contains one column
    then return a Series"), prefix (column names with header=None), error_bad_lines /
    warn_bad_lines (-> on_bad_lines), delim_whitespace (-> sep=r'\\s+'), skip_footer
    (-> skipfooter); infer_datetime_format, mangle_dupe_cols=True and verbose change nothing now."""
    squeeze, prefix = kwargs.pop("squeeze", False), kwargs.pop("prefix", None)
    for gone in ("infer_datetime_format", "verbose"):
        kwargs.pop(gone, None)
    if kwargs.get("mangle_dupe_cols", True):
        kwargs.pop("mangle_dupe_cols", None)
    if "error_bad_lines" in kwargs or "warn_bad_lines" in kwargs:
        error, warn = kwargs.pop("error_bad_lines", True), kwargs.pop("warn_bad_lines", True)
        kwargs["on_bad_lines"] = "error" if error else ("warn" if warn else "skip")
    if kwargs.pop("delim_whitespace", False):
        kwargs["sep"] = r"\s+"
    if "skip_footer" in kwargs:
        kwargs["skipfooter"] = kwargs.pop("skip_footer")
    result = original(*args, **kwargs)
    if isinstance(result, pd.DataFrame):
        if prefix is not None and kwargs.get("header", "infer") is None:
            result.columns = [f"{prefix}{c}" for c in result.columns]
        if squeeze and result.shape[1] == 1:
            result = result.iloc[:, 0]
    return result


_READ_OLD = ("filepath_or_buffer", "sep", "delimiter", "header", "names", "index_col", "usecols")
_READ_GONE = ("squeeze", "prefix", "mangle_dupe_cols", "infer_datetime_format", "error_bad_lines",
              "warn_bad_lines", "delim_whitespace", "skip_footer", "verbose")
for _name in ("read_csv", "read_table"):
    _shim("pd", _name, f"pd.{_name}(path, sep=...); .squeeze('columns'); on_bad_lines=", "wrap",
          "(path, sep, squeeze=, error_bad_lines=, delim_whitespace=...)")(
        _legacy(_READ_OLD, _READ_GONE, _read_csv, method=False))


def _to_datetime(original, args, kwargs):
    """0.18 to_datetime(..., box=True, coerce=None, infer_datetime_format=False): box=False returns
    an ndarray, coerce=True means errors='coerce', infer_datetime_format is what pandas does now."""
    kwargs.pop("infer_datetime_format", None)
    box = kwargs.pop("box", True)
    if kwargs.pop("coerce", None):
        kwargs["errors"] = "coerce"
    result = original(*args, **kwargs)
    return result if box or not hasattr(result, "values") else np.asarray(result.values)


_shim("pd", "to_datetime", "pd.to_datetime(x, errors='coerce')", "wrap", "(coerce=, box=, infer_datetime_format=)")(
    _legacy((), ("infer_datetime_format", "box", "coerce"), _to_datetime, method=False))


def _conform(arg, freq, how):
    """0.18 moments: ndarrays become Series/DataFrame (and come back as ndarrays); freq resamples
    first, with `how` (default 'asfreq', as 0.18's _Window._convert_freq did)."""
    if isinstance(arg, np.ndarray):
        if arg.ndim > 2:
            raise AssertionError("cannot support ndim > 2 for ndarray compat")
        arg = pd.Series(arg) if arg.ndim == 1 else pd.DataFrame(arg)
    if freq is not None:
        r = arg.resample(freq)
        arg = getattr(r, how or "asfreq")() if isinstance(how, str) or how is None else r.aggregate(how)
    return arg


def _moment(dispatch: str, stat: str, arg, freq=None, how=None, stat_kw=None, stat_args=(), **window_kw):
    """pandas.stats.moments.ensure_compat: arg.<dispatch>(**window_kw).<stat>(*stat_args, **stat_kw)."""
    obj = _conform(arg, freq, how)
    stat_kw = {k: v for k, v in (stat_kw or {}).items() if v is not None}
    result = getattr(getattr(obj, dispatch)(**window_kw), stat)(*stat_args, **stat_kw)
    return result.values if isinstance(arg, np.ndarray) else result


def _rolling_stat(stat: str, ddof: bool = False):
    def f(arg, window, min_periods=None, freq=None, center=False, how=None, **kwargs):
        return _moment("rolling", stat, arg, freq, how, kwargs, window=window, min_periods=min_periods,
                       center=center)
    f.__name__ = f"rolling_{stat}"
    f.__doc__ = (f"0.18 pd.rolling_{stat}(arg, window, min_periods=None, freq=None, center=False, "
                 f"how=None{', ddof=1' if ddof else ''}): moving {stat}; the result is set to the "
                 f"right edge of the window (center=True: the center). Modern: "
                 f"arg.rolling(window, min_periods=..., center=...).{stat}().")
    return f


def _expanding_stat(stat: str, ddof: bool = False):
    def f(arg, min_periods=1, freq=None, **kwargs):
        return _moment("expanding", stat, arg, freq, kwargs.pop("how", None), kwargs, min_periods=min_periods)
    f.__name__ = f"expanding_{stat}"
    f.__doc__ = (f"0.18 pd.expanding_{stat}(arg, min_periods=1, freq=None"
                 f"{', ddof=1' if ddof else ''}): expanding {stat}. Modern: "
                 f"arg.expanding(min_periods).{stat}().")
    return f


for _stat in ("mean", "sum", "std", "var", "min", "max", "median", "skew", "kurt"):
    _shim("pd", f"rolling_{_stat}", f"x.rolling(window).{_stat}()")(_rolling_stat(_stat, _stat in ("std", "var")))
    _shim("pd", f"expanding_{_stat}", f"x.expanding(min_periods).{_stat}()")(
        _expanding_stat(_stat, _stat in ("std", "var")))


def _count(arg, window, center):
    """0.18 Rolling.count: finite values counted over the window with min_periods=0 (floats)."""
    obj = _conform(arg, None, None)
    try:
        valid = np.isfinite(obj.astype(float))
    except (TypeError, ValueError):
        valid = obj.notna()
    result = valid.astype(float).rolling(window or max(len(obj), 1), min_periods=0, center=center).sum()
    return result.values if isinstance(arg, np.ndarray) else result


@_shim("pd", "rolling_count", "x.rolling(window, min_periods=0).count()")
def rolling_count(arg, window, freq=None, center=False, how=None):
    """0.18: "Rolling count of number of non-NaN observations inside provided window" (from the
    first row on: a count needs no minimum number of observations)."""
    return _count(_conform(arg, freq, how) if freq else arg, window, center)


@_shim("pd", "expanding_count", "x.expanding().count()")
def expanding_count(arg, freq=None):
    """0.18: "Expanding count of number of non-NaN observations"."""
    return _count(_conform(arg, freq, None) if freq else arg, None, False)


@_shim("pd", "rolling_quantile", "x.rolling(window).quantile(q)")
def rolling_quantile(arg, window, quantile, min_periods=None, freq=None, center=False):
    """0.18: "Moving quantile", 0 <= quantile <= 1."""
    return _moment("rolling", "quantile", arg, freq, None, stat_args=(quantile,), window=window,  # q: pandas 2
                   min_periods=min_periods, center=center)


@_shim("pd", "expanding_quantile", "x.expanding(min_periods).quantile(q)")
def expanding_quantile(arg, quantile, min_periods=1, freq=None):
    """0.18: "Expanding quantile"."""
    return _moment("expanding", "quantile", arg, freq, None, stat_args=(quantile,), min_periods=min_periods)


@_shim("pd", "rolling_apply", "x.rolling(window).apply(func, raw=True)")
def rolling_apply(arg, window, func, min_periods=None, freq=None, center=False, args=(), kwargs={}):
    """0.18: "Generic moving function application"; func "must produce a single value from an
    ndarray input" (raw=True)."""
    return _moment("rolling", "apply", arg, freq, None,
                   {"func": func, "raw": True, "args": args, "kwargs": kwargs}, window=window,
                   min_periods=min_periods, center=center)


@_shim("pd", "expanding_apply", "x.expanding(min_periods).apply(func, raw=True)")
def expanding_apply(arg, func, min_periods=1, freq=None, args=(), kwargs={}):
    """0.18: "Generic expanding function application" on ndarrays."""
    return _moment("expanding", "apply", arg, freq, None,
                   {"func": func, "raw": True, "args": args, "kwargs": kwargs}, min_periods=min_periods)


@_shim("pd", "rolling_window", "x.rolling(window, win_type=...).mean()")
def rolling_window(arg, window=None, win_type=None, min_periods=None, freq=None, center=False,
                   mean=True, axis=0, how=None, **kwargs):
    """0.18: "Applies a moving window of type window_type and size window on the data": the
    weighted mean (mean=True) or sum; kwargs are the window's parameters (std, beta...)."""
    return _moment("rolling", "mean" if mean else "sum", arg, freq, how, kwargs, window=window,
                   win_type=win_type, min_periods=min_periods, center=center)


def _pair(arg1, arg2, pairwise, swap_scalar):
    """0.18: with no arg2, arg1 against itself pairwise; a number in arg2's place is the window
    (rolling) or the com/min_periods (others)."""
    if arg2 is None:
        return arg1, True if pairwise is None else pairwise, None
    if isinstance(arg2, (int, float)) and swap_scalar:
        return arg1, True if pairwise is None else pairwise, arg2
    return arg2, pairwise, None


def _binary(dispatch, stat):
    def f(arg1, arg2=None, window=None, pairwise=None, **kwargs):
        arg2, pairwise, scalar = _pair(arg1, arg2, pairwise, window is None)
        window = window if scalar is None else scalar
        freq, how = kwargs.pop("freq", None), kwargs.pop("how", None)
        stat_kw = {"other": _conform(arg2, freq, how), "pairwise": pairwise, "ddof": kwargs.pop("ddof", None)}
        return _moment(dispatch, stat, arg1, freq, how, stat_kw, window=window, **kwargs)
    f.__name__ = f"rolling_{stat}"
    f.__doc__ = (f"0.18 pd.rolling_{stat}(arg1, arg2=None, window=None, min_periods=None, freq=None, "
                 f"center=False, pairwise=None, how=None): moving {stat}; without arg2, pairwise "
                 f"over arg1's columns (0.18 returned a Panel; now a DataFrame with a MultiIndex). "
                 f"Modern: arg1.rolling(window).{stat}(arg2).")
    return f


_shim("pd", "rolling_corr", "x.rolling(window).corr(y)")(_binary("rolling", "corr"))
_shim("pd", "rolling_cov", "x.rolling(window).cov(y)")(_binary("rolling", "cov"))


def _expanding_binary(stat):
    def f(arg1, arg2=None, min_periods=1, freq=None, pairwise=None, ddof=1):
        arg2, pairwise, scalar = _pair(arg1, arg2, pairwise, min_periods is None)
        min_periods = min_periods if scalar is None else scalar
        stat_kw = {"other": _conform(arg2, freq, None), "pairwise": pairwise}
        if stat == "cov":
            stat_kw["ddof"] = ddof
        return _moment("expanding", stat, arg1, freq, None, stat_kw, min_periods=min_periods)
    f.__name__ = f"expanding_{stat}"
    f.__doc__ = f"0.18 pd.expanding_{stat}(arg1, arg2=None, min_periods=1, freq=None, pairwise=None)."
    return f


_shim("pd", "expanding_corr", "x.expanding().corr(y)")(_expanding_binary("corr"))
_shim("pd", "expanding_cov", "x.expanding().cov(y)")(_expanding_binary("cov"))


def _ewm_stat(stat: str):
    def run(arg, com, span, halflife, alpha, min_periods, freq, adjust, how, ignore_na, stat_kw):
        return _moment("ewm", stat, arg, freq, how, stat_kw, com=com, span=span, halflife=halflife,
                       alpha=alpha, min_periods=min_periods, adjust=adjust, ignore_na=ignore_na)
    if stat == "mean":  # the two 0.18 signatures order their parameters differently
        def f(arg, com=None, span=None, halflife=None, alpha=None, min_periods=0, freq=None, adjust=True,
              how=None, ignore_na=False):
            return run(arg, com, span, halflife, alpha, min_periods, freq, adjust, how, ignore_na, {})
    else:
        def f(arg, com=None, span=None, halflife=None, alpha=None, min_periods=0, bias=False, freq=None,
              how=None, ignore_na=False, adjust=True):
            return run(arg, com, span, halflife, alpha, min_periods, freq, adjust, how, ignore_na, {"bias": bias})
    f.__name__ = f"ewm{'a' if stat == 'mean' else stat}"
    f.__doc__ = (f"0.18 pd.{f.__name__}(arg, com=None, span=None, halflife=None, alpha=None, "
                 f"min_periods=0, freq=None, adjust=True, how=None, ignore_na=False"
                 f"{'' if stat == 'mean' else ', bias=False'}): exponentially-weighted moving "
                 f"{stat}; exactly one of com, span, halflife, alpha. Modern: arg.ewm(...).{stat}().")
    return f


_shim("pd", "ewma", "x.ewm(span=...).mean()")(_ewm_stat("mean"))
_shim("pd", "ewmstd", "x.ewm(span=...).std()")(_ewm_stat("std"))
_shim("pd", "ewmvol", "x.ewm(span=...).std()")(_ewm_stat("std"))
_shim("pd", "ewmvar", "x.ewm(span=...).var()")(_ewm_stat("var"))


def _ewm_binary(stat):
    def f(arg1, arg2=None, com=None, span=None, halflife=None, alpha=None, min_periods=0, bias=False,
          freq=None, pairwise=None, how=None, ignore_na=False, adjust=True):
        arg2, pairwise, scalar = _pair(arg1, arg2, pairwise, com is None)
        com = com if scalar is None else scalar
        stat_kw = {"other": _conform(arg2, freq, how), "pairwise": pairwise}
        if stat == "cov":
            stat_kw["bias"] = bias
        return _moment("ewm", stat, arg1, freq, how, stat_kw, com=com, span=span, halflife=halflife,
                       alpha=alpha, min_periods=min_periods, adjust=adjust, ignore_na=ignore_na)
    f.__name__ = f"ewm{stat}"
    f.__doc__ = f"0.18 pd.ewm{stat}(arg1, arg2=None, com=None, span=None, ...): EW moving {stat}."
    return f


_shim("pd", "ewmcorr", "x.ewm(span=...).corr(y)")(_ewm_binary("corr"))
_shim("pd", "ewmcov", "x.ewm(span=...).cov(y)")(_ewm_binary("cov"))


class _IndexAlias(type):
    """pd.Int64Index / pd.Float64Index (0.18: "Immutable ndarray implementing an ordered, sliceable
    set ... special case of Index with purely integer (float) labels"): calling one builds a
    pd.Index of that dtype, and isinstance() checks an Index's dtype."""

    def __call__(cls, data=None, dtype=None, copy=False, name=None, **kwargs):
        return pd.Index(data, dtype=dtype or cls.dtype, copy=copy, name=name)

    def __instancecheck__(cls, obj):
        return isinstance(obj, pd.Index) and obj.dtype == cls.dtype  # 0.18: RangeIndex was one too

    def __subclasscheck__(cls, sub):
        return False


_value("pd", "Int64Index", "pd.Index(data, dtype='int64')",
       lambda: _IndexAlias("Int64Index", (), {"dtype": np.dtype("int64")}))
_value("pd", "Float64Index", "pd.Index(data, dtype='float64')",
       lambda: _IndexAlias("Float64Index", (), {"dtype": np.dtype("float64")}))


@_shim("pd", "TimeGrouper", "pd.Grouper(freq=...)")
def TimeGrouper(freq=None, closed=None, label=None, how="mean", axis=0, fill_method=None, limit=None,
                loffset=None, kind=None, convention=None, base=0, **kwargs):
    """0.18 pd.TimeGrouper(freq, closed, label, ...): "Custom groupby class for time-interval
    grouping" -> pd.Grouper(freq=...) (how is chosen by the aggregation that follows)."""
    extra = {k: v for k, v in (("closed", closed), ("label", label), ("convention", convention)) if v}
    return pd.Grouper(freq=freq, **extra, **kwargs)


_value("pd", "datetime", "datetime.datetime", lambda: _dt.datetime)
_value("pd", "np", "import numpy as np", lambda: np)
_value("pd", "scatter_matrix", "pd.plotting.scatter_matrix", lambda: pd.plotting.scatter_matrix)
_value("pd", "ordered_merge", "pd.merge_ordered", lambda: pd.merge_ordered)


@_shim("pd", "value_counts", "pd.Series(values).value_counts()")
def value_counts(values, sort=True, ascending=False, normalize=False, bins=None, dropna=True):
    """0.18: "Compute a histogram of the counts of non-null values" as a Series (named like the
    input, its index unnamed)."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    result = s.value_counts(sort=sort, ascending=ascending, normalize=normalize, bins=bins, dropna=dropna)
    result.name, result.index.name = getattr(values, "name", None), None
    return result


# -- frequency aliases ----------------------------------------------------------------------------------
# pandas 0.18 offset aliases ("M month end frequency", "BM business month end", "Q quarter end",
# "A year end", "BA business year end", "AS year start", "H hourly", "BH business hour",
# "T, min minutely", "S secondly", "L, ms milliseconds", "U, us microseconds", "N nanoseconds";
# anchored "Q-DEC", "A-JUN"...; multiples "15T", "2H"; combined "1H30T"). 0.18 upper-cased a code
# (but 'MS', month start) after mapping the lower-case spellings 'min', 'ms', 'us', 'ns'.

from .classic_freq import modern_freq  # noqa: E402 - shared with the publisher's rewrite


def _bad_freq(exc: BaseException) -> bool:
    return isinstance(exc, ValueError) and "requency" in str(exc)


def _offset(value, period: bool = False):
    """to_offset(value), with a 0.18 alias translated when pandas 3 refuses it."""
    to_offset = pd.tseries.frequencies.to_offset
    try:
        return to_offset(value)
    except ValueError as exc:
        new = modern_freq(value, period)
        if new == value or not _bad_freq(exc):
            raise
    return to_offset(new)


def _freq_retry(param: str, position: int, period=False):
    """Factory for a wrapper that calls the original; only when that raised an invalid-frequency
    ValueError and the frequency (keyword `param`, or positional `position`) is a 0.18 alias that
    translates, it calls the original once more with the modern alias. period: a bool, or
    period(args, kwargs) -> bool (does the call build periods?)."""
    def factory(original):
        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            try:
                return original(*args, **kwargs)
            except ValueError as exc:
                if not _bad_freq(exc):
                    raise
                where = param if param in kwargs else (position if len(args) > position else None)
                value = kwargs[where] if isinstance(where, str) else (None if where is None else args[where])
                is_period = period(args, kwargs) if callable(period) else period
                new = modern_freq(value, is_period)
                if new == value:
                    raise
            if isinstance(where, str):
                kwargs = {**kwargs, where: new}
            else:
                args = args[:where] + (new,) + args[where + 1:]
            return original(*args, **kwargs)

        wrapper.__classic_compat__ = True
        return wrapper
    return factory


def _on_periods(args, kwargs) -> bool:
    """A method of a Series/DataFrame whose index holds periods."""
    return isinstance(getattr(args[0], "index", None), pd.PeriodIndex)


def _grouper_on_periods(args, kwargs) -> bool:
    """TimeGrouper(obj, freq, key, ...): pandas parses the rule as a period when obj's index (or
    its `key` column) holds periods; pd.Grouper(freq=...) has no obj yet."""
    obj = kwargs.get("obj", args[1] if len(args) > 1 else None)
    key = kwargs.get("key", args[3] if len(args) > 3 else None)
    if obj is None:
        return False
    if key is None:
        return isinstance(getattr(obj, "index", None), pd.PeriodIndex)
    try:
        return getattr(obj[key], "dtype", None) == "period"
    except (KeyError, TypeError):
        return False


_FREQ_NEW = "freq='ME' (month end), 'QE', 'YE', 'h', 'min', 's', 'ms'... (periods: 'M', 'Y', 'h'...)"
for _owner, _name, _label, _param, _pos, _period in [
    ("pd", "date_range", "pd.date_range(freq='M'/'A'/'H'/'T'...)", "freq", 3, False),
    ("pd", "bdate_range", "pd.bdate_range(freq='BM'/'BH'...)", "freq", 3, False),
    ("pd", "timedelta_range", "pd.timedelta_range(freq='H'/'T'/'S'...)", "freq", 3, False),
    ("pd", "period_range", "pd.period_range(freq='A'/'H'/'T'...)", "freq", 3, True),
    ("TimeGrouper", "__init__", "pd.Grouper(freq='M') / .resample('M') / pd.TimeGrouper('M')", "freq", 2,
     _grouper_on_periods),
    ("DataFrame", "asfreq", "DataFrame.asfreq('H'/'M'...)", "freq", 1, _on_periods),
    ("Series", "asfreq", "Series.asfreq('H'/'M'...)", "freq", 1, _on_periods),
    ("DataFrame", "shift", "DataFrame.shift(n, freq='H'/'M'...)", "freq", 2, _on_periods),
    ("Series", "shift", "Series.shift(n, freq='H'/'M'...)", "freq", 2, _on_periods),
    ("DatetimeIndex", "to_period", "DataFrame.to_period('A'/'H'...) / Series.to_period / DatetimeIndex.to_period",
     "freq", 1, True),
    ("PeriodIndex", "__new__", "pd.PeriodIndex(data, freq='A'/'H'...)", "freq", 2, True),
    ("Period", "__new__", "pd.Period(value, freq='A'/'H'...)", "freq", 2, True),
]:
    _ENTRIES.append((_owner, _name, "wrap", _freq_retry(_param, _pos, _period)))
    CATALOGUE.append(Shim(_label, _FREQ_NEW))


@_shim("DataFrame Series", "tshift", ".shift(periods, freq='infer')")
def _tshift(self, periods=1, freq=None, axis=0):
    """0.18 tshift(periods=1, freq=None, axis=0): "Shift the time index, using the index's frequency
    if available" (freq: the index's freq, else its inferred_freq; "Freq was not given and was not
    set in the index" otherwise); the data stay, the labels move; periods=0 returns the object."""
    index = self._get_axis(axis)
    if freq is None:
        freq = getattr(index, "freq", None)
    if freq is None:
        freq = getattr(index, "inferred_freq", None)
    if freq is None:
        raise ValueError("Freq was not given and was not set in the index")
    if periods == 0:
        return self
    return self.shift(periods, freq=freq, axis=axis)


# -- matplotlib 1.5: plot(..., axes=ax) ------------------------------------------------------------------

def _axes_plot(original):
    @functools.wraps(original)
    def plot(self, *args, **kwargs):
        """matplotlib 1.5 took ``axes=ax`` in plot() as a Line2D property and drew the lines on ax
        (pyplot.plot(x, y, axes=ax, color='red')); matplotlib 3 raises "got multiple values for
        argument 'axes'". Only after that TypeError the call is made as ax.plot(...) without it."""
        try:
            return original(self, *args, **kwargs)
        except TypeError as exc:
            if "axes" not in kwargs or "multiple values for argument 'axes'" not in str(exc):
                raise
        rest = {k: v for k, v in kwargs.items() if k != "axes"}
        ax = kwargs["axes"]
        return original(self, *args, **rest) if ax is None or ax is self else ax.plot(*args, **rest)
    plot.__classic_compat__ = True
    return plot


_shim("Axes", "plot", "ax.plot(...) (the axes= keyword dropped)", "wrap", "(..., axes=ax)")(_axes_plot)
CATALOGUE.append(Shim("plt.plot(..., axes=ax)", "ax.plot(...) (the axes= keyword dropped)"))


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs `then(module)` once, right after the real import of module `name`: it sits first in
    sys.meta_path only until then, answers None for every other name, and lets the remaining
    finders find `name` (its spec's loader is wrapped so that exec_module is followed by `then`)."""

    def __init__(self, name: str, then: Callable):
        self.name, self.then, self.busy = name, then, False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name or self.busy:
            return None
        self.busy = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self.busy = False
        if spec is None or spec.loader is None:
            return spec
        real, then, hook = spec.loader, self.then, self

        class Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return real.create_module(spec)

            def exec_module(self, module):
                real.exec_module(module)
                module.__loader__ = spec.loader = real
                if hook in sys.meta_path:
                    sys.meta_path.remove(hook)
                then(module)

        spec.loader = Loader()
        return spec


def _install_matplotlib(axes_module) -> None:
    _apply({"Axes": axes_module.Axes})


_MPL_HOOK = _AfterImport("matplotlib.axes", _install_matplotlib)


# -- pandas.io names that moved ---------------------------------------------------------------------------

_IO_NAMES = {  # (0.18 module, name): (module that has it now, its name there)
    ("pandas.io.json", "json_normalize"): ("pandas", "json_normalize"),
    ("pandas.io.common", "EmptyDataError"): ("pandas.errors", "EmptyDataError"),
    ("pandas.io.common", "CParserError"): ("pandas.errors", "ParserError"),
    ("pandas.io.common", "DtypeWarning"): ("pandas.errors", "DtypeWarning"),
    ("pandas.io.common", "ParserWarning"): ("pandas.errors", "ParserWarning"),
}
# 0.18: "pandas.io.json.json_normalize(data, record_path=None, meta=None, meta_prefix=None,
# record_prefix=None): "Normalize" semi-structured JSON data into a flat table" (pd.json_normalize
# takes the same parameters first); pandas.io.common defined the read_csv errors and warnings that
# pandas.errors holds now (CParserError is ParserError: read_csv raises that).
for (_module, _name), (_where, _now) in _IO_NAMES.items():
    CATALOGUE.append(Shim(f"{_module}.{_name}", f"{'pd' if _where == 'pandas' else _where}.{_now}"))


# -- numpy ------------------------------------------------------------------------------------------

for _name, _new, _make in [
    ("float", "float", lambda: float), ("int", "int", lambda: int), ("object", "object", lambda: object),
    ("str", "str", lambda: str),
    # numpy 2 has np.bool and np.long again (as np.bool_ and C long): left alone there; numpy
    # 1.24 to 1.26 have neither, so they get 1.11's builtins
    ("bool", "bool", lambda: bool), ("long", "int", lambda: int),
    ("unicode", "str", lambda: str), ("complex", "complex", lambda: complex),
    ("NaN", "np.nan", lambda: math.nan), ("NAN", "np.nan", lambda: math.nan),
    ("Inf", "np.inf", lambda: math.inf), ("Infinity", "np.inf", lambda: math.inf),
    ("infty", "np.inf", lambda: math.inf), ("PINF", "np.inf", lambda: math.inf),
    ("NINF", "-np.inf", lambda: -math.inf), ("PZERO", "0.0", lambda: 0.0), ("NZERO", "-0.0", lambda: -0.0),
    ("float_", "np.float64", lambda: np.float64), ("complex_", "np.complex128", lambda: np.complex128),
    ("string_", "np.bytes_", lambda: np.bytes_), ("unicode_", "np.str_", lambda: np.str_),
    ("int0", "np.intp", lambda: np.intp), ("uint0", "np.uintp", lambda: np.uintp),
    ("bool8", "np.bool_", lambda: np.bool_), ("object0", "np.object_", lambda: np.object_),
    ("str0", "np.str_", lambda: np.str_), ("bytes0", "np.bytes_", lambda: np.bytes_),
    ("void0", "np.void", lambda: np.void), ("cfloat", "np.complex128", lambda: np.complex128),
    ("singlecomplex", "np.complex64", lambda: np.complex64), ("longfloat", "np.longdouble", lambda: np.longdouble),
    ("longcomplex", "np.clongdouble", lambda: np.clongdouble), ("clongfloat", "np.clongdouble", lambda: np.clongdouble),
    ("product", "np.prod", lambda: np.prod), ("cumproduct", "np.cumprod", lambda: np.cumprod),
    ("alltrue", "np.all", lambda: np.all), ("sometrue", "np.any", lambda: np.any),
    ("round_", "np.round", lambda: np.round), ("mat", "np.asmatrix", lambda: np.asmatrix),
    ("trapz", "np.trapezoid", lambda: np.trapezoid), ("math", "import math", lambda: math),
    ("loads", "pickle.loads", lambda: lambda data, *a, **k: pickle.loads(data, *a, **k)),
]:
    _value("np", _name, _new, _make)
# numpy 1.11 documented np.float, np.int... as the Python builtins ("np.float is float"), np.NaN
# and friends as IEEE constants, and the rest as plain aliases of the functions/types named here.


@_shim("np", "asscalar", "a.item()")
def asscalar(a):
    """numpy 1.11: "Convert an array of size 1 to its scalar equivalent" (a.item())."""
    return a.item()


@_shim("np", "msort", "np.sort(a, axis=0)")
def msort(a):
    """numpy 1.11: "Return a copy of an array sorted along the first axis"."""
    b = np.array(a, subok=True, copy=True)
    b.sort(0)
    return b


@_shim("np", "rank", "np.ndim(a)")
def rank(a):
    """numpy 1.11: "Return the number of dimensions of an array" (not a matrix rank)."""
    return np.ndim(a)


@_shim("np", "in1d", "np.isin(a, b).ravel()")
def in1d(ar1, ar2, assume_unique=False, invert=False):
    """numpy 1.11: "Test whether each element of a 1-D array is also present in a second array";
    a flattened boolean array."""
    return np.isin(ar1, ar2, assume_unique=assume_unique, invert=invert).ravel()


@_shim("np", "asfarray", "np.asarray(a, dtype=float)")
def asfarray(a, dtype=float):
    """numpy 1.11: "Return an array converted to a float type" (non-inexact dtypes become float64)."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.inexact):
        dtype = np.dtype(np.float64)
    return np.asarray(a, dtype=dtype)


@_shim("np", "alen", "len(a)")
def alen(a):
    """numpy 1.11: "Return the length of the first dimension of the input array"."""
    try:
        return len(a)
    except TypeError:
        return len(np.array(a, ndmin=1))


@_shim("np", "issubclass_", "issubclass(a, b)")
def issubclass_(arg1, arg2):
    """numpy 1.11: issubclass that returns False instead of raising TypeError."""
    try:
        return issubclass(arg1, arg2)
    except TypeError:
        return False


# -- pickle -----------------------------------------------------------------------------------------

def _pickle_load(original):
    @functools.wraps(original)
    def load(file, *args, **kwargs):
        """pickle.load; a Python 2 pickle (its str objects are bytes) that fails to decode is
        retried with encoding='latin1', as numpy recommends for py2 arrays, from where the file
        stood (only when it can seek; an explicit encoding is never second-guessed)."""
        start = None
        if "encoding" not in kwargs:
            try:
                start = file.tell() if file.seekable() else None
            except (AttributeError, OSError, ValueError):
                start = None
        try:
            return original(file, *args, **kwargs)
        except UnicodeDecodeError:
            if start is None:
                raise
            file.seek(start)
            return original(file, *args, encoding="latin1", **kwargs)
    load.__classic_compat__ = True
    return load


def _pickle_loads(original):
    @functools.wraps(original)
    def loads(data, *args, **kwargs):
        """pickle.loads; a Python 2 pickle that fails to decode is retried with encoding='latin1'."""
        try:
            return original(data, *args, **kwargs)
        except UnicodeDecodeError:
            if "encoding" in kwargs:
                raise
            return original(data, *args, encoding="latin1", **kwargs)
    loads.__classic_compat__ = True
    return loads


_shim("pickle", "load", "pickle.load(f, encoding='latin1')", "wrap", "(a Python 2 pickle)")(_pickle_load)
_shim("pickle", "loads", "pickle.loads(b, encoding='latin1')", "wrap", "(a Python 2 pickle)")(_pickle_loads)


# -- pandas.tools.rplot ------------------------------------------------------------------------------------

_RPLOT_WARNING = ("The rplot trellis plotting interface is deprecated and will be removed in a future "
                  "version (pandas 0.16+); seaborn (FacetGrid) offers the same, refined.")


def _rplot_namespace() -> dict:
    """pandas 0.18's ``pandas.tools.rplot`` ("Trellis plotting interface", deprecated since 0.16),
    on matplotlib: RPlot(data, x=None, y=None) with .add(layer) and .render(fig=None) (plt.gcf()
    when not given; returns the figure); TrellisGrid([row_attr, col_attr]) ('.' = no split on
    that side) arranges one subplot per group, in groupby order, row by row; the geoms are
    GeomPoint(size=, colour=, shape=, alpha=) (one marker a row, scales allowed),
    GeomScatter(marker='o', colour='lightblue', alpha=1.0), GeomPolyFit(degree, lw=2.0,
    colour='grey'), GeomHistogram(bins=10, colour='lightblue'), GeomDensity(), GeomDensity2D();
    the scales ScaleGradient, ScaleGradient2, ScaleSize, ScaleShape, ScaleRandomColour,
    ScaleConstant. A layer without data or aesthetics takes them from the layer before it; a
    trellised plot shares its axis limits, labels each cell "attr = value" in a table on top and
    keeps tick labels on the left column and bottom row only."""
    import copy
    import random

    class Scale:
        """Base class for mappings between data attributes and graphical ones."""
        categorical = False

    def _value(data, column, index):
        return data[column].iloc[index]

    class ScaleGradient(Scale):
        """Colour between colour1 (smallest value of `column`) and colour2 (largest)."""

        def __init__(self, column, colour1, colour2):
            self.column, self.colour1, self.colour2 = column, colour1, colour2

        def __call__(self, data, index):
            x, lo, hi = _value(data, self.column, index), min(data[self.column]), max(data[self.column])
            t = (x - lo) / (hi - lo)
            return tuple(a + (b - a) * t for a, b in zip(self.colour1, self.colour2))

    class ScaleGradient2(Scale):
        """As ScaleGradient, along colour1 -> colour2 -> colour3."""

        def __init__(self, column, colour1, colour2, colour3):
            self.column, self.colour1, self.colour2, self.colour3 = column, colour1, colour2, colour3

        def __call__(self, data, index):
            x, lo, hi = _value(data, self.column, index), min(data[self.column]), max(data[self.column])
            t = (x - lo) / (hi - lo)
            start, end, t = (self.colour1, self.colour2, t * 2.0) if t < 0.5 else (
                self.colour2, self.colour3, (t - 0.5) * 2.0)
            return tuple(a + (b - a) * t for a, b in zip(start, end))

    class ScaleSize(Scale):
        """Marker size between min_size and max_size by the value of `column`, then transform."""

        def __init__(self, column, min_size=5.0, max_size=100.0, transform=lambda x: x):
            self.column, self.min_size, self.max_size, self.transform = column, min_size, max_size, transform

        def __call__(self, data, index):
            x = _value(data, self.column, index)
            lo, hi = float(min(data[self.column])), float(max(data[self.column]))
            return self.transform(self.min_size + (x - lo) / (hi - lo) * (self.max_size - self.min_size))

    class ScaleShape(Scale):
        """A marker per value of a categorical `column` (at most 10 values)."""
        categorical = True

        def __init__(self, column):
            self.column = column
            self.shapes = ["o", "+", "s", "*", "^", "<", ">", "v", "|", "x"]
            self.legends = set()

        def __call__(self, data, index):
            values = sorted(set(data[self.column]))
            if len(values) > len(self.shapes):
                raise ValueError("Too many different values of the categorical attribute for ScaleShape")
            return self.shapes[values.index(_value(data, self.column, index))]

    class ScaleRandomColour(Scale):
        """A random RGB colour per value of `column`, the same for the same value (seeded by it)."""
        categorical = True

        def __init__(self, column):
            self.column = column

        def __call__(self, data, index):
            rng = random.Random(_value(data, self.column, index))
            return [rng.random() for _ in range(3)]

    class ScaleConstant(Scale):
        """Always `value`."""

        def __init__(self, value):
            self.value = value

        def __call__(self, data, index):
            return self.value

    def default_aes(x=None, y=None):
        """The first layer's aesthetics: x, y, size 40, colour grey, shape 'o', alpha 1."""
        return {"x": x, "y": y, "size": ScaleConstant(40.0), "colour": ScaleConstant("grey"),
                "shape": ScaleConstant("o"), "alpha": ScaleConstant(1.0)}

    def make_aes(x=None, y=None, size=None, colour=None, shape=None, alpha=None):
        """An aesthetics dict; plain values become ScaleConstant, None means "from the layer before"."""
        allowed = {"size": (ScaleConstant, ScaleSize), "colour": (ScaleConstant, ScaleGradient, ScaleGradient2,
                                                                 ScaleRandomColour),
                   "shape": (ScaleConstant, ScaleShape), "alpha": (ScaleConstant,)}
        aes = {"x": x, "y": y}
        for name, value in (("size", size), ("colour", colour), ("shape", shape), ("alpha", alpha)):
            if value is not None and not callable(value):
                value = ScaleConstant(value)
            if value is not None and not isinstance(value, allowed[name]):
                raise ValueError(f"{name} mapping should be done through "
                                 + " or ".join(c.__name__ for c in allowed[name]))
            aes[name] = value
        return aes

    def _target(fig, ax):
        return ax if ax is not None else (fig.gca() if fig is not None else None)

    class Layer:
        """One plot layer: data (None: the previous layer's) and aesthetics."""

        def __init__(self, data=None, **kwds):
            self.data = data
            self.aes = make_aes(**kwds)
            self.legend = {}

        def work(self, fig=None, ax=None):
            return fig, ax

    class GeomPoint(Layer):
        """A marker per row, its size, colour, shape and alpha from the (scale) aesthetics."""

        def work(self, fig=None, ax=None):
            ax = _target(fig, ax)
            if ax is None:
                return fig, ax
            aes = self.aes
            for i in range(len(self.data)):
                row = self.data.iloc[i]
                colour = aes["colour"](self.data, i)
                patch = ax.scatter(row[aes["x"]], row[aes["y"]], s=aes["size"](self.data, i),
                                   color=colour, marker=aes["shape"](self.data, i), alpha=aes["alpha"](self.data, i))
                label = []
                for scale in (aes["colour"], aes["shape"]):
                    if scale.categorical:
                        label += [scale.column, row[scale.column]]
                self.legend[tuple(label)] = patch
            ax.set_xlabel(aes["x"])
            ax.set_ylabel(aes["y"])
            return fig, ax

    class GeomPolyFit(Layer):
        """A least-squares polynomial of `degree` through (x, y), drawn over x's range."""

        def __init__(self, degree, lw=2.0, colour="grey"):
            self.degree, self.lw, self.colour = degree, lw, colour
            Layer.__init__(self)

        def work(self, fig=None, ax=None):
            ax = _target(fig, ax)
            if ax is None:
                return fig, ax
            from numpy.polynomial import polynomial
            x, y = self.data[self.aes["x"]], self.data[self.aes["y"]]
            coef = polynomial.polyfit(x, y, self.degree)
            xs = np.linspace(min(x), max(x), len(x))
            ax.plot(xs, polynomial.polyval(xs, coef), lw=self.lw, c=self.colour)
            return fig, ax

    class GeomScatter(Layer):
        """One scatter of (x, y): "An efficient scatter plot, use this instead of GeomPoint"."""

        def __init__(self, marker="o", colour="lightblue", alpha=1.0):
            self.marker, self.colour, self.alpha = marker, colour, alpha
            Layer.__init__(self)

        def work(self, fig=None, ax=None):
            ax = _target(fig, ax)
            if ax is None:
                return fig, ax
            ax.scatter(self.data[self.aes["x"]], self.data[self.aes["y"]], marker=self.marker, c=self.colour,
                       alpha=self.alpha)
            return fig, ax

    class GeomHistogram(Layer):
        """A histogram of x."""

        def __init__(self, bins=10, colour="lightblue"):
            self.bins, self.colour = bins, colour
            Layer.__init__(self)

        def work(self, fig=None, ax=None):
            ax = _target(fig, ax)
            if ax is None:
                return fig, ax
            ax.hist(np.asarray(self.data[self.aes["x"]]), self.bins, facecolor=self.colour)
            ax.set_xlabel(self.aes["x"])
            return fig, ax

    class GeomDensity(Layer):
        """A Gaussian kernel density estimate of x, over 200 points of its range."""

        def work(self, fig=None, ax=None):
            ax = _target(fig, ax)
            if ax is None:
                return fig, ax
            from scipy.stats import gaussian_kde
            x = self.data[self.aes["x"]]
            grid = np.linspace(x.min(), x.max(), 200)
            ax.plot(grid, gaussian_kde(x).evaluate(grid))
            return fig, ax

    class GeomDensity2D(Layer):
        """Contours of a 2-D Gaussian kernel density estimate of (x, y) on a 200 x 200 grid."""

        def work(self, fig=None, ax=None):
            ax = _target(fig, ax)
            if ax is None:
                return fig, ax
            from scipy.stats import gaussian_kde
            x, y = self.data[self.aes["x"]], self.data[self.aes["y"]]
            X, Y = np.mgrid[x.min():x.max():200j, y.min():y.max():200j]
            Z = gaussian_kde(np.vstack([x, y]))(np.vstack([X.ravel(), Y.ravel()])).reshape(X.shape)
            ax.contour(Z, extent=[x.min(), x.max(), y.min(), y.max()])
            return fig, ax

    class TrellisGrid(Layer):
        """Split the data by two attributes, rows by the first and columns by the second; '.' in
        one place means no split there (one row, or one column)."""

        def __init__(self, by):
            if len(by) != 2:
                raise ValueError("You must give a list of length 2 to group by")
            if by[0] == "." and by[1] == ".":
                raise ValueError("At least one of grouping attributes must be not a dot")
            self.by = by
            self.data, self.aes, self.legend = None, make_aes(), {}

        def trellis(self, layers):
            """A rows x cols grid of copies of each layer, each holding one group's data."""
            grids = []
            for layer in layers:
                keys = self.by[1] if self.by[0] == "." else self.by[0] if self.by[1] == "." else list(self.by)
                grouped = list(layer.data.groupby(keys))
                names = [g for g, _ in grouped]
                if isinstance(keys, list):
                    self.rows, self.cols = len({g[0] for g in names}), len({g[1] for g in names})
                elif self.by[0] == ".":
                    self.rows, self.cols = 1, len(names)
                else:
                    self.rows, self.cols = len(names), 1
                grid = [[None] * self.cols for _ in range(self.rows)]
                self.group_grid = [[None] * self.cols for _ in range(self.rows)]
                for k, (name, part) in enumerate(grouped):  # filled row by row, in groupby order
                    r, c = divmod(k, self.cols)
                    clone = copy.deepcopy(layer)
                    clone.data = part
                    grid[r][c], self.group_grid[r][c] = clone, name
                grids.append(grid)
            return grids

    def _chain(pairs):
        for before, after in pairs:
            if before is None or after is None:
                continue
            if after.data is None:
                after.data = before.data
            for key, value in after.aes.items():
                if value is None:
                    after.aes[key] = before.aes[key]

    def _legend(fig, layers):
        legend = {}
        for layer in layers:
            if layer is not None:
                legend.update(layer.legend)
        if not legend:
            return
        keys = sorted(legend, key=lambda k: tuple(str(v) for v in k[1::2]))
        if any(len(k) not in (2, 4) for k in keys):
            raise ValueError("Maximum 2 categorical attributes to display a lengend of")
        labels = [", ".join(str(v) for v in k[1::2]) for k in keys]
        fig.legend([legend[k] for k in keys], labels, loc="upper right")

    class RPlot:
        """The main plot object: RPlot(data, x=None, y=None); add layers, then render()."""

        def __init__(self, data, x=None, y=None):
            self.layers = [Layer(data, **default_aes(x=x, y=y))]

        def add(self, layer):
            if not isinstance(layer, Layer):
                raise TypeError("The operand on the right side of + must be a Layer instance")
            self.layers.append(layer)

        def render(self, fig=None):
            """Draw every layer on fig (plt.gcf() when None) and return fig."""
            if fig is None:
                import matplotlib.pyplot as plt
                fig = plt.gcf()
            trellis = [layer for layer in self.layers if isinstance(layer, TrellisGrid)]
            layers = [layer for layer in self.layers if not isinstance(layer, TrellisGrid)]
            _chain(zip(layers[:-1], layers[1:]))
            if not trellis:
                for layer in layers:
                    layer.work(fig=fig)
                _legend(fig, layers)
                return fig
            grid_of = trellis[-1]
            grids = grid_of.trellis(layers)
            rows, cols = grid_of.rows, grid_of.cols
            for g1, g2 in zip(grids[:-1], grids[1:]):
                _chain(zip([c for row in g1 for c in row], [c for row in g2 for c in row]))
            axes = [fig.add_subplot(rows, cols, k + 1) for k in range(rows * cols)]  # one per cell, reused
            for grid in grids:
                for k, ax in enumerate(axes):
                    cell = grid[k // cols][k % cols]
                    if cell is not None:
                        cell.work(ax=ax)
            lo_x, hi_x = min(a.get_xlim()[0] for a in axes), max(a.get_xlim()[1] for a in axes)
            lo_y, hi_y = min(a.get_ylim()[0] for a in axes), max(a.get_ylim()[1] for a in axes)
            for k, ax in enumerate(axes):
                ax.set_xlim(lo_x, hi_x)
                ax.set_ylim(lo_y, hi_y)
                if k % cols:
                    ax.get_yaxis().set_ticks([])
                    ax.set_ylabel("")
                if k // cols != rows - 1:
                    ax.get_xaxis().set_ticks([])
                    ax.set_xlabel("")
                name = grid_of.group_grid[k // cols][k % cols]
                if name is None:
                    continue
                by = [b for b in grid_of.by if b != "."]
                values = list(name) if len(by) == 2 else [name[0] if isinstance(name, tuple) else name]
                text = [[f"{b} = {v}"] for b, v in zip(by, values)]
                ax.table(cellText=text, loc="top", cellLoc="center", cellColours=[["lightgrey"]] * len(text))
            _legend(fig, [c for row in grids[-1] for c in row])
            fig.subplots_adjust(wspace=0.05, hspace=0.2)
            return fig

    names = {k: v for k, v in locals().items() if not k.startswith("_") and k not in ("copy", "random")}
    for name, value in names.items():
        value.__module__, value.__qualname__ = "pandas.tools.rplot", name
    return names


# -- old module paths ------------------------------------------------------------------------------

_PLOTTING = ("scatter_matrix", "parallel_coordinates", "andrews_curves", "radviz", "lag_plot",
             "autocorrelation_plot", "bootstrap_plot", "table")
# alias: (modules whose attributes it offers, is a package, modern replacement)
_MODULES = {
    "pandas.tools": ((), True, "pandas"),
    "pandas.tools.plotting": (("pandas.plotting",), False, "pandas.plotting"),
    "pandas.tools.merge": (("pandas",), False, "pandas (merge, concat, merge_ordered)"),
    "pandas.tools.pivot": (("pandas",), False, "pandas (pivot_table, crosstab)"),
    "pandas.tools.tile": (("pandas",), False, "pandas (cut, qcut)"),
    "pandas.tseries.tools": (("pandas",), False, "pandas (to_datetime)"),
    "pandas.core.datetools": (("pandas.tseries.offsets", "pandas"), False, "pandas.tseries.offsets"),
    "pandas.stats": ((), True, "pandas"),
    "pandas.stats.moments": (("pandas",), False, "x.rolling(...) / x.expanding() / x.ewm(...)"),
    "pandas.util.testing": (("pandas.testing",), False, "pandas.testing"),
    "sklearn.externals.joblib": (("joblib",), False, "import joblib"),
    "pandas.tools.rplot": ((), False, "seaborn.FacetGrid (or plt.subplots + ax.scatter/ax.plot per group)"),
    "pandas.parser": (("pandas.errors",), False, "pandas.errors (CParserError is ParserError)"),
}
_RENAMED = {"pandas.parser": {"CParserError": "ParserError"}}  # alias: {0.18 name: modern name}
for _name, (_, _, _new) in _MODULES.items():
    CATALOGUE.append(Shim(f"import {_name}", _new))


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the 0.18 module paths above. It sits at the end of sys.meta_path, so a module that
    really exists is always found first; an alias module forwards attribute lookups (lazily) to
    the modern modules, which makes ``from pandas.tools.plotting import scatter_matrix`` work."""

    def find_spec(self, fullname, path=None, target=None):
        entry = _MODULES.get(fullname)
        if entry is None or not all(importlib.util.find_spec(m) for m in entry[0] if m not in sys.modules):
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=entry[1])

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        prefix, sources = module.__name__ + ".", _MODULES[module.__name__][0]

        def __getattr__(name):
            if prefix + name in _MODULES:  # pandas.tools.plotting without importing it first
                return importlib.import_module(prefix + name)
            if not name.startswith("__"):
                modern = _RENAMED.get(module.__name__, {}).get(name, name)
                for source in sources:
                    mod = importlib.import_module(source)
                    if hasattr(mod, modern):
                        return getattr(mod, modern)
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")

        module.__getattr__ = __getattr__
        if module.__name__ == "pandas.tools.plotting":
            module.__all__ = list(_PLOTTING)
        elif module.__name__ == "pandas.tools.rplot":
            module.__dict__.update(_rplot_namespace())
            warnings.warn(_RPLOT_WARNING, FutureWarning, stacklevel=2)
        elif module.__name__ == "pandas.stats.moments":
            module.__all__ = sorted(n for o, n, _, _ in _ENTRIES if o == "pd" and n.startswith(("rolling_", "expanding_", "ewm")))


_FINDER = _AliasFinder()


# -- install ----------------------------------------------------------------------------------------

def _apply(owners: dict) -> None:
    """Add what is missing and wrap what must be wrapped, for the entries of these owners."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's __getattr__ warns while hasattr() probes np.object
        for owner, name, mode, fn in _ENTRIES:
            target = owners.get(owner)
            if target is None:
                continue
            if mode == "wrap":
                original = getattr(target, name, None)
                if original is not None and not getattr(original, "__classic_compat__", False):
                    wrapped = fn(original)
                    setattr(target, name, staticmethod(wrapped) if name == "__new__" else wrapped)
            elif not hasattr(target, name):
                setattr(target, name, fn() if mode == "value" else fn)


def install() -> None:
    """Install every shim once (idempotent): add what is missing, wrap what must be wrapped."""
    global pd, np, _installed
    if _installed:
        return
    import numpy
    import pandas
    import pandas.core.resample

    pd, np = pandas, numpy
    _apply({"DataFrame": pandas.DataFrame, "Series": pandas.Series, "pd": pandas, "np": numpy, "pickle": pickle,
            "TimeGrouper": pandas.core.resample.TimeGrouper, "Period": pandas.Period,
            "PeriodIndex": pandas.PeriodIndex, "DatetimeIndex": pandas.DatetimeIndex})
    for (module, name), (where, now) in _IO_NAMES.items():
        target = importlib.import_module(module)
        if not hasattr(target, name):
            setattr(target, name, getattr(importlib.import_module(where), now))
    if "matplotlib.axes" in sys.modules:  # the template imported pyplot already
        _install_matplotlib(sys.modules["matplotlib.axes"])
    elif _MPL_HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _MPL_HOOK)
    if _FINDER not in sys.meta_path:
        sys.meta_path.append(_FINDER)
    for name in ("tools", "stats"):  # 0.18's `import pandas` bound pd.tools and pd.stats
        if not hasattr(pandas, name):
            importlib.import_module("pandas." + name)
    _installed = True
