"""Decisions taken from structure, not from English message text (issue 12, part 4)."""
from __future__ import annotations

import pytest

from publisher.errors import BundleError, Conflict, PublishError, SchemaError, ScriptError
from publisher.experiment import experiment_from_files
from publisher.schema import UNKNOWN_KEY, parse_schema
from serving.admin import views
from serving.codecs.base import check_envelope
from serving.errors import ApiError

SCORE = b"def azureml_main(df1=None, df2=None):\n    return df1\n"
SCHEMA = b'{"inputs": {"input1": {"columns": [{"name": "a", "type": "integer"}]}}}'


def refused(files, settings) -> PublishError:
    with pytest.raises(PublishError) as info:
        experiment_from_files({"score.py": SCORE, **files}, settings)
    return info.value


# -- PublishError.field, and the admin form field it picks ------------------------------------

@pytest.mark.parametrize("files, field, form_field, starts", [
    ({"schema.json": b"{"}, "schema.json", "schema", "schema.json: not valid JSON"),
    ({"schema.json": b'{"inputs": {"input1": {"colums": []}}}'}, "schema.json", "schema", "schema.json: "),
    ({}, "schema.json", "schema", "schema.json: missing"),
    ({"sample.json": b"{"}, "sample.json", "sample", "sample.json: not valid JSON"),
    ({"sample.json": b'{"input1": 3}'}, "sample.json", "sample", "sample.json: without schema.json"),
    ({"schema.json": SCHEMA, "sample.json": b'{"input1": [{"a": "x"}]}'}, "sample.json", "sample", "sample.json: "),
    ({"schema.json": SCHEMA, "sample.json": b'{"input2": []}'}, "sample.json", "sample", "sample.json: port(s)"),
    ({"schema.json": SCHEMA, "requirements.txt": b"x @ https://example.org/x.whl\n"}, "requirements.txt",
     "requirements", "requirements.txt:1: "),
    ({"schema.json": SCHEMA, "requirements.txt": b"!!!\n"}, "requirements.txt", "requirements", "requirements.txt:1"),
    ({"schema.json": SCHEMA, "bundle.zip": b"not a zip"}, "bundle.zip", "bundle", "bundle: not a zip"),
])
def test_each_refusal_names_its_file(settings, files, field, form_field, starts):
    exc = refused(files, settings)
    assert str(exc).startswith(starts)
    assert exc.field == field and views._field_of(exc) == form_field


def test_a_bad_script_is_score_pys(settings):
    with pytest.raises(ScriptError) as info:
        experiment_from_files({"score.py": b"def f(:\n", "schema.json": SCHEMA}, settings)
    assert info.value.field == "score.py" and views._field_of(info.value) == "score_py"


def test_the_class_gives_a_default_and_a_raise_site_may_override_it():
    assert SchemaError("x").field == "schema.json" and BundleError("x").field == "bundle.zip"
    assert SchemaError("sample.json: ...", field="sample.json").field == "sample.json"
    assert PublishError("x").field is None and views._field_of(Conflict("retired")) == "name"
    assert str(PublishError("the message", field="sample.json")) == "the message"


def test_the_message_text_no_longer_decides():
    # once, a message starting with "sample.json" went next to the sample whatever raised it
    assert views._field_of(PublishError("sample.json is fine, the name is not")) == "name"


def _smoke(settings, script: str, sample: list) -> PublishError:
    """A real smoke call (serving/smoke.py) of a frozen experiment; the error it raised."""
    import orjson

    from publisher import artifact
    from serving.smoke import smoke_call

    members = {"score.py": script.encode(), "sample.json": orjson.dumps({"input1": sample}),
               "schema.json": orjson.dumps({"inputs": {"input1": {"columns": [{"name": "x", "type": "integer"}]}}})}
    digest, archive = artifact.build("t", members, {}, {})
    with pytest.raises(PublishError) as info:
        smoke_call(settings)(artifact.load(archive, digest))
    return info.value


def test_smoke_call_errors_go_to_the_sample_or_the_script(settings):
    fine = "def azureml_main(df):\n    return df,\n"
    error = _smoke(settings, fine, [{"y": 1}])
    assert str(error).startswith("sample.json: ") and views._field_of(error) == "sample"
    error = _smoke(settings, "def azureml_main(df):\n    raise ValueError('boom')\n", [{"x": 1}])
    assert "smoke call with sample.json failed: score.py:2: ValueError: boom" in str(error)
    assert views._field_of(error) == "score_py"


# -- unknown keys, found by comparing keys with the declared fields ---------------------------

def test_unknown_keys_in_a_schema_are_named_at_every_level():
    with pytest.raises(SchemaError) as info:
        parse_schema({"inputs": {"input1": {"columns": [{"name": "a", "type": "integer", "nulable": True}]}},
                      "limts": {}})
    assert str(info.value) == (f"schema.json: inputs.input1.columns[0].nulable: {UNKNOWN_KEY}; "
                               f"limts: {UNKNOWN_KEY}")
    with pytest.raises(SchemaError) as info:
        parse_schema({"inputs": {"input1": {"columns": []}}, "parameters": {"p": {"type": "string", "defualt": 1}}})
    assert str(info.value) == f"schema.json: parameters.p.defualt: {UNKNOWN_KEY}"


def test_a_declared_key_with_a_bad_value_is_not_called_unknown():
    with pytest.raises(SchemaError) as info:
        parse_schema({"inputs": {"input1": {"columns": [], "min_rows": "1"}}})
    assert UNKNOWN_KEY not in str(info.value) and "inputs.input1.min_rows: Not a valid integer" in str(info.value)


@pytest.mark.parametrize("document, code, target", [
    ({"input3": []}, "UnexpectedInput", "input3"),  # and input1, input2 missing: the unknown one is named
    ({"input1": [], "inptu2": []}, "UnexpectedInput", "inptu2"),
    ({"input1": [], "x": 1, "y": 2}, "UnexpectedInput", "x"),  # the first in the document, every time
    ({}, "MissingInput", "input1"),
    ({"input1": [], "input2": None}, "MissingInput", "input2"),
    ({"input1": [], "input2": [], "GlobalParameters": None}, None, None),
])
def test_envelope_keys(document, code, target):
    if code is None:
        check_envelope(document, ("input1", "input2"))
        return
    with pytest.raises(ApiError) as info:
        check_envelope(document, ("input1", "input2"))
    (got,) = info.value.details
    assert (info.value.code, got["code"], got["target"]) == ("BadArgument", code, target)


def test_envelope_without_parameters():
    with pytest.raises(ApiError) as info:
        check_envelope({"input1": [], "GlobalParameters": {}}, ("input1",), where="Inputs", with_parameters=False)
    (got,) = info.value.details
    assert (got["code"], got["target"]) == ("UnexpectedInput", "Inputs.GlobalParameters")
    assert info.value.message == "'GlobalParameters' is not an input of this service (its inputs: input1)."
