"""The scoring contract (contract.md) through the real runtime: real scripts, real worker processes.

Each test publishes a small ``score.py`` into an in-memory artifact, runs it through
``Runtime.call`` exactly as the HTTP layer does (request rows -> ``rows_to_table`` -> worker ->
output table) and checks one rule of the contract. Nothing is mocked.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pandas as pd
import pytest

from publisher import artifact, bundle
from publisher.coercion import rows_to_table
from publisher.errors import ArtifactError
from publisher.schema import parse_schema
from publisher.settings import Settings
from serving.runtime.dispatcher import CallResult, Runtime
from serving.runtime.errors import CallTimedOut, MemoryExceeded, ScriptFailed, WorkerCrashed

ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

NO_PORTS = {"inputs": {}}
ONE_PORT = {"inputs": {"input1": {"columns": [{"name": "x", "type": "integer"}]}}}
TWO_PORTS = {"inputs": {"input1": {"columns": [{"name": "x", "type": "integer"}]},
                        "input2": {"columns": [{"name": "y", "type": "string"}], "min_rows": 0}}}


class Service:
    """One script frozen into an artifact, served by a Runtime of its own."""

    def __init__(self, settings: Settings, source: str, schema: dict, bundle_dir: Path | None = None):
        members = {"score.py": textwrap.dedent(source).encode(), "schema.json": orjson.dumps(schema)}
        if bundle_dir is not None:
            members["bundle.zip"] = bundle.zip_folder(bundle_dir, settings.max_bundle_bytes,
                                                      settings.max_bundle_files)
        self.settings = settings
        self.digest, self.archive = artifact.build("contract", members, {}, {})
        self.schema = parse_schema(schema)
        self.runtime = Runtime(settings, {self.digest: self.archive}.__getitem__)

    def call(self, *rows_per_port: list, parameters: dict | None = None) -> CallResult:
        assert len(rows_per_port) == len(self.schema.inputs), "one list of rows per declared port"
        tables = [rows_to_table(port, spec, rows, self.settings.max_rows)
                  for (port, spec), rows in zip(self.schema.inputs.items(), rows_per_port)]
        return self.runtime.call(self.digest, self.schema, tables, parameters or {})

    def close(self) -> None:
        self.runtime.close()


@pytest.fixture
def service(settings):
    """``service(source, schema, bundle_dir=None, **settings_overrides)``; every runtime is closed after."""
    made: list[Service] = []

    def make(source: str, schema: dict, bundle_dir: Path | None = None, **overrides) -> Service:
        svc = Service(dataclasses.replace(settings, pool_size=1, **overrides), source, schema, bundle_dir)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()


@pytest.fixture(scope="module")
def shared_settings(tmp_path_factory) -> Settings:
    """Like conftest's ``settings``, for the few services shared by many tests of this module."""
    from conftest import HOMES

    home = tmp_path_factory.mktemp("home")
    HOMES.add(home)
    return Settings.from_env({"SCOREPUB_HOME": str(home)}, pool_size=1)


def info(result: CallResult):
    """The JSON document a probing script returned in its single ``info`` cell."""
    rows = result.output.to_rows()
    assert len(rows) == 1 and list(rows[0]) == ["info"], rows
    return orjson.loads(rows[0]["info"])


# -- input ports to arguments ---------------------------------------------------------------

@pytest.mark.parametrize("schema, signature, rows, expected", [
    (NO_PORTS, "", (), []),
    (ONE_PORT, "dataframe1", ([{"x": 1}, {"x": 2}],), [["DataFrame", [2, 1], ["x"]]]),
    (TWO_PORTS, "dataframe1, dataframe2", ([{"x": 1}, {"x": 2}, {"x": 3}], []),
     [["DataFrame", [3, 1], ["x"]], ["DataFrame", [0, 1], ["y"]]]),
], ids=["no-ports", "input1", "input1-and-input2"])
def test_ports_are_passed_positionally(service, schema, signature, rows, expected):
    svc = service(f"""
        import json
        import pandas as pd

        def azureml_main({signature}):
            args = [{signature}]
            return pd.DataFrame({{"info": [json.dumps([[type(a).__name__, list(a.shape), list(a.columns)]
                                                      for a in args])]}})
        """, schema)
    assert info(svc.call(*rows)) == expected


# -- the input DataFrame ------------------------------------------------------------------------

DTYPES_SCHEMA = {"inputs": {"input1": {
    "columns": [
        {"name": "s", "type": "string", "nullable": True},
        {"name": "i", "type": "integer"},
        {"name": "ni", "type": "integer", "nullable": True},
        {"name": "d", "type": "double", "nullable": True},
        {"name": "b", "type": "boolean"},
        {"name": "nb", "type": "boolean", "nullable": True},
        {"name": "t", "type": "datetime", "nullable": True},
    ],
    "min_rows": 0,
    "extra_columns": "allow",
}}}

DTYPES_SCRIPT = """
    import json
    import pandas as pd

    def kind(v):
        if v is None:
            return "None"
        if v is pd.NA:
            return "NA"
        if v is pd.NaT:
            return "NaT"
        if isinstance(v, float) and v != v:
            return "NaN"
        return f"{type(v).__name__}:{v}"

    def azureml_main(df):
        idx = df.index
        return pd.DataFrame({"info": [json.dumps({
            "index": [type(idx).__name__, str(idx.dtype), idx.start, idx.stop, idx.step],
            "columns": [str(c) for c in df.columns],
            "dtypes": [str(df[c].dtype) for c in df.columns],
            "values": [[kind(v) for v in df[c].tolist()] for c in df.columns],
        })]})
"""


def test_input_frame_dtypes_index_and_missing_values(service):
    svc = service(DTYPES_SCRIPT, DTYPES_SCHEMA)
    rows = [
        # keys in another order than the schema's: the frame follows the schema
        {"extra": 5, "t": "2024-03-01T12:00:00+02:00", "nb": True, "b": False, "d": 1.5, "ni": 7, "i": 3,
         "s": "hi"},
        {"extra": "five", "t": None, "nb": None, "b": True, "d": None, "ni": None, "i": 4, "s": None},
        {"t": "2024-03-01T12:00:00", "nb": False, "b": True, "d": 2, "ni": -1, "i": 5, "s": "x"},
    ]
    got = info(svc.call(rows))
    assert got["index"] == ["RangeIndex", "int64", 0, 3, 1]
    assert got["columns"] == ["s", "i", "ni", "d", "b", "nb", "t", "extra"]
    assert got["dtypes"][:7] == ["object", "int64", "Int64", "float64", "bool", "boolean", "datetime64[ns]"]
    values = dict(zip(got["columns"], got["values"]))
    # missing values: None (string), pd.NA (nullable integer/boolean), NaN (double), NaT (datetime)
    assert [v[1] for k, v in values.items() if k != "extra"] == \
        ["None", "int:4", "NA", "NaN", "bool:True", "NA", "NaT"]
    # datetimes are UTC unless an offset is given; the script sees naive UTC timestamps
    assert values["t"][0] == "Timestamp:2024-03-01 10:00:00"
    assert values["t"][2] == "Timestamp:2024-03-01 12:00:00"
    # extra columns (allowed by the schema) pass through as JSON gave them
    assert values["extra"] == ["int:5", "str:five", "None"]


def test_input_frame_with_zero_rows_keeps_the_schema_dtypes(service):
    svc = service(DTYPES_SCRIPT, DTYPES_SCHEMA)
    got = info(svc.call([]))
    assert got["index"] == ["RangeIndex", "int64", 0, 0, 1]
    assert got["columns"] == ["s", "i", "ni", "d", "b", "nb", "t"]
    assert got["dtypes"] == ["object", "int64", "Int64", "float64", "bool", "boolean", "datetime64[ns]"]
    assert got["values"] == [[]] * 7


# -- module-level code and isolation ---------------------------------------------------------------

ISOLATION_SCRIPT = """
    import builtins
    import json
    import os
    import pandas as pd

    # module-level code: counts its runs in this process (the environment outlives a re-run module)
    os.environ["SCORE_PY_LOADS"] = str(int(os.environ.get("SCORE_PY_LOADS", "0")) + 1)
    calls = 0

    def azureml_main():
        global calls, leftover
        calls += 1
        seen = {
            "loads": int(os.environ["SCORE_PY_LOADS"]),
            "calls": calls,
            "leftover": globals().get("leftover"),
            "builtin": getattr(builtins, "scorepub_marker", None),
            "describe": pd.DataFrame.describe.__name__,
        }
        leftover = "set by an earlier call"
        builtins.scorepub_marker = "patched builtins"
        pd.DataFrame.describe = lambda self: "patched pandas"
        return pd.DataFrame({"info": [json.dumps(seen)]})
"""


def test_warm_worker_loads_once_and_keeps_globals(service):
    svc = service(ISOLATION_SCRIPT, NO_PORTS)
    seen = [info(svc.call()) for _ in range(3)]
    assert [s["loads"] for s in seen] == [1, 1, 1]  # module-level code ran once
    assert [s["calls"] for s in seen] == [1, 2, 3]  # one module, its globals persist
    assert seen[0]["leftover"] is None and seen[2]["leftover"] == "set by an earlier call"
    assert seen[2]["builtin"] == "patched builtins" and seen[2]["describe"] == "<lambda>"


def test_per_call_isolation_sees_nothing_of_earlier_calls(service):
    svc = service(ISOLATION_SCRIPT, {**NO_PORTS, "isolation": "per-call"})
    seen = [info(svc.call()) for _ in range(3)]
    for s in seen:
        assert s == {"loads": 1, "calls": 1, "leftover": None, "builtin": None, "describe": "describe"}


# -- what the script returns ---------------------------------------------------------------------

RETURNS_SCRIPT = """
    import numpy as np
    import pandas as pd

    def azureml_main():
        df = pd.DataFrame({"a": [1, 2]})
        form = azureml_parameters["form"]
        if form == "frame":
            return df
        if form == "tuple":
            return df, pd.DataFrame({"ignored": [0]})
        if form == "list":
            return [df, "ignored"]
        if form == "array":
            arr = np.empty(2, dtype=object)
            arr[0], arr[1] = df, None
            return arr
        if form == "none":
            return None
        if form == "empty-tuple":
            return ()
        if form == "int":
            return 42
        if form == "tuple-of-int":
            return (42, df)
        if form == "zero-d-array":
            arr = np.empty((), dtype=object)
            arr[()] = df
            return arr
"""


@pytest.fixture(scope="module")
def returns_service(shared_settings):
    svc = Service(shared_settings, RETURNS_SCRIPT, NO_PORTS)
    yield svc
    svc.close()


@pytest.mark.parametrize("form", ["frame", "tuple", "list", "array"])
def test_accepted_return_forms(returns_service, form):
    result = returns_service.call(parameters={"form": form})
    assert result.output.names == ["a"]
    assert result.output.to_rows() == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize("form, says", [
    ("none", "returned None"),
    ("empty-tuple", "empty tuple"),
    ("int", "type int"),
    ("tuple-of-int", "tuple whose first element is a value of type int"),
    ("zero-d-array", "type ndarray"),  # an array, but not a sequence
])
def test_refused_return_forms_say_what_was_returned(returns_service, form, says):
    with pytest.raises(ScriptFailed) as caught:
        returns_service.call(parameters={"form": form})
    assert says in str(caught.value)
    assert "DataFrame" in str(caught.value)
    assert not caught.value.at_load
    # the worker survives a wrong return value
    assert returns_service.call(parameters={"form": "frame"}).output.n_rows == 2


# -- output translation --------------------------------------------------------------------------

TRANSLATION_SCRIPT = """
    import datetime as dt
    import decimal
    import numpy as np
    import pandas as pd

    class Thing:
        def __str__(self):
            return "a thing"

    def frame(case):
        if case == "default-index":
            return pd.DataFrame({"a": [1, 2]})
        if case == "labelled-index":
            return pd.DataFrame({"a": [1, 2]}, index=["r1", "r2"])
        if case == "shifted-range-index":
            return pd.DataFrame({"a": [0, 1, 2]}).iloc[1:]
        if case == "int-names":
            return pd.DataFrame([[1, 2]])
        if case == "tuple-names":
            return pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("x", "y"), ("x", "z")]))
        if case == "duplicates":
            return pd.DataFrame([[1, 2, 3]], columns=["a", "a", "a"])
        if case == "duplicates-collide":
            return pd.DataFrame([[1, 2, 3]], columns=["a", "a", "a (1)"])
        if case == "missing":
            return pd.DataFrame({
                "object": pd.Series(["x", None, np.nan, pd.NA, pd.NaT], dtype=object),
                "float": [1.5, np.nan, np.nan, np.nan, np.nan],
                "Int64": pd.array([1, None, None, None, None], dtype="Int64"),
                "boolean": pd.array([True, None, None, None, None], dtype="boolean"),
                "datetime": pd.to_datetime(["2024-01-02", None, None, None, None]),
                "string": pd.array(["x", None, None, None, None], dtype="string"),
            })
        if case == "inf":
            return pd.DataFrame({"float": [1.0, np.inf, -np.inf],
                                 "object": pd.Series([np.float64("inf"), "x", float("-inf")], dtype=object)})
        if case == "numpy-scalars":
            return pd.DataFrame({
                "int": pd.Series([np.int64(3), np.int32(-4)], dtype=object),
                "float": pd.Series([np.float64(0.5), np.float32(0.25)], dtype=object),
                "bool": pd.Series([np.bool_(True), np.bool_(False)], dtype=object),
                "mixed": pd.Series([np.int16(7), "seven"], dtype=object),
            })
        if case == "datetimes":
            ts = pd.Timestamp("2024-01-02 03:04:05")
            return pd.DataFrame({
                "naive": [ts, ts + pd.Timedelta(milliseconds=250)],
                "aware": pd.to_datetime(["2024-01-02T05:04:05+02:00", "2024-01-02T05:04:05.250+02:00"],
                                        format="ISO8601"),
                "object": pd.Series([dt.datetime(2024, 1, 2, 3, 4, 5), dt.date(2024, 1, 2)], dtype=object),
            })
        if case == "far-datetimes":  # sentinel dates beyond datetime64[ns]; pandas keeps them in [us]
            return pd.DataFrame({
                "naive": pd.to_datetime(["9999-12-31", None, "2024-01-02"]).as_unit("us"),
                "aware": pd.to_datetime(["9999-12-31T02:00:00+02:00", None, "2024-01-02T02:00:00+02:00"],
                                        format="ISO8601").as_unit("us"),
            })
        if case == "bytes":
            return pd.DataFrame({"b": pd.Series([b"\\x00\\xffhi", bytearray(b"ok")], dtype=object)})
        if case == "objects":
            return pd.DataFrame({
                "dict": pd.Series([{"k": 1}], dtype=object),
                "list": pd.Series([[1, 2]], dtype=object),
                "decimal": pd.Series([decimal.Decimal("1.50")], dtype=object),
                "thing": pd.Series([Thing()], dtype=object),
            })
        if case == "labels":
            return pd.DataFrame({
                "string": ["x"],
                "int64": np.array([1], dtype=np.int64),
                "int32": np.array([1], dtype=np.int32),
                "double": [0.5],
                "boolean": [True],
                "datetime": [pd.Timestamp("2024-01-02")],
                "nullable_int": pd.array([1], dtype="Int64"),
                "nullable_bool": pd.array([True], dtype="boolean"),
            })
        raise ValueError(case)

    def azureml_main():
        return frame(azureml_parameters["case"]),
"""


@pytest.fixture(scope="module")
def translate(shared_settings):
    """``translate(case)``: the CallResult of the translation script returning that case's frame."""
    svc = Service(shared_settings, TRANSLATION_SCRIPT, NO_PORTS)
    yield lambda case: svc.call(parameters={"case": case})
    svc.close()


def test_default_index_is_dropped_without_a_note(translate):
    result = translate("default-index")
    assert result.output.names == ["a"]
    assert result.output.to_rows() == [{"a": 1}, {"a": 2}]
    assert result.notes == []


@pytest.mark.parametrize("case, rows", [
    ("labelled-index", [{"a": 1}, {"a": 2}]),
    ("shifted-range-index", [{"a": 1}, {"a": 2}]),
])
def test_other_index_is_dropped_and_noted(translate, case, rows):
    result = translate(case)
    assert result.output.names == ["a"]  # the index is not returned as a column
    assert result.output.to_rows() == rows
    assert any("index" in note for note in result.notes), result.notes


@pytest.mark.parametrize("case, names", [
    ("int-names", ["0", "1"]),
    ("tuple-names", ["('x', 'y')", "('x', 'z')"]),
])
def test_column_names_become_str(translate, case, names):
    result = translate(case)
    assert result.output.names == names
    assert result.output.to_rows() == [dict(zip(names, [1, 2]))]


@pytest.mark.parametrize("case, names", [
    ("duplicates", ["a", "a (1)", "a (2)"]),
    # the second "a" would be "a (1)", which a later column already has: it takes the next free number
    ("duplicates-collide", ["a", "a (2)", "a (1)"]),
])
def test_duplicate_names_get_numbered_suffixes(translate, case, names):
    result = translate(case)
    assert result.output.names == names
    assert result.output.to_rows() == [dict(zip(names, [1, 2, 3]))]


def test_missing_values_become_null(translate):
    result = translate("missing")
    rows = result.output.to_rows()
    assert rows[0] == {"object": "x", "float": 1.5, "Int64": 1, "boolean": True,
                       "datetime": "2024-01-02T00:00:00", "string": "x"}
    for row in rows[1:]:  # None, NaN, pd.NA, NaT in object columns and every missing-value dtype
        assert row == dict.fromkeys(rows[0])
    assert result.notes == []


def test_inf_becomes_null_and_is_noted(translate):
    result = translate("inf")
    assert result.output.to_rows() == [{"float": 1.0, "object": None},
                                       {"float": None, "object": "x"},
                                       {"float": None, "object": None}]
    for column in ("float", "object"):
        assert any("inf" in note and column in note for note in result.notes), result.notes


def test_numpy_scalars_become_json_numbers_and_booleans(translate):
    rows = translate("numpy-scalars").output.to_rows()
    assert [r["int"] for r in rows] == [3, -4]
    assert [r["float"] for r in rows] == [0.5, 0.25]
    assert [r["bool"] for r in rows] == [True, False]
    assert [r["mixed"] for r in rows] == [7, "seven"]
    assert all(type(r["int"]) is int and type(r["float"]) is float and type(r["bool"]) is bool for r in rows)
    assert type(rows[0]["mixed"]) is int


def test_datetimes_become_iso_8601_strings(translate):
    rows = translate("datetimes").output.to_rows()
    parse = dt.datetime.fromisoformat
    assert [parse(r["naive"]) for r in rows] == [dt.datetime(2024, 1, 2, 3, 4, 5),
                                                 dt.datetime(2024, 1, 2, 3, 4, 5, 250000)]
    # tz-aware values are given in UTC
    assert [parse(r["aware"]) for r in rows] == [dt.datetime(2024, 1, 2, 3, 4, 5),
                                                 dt.datetime(2024, 1, 2, 3, 4, 5, 250000)]
    assert [r["object"] for r in rows] == ["2024-01-02T03:04:05", "2024-01-02"]


def test_datetimes_outside_the_nanosecond_range_keep_their_value(translate):
    output = translate("far-datetimes").output
    assert output.to_rows() == [{"naive": "9999-12-31T00:00:00", "aware": "9999-12-31T00:00:00"},
                                {"naive": None, "aware": None},
                                {"naive": "2024-01-02T00:00:00", "aware": "2024-01-02T00:00:00"}]
    assert [c.classic_label for c in output.columns] == ["DateTime", "DateTime"]


def test_bytes_become_base64(translate):
    rows = translate("bytes").output.to_rows()
    assert [r["b"] for r in rows] == [base64.b64encode(b"\x00\xffhi").decode(), base64.b64encode(b"ok").decode()]


def test_other_objects_become_their_str(translate):
    assert translate("objects").output.to_rows() == [
        {"dict": "{'k': 1}", "list": "[1, 2]", "decimal": "1.50", "thing": "a thing"}]


def test_output_columns_get_classic_labels_from_their_dtypes(translate):
    output = translate("labels").output
    assert {c.name: c.classic_label for c in output.columns} == {
        "string": "String", "int64": "Int64", "int32": "Int32", "double": "Double", "boolean": "Boolean",
        "datetime": "DateTime", "nullable_int": "Int64", "nullable_bool": "Boolean"}


# -- working directory, plots and logs ------------------------------------------------------------

def test_each_call_gets_a_fresh_working_directory_holding_only_the_bundle_deleted_after(service):
    svc = service("""
        import json
        import os
        import pandas as pd

        def azureml_main():
            before = sorted(os.listdir("."))
            with open("scratch.txt", "w") as f:
                f.write("left behind?")
            after = sorted(os.listdir("."))
            return pd.DataFrame({"info": [json.dumps({"cwd": os.getcwd(), "before": before, "after": after})]})
        """, NO_PORTS)
    for _ in range(2):
        got = info(svc.call())
        # only the Script Bundle: nothing of the earlier call, nor of the worker's own files
        assert got["before"] == ["Script Bundle"]
        assert got["after"] == ["Script Bundle", "scratch.txt"]
        assert not Path(got["cwd"]).exists()


def test_png_files_written_in_the_call_come_back_as_plots(service):
    svc = service("""
        import matplotlib
        BACKEND_AT_LOAD = matplotlib.get_backend()
        import matplotlib.pyplot as plt
        import pandas as pd

        def azureml_main():
            fig = plt.figure()
            plt.plot([1, 3, 2])
            fig.savefig("chart.png")
            plt.close(fig)
            with open("not-a-plot.txt", "w") as f:
                f.write("text")
            return pd.DataFrame({"backend": [BACKEND_AT_LOAD.lower()]})
        """, NO_PORTS)
    result = svc.call()
    assert result.output.to_rows() == [{"backend": "agg"}]
    assert [name for name, _ in result.plots] == ["chart.png"]
    assert result.plots[0][1].startswith(PNG_MAGIC) and len(result.plots[0][1]) > 1000
    assert result.plots_base64()[0]["name"] == "chart.png"


LOG_SCRIPT = """
    import os
    import sys
    import pandas as pd

    def azureml_main():
        spam = azureml_parameters.get("spam", 0)
        if spam:
            os.write(1, b"x" * spam)
        else:
            print("from print")
            print("from print to stderr", file=sys.stderr)
            os.write(1, b"from os.write to fd 1\\n")
            os.write(2, b"from os.write to fd 2\\n")
        return pd.DataFrame({"ok": [1]})
"""


def test_stdout_and_stderr_of_the_call_are_its_log(service):
    svc = service(LOG_SCRIPT, NO_PORTS)
    result = svc.call()
    for line in ("from print", "from print to stderr", "from os.write to fd 1", "from os.write to fd 2"):
        assert line + "\n" in result.log
    assert result.log_truncated is False


def test_log_over_the_cap_is_cut_with_a_marker(service):
    svc = service(LOG_SCRIPT, NO_PORTS, log_cap_bytes=1000)
    result = svc.call(parameters={"spam": 5000})
    assert result.log_truncated is True
    assert "x" * 1000 in result.log and "x" * 1001 not in result.log
    marker = result.log.replace("x" * 1000, "", 1).strip()
    assert "truncated" in marker
    assert len(result.log.encode()) < 1000 + 200
    # the next call's log is its own, not the rest of the earlier one
    quiet = svc.call()
    assert quiet.log_truncated is False and "xxx" not in quiet.log
    assert "from print" in quiet.log


# -- the script bundle ---------------------------------------------------------------------------

def test_bundle_modules_packages_and_data_files(service, tmp_path):
    folder = tmp_path / "bundle"
    (folder / "pkg").mkdir(parents=True)
    (folder / "data").mkdir()
    (folder / "Hello.py").write_text("def greet(name):\n    return f'Hello, {name}!'\n\n"
                                     "def fail():\n    raise ValueError('from the bundle')\n")
    (folder / "pkg" / "__init__.py").write_text("FROM_INIT = 'package'\n")
    (folder / "pkg" / "shout.py").write_text("def shout(text):\n    return text.upper()\n")
    (folder / "data" / "words.txt").write_text("alpha beta\n")
    svc = service("""
        import json
        import os
        import sys

        import Hello
        import pandas as pd
        import pkg
        from pkg.shout import shout

        def azureml_main(df):
            if azureml_parameters.get("fail"):
                Hello.fail()
            with open(os.path.join(os.environ["SCRIPT_BUNDLE"], "data", "words.txt")) as f:
                words = f.read().split()
            return pd.DataFrame({"info": [json.dumps({
                "greeting": Hello.greet(df["x"][0]),
                "package": pkg.FROM_INIT,
                "shout": shout("hi"),
                "words": words,
                "folder": os.path.basename(os.environ["SCRIPT_BUNDLE"]),
                "first_on_path": sys.path[0] == os.environ["SCRIPT_BUNDLE"],
            })]})
        """, {"inputs": {"input1": {"columns": [{"name": "x", "type": "string"}]}}}, bundle_dir=folder)
    assert info(svc.call([{"x": "World"}])) == {
        "greeting": "Hello, World!", "package": "package", "shout": "HI", "words": ["alpha", "beta"],
        "folder": "Script Bundle", "first_on_path": True}
    # a traceback through a bundle module names it relative to the bundle, not by its host path
    with pytest.raises(ScriptFailed) as caught:
        svc.call([{"x": "World"}], parameters={"fail": True})
    assert 'Hello.py", line 5, in fail' in caught.value.traceback
    assert_no_host_paths(caught.value.traceback, svc.settings)


# -- parameters ----------------------------------------------------------------------------------

def test_parameters_are_the_module_global_azureml_parameters(service):
    svc = service("""
        import json
        import pandas as pd

        def azureml_main():
            return pd.DataFrame({"info": [json.dumps(azureml_parameters)]})
        """, {**NO_PORTS, "parameters": {"alpha": {"type": "double", "default": 0.5},
                                          "label": {"type": "string"}}})
    assert info(svc.call(parameters={"alpha": 0.25, "label": "first"})) == {"alpha": 0.25, "label": "first"}
    assert info(svc.call(parameters={"alpha": 0.5})) == {"alpha": 0.5}  # set anew before each call


# -- failures ------------------------------------------------------------------------------------

FAILING_SCRIPT = """\
import pandas as pd

def divide(x):
    return 1 / x

def azureml_main(df):
    print("about to fail")
    if azureml_parameters.get("how") == "pandas":
        return df["no such column"]
    return divide(0)
"""


def assert_no_host_paths(text: str, settings: Settings) -> None:
    site_packages = str(Path(pd.__file__).parent.parent)
    for host_path in (str(settings.run_dir), str(settings.home), sys.prefix, sys.base_prefix, str(ROOT),
                      site_packages):
        assert host_path not in text, f"{host_path} appears in:\n{text}"


def test_exception_in_the_script_gives_a_clean_traceback(service, settings):
    svc = service(FAILING_SCRIPT, ONE_PORT)
    with pytest.raises(ScriptFailed) as caught:
        svc.call([{"x": 1}])
    exc = caught.value
    assert not exc.at_load
    assert "ZeroDivisionError" in str(exc)
    assert 'File "score.py", line 10, in azureml_main' in exc.traceback
    assert 'File "score.py", line 4, in divide' in exc.traceback
    assert "return 1 / x" in exc.traceback  # the source line is shown
    assert exc.traceback.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "about to fail" in exc.log
    assert_no_host_paths(exc.traceback, settings)


def test_exception_inside_a_library_hides_host_paths_too(service, settings):
    svc = service(FAILING_SCRIPT, ONE_PORT)
    with pytest.raises(ScriptFailed) as caught:
        svc.call([{"x": 1}], parameters={"how": "pandas"})
    tb = caught.value.traceback
    assert 'File "score.py", line 9, in azureml_main' in tb
    assert "KeyError" in tb and "no such column" in tb
    assert "pandas" in tb  # library frames are kept, with their paths made relative
    assert_no_host_paths(tb, settings)


def test_exception_at_load_fails_the_call_at_load(service, settings):
    svc = service("""\
        import pandas as pd

        raise RuntimeError("cannot load the model")

        def azureml_main(df):
            return df
        """, ONE_PORT)
    with pytest.raises(ScriptFailed) as caught:
        svc.call([{"x": 1}])
    exc = caught.value
    assert exc.at_load is True
    assert "cannot load the model" in str(exc)
    assert 'File "score.py", line 3, in <module>' in exc.traceback
    assert_no_host_paths(exc.traceback, settings)


MISBEHAVING_SCRIPT = """
    import os
    import signal
    import time
    import pandas as pd

    def azureml_main():
        what = azureml_parameters.get("do")
        if what == "sleep":
            time.sleep(30)
        elif what == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif what == "memory":
            bytearray(1 << 50)  # a petabyte: MemoryError
        return pd.DataFrame({"pid": [os.getpid()]})
"""
MISBEHAVING_SCHEMA = {**NO_PORTS, "limits": {"timeout_s": 1}}


def test_call_past_its_timeout_is_stopped_and_the_worker_replaced(service):
    svc = service(MISBEHAVING_SCRIPT, MISBEHAVING_SCHEMA)
    first_pid = svc.call().output.to_rows()[0]["pid"]
    started = time.monotonic()
    with pytest.raises(CallTimedOut):
        svc.call(parameters={"do": "sleep"})
    assert time.monotonic() - started < 10
    # killed and replaced (pids are those of the template's PID namespace): the service keeps serving
    assert svc.call().output.to_rows()[0]["pid"] != first_pid


def test_worker_killed_by_a_signal_is_reported_and_replaced(service):
    svc = service(MISBEHAVING_SCRIPT, {**NO_PORTS})
    first_pid = svc.call().output.to_rows()[0]["pid"]
    with pytest.raises(WorkerCrashed) as caught:
        svc.call(parameters={"do": "segv"})
    assert "SIGSEGV" in str(caught.value)
    assert svc.call().output.to_rows()[0]["pid"] != first_pid


def test_memory_error_is_memory_exceeded(service):
    svc = service(MISBEHAVING_SCRIPT, {**NO_PORTS, "limits": {"memory_mb": 256}})
    with pytest.raises(MemoryExceeded) as caught:
        svc.call(parameters={"do": "memory"})
    assert "256 MB" in str(caught.value)
    assert svc.call().output.n_rows == 1


# -- the artifact ----------------------------------------------------------------------------------

def test_runtime_refuses_an_artifact_that_does_not_match_its_digest(settings):
    schema = parse_schema(NO_PORTS)
    source = b"import pandas as pd\ndef azureml_main():\n    return pd.DataFrame({'a': [1]})\n"
    digest, _ = artifact.build("contract", {"score.py": source, "schema.json": orjson.dumps(NO_PORTS)}, {}, {})
    _, other = artifact.build("contract", {"score.py": source + b"# changed\n",
                                           "schema.json": orjson.dumps(NO_PORTS)}, {}, {})
    runtime = Runtime(dataclasses.replace(settings, pool_size=1), {digest: other}.__getitem__)
    try:
        with pytest.raises(ArtifactError, match="digest"):
            runtime.call(digest, schema, [], {})
        assert runtime.pools == {}  # refused before any worker started
    finally:
        runtime.close()
