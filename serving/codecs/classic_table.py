"""Classic request/response "table" format (``Inputs``/``ColumnNames``/``Values``).

The JSON that the classic service's published C#, Python and R samples all sent; the answer
has every cell as text, and ``ColumnNames``/``ColumnTypes`` only with ``details=true``.
"""
from __future__ import annotations

import orjson

from publisher.coercion import columns_to_table
from publisher.schema import ServiceSchema

from ..errors import bad_argument
from .base import DecodedRequest, JsonCodec, check_envelope, convert, parameters
from .classic_text import text_columns


def classic_envelope(document) -> dict:
    if not isinstance(document, dict) or not isinstance(document.get("Inputs"), dict):
        raise bad_argument("InputParseError", "The request body must be {\"Inputs\": {...}, "
                                              "\"GlobalParameters\": {...}}.", "Inputs")
    unknown = set(document) - {"Inputs", "GlobalParameters"}
    if unknown:
        key = sorted(unknown)[0]
        raise bad_argument("InputParseError", f"'{key}' is not part of a classic request (Inputs, GlobalParameters).",
                           key)
    return document


def classic_inputs(document, schema: ServiceSchema) -> dict:
    """The checked ``Inputs`` of a classic request (both classic formats start here)."""
    inputs = classic_envelope(document)["Inputs"]
    check_envelope(inputs, tuple(schema.inputs), where="Inputs", with_parameters=False)
    return inputs


class ClassicTableCodec(JsonCodec):
    name = "classic-table"

    def matches(self, document) -> bool:
        return True

    def decode_document(self, document, schema: ServiceSchema, max_rows: int) -> DecodedRequest:
        inputs = classic_inputs(document, schema)
        tables = []
        for port, spec in schema.inputs.items():
            block = inputs[port]
            if not isinstance(block, dict) or "Values" not in block or "ColumnNames" not in block:
                raise bad_argument("InputParseError",
                                   f"Inputs.{port} must be {{\"ColumnNames\": [names], \"Values\": [rows]}}.",
                                   f"Inputs.{port}")
            tables.append(convert(columns_to_table, port, spec, block["ColumnNames"], block["Values"], max_rows))
        return DecodedRequest(tables, parameters(document, schema))

    def encode(self, result, details: bool) -> bytes:
        out = result.output
        columns = text_columns(out)
        values = [list(row) for row in zip(*columns)] if columns else [[] for _ in range(out.n_rows)]
        value = {"Values": values}
        if details:
            value = {"ColumnNames": out.names, "ColumnTypes": [c.classic_label for c in out.columns], **value}
        return orjson.dumps({"Results": {"output1": {"type": "table", "value": value}}})
