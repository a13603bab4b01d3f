"""Each service version's OpenAPI 3 document, generated with apispec from its schema.

Generated, never written by hand, so the document cannot drift from what the service checks.
"""
from __future__ import annotations

import orjson
from apispec import APISpec

from publisher.schema import ServiceSchema

_JSON_TYPES = {
    "string": {"type": "string"},
    "integer": {"type": "integer", "format": "int64"},
    "double": {"type": "number", "format": "double"},
    "boolean": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
}
_ERROR_STATUSES = {
    "400": "Bad input (BadArgument) or the script failed (ModuleExecutionError, Error 0085)",
    "401": "No key or a wrong key",
    "404": "No such service or version",
    "410": "The version was retired",
    "413": "Body over the limit, or the script over its memory limit",
    "415": "A content type no codec reads",
    "500": "Internal error (quote the request id)",
    "503": "Over the concurrency limit, or no live version",
    "504": "The script ran past its time limit",
}


EXAMPLE_MAX_BYTES = 64 * 1024  # a public document: a big sample.json must not make it (or its CPU) big


def capped_example(sample: dict | None, limit: int = EXAMPLE_MAX_BYTES) -> dict | None:
    """sample.json as the document's example: its first rows, as many as fit in ``limit`` bytes
    (None when not even one row per port does)."""
    if not sample:
        return sample
    total = max((len(v) for v in sample.values() if isinstance(v, list)), default=0)
    rows = total
    while True:
        trimmed = {k: v[:rows] if isinstance(v, list) else v for k, v in sample.items()}
        if len(orjson.dumps(trimmed, option=orjson.OPT_NON_STR_KEYS)) <= limit:
            return trimmed
        if rows <= 1:
            return None
        rows = min(rows // 4, 100) if rows > 100 else rows // 2


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _cell_schema(column) -> dict:
    schema = dict(_JSON_TYPES[column.type])
    if column.nullable:
        schema["nullable"] = True
    return schema


def _classic_cell() -> dict:
    return {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}], "nullable": True}


def build(service: str, version: int, schema: ServiceSchema, sample: dict | None) -> dict:
    spec = APISpec(title=f"{service} (version {version})", version=str(version), openapi_version="3.0.3",
                   info={"description": f"Scoring service '{service}', published with scorepub."})
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme("apiKey", {"type": "apiKey", "in": "header", "name": "api-key"})
    spec.components.schema("Error", {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"},
            "details": {"type": "array", "items": {"type": "object", "properties": {
                "code": {"type": "string"}, "target": {"type": "string"}, "message": {"type": "string"}}}}}}}})
    params = {name: {**_JSON_TYPES[p.type], **({"default": p.default} if p.has_default else {})}
              for name, p in schema.parameters.items()}
    required_params = [n for n, p in schema.parameters.items() if not p.has_default]
    global_params = {"type": "object", "properties": params, "additionalProperties": False}
    if required_params:
        global_params["required"] = required_params
    spec.components.schema("GlobalParameters", global_params)

    rows_props, columns_props, classic_table_props, classic_swagger_props = {}, {}, {}, {}
    for port, port_spec in schema.inputs.items():
        Port = port.capitalize()
        row = {"type": "object",
               "properties": {c.name: _cell_schema(c) for c in port_spec.columns},
               "additionalProperties": port_spec.extra_columns == "allow"}
        required = [c.name for c in port_spec.columns if not c.has_default]
        if required:
            row["required"] = required
        spec.components.schema(f"{Port}Row", row)
        rows = {"type": "array", "items": _ref(f"{Port}Row"), "minItems": port_spec.min_rows,
                "maxItems": port_spec.max_rows}
        rows_props[port] = rows
        names = [c.name for c in port_spec.columns]
        columns_props[port] = {
            "type": "object", "required": ["columns", "data"], "additionalProperties": False,
            "properties": {"columns": {"type": "array", "items": {"type": "string", "enum": names} if names
                                       else {"type": "string"}},
                           "data": {"type": "array", "items": {"type": "array", "items": {}}}}}
        classic_table_props[port] = {
            "type": "object", "required": ["ColumnNames", "Values"],
            "properties": {"ColumnNames": {"type": "array", "items": {"type": "string"}},
                           "Values": {"type": "array", "items": {"type": "array", "items": _classic_cell()}}}}
        classic_swagger_props[port] = rows
    ports = list(schema.inputs)
    spec.components.schema("RowsRequest", {"type": "object", "required": ports, "additionalProperties": False,
                                           "properties": {**rows_props, "GlobalParameters": _ref("GlobalParameters")}})
    spec.components.schema("ColumnsRequest", {"type": "object", "required": ports, "additionalProperties": False,
                                              "properties": {**columns_props,
                                                             "GlobalParameters": _ref("GlobalParameters")}})
    out_row = {"type": "object", "additionalProperties": True}
    spec.components.schema("RowsResponse", {"type": "object", "required": ["output1"], "properties": {
        "output1": {"type": "array", "items": out_row},
        "output_log": {"type": "string"},
        "visualizations": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "data": {"type": "string", "format": "byte"}}}},
        "timing": {"type": "object", "additionalProperties": {"type": "number"}}}})
    spec.components.schema("ColumnsResponse", {"type": "object", "required": ["output1"], "properties": {
        "output1": {"type": "object", "properties": {"columns": {"type": "array", "items": {"type": "string"}},
                                                     "data": {"type": "array", "items": {"type": "array"}}}}}})
    spec.components.schema("ClassicTableRequest", {"type": "object", "required": ["Inputs"], "properties": {
        "Inputs": {"type": "object", "required": ports, "properties": classic_table_props},
        "GlobalParameters": _ref("GlobalParameters")}})
    spec.components.schema("ClassicSwaggerRequest", {"type": "object", "required": ["Inputs"], "properties": {
        "Inputs": {"type": "object", "required": ports, "properties": classic_swagger_props},
        "GlobalParameters": _ref("GlobalParameters")}})
    spec.components.schema("ClassicTableResponse", {"type": "object", "properties": {"Results": {
        "type": "object", "properties": {"output1": {"type": "object", "properties": {
            "type": {"type": "string", "enum": ["table"]},
            "value": {"type": "object", "properties": {
                "ColumnNames": {"type": "array", "items": {"type": "string"}},
                "ColumnTypes": {"type": "array", "items": {"type": "string"}},
                "Values": {"type": "array", "items": {"type": "array",
                                                      "items": {"type": "string", "nullable": True}}}}}}}}}}})
    spec.components.schema("ClassicSwaggerResponse", {"type": "object", "properties": {"Results": {
        "type": "object", "properties": {"output1": {"type": "array", "items": {
            "type": "object", "additionalProperties": {"type": "string", "nullable": True}}}}}}})

    errors = {status: {"description": text, "content": {"application/json": {"schema": _ref("Error")}}}
              for status, text in _ERROR_STATUSES.items()}
    security = [{"bearer": []}, {"apiKey": []}]
    native_body = {"required": True, "content": {
        "application/json": {"schema": {"oneOf": [_ref("RowsRequest"), _ref("ColumnsRequest")]},
                             **({"example": sample} if sample else {})},
        **({"text/csv": {"schema": {"type": "string"}}} if len(ports) == 1 else {})}}
    native_ok = {"200": {"description": "The output table, in the request's shape unless Accept asks otherwise",
                         "content": {"application/json": {"schema": {"oneOf": [_ref("RowsResponse"),
                                                                               _ref("ColumnsResponse")]}},
                                     "text/csv": {"schema": {"type": "string"}}}}}
    details = {"name": "details", "in": "query", "required": False, "schema": {"type": "boolean"},
               "description": "Add output_log, visualizations and timing"}
    score_op = {"summary": f"Score with the live version of {service}", "security": security,
                "parameters": [details], "requestBody": native_body, "responses": {**native_ok, **errors}}
    spec.path(path=f"/services/{service}/score", operations={"post": score_op})
    version_param = {"name": "version", "in": "path", "required": True,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}}
    spec.path(path=f"/services/{service}/versions/{{version}}/score", operations={"post": {
        **score_op, "summary": f"Score with one version of {service}", "parameters": [version_param, details]}})
    spec.path(path=f"/services/{service}", operations={"get": {
        "summary": "Versions, live version, schema and limits", "security": security,
        "responses": {"200": {"description": "Service metadata",
                              "content": {"application/json": {"schema": {"type": "object"}}}}, **errors}}})
    classic_example = None
    if sample:
        classic_example = {"Inputs": {p: {"ColumnNames": [c.name for c in schema.inputs[p].columns],
                                          "Values": [[r.get(c.name) for c in schema.inputs[p].columns]
                                                     for r in sample.get(p, [])]} for p in ports},
                           "GlobalParameters": {}}
    spec.path(path=f"/workspaces/{{workspace}}/services/{service}/execute", operations={"post": {
        "summary": "Classic request/response (RRS) endpoint, for clients of Azure ML Studio (classic)",
        "security": security,
        "parameters": [
            {"name": "workspace", "in": "path", "required": True, "schema": {"type": "string"},
             "description": "Accepted and ignored"},
            {"name": "api-version", "in": "query", "required": True, "schema": {"type": "string", "enum": ["2.0"]}},
            details,
            {"name": "format", "in": "query", "required": False, "schema": {"type": "string", "enum": ["swagger"]}}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"oneOf": [_ref("ClassicTableRequest"), _ref("ClassicSwaggerRequest")]},
            **({"example": classic_example} if classic_example else {})}}},
        "responses": {"200": {"description": "Results", "content": {"application/json": {"schema": {
            "oneOf": [_ref("ClassicTableResponse"), _ref("ClassicSwaggerResponse")]}}}}, **errors}}})
    return spec.to_dict()
