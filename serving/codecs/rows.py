"""Native "rows": ``{"input1": [{...}, ...], "input2": [...]}``, or a bare list for input1."""
from __future__ import annotations

import orjson

from publisher.coercion import rows_to_table
from publisher.schema import ServiceSchema

from ..errors import bad_argument
from .base import DecodedRequest, JsonCodec, check_envelope, convert, details_fields, parameters


class RowsCodec(JsonCodec):
    name = "rows"

    def matches(self, document) -> bool:
        return isinstance(document, list) or (isinstance(document, dict) and not any(
            isinstance(v, dict) for k, v in document.items() if k != "GlobalParameters"))

    def decode_document(self, document, schema: ServiceSchema, max_rows: int) -> DecodedRequest:
        ports = tuple(schema.inputs)
        if isinstance(document, list):
            if len(ports) != 1:
                raise bad_argument("InputParseError",
                                   f"A bare list means input1 only, but this service takes {len(ports)} inputs: "
                                   f"send {{{', '.join(repr(p) + ': [...]' for p in ports)}}}.")
            document = {ports[0]: document}
        check_envelope(document, ports)
        tables = [convert(rows_to_table, port, spec, document[port], max_rows) for port, spec in schema.inputs.items()]
        return DecodedRequest(tables, parameters(document, schema))

    def encode(self, result, details: bool) -> bytes:
        body = {"output1": result.output.to_rows()}
        if details:
            body.update(details_fields(result))
        return orjson.dumps(body)
