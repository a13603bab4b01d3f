"""The complete HTTP API (http-api.md), every row: through the app in this process (Flask's test
client, scripts in real sandboxed workers), and against a real gunicorn on loopback where a real
socket, a real client library or gunicorn's multiprocess metrics are the point."""
from __future__ import annotations

import json
import socket
import threading
import urllib.request

import orjson
import pytest
import requests

from conftest import EXAMPLES, error_of, wait_until
from serving.errors import USER_ARGUMENT_CODES

EXPR = "expression-evaluator"

TYPES_SCHEMA = {
    "inputs": {"input1": {"columns": [
        {"name": "s", "type": "string"},
        {"name": "i", "type": "integer", "nullable": True, "default": None},
        {"name": "d", "type": "double", "default": 1.5},
        {"name": "b", "type": "boolean"},
        {"name": "t", "type": "datetime", "nullable": True},
    ], "min_rows": 1, "max_rows": 3}},
    "parameters": {"threshold": {"type": "double", "default": 0.5}, "label": {"type": "string", "default": "x"}},
}
TYPES_SCRIPT = """
import pandas as pd

def azureml_main(df):
    out = df.copy()
    out["dtypes"] = ",".join(str(t) for t in df.dtypes)
    out["threshold"] = azureml_parameters["threshold"]
    out["label"] = azureml_parameters["label"]
    return out,
"""
SLEEPY_SCHEMA = {"inputs": {"input1": {"columns": [{"name": "seconds", "type": "double"}]}},
                 "limits": {"timeout_s": 2, "max_concurrent_calls": 1}}
SLEEPY_SCRIPT = "import time\n\ndef azureml_main(df):\n    time.sleep(df['seconds'][0])\n    return df,\n"
FAILING_SCHEMA = {"inputs": {"input1": {"columns": [{"name": "how", "type": "string"}]}}}
FAILING_SCRIPT = """
import os, signal

def azureml_main(df):
    how = df["how"][0]
    if how == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if how == "memory":
        raise MemoryError()
    if how == "none":
        return None
    return df,
"""


@pytest.fixture(scope="module")
def api(app, tmp_path_factory):
    """The shared in-process app, plus services made for these tests."""
    root = tmp_path_factory.mktemp("api-experiments")
    for name, script, schema in (("types", TYPES_SCRIPT, TYPES_SCHEMA), ("sleepy", SLEEPY_SCRIPT, SLEEPY_SCHEMA),
                                 ("failing", FAILING_SCRIPT, FAILING_SCHEMA)):
        folder = root / name
        folder.mkdir()
        folder.joinpath("score.py").write_text(script)
        folder.joinpath("schema.json").write_bytes(orjson.dumps(schema))
        app.publish(folder, name)
    return app


def classic(api, service, body, key=None, query="api-version=2.0", **kw):
    key = key or api.keys.get(service, {}).get("primary", "")
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}", **kw.pop("headers", {})}
    data = body if isinstance(body, (bytes, str)) else orjson.dumps(body)
    return api.post(f"/workspaces/any-ws/services/{service}/execute?{query}", data=data, headers=headers, **kw)


ROW = {"s": "a", "i": 1, "d": 2.5, "b": True, "t": "2024-01-02T03:04:05+01:00"}


# -- native formats ------------------------------------------------------------------

def test_rows_convert_to_the_schema_dtypes_and_defaults_apply(api):
    row = {k: v for k, v in ROW.items() if k != "d"}
    out = api.score("types", {"input1": [row, {**row, "i": None, "t": None}]}).json()["output1"]
    assert out[0]["dtypes"] == "object,Int64,float64,bool,datetime64[ns]"
    assert out[0]["d"] == 1.5 and out[0]["t"] == "2024-01-02T02:04:05" and out[1]["i"] is None
    assert out[0]["threshold"] == 0.5 and out[0]["label"] == "x"


def test_columns_in_columns_out(api):
    body = {"input1": {"columns": ["expression"], "data": [["1+1"], ["2**10"]]}}
    r = api.score(EXPR, body)
    assert r.status_code == 200, r.text
    assert r.json() == {"output1": {"columns": ["expression", "result", "error"],
                                    "data": [["1+1", "2", None], ["2**10", "1024", None]]}}


def test_columns_with_details(api):
    body = {"input1": {"columns": ["top_n"], "data": [[2]]}}
    out = api.score("feature-importance", body, params={"details": "true"}).json()
    assert out["output1"]["columns"] == ["rank", "feature", "importance"]
    assert out["visualizations"][0]["name"] == "feature_importance.png" and "timing" in out


@pytest.mark.parametrize("accept,expected_type,check", [
    ("text/csv", "text/csv", lambda r: r.text.startswith("expression,result,error\n1+1,2,\n")),
    ("application/vnd.scorepub.columns+json", "application/json", lambda r: r.json()["output1"]["columns"]),
    ("application/json", "application/json", lambda r: r.json()["output1"][0]["result"] == "2"),
    ("*/*", "application/json", lambda r: r.json()["output1"][0]["result"] == "2"),
])
def test_accept_asks_for_another_shape(api, accept, expected_type, check):
    r = api.score(EXPR, [{"expression": "1+1"}], headers={"Accept": accept})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith(expected_type) and check(r)


def test_csv_request_mirrors_csv_unless_json_is_accepted(api):
    headers = {"Content-Type": "text/csv"}
    assert api.score(EXPR, "expression\n1+1\n", headers=headers).text == "expression,result,error\n1+1,2,\n"
    as_json = api.score(EXPR, "expression\n1+1\n", headers={**headers, "Accept": "application/json"})
    assert as_json.json()["output1"] == [{"expression": "1+1", "result": "2", "error": None}]


def test_csv_cells_are_converted_and_empty_is_null(api):
    csv = "s,i,b,t\nx,,true,\ny,7,FALSE,2024-05-06T07:08:09Z\n"
    r = api.score("types", csv, headers={"Content-Type": "text/csv", "Accept": "application/json"})
    out = r.json()["output1"]
    assert out[0]["i"] is None and out[1]["i"] == 7 and out[0]["b"] is True and out[1]["b"] is False
    assert out[1]["t"] == "2024-05-06T07:08:09"
    err = error_of(api.score("types", "s,i,b\n,1,true\n", headers={"Content-Type": "text/csv"}), 400,
                   "BadUserArgument", "NullValue")
    assert err["details"][0]["target"] == "input1[0].s"


# -- versions --------------------------------------------------------------------------

def test_version_endpoint_404_and_410(api, tmp_path):
    folder = tmp_path / "multi"
    folder.mkdir()
    folder.joinpath("score.py").write_text("def azureml_main(df):\n    df['v'] = 1\n    return df,\n")
    folder.joinpath("schema.json").write_bytes(orjson.dumps(
        {"inputs": {"input1": {"columns": [{"name": "x", "type": "integer"}]}}}))
    api.publish(folder, "multi")
    folder.joinpath("score.py").write_text("def azureml_main(df):\n    df['v'] = 2\n    return df,\n")
    api.publish(folder, "multi")
    assert api.score("multi", [{"x": 0}], path="versions/2/score").json()["output1"] == [{"x": 0, "v": 2}]
    assert api.score("multi", [{"x": 0}]).json()["output1"] == [{"x": 0, "v": 1}]
    error_of(api.score("multi", [{"x": 0}], path="versions/3/score"), 404, "NotFound", "VersionNotFound")
    error_of(api.score("multi", [{"x": 0}], path="versions/-1/score"), 404, "NotFound")
    error_of(api.score("multi", [{"x": 0}], path=f"versions/{2**70}/score"), 404, "NotFound")
    api.registry.retire("multi", 2, "tests")
    error_of(api.score("multi", [{"x": 0}], path="versions/2/score"), 410, "Gone", "VersionRetired")


# -- metadata, swagger, readiness --------------------------------------------------------

def test_metadata_needs_a_key(api):
    error_of(api.get(f"/services/{EXPR}"), 401, "Unauthorized")
    key = api.keys[EXPR]["primary"]
    meta = api.get(f"/services/{EXPR}", headers={"api-key": key}).json()
    assert meta["name"] == EXPR and meta["live_version"] == 1 and meta["isolation"] == "per-call"
    assert meta["versions"][0]["live"] and len(meta["versions"][0]["digest"]) == 64
    assert meta["schema"]["inputs"]["input1"]["columns"][0]["name"] == "expression"
    assert meta["limits"]["timeout_s"] == 10
    error_of(api.get("/services/nope", headers={"api-key": key}), 404, "NotFound")


@pytest.mark.parametrize("service", ["expression-evaluator", "hello-bundle", "feature-importance", "two-inputs"])
def test_swagger_json_is_valid_openapi_3_with_the_sample(api, service):
    from openapi_spec_validator import validate

    doc = api.get(f"/services/{service}/swagger.json").json()
    validate(doc)
    assert doc["openapi"].startswith("3.")
    sample = json.loads((EXAMPLES / service / "sample.json").read_text())
    body = doc["paths"][f"/services/{service}/score"]["post"]["requestBody"]["content"]["application/json"]
    assert body["example"] == sample
    assert f"/workspaces/{{workspace}}/services/{service}/execute" in doc["paths"]
    for name in ("RowsRequest", "ColumnsRequest", "ClassicTableRequest", "ClassicSwaggerRequest",
                 "RowsResponse", "ClassicTableResponse", "Error"):
        assert name in doc["components"]["schemas"]
    row = doc["components"]["schemas"]["Input1Row"]
    assert set(row["properties"]) == {c["name"] for c in json.loads(
        (EXAMPLES / service / "schema.json").read_text())["inputs"]["input1"]["columns"]}


def test_readyz_reports_registry_workers_and_sandbox(api):
    api.score(EXPR, [{"expression": "1"}])
    r = wait_until(lambda: (lambda r: r if r.status_code == 200 else None)(api.get("/readyz")), 120,
                   "/readyz answering 200")
    report = r.json()
    assert r.status_code == 200 and report["ready"] is True and report["registry"]["ok"] is True
    assert report["services"][EXPR]["ready"] and "sandbox" in report
    import importlib.metadata

    from publisher.packages import CLASSIC_PACKAGES

    # the classic package set, with the versions the workers import
    assert set(report["packages"]) == {"python", *CLASSIC_PACKAGES}
    assert report["packages"]["pandas"] == importlib.metadata.version("pandas")
    assert all(report["packages"][name] for name in CLASSIC_PACKAGES), report["packages"]


# -- classic endpoint --------------------------------------------------------------------

CLASSIC_TABLE = {"Inputs": {"input1": {"ColumnNames": ["expression"], "Values": [["1+1"], ["2**10"]]}},
                 "GlobalParameters": {}}


def test_classic_table_with_details(api):
    r = classic(api, EXPR, CLASSIC_TABLE, query="api-version=2.0&details=true")
    assert r.status_code == 200, r.text
    assert r.json() == {"Results": {"output1": {"type": "table", "value": {
        "ColumnNames": ["expression", "result", "error"], "ColumnTypes": ["String", "String", "String"],
        "Values": [["1+1", "2", None], ["2**10", "1024", None]]}}}}


def test_classic_table_without_details_has_values_only(api):
    r = classic(api, EXPR, CLASSIC_TABLE)
    assert r.json() == {"Results": {"output1": {"type": "table", "value": {
        "Values": [["1+1", "2", None], ["2**10", "1024", None]]}}}}


def test_classic_swagger_format(api):
    r = classic(api, EXPR, {"Inputs": {"input1": [{"expression": "1+1"}]}, "GlobalParameters": {}},
                query="api-version=2.0&format=swagger")
    assert r.json() == {"Results": {"output1": [{"expression": "1+1", "result": "2", "error": None}]}}


def test_classic_by_service_id_and_any_workspace(api):
    key = api.keys[EXPR]["primary"]
    service_id = api.get(f"/services/{EXPR}", headers={"api-key": key}).json()["id"]
    r = classic(api, service_id, CLASSIC_TABLE, key=key)
    assert r.status_code == 200 and r.json()["Results"]["output1"]["value"]["Values"][1][1] == "1024"


def test_classic_cells_come_back_as_strings_with_types(api):
    values = [["a", "1", "2.25", "True", "2024-01-02T03:04:05Z"], ["b", None, 3, False, None]]
    body = {"Inputs": {"input1": {"ColumnNames": ["s", "i", "d", "b", "t"], "Values": values}},
            "GlobalParameters": {"threshold": "0.75"}}
    value = classic(api, "types", body, query="api-version=2.0&details=true").json()["Results"]["output1"]["value"]
    assert value["ColumnTypes"] == ["String", "Int64", "Double", "Boolean", "DateTime", "String", "Double", "String"]
    assert value["Values"][0][:5] == ["a", "1", "2.25", "True", "2024-01-02T03:04:05"]
    assert value["Values"][1][:5] == ["b", None, "3.0", "False", None]
    assert value["Values"][0][6] == "0.75" and value["Values"][0][7] == "x"


def test_classic_two_inputs_round_trip(api):
    sample = json.loads((EXAMPLES / "two-inputs" / "sample.json").read_text())
    table = {"Inputs": {p: {"ColumnNames": list(rows[0]), "Values": [list(r.values()) for r in rows]}
                        for p, rows in sample.items()}, "GlobalParameters": {}}
    out = classic(api, "two-inputs", table, query="api-version=2.0&details=true").json()["Results"]["output1"]
    assert out["value"]["ColumnNames"] == ["order_id", "customer_id", "name", "amount", "placed_at"]
    assert out["value"]["Values"][0] == ["10", "1", "Ada", "19.99", "2024-03-01T12:00:00"]
    swagger = classic(api, "two-inputs", {"Inputs": sample, "GlobalParameters": {}},
                      query="api-version=2.0&format=swagger").json()["Results"]["output1"]
    assert swagger[1] == {"order_id": "11", "customer_id": "1", "name": "Ada", "amount": "5.0", "placed_at": None}


def test_classic_python_sample_client_works_unchanged(server):
    """Exactly what the classic service's published Python sample sent (urllib, two headers), to a
    real server."""
    data = {"Inputs": {"input1": {"ColumnNames": ["expression"], "Values": [["6*7"], ["1/0"]]}},
            "GlobalParameters": {}}
    body = str.encode(json.dumps(data))
    url = f"{server.url}/workspaces/0123456789abcdef/services/{EXPR}/execute?api-version=2.0&details=true"
    api_key = server.keys[EXPR]["primary"]
    headers = {"Content-Type": "application/json", "Authorization": ("Bearer " + api_key)}
    req = urllib.request.Request(url, body, headers)
    result = json.loads(urllib.request.urlopen(req).read())
    assert result["Results"]["output1"]["value"]["Values"][0] == ["6*7", "42", None]


def test_classic_csharp_sample_client_works_unchanged(api):
    """The C# sample: HttpClient with a Bearer header and StringContent(..., UTF8, "application/json")."""
    body = ('{"Inputs":{"input1":{"ColumnNames":["expression"],"Values":[["2+3"]]}},'
            '"GlobalParameters":{}}').encode("utf-8")
    r = classic(api, EXPR, body, query="api-version=2.0&details=true",
                headers={"Content-Type": "application/json; charset=utf-8", "Expect": "100-continue"})
    assert r.status_code == 200 and r.json()["Results"]["output1"]["value"]["Values"] == [["2+3", "5", None]]


def test_classic_r_sample_client_works_unchanged(api):
    """The R sample (RCurl): toJSON output, 'Content-Type' and 'Authorization' headers."""
    body = '{"Inputs":{"input1":{"ColumnNames":["expression"],"Values":[["10-4"]]}},"GlobalParameters":{}}'
    r = classic(api, EXPR, body, query="api-version=2.0&details=true", headers={"Accept": "application/json"})
    assert r.json()["Results"]["output1"]["value"]["Values"] == [["10-4", "6", None]]


def test_classic_api_version_and_format_are_checked(api):
    error_of(classic(api, EXPR, CLASSIC_TABLE, query=""), 400, "BadArgument")
    error_of(classic(api, EXPR, CLASSIC_TABLE, query="api-version=2.0&format=xml"), 400, "BadArgument")
    error_of(classic(api, EXPR, CLASSIC_TABLE, headers={"Content-Type": "text/csv"}), 415, "UnsupportedMediaType")
    error_of(classic(api, EXPR, {"Input": {}}), 400, "BadArgument")


def test_global_parameters(api):
    body = {"Inputs": {"input1": {"ColumnNames": ["s", "b", "t"], "Values": [["a", "true", None]]}},
            "GlobalParameters": {"threshold": 0.9, "label": "z"}}
    row = classic(api, "types", body, query="api-version=2.0&format=swagger")
    assert row.status_code == 400  # the table body is not the swagger shape
    out = classic(api, "types", body).json()["Results"]["output1"]["value"]["Values"][0]
    assert out[-2:] == ["0.9", "z"]
    body["GlobalParameters"] = {"thresold": 0.9}
    err = error_of(classic(api, "types", body), 400, "BadArgument", "UnexpectedParameter")
    assert err["details"][0]["target"] == "GlobalParameters.thresold"
    body["GlobalParameters"] = {"threshold": "high"}
    error_of(classic(api, "types", body), 400, "BadUserArgument", "InputParseError")
    native = api.score("types", {"input1": [ROW], "GlobalParameters": {"label": "native"}}).json()
    assert native["output1"][0]["label"] == "native"


# -- validation: every details code, native and classic ---------------------------------

def top_code(detail_code: str) -> str:
    """A cell or column that does not match the schema is BadUserArgument; the rest BadArgument."""
    return "BadUserArgument" if detail_code in USER_ARGUMENT_CODES else "BadArgument"


@pytest.mark.parametrize("rows,code,target", [
    ([{"i": 1, "b": True}], "MissingColumn", "input1[0].s"),
    ([{"s": "a", "i": 1}], "MissingColumn", "input1[0].b"),
    ([{**ROW, "zz": 1}], "UnexpectedColumn", "input1[0].zz"),
    ([{**ROW, "i": "abc"}], "InputParseError", "input1[0].i"),
    ([ROW, {**ROW, "b": "maybe"}], "InputParseError", "input1[1].b"),
    ([ROW, ROW, {**ROW, "s": None}], "NullValue", "input1[2].s"),
    ([ROW, ROW, ROW, ROW], "RowCount", "input1"),
    ([], "RowCount", "input1"),
])
def test_validation_details_codes_rows(api, rows, code, target):
    err = error_of(api.score("types", {"input1": rows}), 400, top_code(code), code)
    assert err["details"][0]["target"] == target


@pytest.mark.parametrize("columns,data,code,target", [
    (["i", "b"], [[1, True]], "MissingColumn", "input1.s"),
    (["s"], [["a"]], "MissingColumn", "input1.b"),
    (["s", "b", "zz"], [["a", True, 1]], "UnexpectedColumn", "input1.zz"),
    (["s", "b"], [["a", True], ["b", 7]], "InputParseError", "input1[1].b"),
    (["s", "b"], [["a", True], ["b"]], "InputParseError", "input1[1]"),
])
def test_validation_details_codes_columns_and_classic(api, columns, data, code, target):
    err = error_of(api.score("types", {"input1": {"columns": columns, "data": data}}), 400, top_code(code), code)
    assert err["details"][0]["target"] == target
    table = {"Inputs": {"input1": {"ColumnNames": columns, "Values": data}}, "GlobalParameters": {}}
    err = error_of(classic(api, "types", table), 400, top_code(code), code)
    assert err["details"][0]["target"] == target


def test_error_message_names_row_column_and_problem(api):
    err = error_of(api.score("types", {"input1": [ROW, ROW, {**ROW, "i": "abc"}]}), 400, "BadUserArgument")
    assert err["message"] == "Column 'i' of row 2: 'abc' is not an integer."


# -- keys --------------------------------------------------------------------------------

def test_regenerating_a_key_refuses_the_old_one_and_keeps_the_other(api, tmp_path):
    folder = tmp_path / "rotate"
    folder.mkdir()
    folder.joinpath("score.py").write_text("def azureml_main(df):\n    return df,\n")
    folder.joinpath("schema.json").write_bytes(orjson.dumps({"inputs": {"input1": {"columns": [
        {"name": "x", "type": "integer"}]}}}))
    keys = api.publish(folder, "rotate")["keys"]
    new = api.registry.regenerate_key("rotate", "primary", "tests")
    error_of(api.score("rotate", [{"x": 1}], key=keys["primary"]), 401, "Unauthorized")
    assert api.score("rotate", [{"x": 1}], key=keys["secondary"]).status_code == 200
    assert api.score("rotate", [{"x": 1}], key=new).status_code == 200


# -- limits and failures -------------------------------------------------------------------

def test_413_is_answered_before_the_body_is_read(server):
    """gunicorn in front: a 10 GiB Content-Length is refused on the headers alone."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as s:
        s.sendall(f"POST /services/{EXPR}/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Authorization: Bearer {server.keys[EXPR]['primary']}\r\n"
                  f"Content-Length: {10 * 1024 ** 3}\r\n\r\n[".encode())
        answer = b""
        while b"RequestTooLarge" not in answer:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 413") and "RequestTooLarge" in answer


def test_concurrency_limit_answers_503_request_throttled(api):
    results = []

    def call():
        results.append(api.score("sleepy", [{"seconds": 1.5}]))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(200) >= 1 and 503 in statuses, statuses
    throttled = next(r for r in results if r.status_code == 503)
    error_of(throttled, 503, "ServiceUnavailable", "RequestThrottled")
    assert api.score("sleepy", [{"seconds": 0}]).status_code == 200


def test_timeout_is_504_and_the_service_keeps_serving(api):
    error_of(api.score("sleepy", [{"seconds": 30}]), 504, "GatewayTimeout", "BackendScoreTimeout")
    assert api.score("sleepy", [{"seconds": 0}]).status_code == 200


def test_crashed_worker_is_500_with_a_request_id(api):
    r = api.score("failing", [{"how": "segv"}], headers={"X-Request-Id": "crash-1"})
    err = error_of(r, 500, "InternalError")
    assert "SIGSEGV" in err["message"] and "crash-1" in err["message"]
    assert api.score("failing", [{"how": "fine"}]).status_code == 200


def test_memory_error_is_413_memory_quota_violation(api):
    error_of(api.score("failing", [{"how": "memory"}]), 413, "MemoryQuotaViolation")


def test_wrong_return_value_is_module_execution_error(api):
    err = error_of(api.score("failing", [{"how": "none"}]), 400, "ModuleExecutionError", "Error0085")
    assert "returned None" in err["details"][0]["message"]


def test_no_route_answers_html(api):
    for r in (api.get(f"/services/{EXPR}/score"), api.request("PUT", f"/services/{EXPR}"),
              api.get(f"/workspaces/w/services/{EXPR}/execute"), api.post("/")):
        assert r.headers["Content-Type"].startswith("application/json") and "<html" not in r.text.lower()
        assert r.json()["error"]["code"] in ("MethodNotAllowed", "NotFound")



# -- property-based: whatever fits the published OpenAPI document, never a 5xx -----------

@pytest.mark.parametrize("service", ["expression-evaluator", "two-inputs", "types"])
def test_openapi_property_based_run_finds_no_5xx(api, service):
    import hypothesis
    import schemathesis

    schema = schemathesis.openapi.from_wsgi(f"/services/{service}/swagger.json", api.app)
    key = api.keys[service]["primary"]
    failures, calls = [], []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() != "POST":
            continue

        @hypothesis.settings(max_examples=25, deadline=None, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        @hypothesis.given(case=operation.as_strategy())
        def check(case):
            response = case.call(headers={"Authorization": f"Bearer {key}"})
            calls.append(response.status_code)
            if response.status_code >= 500:
                failures.append((case.path, case.body, response.status_code, response.text[:300]))

        check()
    assert len(calls) >= 25 and failures == []
    assert any(code == 200 for code in calls) and any(400 <= code < 500 for code in calls)


def test_metrics_in_prometheus_text_format(server):
    """On a real server: gunicorn's web processes add up their samples (multiprocess mode)."""
    assert server.score("hello-bundle", [{"name": "m1"}, {"name": "m2"}]).status_code == 200
    server.score("hello-bundle", [{"nme": "x"}])
    text = server.get("/metrics")
    assert text.status_code == 200 and text.headers["Content-Type"].startswith("text/plain")
    body = text.text
    assert 'scorepub_requests_total{code="200",service="hello-bundle",version="1"}' in body
    assert 'scorepub_errors_total{error="UnexpectedColumn",service="hello-bundle",status="400",version="1"}' in body
    assert 'scorepub_rows_total{direction="in",service="hello-bundle",version="1"}' in body
    assert 'scorepub_request_duration_seconds_bucket{le="0.5",service="hello-bundle",version="1"}' in body


@pytest.mark.parametrize("body,status,check", [
    ("s,i,b,t\nx,1,true,\r\ny,,false,\r\n", 200, lambda out: out[1]["i"] is None and out[0]["b"] is True),
    ('s,i,b,t\n"multi\nline",2,true,\n', 200, lambda out: out[0]["s"] == "multi\nline"),
    ("s,i,b\nx,1,true,extra\n", 400, "BadArgument"),
    ("s,i,b,t\nx,1\n", 400, "BadUserArgument"),  # the short row's missing b is null, and b is not nullable
    ("s,s,b\nx,y,true\n", 400, "BadUserArgument"),
    ("", 400, "BadArgument"),
])
def test_csv_edge_cases(api, body, status, check):
    r = api.score("types", body, headers={"Content-Type": "text/csv", "Accept": "application/json"})
    assert r.status_code == status, r.text
    if callable(check):
        assert check(r.json()["output1"])
    else:
        assert r.json()["error"]["code"] == check


def test_csv_of_many_rows_converts_every_type(api):
    rows = "".join(f"s{i},{i},{'true' if i % 2 else 'false'},2024-01-01T00:00:{i % 60:02d}Z\n" for i in range(3))
    r = api.score("types", "s,i,b,t\n" + rows, headers={"Content-Type": "text/csv", "Accept": "application/json"})
    out = r.json()["output1"]
    assert [row["i"] for row in out] == [0, 1, 2] and out[1]["b"] is True and out[2]["t"] == "2024-01-01T00:00:02"
