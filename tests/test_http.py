"""The HTTP face of the walking skeleton (http-api.md), through the app in this process (Flask's
test client; scripts run in real sandboxed workers). What needs a real socket is in test_api.py."""
from __future__ import annotations

import base64
import json

import orjson
import pytest
from conftest import error_of


def make_experiment(tmp_path, name, script, schema=None, sample=None):
    folder = tmp_path / name
    folder.mkdir()
    folder.joinpath("score.py").write_text(script)
    schema = schema or {"inputs": {"input1": {"columns": [{"name": "x", "type": "integer"}]}}}
    folder.joinpath("schema.json").write_bytes(orjson.dumps(schema))
    if sample is not None:
        folder.joinpath("sample.json").write_bytes(orjson.dumps(sample))
    return folder


def test_healthz(app):
    r = app.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_expression_evaluator_as_in_the_readme(app):
    r = app.score("expression-evaluator", [{"expression": "1+1"}, {"expression": "2**10"}])
    assert r.status_code == 200, r.text
    rows = r.json()["output1"]
    assert [row["result"] for row in rows] == ["2", "1024"] and all(row["error"] is None for row in rows)
    bad = app.score("expression-evaluator", {"input1": [{"expression": "1/0"}]}).json()["output1"][0]
    assert bad["result"] is None and bad["error"].startswith("ZeroDivisionError")


def test_hello_bundle_prints_to_the_output_log(app):
    r = app.score("hello-bundle", {"input1": [{"name": "Ada"}]}, params={"details": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["output1"] == [{"name": "Ada", "greeting": "Hello, Ada!"}]
    assert "Hello, Ada!" in body["output_log"]
    assert body["visualizations"] == [] and body["timing"]["total_ms"] > 0
    plain = app.score("hello-bundle", [{"name": "Ada"}]).json()
    assert set(plain) == {"output1"}  # details only when asked


def test_feature_importance_ranks_and_plots(app):
    r = app.score("feature-importance", [{"top_n": 3}], params={"details": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [row["rank"] for row in body["output1"]] == [1, 2, 3]
    importances = [row["importance"] for row in body["output1"]]
    assert importances == sorted(importances, reverse=True) and all(isinstance(x, float) for x in importances)
    (plot,) = body["visualizations"]
    assert plot["name"].endswith(".png") and base64.b64decode(plot["data"]).startswith(b"\x89PNG\r\n\x1a\n")


def test_two_inputs_joins_both_ports(app):
    sample = json.loads((server_examples() / "two-inputs" / "sample.json").read_text())
    r = app.score("two-inputs", sample)
    assert r.status_code == 200, r.text
    rows = r.json()["output1"]
    assert [row["order_id"] for row in rows] == [10, 11, 12]
    assert rows[0]["name"] == "Ada" and rows[0]["placed_at"] == "2024-03-01T12:00:00" and rows[1]["placed_at"] is None
    refused = app.score("two-inputs", sample["input1"])
    assert error_of(refused, 400, "BadArgument")["message"].startswith("A bare list means input1 only")


def server_examples():
    from conftest import EXAMPLES

    return EXAMPLES


@pytest.mark.parametrize("header", ["Bearer {}", "bearer {}", "BEARER  {}"])
def test_authorization_bearer_scheme_is_case_insensitive(app, header):
    key = app.keys["hello-bundle"]["primary"]
    r = app.score("hello-bundle", [{"name": "A"}], key="", headers={"Authorization": header.format(key)})
    assert r.status_code == 200, r.text


def test_api_key_header_and_secondary_key(app):
    key = app.keys["hello-bundle"]["secondary"]
    r = app.score("hello-bundle", [{"name": "A"}], key="", headers={"api-key": key})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"api-key": "nope"},
                                     {"Authorization": "Basic abc"}])
def test_missing_or_wrong_key_is_401(app, headers):
    r = app.score("hello-bundle", [{"name": "A"}], key="", headers=headers)
    error_of(r, 401, "Unauthorized", "ScoreRequestUnauthorized")


def test_key_of_another_service_is_401(app):
    other = app.keys["expression-evaluator"]["primary"]
    error_of(app.score("hello-bundle", [{"name": "A"}], key=other), 401, "Unauthorized")


def test_unknown_service_unknown_route_and_wrong_method_are_json(app):
    error_of(app.score("no-such-service", [{"x": 1}], key="k"), 404, "NotFound", "ServiceNotFound")
    error_of(app.get("/nothing/here"), 404, "NotFound")
    error_of(app.get("/services/hello-bundle/score"), 405, "MethodNotAllowed")


def test_request_id_is_echoed_or_made(app):
    r = app.score("hello-bundle", [{"name": "A"}], headers={"X-Request-Id": "my-id-42"})
    assert r.headers["X-Request-Id"] == "my-id-42"
    made = app.score("hello-bundle", [{"name": "A"}], key="wrong")
    assert made.status_code == 401 and len(made.headers["X-Request-Id"]) == 32
    assert app.get("/healthz").headers["X-Request-Id"]


def test_unsupported_content_type_is_415(app):
    r = app.score("hello-bundle", "name\nA", headers={"Content-Type": "text/plain"})
    error_of(r, 415, "UnsupportedMediaType", "UnsupportedContentType")


def test_body_over_the_limit_is_413(app):
    big = b'[{"name": "' + b"x" * (3 * 1024 * 1024) + b'"}]'
    error_of(app.score("hello-bundle", big), 413, "RequestTooLarge", "RequestBodyTooLarge")


@pytest.mark.parametrize("body,top,code,target", [
    (b'[{"name": "A"', "BadArgument", "InputParseError", None),
    ([{"name": 5, "extra": 1}], "BadUserArgument", "UnexpectedColumn", "input1[0].extra"),
    ([{"nme": "A"}], "BadUserArgument", "UnexpectedColumn", "input1[0].nme"),
    ([{"name": "A"}, {}], "BadUserArgument", "MissingColumn", "input1[1].name"),
    ([{"name": None}], "BadUserArgument", "NullValue", "input1[0].name"),
    ([{"name": {"a": 1}}], "BadUserArgument", "InputParseError", "input1[0].name"),
    ([], "BadArgument", "RowCount", "input1"),
    ({"input2": []}, "BadArgument", "UnexpectedInput", "input2"),
    ({}, "BadArgument", "MissingInput", "input1"),
    ([1, 2], "BadUserArgument", "InputParseError", "input1[0]"),
])
def test_bad_input_is_400_naming_row_and_column(app, body, top, code, target):
    err = error_of(app.score("hello-bundle", body), 400, top, code)
    if target:
        assert err["details"][0]["target"] == target


def test_an_error_never_echoes_the_payload(app):
    huge = "9" * 50_000 + "x"
    r = app.score("feature-importance", [{"top_n": huge}])
    err = error_of(r, 400, "BadUserArgument")
    assert err["details"][0]["target"] == "input1[0].top_n" and len(r.text) < 1000


def test_csv_in_csv_out(app):
    r = app.score("hello-bundle", "name\nAda\nGrace\n", headers={"Content-Type": "text/csv"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert r.text == "name,greeting\nAda,\"Hello, Ada!\"\nGrace,\"Hello, Grace!\"\n"


def test_script_exception_is_error_0085_and_the_server_keeps_serving(app, tmp_path):
    folder = make_experiment(tmp_path, "raiser", "def azureml_main(df):\n    raise ValueError('bad value %d' % df['x'][0])\n")
    app.publish(folder, "raiser")
    r = app.score("raiser", [{"x": 7}])
    err = error_of(r, 400, "ModuleExecutionError")
    message = err["details"][0]["message"]
    assert err["details"][0]["code"] == "Error0085"
    assert message.startswith("Error 0085: The following error occurred during script evaluation")
    assert 'File "score.py", line 2, in azureml_main' in message and "ValueError: bad value 7" in message
    assert str(app.home) not in message and "/site-packages/" not in message
    ok = app.score("hello-bundle", [{"name": "A"}])
    assert ok.status_code == 200


def test_a_service_with_no_live_version_is_503(app, tmp_path):
    folder = make_experiment(tmp_path, "retiring", "def azureml_main(df):\n    return df,\n")
    app.publish(folder, "retiring")
    assert app.score("retiring", [{"x": 1}]).status_code == 200
    app.registry.retire("retiring", 1, "tests")
    err = error_of(app.score("retiring", [{"x": 1}]), 503, "ServiceUnavailable")
    assert err["details"][0]["code"] == "NoLiveVersion"


def test_a_new_version_serves_once_promoted(app, tmp_path):
    folder = make_experiment(tmp_path, "versioned", "def azureml_main(df):\n    df['v'] = 1\n    return df,\n")
    app.publish(folder, "versioned")
    folder.joinpath("score.py").write_text("def azureml_main(df):\n    df['v'] = 2\n    return df,\n")
    app.publish(folder, "versioned")
    assert app.score("versioned", [{"x": 1}]).json()["output1"] == [{"x": 1, "v": 1}]
    app.registry.promote("versioned", 2, "tests")
    assert app.wait_for_version("versioned", 2, [{"x": 1}]) < 60  # warmed, then switched
    r = app.score("versioned", [{"x": 1}])
    assert r.json()["output1"] == [{"x": 1, "v": 2}] and r.headers["X-Scorepub-Version"] == "2"


def test_the_classic_python_2_example_answers_as_classic_did(app):
    r = app.score("classic-python2", [{"region": "west", "customers": 390}, {"region": "east", "customers": 10000}],
                     params={"details": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["output1"] == [{"region": "east", "customers": 10000, "rate_per_mille": 28, "expected": 280},
                               {"region": "west", "customers": 390, "rate_per_mille": 50, "expected": 19}]
    assert body["output_log"] == "regions scored: 2\n"
    assert [v["name"] for v in body["visualizations"]] == ["expected.png"]
