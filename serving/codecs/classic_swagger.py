"""Classic request/response "swagger" format (``format=swagger``): rows of named cells."""
from __future__ import annotations

import orjson

from publisher.coercion import rows_to_table
from publisher.schema import ServiceSchema

from .base import DecodedRequest, JsonCodec, convert, parameters
from .classic_table import classic_inputs
from .classic_text import text_columns


class ClassicSwaggerCodec(JsonCodec):
    name = "classic-swagger"

    def matches(self, document) -> bool:
        return True

    def decode_document(self, document, schema: ServiceSchema, max_rows: int) -> DecodedRequest:
        inputs = classic_inputs(document, schema)
        tables = [convert(rows_to_table, port, spec, inputs[port], max_rows) for port, spec in schema.inputs.items()]
        return DecodedRequest(tables, parameters(document, schema))

    def encode(self, result, details: bool) -> bytes:
        names = result.output.names
        rows = [dict(zip(names, row)) for row in zip(*text_columns(result.output))]
        return orjson.dumps({"Results": {"output1": rows}})
