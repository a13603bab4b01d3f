"""The native "rows" format: ``{"input1": [{...}, ...], "input2": [...]}`` or a bare list."""
from __future__ import annotations

import orjson
from marshmallow import RAISE, Schema, ValidationError, fields

from publisher.coercion import InputError, rows_to_table
from publisher.schema import ServiceSchema

from ..errors import bad_argument, from_input_error
from .base import DecodedRequest, details_fields, parse_json

_ENVELOPES: dict[tuple, type[Schema]] = {}


def envelope(ports: tuple[str, ...]) -> Schema:
    """A marshmallow schema of the request's top level for these ports (made once per port set)."""
    cls = _ENVELOPES.get(ports)
    if cls is None:
        cls = Schema.from_dict({p: fields.Raw(required=True, allow_none=False) for p in ports},
                               name="RowsEnvelope_" + "_".join(ports))
        _ENVELOPES[ports] = cls
    return cls(unknown=RAISE)


class RowsCodec:
    name = "rows"
    media_types = ("application/json", "text/json")

    def decode(self, body: bytes, schema: ServiceSchema, max_rows: int) -> DecodedRequest:
        document = parse_json(body)
        ports = tuple(schema.inputs)
        if isinstance(document, list):
            if len(ports) != 1:
                raise bad_argument("InputParseError",
                                   f"A bare list means input1 only, but this service takes {len(ports)} inputs: "
                                   f"send {{{', '.join(repr(p) + ': [...]' for p in ports)}}}.")
            document = {ports[0]: document}
        if not isinstance(document, dict):
            raise bad_argument("InputParseError", "The request body must be a JSON object of input ports "
                                                  "(like {\"input1\": [rows]}) or a list of rows.")
        try:
            envelope(ports).load(document)
        except ValidationError as exc:
            # a misnamed port shows as one unknown and one missing key: name the unknown one
            items = sorted(exc.messages.items(), key=lambda kv: kv[1] != ["Unknown field."])
            target, problems = items[0]
            problem = problems[0] if isinstance(problems, list) else str(problems)
            if problem == "Unknown field.":
                raise bad_argument("UnexpectedInput", f"'{target}' is not an input of this service "
                                   f"(its inputs: {', '.join(ports) or 'none'}).", target) from None
            raise bad_argument("MissingInput", f"'{target}': {problem.rstrip('.').lower()}.", target) from None
        try:
            tables = [rows_to_table(port, spec, document[port], max_rows) for port, spec in schema.inputs.items()]
        except InputError as exc:
            raise from_input_error(exc) from None
        return DecodedRequest(tables, {}, "rows")

    def encode(self, result, details: bool, shape: str) -> tuple[bytes, str]:
        body = {"output1": result.output.to_rows()}
        if details:
            body.update(details_fields(result))
        return orjson.dumps(body), "application/json"
