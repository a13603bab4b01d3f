"""schema.json: strict loading, types, defaults, ports, limits, parameters, inference (publishing.md)."""
from __future__ import annotations

import copy

import pytest

from publisher.errors import SchemaError
from publisher.schema import (
    DEFAULT_LIMITS,
    ColumnSpec,
    Limits,
    ParameterSpec,
    PortSpec,
    ServiceSchema,
    infer_schema,
    parse_schema,
    schema_to_document,
)
from publisher.settings import Settings

FULL = {
    "inputs": {
        "input1": {
            "columns": [
                {"name": "expression", "type": "string", "nullable": False},
                {"name": "weight", "type": "double", "nullable": True, "default": 1.0},
            ],
            "min_rows": 1,
            "max_rows": 100000,
            "extra_columns": "refuse",
        }
    },
    "parameters": {"threshold": {"type": "double", "default": 0.5}},
    "limits": {"timeout_s": 30, "memory_mb": 1024, "max_concurrent_calls": 20},
    "isolation": "warm",
}


def one_port(*columns, **port):
    return {"inputs": {"input1": {"columns": list(columns), **port}}}


def col(name="a", type_="string", **extra):
    return {"name": name, "type": type_, **extra}


def refused(document) -> str:
    with pytest.raises(SchemaError) as info:
        parse_schema(document)
    return str(info.value)


# -- the documented example ---------------------------------------------------------------

def test_publishing_md_example_parses():
    s = parse_schema(copy.deepcopy(FULL))
    assert s.ports == ["input1"]
    port = s.inputs["input1"]
    assert port == PortSpec(
        columns=(ColumnSpec("expression", "string", False), ColumnSpec("weight", "double", True, 1.0)),
        min_rows=1, max_rows=100000, extra_columns="refuse",
    )
    assert not port.columns[0].has_default
    assert port.columns[1].has_default and port.columns[1].default == 1.0
    assert s.parameters == {"threshold": ParameterSpec("double", 0.5)}
    assert s.limits == Limits(30, 1024, 20)
    assert s.isolation == "warm"


def test_minimal_schema_takes_defaults():
    s = parse_schema(one_port(col("a")))
    port = s.inputs["input1"]
    assert port.min_rows == 1 and port.max_rows == 1_000_000 and port.extra_columns == "refuse"
    assert s.parameters == {}
    assert s.limits == Limits(**DEFAULT_LIMITS)
    assert s.isolation == "warm"


def test_not_an_object_refused():
    with pytest.raises(SchemaError, match="must be a JSON object"):
        parse_schema([FULL])


def test_inputs_is_required():
    assert "inputs" in refused({"isolation": "warm"})


# -- unknown keys at every level ----------------------------------------------------------

@pytest.mark.parametrize("mutate, path", [
    (lambda d: d.update(isolaton="warm"), "isolaton"),
    (lambda d: d["inputs"].update(input3={"columns": []}), "inputs.input3"),
    (lambda d: d["inputs"]["input1"].update(colums=[]), "inputs.input1.colums"),
    (lambda d: d["inputs"]["input1"].update(maxrows=5), "inputs.input1.maxrows"),
    (lambda d: d["inputs"]["input1"]["columns"][1].update(nulable=True), "inputs.input1.columns[1].nulable"),
    (lambda d: d["parameters"]["threshold"].update(defualt=1), "parameters.threshold.defualt"),
    (lambda d: d["limits"].update(timeout=5), "limits.timeout"),
], ids=["top", "inputs", "port-colums", "port-maxrows", "column", "parameter", "limits"])
def test_unknown_key_is_refused_naming_its_path(mutate, path):
    doc = copy.deepcopy(FULL)
    mutate(doc)
    message = refused(doc)
    assert f"{path}: unknown key" in message
    assert message.startswith("schema.json: ")


def test_every_unknown_key_is_named_at_once():
    doc = copy.deepcopy(FULL)
    doc["extra"] = 1
    doc["limits"]["cpu"] = 2
    message = refused(doc)
    assert "extra: unknown key" in message and "limits.cpu: unknown key" in message


def test_source_name_is_used_in_message():
    with pytest.raises(SchemaError, match=r"^schema of abc: isolaton"):
        parse_schema({"inputs": {}, "isolaton": "warm"}, source="schema of abc")


# -- types --------------------------------------------------------------------------------

@pytest.mark.parametrize("type_", ["string", "integer", "double", "boolean", "datetime"])
def test_each_type_is_accepted(type_):
    s = parse_schema(one_port(col("c", type_)))
    assert s.inputs["input1"].columns[0].type == type_


@pytest.mark.parametrize("type_", ["int", "float", "str", "Integer", "date", "", None, 1])
def test_unknown_type_refused(type_):
    assert "inputs.input1.columns[0].type" in refused(one_port(col("c", type_)))


def test_column_needs_name_and_type():
    assert "inputs.input1.columns[0].name" in refused(one_port({"type": "string"}))
    assert "inputs.input1.columns[0].type" in refused(one_port({"name": "a"}))
    assert "inputs.input1.columns[0].name" in refused(one_port(col("")))


def test_nullable_defaults_to_false():
    s = parse_schema(one_port(col("a"), col("b", nullable=True)))
    a, b = s.inputs["input1"].columns
    assert a.nullable is False
    assert b.nullable is True


@pytest.mark.parametrize("value", ["maybe", "yes", "true", 1, 0])
def test_nullable_must_be_a_json_boolean(value):
    assert "inputs.input1.columns[0].nullable" in refused(one_port(col("a", nullable=value)))


# -- defaults validated against the type --------------------------------------------------

@pytest.mark.parametrize("type_, default", [
    ("string", "x"),
    ("integer", 5),
    ("integer", "12"),  # the classic table format sends numbers as text
    ("double", 0.5),
    ("double", 3),
    ("boolean", True),
    ("datetime", "2024-03-01T12:00:00Z"),
])
def test_default_fitting_the_type_accepted(type_, default):
    s = parse_schema(one_port(col("c", type_, default=default)))
    c = s.inputs["input1"].columns[0]
    assert c.has_default and c.default == default


@pytest.mark.parametrize("type_, default", [
    ("integer", 1.5),
    ("integer", True),
    ("integer", "twelve"),
    ("integer", 2**63),
    ("double", "abc"),
    ("double", False),
    ("boolean", "maybe"),
    ("boolean", 2),
    ("datetime", "yesterday"),
    ("datetime", 20240101),
    ("string", {"a": 1}),
])
def test_default_not_fitting_the_type_refused(type_, default):
    message = refused(one_port(col("c", type_, default=default)))
    assert "inputs.input1.columns[0].default" in message


def test_null_default_only_on_nullable_columns():
    s = parse_schema(one_port(col("c", "integer", nullable=True, default=None)))
    c = s.inputs["input1"].columns[0]
    assert c.has_default and c.default is None
    message = refused(one_port(col("c", "integer", default=None)))
    assert "inputs.input1.columns[0].default: null default on a column that is not nullable" in message


# -- ports --------------------------------------------------------------------------------

def test_two_ports_in_port_order():
    s = parse_schema({"inputs": {"input2": {"columns": [col("b")]}, "input1": {"columns": [col("a")]}}})
    assert s.ports == ["input1", "input2"]
    assert s.inputs["input2"].columns[0].name == "b"


def test_input2_without_input1_refused():
    message = refused({"inputs": {"input2": {"columns": [col("a")]}}})
    assert "inputs.input2: input2 is declared without input1" in message


def test_zero_ports():
    s = parse_schema({"inputs": {}})
    assert s.inputs == {} and s.ports == []


def test_port_needs_columns():
    assert "inputs.input1.columns" in refused({"inputs": {"input1": {"min_rows": 1}}})


def test_duplicate_column_names_refused():
    message = refused(one_port(col("a"), col("b"), col("a", "integer")))
    assert "inputs.input1.columns: duplicate column name(s): a" in message


def test_min_rows_greater_than_max_rows_refused():
    assert "inputs.input1.min_rows: min_rows is greater than max_rows" in refused(
        one_port(col("a"), min_rows=5, max_rows=4))
    assert parse_schema(one_port(col("a"), min_rows=4, max_rows=4)).inputs["input1"].max_rows == 4


def test_row_bounds():
    assert parse_schema(one_port(col("a"), min_rows=0)).inputs["input1"].min_rows == 0
    assert "inputs.input1.min_rows" in refused(one_port(col("a"), min_rows=-1))
    assert "inputs.input1.max_rows" in refused(one_port(col("a"), max_rows=0))
    assert "inputs.input1.max_rows" in refused(one_port(col("a"), max_rows=10.5))
    assert "inputs.input1.min_rows" in refused(one_port(col("a"), min_rows=True))
    assert "inputs.input1.min_rows" in refused(one_port(col("a"), min_rows="1"))


def test_extra_columns_values():
    assert parse_schema(one_port(col("a"), extra_columns="allow")).inputs["input1"].extra_columns == "allow"
    assert "inputs.input1.extra_columns" in refused(one_port(col("a"), extra_columns="ignore"))


# -- limits -------------------------------------------------------------------------------

def test_partial_limits_fill_in_defaults():
    s = parse_schema({"inputs": {}, "limits": {"timeout_s": 5}})
    assert s.limits == Limits(5, DEFAULT_LIMITS["memory_mb"], DEFAULT_LIMITS["max_concurrent_calls"])


@pytest.mark.parametrize("key, value", [
    ("timeout_s", 0), ("timeout_s", -1), ("timeout_s", 1.5), ("timeout_s", "30"), ("timeout_s", True),
    ("memory_mb", 63), ("memory_mb", 0),
    ("max_concurrent_calls", 0),
])
def test_limits_out_of_range_refused(key, value):
    assert f"limits.{key}" in refused({"inputs": {}, "limits": {key: value}})


def test_limits_lower_bounds_accepted():
    s = parse_schema({"inputs": {}, "limits": {"timeout_s": 1, "memory_mb": 64, "max_concurrent_calls": 1}})
    assert s.limits == Limits(1, 64, 1)


def test_limits_capped_by_server_maxima(tmp_path):
    settings = Settings.from_env({"SCOREPUB_HOME": str(tmp_path)})
    big = Limits(10_000, 100_000, 10_000).capped(settings)
    assert big == Limits(settings.max_timeout_s, settings.max_memory_mb, settings.max_concurrent_calls)
    small = Limits(5, 128, 2)
    assert small.capped(settings) == small


# -- isolation ----------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["warm", "per-call"])
def test_isolation_values(value):
    assert parse_schema({"inputs": {}, "isolation": value}).isolation == value


@pytest.mark.parametrize("value", ["per_call", "cold", "", None, True])
def test_isolation_other_values_refused(value):
    assert "isolation" in refused({"inputs": {}, "isolation": value})


# -- parameters ---------------------------------------------------------------------------

def test_parameters():
    s = parse_schema({"inputs": {}, "parameters": {
        "threshold": {"type": "double", "default": 0.5},
        "mode": {"type": "string"},
        "_n2": {"type": "integer", "default": 3},
    }})
    assert s.parameters["threshold"] == ParameterSpec("double", 0.5)
    assert s.parameters["mode"].type == "string" and not s.parameters["mode"].has_default
    assert s.parameters["_n2"].default == 3


@pytest.mark.parametrize("params, fragment", [
    ({"p": {"default": 1}}, "parameters.p.type"),
    ({"p": {"type": "float"}}, "parameters.p.type"),
    ({"p": {"type": "integer", "default": 1.5}}, "parameters.p.default"),
    ({"p": {"type": "boolean", "default": "yes"}}, "parameters.p.default"),
    ({"p": {"type": "double", "default": None}}, "parameters.p.default"),
    ({"p": 3}, "parameters.p: must be an object"),
    ({"bad-name": {"type": "string"}}, "parameters.bad-name"),
    ({"1st": {"type": "string"}}, "parameters.1st"),
])
def test_bad_parameters_refused(params, fragment):
    assert fragment in refused({"inputs": {}, "parameters": params})


def test_parameters_must_be_an_object():
    assert "parameters" in refused({"inputs": {}, "parameters": ["threshold"]})


# -- round trip ---------------------------------------------------------------------------

def test_schema_to_document_round_trips():
    doc = {
        "inputs": {
            "input1": {"columns": [col("s"), col("i", "integer", nullable=True, default=None),
                                   col("d", "double", default=2.5), col("b", "boolean", nullable=True),
                                   col("t", "datetime", default="2024-01-01T00:00:00Z")],
                       "min_rows": 0, "max_rows": 10, "extra_columns": "allow"},
            "input2": {"columns": [col("x", "integer")]},
        },
        "parameters": {"p": {"type": "string", "default": "hi"}, "q": {"type": "integer"}},
        "limits": {"timeout_s": 7, "memory_mb": 512},
        "isolation": "per-call",
    }
    s = parse_schema(doc)
    normalized = schema_to_document(s)
    again = parse_schema(normalized)
    assert again == s
    assert schema_to_document(again) == normalized
    # the normalized form spells out every default
    assert normalized["inputs"]["input2"] == {"columns": [{"name": "x", "type": "integer", "nullable": False}],
                                              "min_rows": 1, "max_rows": 1_000_000, "extra_columns": "refuse"}
    assert normalized["limits"] == {"timeout_s": 7, "memory_mb": 512,
                                    "max_concurrent_calls": DEFAULT_LIMITS["max_concurrent_calls"]}
    assert normalized["inputs"]["input1"]["columns"][1] == {"name": "i", "type": "integer",
                                                            "nullable": True, "default": None}
    assert "default" not in normalized["inputs"]["input1"]["columns"][0]
    assert normalized["parameters"]["q"] == {"type": "integer"}


def test_round_trip_of_zero_ports():
    s = parse_schema({"inputs": {}})
    assert parse_schema(schema_to_document(s)) == s


# -- inference from sample.json -----------------------------------------------------------

def test_infer_types():
    s = infer_schema({"input1": [
        {"s": "a", "i": 1, "d": 1.5, "mixed": 1, "b": True, "t": "2024-01-01T00:00:00Z"},
        {"s": "b", "i": 2, "d": 2, "mixed": 2.5, "b": False, "t": "2024-01-02T00:00:00Z"},
    ]})
    assert isinstance(s, ServiceSchema) and s.ports == ["input1"]
    types = {c.name: c.type for c in s.inputs["input1"].columns}
    assert types == {"s": "string", "i": "integer", "d": "double", "mixed": "double", "b": "boolean",
                     "t": "string"}
    assert [c.name for c in s.inputs["input1"].columns] == ["s", "i", "d", "mixed", "b", "t"]
    assert all(not c.nullable for c in s.inputs["input1"].columns)


def test_infer_bool_mixed_with_numbers_is_string():
    s = infer_schema({"input1": [{"x": True}, {"x": 1}]})
    assert s.inputs["input1"].columns[0].type == "string"


def test_infer_nullable_from_nulls_and_missing_keys():
    s = infer_schema({"input1": [{"a": 1, "b": None, "c": 1.0}, {"a": 2, "b": 3}, {"a": 3, "b": 4, "d": "x"}]})
    cols = {c.name: c for c in s.inputs["input1"].columns}
    assert [c for c in cols] == ["a", "b", "c", "d"]
    assert cols["a"].nullable is False and cols["a"].type == "integer"
    assert cols["b"].nullable is True and cols["b"].type == "integer"
    assert cols["c"].nullable is True and cols["c"].type == "double"
    assert cols["d"].nullable is True and cols["d"].type == "string"


def test_infer_all_null_column_is_nullable_string():
    s = infer_schema({"input1": [{"a": None}, {"a": None}]})
    c = s.inputs["input1"].columns[0]
    assert c.type == "string" and c.nullable


def test_inferred_schema_accepts_its_own_sample():
    from publisher.coercion import rows_to_table

    rows = [{"a": 1, "b": "x"}, {"a": 2}, {"a": 3, "c": 2.5}]
    s = infer_schema({"input1": rows})
    table = rows_to_table("input1", s.inputs["input1"], rows, 1000)
    assert table.to_rows() == [{"a": 1, "b": "x", "c": None}, {"a": 2, "b": None, "c": None},
                               {"a": 3, "b": None, "c": 2.5}]


@pytest.mark.parametrize("sample", [{}, {"input1": []}, {"input1": [1, 2]}, {"input1": {"a": 1}}, [], None,
                                    {"rows": [{"a": 1}]}])
def test_infer_refuses_unusable_samples(sample):
    with pytest.raises(SchemaError, match="sample.json"):
        infer_schema(sample)
