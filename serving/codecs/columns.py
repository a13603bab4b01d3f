"""Native "columns" (pandas "split"): ``{"input1": {"columns": [...], "data": [[...], ...]}}``.

The compact shape for big requests: values travel as rows of lists and are transposed into
columns once, with no per-row dicts on the way in or out.
"""
from __future__ import annotations

import orjson

from publisher.coercion import columns_to_table
from publisher.schema import ServiceSchema

from ..errors import bad_argument
from .base import DecodedRequest, JsonCodec, check_envelope, convert, details_fields, parameters


class ColumnsCodec(JsonCodec):
    name = "columns"

    def matches(self, document) -> bool:
        return isinstance(document, dict) and any(
            isinstance(v, dict) for k, v in document.items() if k != "GlobalParameters")

    def decode_document(self, document, schema: ServiceSchema, max_rows: int) -> DecodedRequest:
        check_envelope(document, tuple(schema.inputs))
        tables = []
        for port, spec in schema.inputs.items():
            block = document[port]
            if not isinstance(block, dict) or set(block) != {"columns", "data"}:
                raise bad_argument("InputParseError", f"'{port}' must be {{\"columns\": [names], \"data\": [rows]}}.",
                                   port)
            tables.append(convert(columns_to_table, port, spec, block["columns"], block["data"], max_rows))
        return DecodedRequest(tables, parameters(document, schema))

    def encode(self, result, details: bool) -> bytes:
        out = result.output
        data = list(zip(*[c.to_pylist() for c in out.columns])) if out.columns else [[] for _ in range(out.n_rows)]
        body = {"output1": {"columns": out.names, "data": data}}
        if details:
            body.update(details_fields(result))
        return orjson.dumps(body)
