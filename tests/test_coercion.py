"""Request rows to typed columns and the DataFrame a script sees (contract.md, "Input ports to arguments")."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from publisher.coercion import CellError, InputError, _fast, coerce_values, convert_cell, rows_to_table
from publisher.schema import parse_schema

MAX = 1_000_000


def port(*columns, **options):
    """A PortSpec built through the real schema loader."""
    cols = []
    for c in columns:
        name, type_, *rest = c
        spec = {"name": name, "type": type_}
        if rest:
            spec.update(rest[0])
        cols.append(spec)
    return parse_schema({"inputs": {"input1": {"columns": cols, **options}}}).inputs["input1"]


def frame(spec, rows, name="input1", max_rows=MAX) -> pd.DataFrame:
    return rows_to_table(name, spec, rows, max_rows).to_frame()


def refused(spec, rows, max_rows=MAX) -> InputError:
    with pytest.raises(InputError) as info:
        rows_to_table("input1", spec, rows, max_rows)
    return info.value


ALL_TYPES = port(("s", "string"), ("i", "integer"), ("d", "double"), ("b", "boolean"), ("t", "datetime"))
ALL_NULLABLE = port(*[(n, t, {"nullable": True}) for n, t in
                      [("s", "string"), ("i", "integer"), ("d", "double"), ("b", "boolean"), ("t", "datetime")]])
ROWS = [
    {"s": "a", "i": 1, "d": 1.5, "b": True, "t": "2024-03-01T12:00:00Z"},
    {"s": "b", "i": -2, "d": 2, "b": False, "t": "2024-03-02T00:00:00"},
    {"s": "c", "i": 2**62, "d": -0.25, "b": True, "t": "2024-03-03T08:30:00.123456+00:00"},
]


# -- the type table -----------------------------------------------------------------------

def test_dtypes_not_nullable():
    df = frame(ALL_TYPES, ROWS)
    assert {c: str(t) for c, t in df.dtypes.items()} == {
        "s": "object", "i": "int64", "d": "float64", "b": "bool", "t": "datetime64[ns]"}
    assert list(df.columns) == ["s", "i", "d", "b", "t"]
    assert df["s"].tolist() == ["a", "b", "c"]
    assert df["i"].tolist() == [1, -2, 2**62]
    assert df["d"].tolist() == [1.5, 2.0, -0.25]
    assert df["b"].tolist() == [True, False, True]
    assert df["t"].tolist() == [pd.Timestamp("2024-03-01 12:00:00"), pd.Timestamp("2024-03-02"),
                                pd.Timestamp("2024-03-03 08:30:00.123456")]
    assert all(type(v) is str for v in df["s"])


def test_dtypes_nullable():
    df = frame(ALL_NULLABLE, ROWS)
    assert {c: str(t) for c, t in df.dtypes.items()} == {
        "s": "object", "i": "Int64", "d": "float64", "b": "boolean", "t": "datetime64[ns]"}
    assert df["i"].tolist() == [1, -2, 2**62]
    assert df["b"].tolist() == [True, False, True]


def test_missing_values_in_nullable_columns():
    rows = ROWS + [{"s": None, "i": None, "d": None, "b": None, "t": None}]
    df = frame(ALL_NULLABLE, rows)
    assert {c: str(t) for c, t in df.dtypes.items()} == {
        "s": "object", "i": "Int64", "d": "float64", "b": "boolean", "t": "datetime64[ns]"}
    last = df.iloc[3]
    assert last["s"] is None
    assert last["i"] is pd.NA
    assert math.isnan(last["d"])
    assert last["b"] is pd.NA
    assert last["t"] is pd.NaT
    # the others are untouched
    assert df["i"].iloc[:3].tolist() == [1, -2, 2**62]
    assert df["b"].iloc[:3].tolist() == [True, False, True]
    assert df["s"].isna().tolist() == [False, False, False, True]


def test_missing_values_slow_path():
    # strings in number columns force the cell-by-cell path; nulls must survive it
    spec = port(("i", "integer", {"nullable": True}), ("d", "double", {"nullable": True}),
                ("b", "boolean", {"nullable": True}))
    df = frame(spec, [{"i": "7", "d": "1.5", "b": "true"}, {"i": None, "d": None, "b": None}])
    assert str(df["i"].dtype) == "Int64" and df["i"].iloc[0] == 7 and df["i"].iloc[1] is pd.NA
    assert df["d"].iloc[0] == 1.5 and math.isnan(df["d"].iloc[1])
    assert bool(df["b"].iloc[0]) is True
    assert df["b"].iloc[1] is pd.NA


def test_default_range_index():
    df = frame(ALL_TYPES, ROWS)
    assert isinstance(df.index, pd.RangeIndex)
    assert df.index.equals(pd.RangeIndex(3))
    assert (df.index.start, df.index.stop, df.index.step) == (0, 3, 1)
    assert df.index.dtype == np.int64


# -- datetimes ----------------------------------------------------------------------------

def test_datetime_offset_converted_to_utc_and_naive_taken_as_utc():
    spec = port(("t", "datetime"))
    df = frame(spec, [{"t": "2024-01-01T12:00:00+02:00"}, {"t": "2024-01-01T12:00:00"},
                      {"t": "2024-01-01T12:00:00Z"}, {"t": "2024-01-01T12:00:00-05:30"}, {"t": "2024-01-01"}])
    assert str(df["t"].dtype) == "datetime64[ns]"
    assert df["t"].dt.tz is None
    assert df["t"].tolist() == [pd.Timestamp("2024-01-01 10:00"), pd.Timestamp("2024-01-01 12:00"),
                                pd.Timestamp("2024-01-01 12:00"), pd.Timestamp("2024-01-01 17:30"),
                                pd.Timestamp("2024-01-01")]


def test_datetime_cell_rule_matches_column():
    assert convert_cell("datetime", "2024-01-01T12:00:00+02:00") == pd.Timestamp("2024-01-01 10:00").value
    assert convert_cell("datetime", "2024-01-01T12:00:00") == pd.Timestamp("2024-01-01 12:00").value


@pytest.mark.parametrize("value", ["", "NaT", "now", "today", "2024", "2024-13-01", "yesterday", "1/2/2024"])
def test_datetime_that_is_not_iso_8601_refused(value):
    # pandas alone would read some of these ("", "NaT" as missing; "now"/"today" as the clock)
    err = refused(port(("t", "datetime")), [{"t": "2024-01-01T00:00:00Z"}, {"t": value}])
    assert err.code == "InputParseError"
    assert err.target == "input1[1].t"


def test_empty_string_is_not_null_in_nullable_datetime():
    err = refused(port(("t", "datetime", {"nullable": True})), [{"t": ""}])
    assert err.code == "InputParseError" and err.target == "input1[0].t"


def test_datetime_out_of_range_refused():
    err = refused(port(("t", "datetime")), [{"t": "2024-01-01"}, {"t": "9999-12-31T00:00:00"}])
    assert err.code == "InputParseError" and err.target == "input1[1].t"
    assert "range" in err.message
    with pytest.raises(CellError):
        convert_cell("datetime", "1500-01-01")


def test_datetime_must_be_text():
    err = refused(port(("t", "datetime")), [{"t": 1704067200}])
    assert err.code == "InputParseError" and err.target == "input1[0].t"


# -- strings as numbers, refusals ---------------------------------------------------------

def test_strings_as_numbers_converted():
    spec = port(("i", "integer"), ("d", "double"), ("b", "boolean"))
    df = frame(spec, [{"i": "12", "d": "1.5", "b": "true"}, {"i": " -3 ", "d": "2", "b": "False"},
                      {"i": 4, "d": 3, "b": "0"}, {"i": 5.0, "d": "1e3", "b": "1"}])
    assert str(df["i"].dtype) == "int64" and df["i"].tolist() == [12, -3, 4, 5]
    assert str(df["d"].dtype) == "float64" and df["d"].tolist() == [1.5, 2.0, 3.0, 1000.0]
    assert str(df["b"].dtype) == "bool" and df["b"].tolist() == [True, False, False, True]


def test_numbers_in_string_column_become_text():
    df = frame(port(("s", "string")), [{"s": "a"}, {"s": 12}, {"s": 1.5}])
    assert str(df["s"].dtype) == "object" and df["s"].tolist() == ["a", "12", "1.5"]


@pytest.mark.parametrize("type_, value", [("integer", True), ("integer", False), ("double", True),
                                          ("double", False)])
def test_bools_refused_for_numbers(type_, value):
    err = refused(port(("x", type_)), [{"x": 1}, {"x": value}])
    assert err.code == "InputParseError" and err.target == "input1[1].x"


@pytest.mark.parametrize("value", [1.5, "1.5", -0.1, "abc", "", [1], {"a": 1}])
def test_non_integers_refused(value):
    err = refused(port(("x", "integer")), [{"x": 1}, {"x": 2}, {"x": value}])
    assert err.code == "InputParseError" and err.target == "input1[2].x"
    assert "is not an integer" in err.message


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, str(2**63), 1e19])
def test_int64_overflow_refused(value):
    err = refused(port(("x", "integer")), [{"x": 0}, {"x": value}])
    assert err.code == "InputParseError" and err.target == "input1[1].x"


def test_int64_bounds_accepted():
    df = frame(port(("x", "integer")), [{"x": 2**63 - 1}, {"x": -(2**63)}])
    assert df["x"].tolist() == [2**63 - 1, -(2**63)] and str(df["x"].dtype) == "int64"


@pytest.mark.parametrize("value", ["yes", 1, 0, "t", 1.0])
def test_non_booleans_refused(value):
    err = refused(port(("b", "boolean")), [{"b": value}])
    assert err.code == "InputParseError" and err.target == "input1[0].b"


@pytest.mark.parametrize("value", ["abc", "", [1.0], {"x": 1}])
def test_non_numbers_refused(value):
    err = refused(port(("d", "double")), [{"d": value}])
    assert err.code == "InputParseError" and err.target == "input1[0].d"


def test_objects_refused_in_string_column():
    err = refused(port(("s", "string")), [{"s": "a"}, {"s": {"nested": 1}}])
    assert err.code == "InputParseError" and err.target == "input1[1].s"
    assert "an object" in err.message


# -- error targets and codes --------------------------------------------------------------

def test_error_target_names_row_and_column():
    spec = port(("name", "string"), ("age", "integer"))
    rows = [{"name": "a", "age": 1}, {"name": "b", "age": 2}, {"name": "c", "age": 3}, {"name": "d", "age": "x"}]
    err = refused(spec, rows)
    assert err.code == "InputParseError"
    assert err.target == "input1[3].age"
    assert "row 3" in err.message and "'age'" in err.message


def test_error_names_the_port():
    spec = port(("age", "integer"))
    with pytest.raises(InputError) as info:
        rows_to_table("input2", spec, [{"age": "x"}], MAX)
    assert info.value.target == "input2[0].age"


def test_null_value_code():
    err = refused(port(("a", "string"), ("b", "integer")), [{"a": "x", "b": 1}, {"a": "y", "b": None}])
    assert err.code == "NullValue" and err.target == "input1[1].b"
    assert "not nullable" in err.message


@pytest.mark.parametrize("type_", ["string", "integer", "double", "boolean", "datetime"])
def test_null_refused_in_every_non_nullable_type(type_):
    err = refused(port(("x", type_)), [{"x": None}])
    assert err.code == "NullValue" and err.target == "input1[0].x"


def test_nan_text_refused_in_non_nullable_double():
    err = refused(port(("d", "double")), [{"d": 1.0}, {"d": "nan"}])
    assert err.code == "NullValue" and err.target == "input1[1].d"


def test_missing_column_code():
    err = refused(port(("a", "string"), ("b", "integer")), [{"a": "x", "b": 1}, {"a": "y"}])
    assert err.code == "MissingColumn" and err.target == "input1[1].b"
    assert "'b'" in err.message


def test_unexpected_column_code():
    err = refused(port(("a", "string")), [{"a": "x"}, {"a": "y", "zz": 1}])
    assert err.code == "UnexpectedColumn" and err.target == "input1[1].zz"
    assert "'zz'" in err.message


def test_row_count_codes():
    spec = port(("a", "integer"), min_rows=2, max_rows=3)
    err = refused(spec, [{"a": 1}])
    assert err.code == "RowCount" and err.target == "input1" and "at least 2" in err.message
    err = refused(spec, [{"a": i} for i in range(4)])
    assert err.code == "RowCount" and "at most 3" in err.message
    assert rows_to_table("input1", spec, [{"a": 1}, {"a": 2}], MAX).n_rows == 2


def test_server_max_rows_caps_port_max_rows():
    spec = port(("a", "integer"), max_rows=100)
    err = refused(spec, [{"a": i} for i in range(6)], max_rows=5)
    assert err.code == "RowCount" and "at most 5" in err.message


def test_rows_must_be_a_list_of_objects():
    spec = port(("a", "integer"))
    err = refused(spec, {"a": 1})
    assert err.code == "InputParseError" and err.target == "input1"
    err = refused(spec, [{"a": 1}, [1]])
    assert err.code == "InputParseError" and err.target == "input1[1]"


# -- long payload values stay out of messages ---------------------------------------------

def test_long_value_is_truncated_in_message():
    long = "9" * 5_000 + "x" * 5_000
    err = refused(port(("age", "integer")), [{"age": long}])
    assert err.target == "input1[0].age"
    assert len(long) == 10_000
    assert long not in err.message and "x" * 100 not in err.message
    assert len(err.message) < 200
    assert "..." in err.message


def test_long_value_truncated_for_every_type():
    long = "z" * 10_000
    for type_ in ("integer", "double", "boolean", "datetime"):
        err = refused(port(("c", type_)), [{"c": long}])
        assert len(err.message) < 200, type_


def test_long_unexpected_column_name_is_truncated_in_message():
    name = "k" * 10_000
    err = refused(port(("a", "string")), [{"a": "x", name: 1}])
    assert err.code == "UnexpectedColumn"
    assert len(err.message) < 200


# -- defaults and extra columns -----------------------------------------------------------

def test_column_with_default_may_be_left_out():
    spec = port(("a", "string"), ("w", "double", {"default": 1.0}), ("n", "integer", {"default": "12"}),
                ("z", "integer", {"nullable": True, "default": None}))
    df = frame(spec, [{"a": "x"}, {"a": "y", "w": 2.5, "n": 3, "z": 4}])
    assert df["w"].tolist() == [1.0, 2.5]
    assert df["n"].tolist() == [12, 3] and str(df["n"].dtype) == "int64"
    assert df["z"].iloc[0] is pd.NA and df["z"].iloc[1] == 4 and str(df["z"].dtype) == "Int64"


def test_default_for_a_column_missing_from_every_row():
    spec = port(("a", "string"), ("flag", "boolean", {"default": True}))
    df = frame(spec, [{"a": "x"}, {"a": "y"}])
    assert df["flag"].tolist() == [True, True] and str(df["flag"].dtype) == "bool"


def test_extra_columns_allowed_pass_through():
    spec = port(("a", "integer"), extra_columns="allow")
    df = frame(spec, [{"a": 1, "note": "hi", "n": 3}, {"a": 2, "n": 4.5}, {"a": 3, "other": True}])
    assert list(df.columns) == ["a", "note", "n", "other"]
    assert str(df["a"].dtype) == "int64"
    assert df["note"].tolist() == ["hi", None, None]
    assert df["n"].tolist()[:2] == [3, 4.5] and df["n"].iloc[2] is None
    assert df["other"].tolist() == [None, None, True]
    assert str(df["note"].dtype) == "object"


# -- zero rows ----------------------------------------------------------------------------

def test_zero_rows_allowed_with_min_rows_0():
    spec = port(("s", "string"), ("i", "integer"), ("d", "double"), ("b", "boolean"), ("t", "datetime"),
                ("ni", "integer", {"nullable": True}), ("nb", "boolean", {"nullable": True}), min_rows=0)
    df = frame(spec, [])
    assert len(df) == 0
    assert list(df.columns) == ["s", "i", "d", "b", "t", "ni", "nb"]
    assert {c: str(t) for c, t in df.dtypes.items()} == {
        "s": "object", "i": "int64", "d": "float64", "b": "bool", "t": "datetime64[ns]",
        "ni": "Int64", "nb": "boolean"}
    assert isinstance(df.index, pd.RangeIndex) and len(df.index) == 0


def test_zero_rows_refused_by_default():
    err = refused(port(("s", "string")), [])
    assert err.code == "RowCount"


# -- fast path and slow path agree --------------------------------------------------------

@pytest.mark.parametrize("type_, natural, as_text", [
    ("integer", [1, -2, 3, 2**40], ["1", "-2", "3", str(2**40)]),
    ("double", [1.5, -2.0, 3.25, 0.0], ["1.5", "-2.0", "3.25", "0"]),
    ("boolean", [True, False, True, False], ["true", "false", "TRUE", "0"]),
    # a decimal comma: ISO 8601 that pandas' vectorized parser does not read, so the column goes cell by cell
    ("datetime", ["2024-01-01T00:00:00Z", "2024-06-30T12:30:00+02:00", "2023-12-31T23:59:59.5", "2024-02-29"],
     ["2024-01-01T00:00:00Z", "2024-06-30T12:30:00+02:00", "2023-12-31T23:59:59,5", "2024-02-29"]),
])
@pytest.mark.parametrize("nullable", [False, True])
def test_fast_and_slow_paths_identical(type_, natural, as_text, nullable):
    spec = port(("x", type_, {"nullable": nullable}))
    col_spec = spec.columns[0]
    mixed = [natural[0]] + as_text[1:]
    assert _fast(type_, natural, set(map(type, natural))) is not None
    assert _fast(type_, mixed, set(map(type, mixed))) is None  # really the cell-by-cell path
    fast = coerce_values(col_spec, list(natural), "input1")
    slow = coerce_values(col_spec, mixed, "input1")
    assert fast.data.dtype == slow.data.dtype
    assert np.array_equal(fast.data, slow.data)
    f, s = fast.to_series(), slow.to_series()
    assert str(f.dtype) == str(s.dtype)
    pd.testing.assert_series_equal(f, s)
    # and through a whole table
    rows_fast = [{"x": v} for v in natural]
    rows_slow = [{"x": v} for v in mixed]
    pd.testing.assert_frame_equal(frame(spec, rows_fast), frame(spec, rows_slow))


def test_fast_and_slow_paths_identical_with_nulls():
    spec = port(("i", "integer", {"nullable": True}), ("d", "double", {"nullable": True}),
                ("b", "boolean", {"nullable": True}), ("t", "datetime", {"nullable": True}))
    fast = frame(spec, [{"i": 1, "d": 1.5, "b": True, "t": "2024-01-01T00:00:00"},
                        {"i": None, "d": None, "b": None, "t": None}])
    slow = frame(spec, [{"i": "1", "d": "1.5", "b": "true", "t": "2024-01-01T00:00:00,0"},
                        {"i": None, "d": None, "b": None, "t": None}])
    pd.testing.assert_frame_equal(fast, slow)


def test_int_column_vs_same_as_strings():
    spec = port(("n", "integer"))
    ints = frame(spec, [{"n": i} for i in range(50)])
    text = frame(spec, [{"n": str(i)} for i in range(50)])
    pd.testing.assert_frame_equal(ints, text)
    assert str(text["n"].dtype) == "int64"


# -- a large request ----------------------------------------------------------------------

def test_100k_rows_5_columns():
    n = 100_000
    spec = port(("s", "string"), ("i", "integer"), ("d", "double"), ("b", "boolean"), ("t", "datetime"),
                max_rows=n)
    base = pd.Timestamp("2024-01-01T00:00:00")
    stamps = [(base + pd.Timedelta(seconds=k)).isoformat() + "Z" for k in range(n)]
    rows = [{"s": f"r{k}", "i": k, "d": k / 2, "b": k % 2 == 0, "t": stamps[k]} for k in range(n)]
    df = frame(spec, rows, max_rows=n)
    assert len(df) == n
    assert {c: str(t) for c, t in df.dtypes.items()} == {
        "s": "object", "i": "int64", "d": "float64", "b": "bool", "t": "datetime64[ns]"}
    assert df["i"].iloc[-1] == n - 1 and df["d"].iloc[-1] == (n - 1) / 2
    assert df["s"].iloc[12345] == "r12345" and bool(df["b"].iloc[1]) is False
    assert df["t"].iloc[-1] == base + pd.Timedelta(seconds=n - 1)
    assert df.index.equals(pd.RangeIndex(n))


@pytest.mark.parametrize("type_,value", [("integer", "1_000"), ("double", "1_000.5")])
def test_python_only_digit_separators_refused(type_, value):
    with pytest.raises(CellError):
        convert_cell(type_, value)


@pytest.mark.parametrize("type_,values", [
    ("double", ["1.5", " 2 ", "-0", "1e3", "+5", "nan", "-inf"]),
    ("integer", ["1", " 22", "-3", "+4", "0"]),
    ("boolean", ["true", "False", "1", "0", "TRUE"]),
])
def test_vectorized_text_path_agrees_with_the_cell_rules(type_, values):
    spec = parse_schema({"inputs": {"input1": {"columns": [{"name": "c", "type": type_, "nullable": True}]}}}) \
        .inputs["input1"].columns[0]
    column = coerce_values(spec, list(values), "input1")
    expected = [convert_cell(type_, v) for v in values]
    got = column.data.tolist()
    assert [(math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(got, expected)] == [True] * len(values)


@pytest.mark.parametrize("type_,bad,row", [("double", ["1", "x"], 1), ("integer", ["1", "1.5"], 1),
                                            ("integer", ["1_0"], 0), ("boolean", ["true", "yes"], 1)])
def test_vectorized_text_path_still_names_the_bad_row(type_, bad, row):
    spec = parse_schema({"inputs": {"input1": {"columns": [{"name": "c", "type": type_}]}}}).inputs["input1"].columns[0]
    with pytest.raises(InputError) as caught:
        coerce_values(spec, list(bad), "input1")
    assert caught.value.target == f"input1[{row}].c"
