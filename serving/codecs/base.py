"""The interface every request/response format implements, and what they share."""
from __future__ import annotations

import dataclasses
from typing import Protocol

import orjson
from marshmallow import RAISE, Schema, ValidationError, fields

from publisher.coercion import InputError
from publisher.parameters import resolve_parameters
from publisher.schema import ServiceSchema
from publisher.table import Table

from ..errors import bad_argument, from_input_error
from ..runtime.dispatcher import CallResult


@dataclasses.dataclass
class DecodedRequest:
    inputs: list[Table]  # one table per declared port, in port order
    parameters: dict  # the resolved azureml_parameters


class Codec(Protocol):
    name: str
    media_type: str  # what encode() writes
    reads: tuple[str, ...]  # request content types it reads

    def decode(self, body: bytes, schema: ServiceSchema, max_rows: int) -> DecodedRequest:
        """Parse and validate a request body into typed tables; raise ApiError if it does not fit."""

    def encode(self, result: CallResult, details: bool) -> bytes:
        """The response body."""


class JsonCodec:
    """A JSON format: parsed once; ``matches`` tells formats sharing a content type apart."""

    media_type = "application/json"
    reads = ("application/json", "text/json")

    def matches(self, document) -> bool:
        raise NotImplementedError

    def decode(self, body: bytes, schema: ServiceSchema, max_rows: int) -> DecodedRequest:
        return self.decode_document(parse_json(body), schema, max_rows)

    def decode_document(self, document, schema: ServiceSchema, max_rows: int) -> DecodedRequest:
        raise NotImplementedError


def parse_json(body: bytes):
    if not body:
        raise bad_argument("InputParseError", "The request body is empty; send a JSON document.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_argument("InputParseError", f"The request body is not valid JSON: {exc}.") from None


_ENVELOPES: dict[tuple, type[Schema]] = {}


def check_envelope(document, ports: tuple[str, ...], where: str = "", with_parameters: bool = True) -> None:
    """The ports of a request (and its GlobalParameters), checked with marshmallow."""
    if not isinstance(document, dict):
        raise bad_argument("InputParseError", f"{where or 'The request body'} must be a JSON object of input "
                                              f"ports (like {{\"input1\": ...}}).", where or None)
    cls = _ENVELOPES.get((ports, with_parameters))
    if cls is None:
        declared = {p: fields.Raw(required=True, allow_none=False) for p in ports}
        if with_parameters:
            declared["GlobalParameters"] = fields.Raw(allow_none=True)
        cls = Schema.from_dict(declared, name="Envelope_" + "_".join(ports))
        _ENVELOPES[(ports, with_parameters)] = cls
    try:
        cls(unknown=RAISE).load(document)
    except ValidationError as exc:
        # a misnamed port shows as one unknown and one missing key: name the unknown one
        items = sorted(exc.messages.items(), key=lambda kv: kv[1] != ["Unknown field."])
        key, problems = items[0]
        target = f"{where}.{key}" if where else key
        problem = problems[0] if isinstance(problems, list) else str(problems)
        if problem == "Unknown field.":
            raise bad_argument("UnexpectedInput", f"'{key}' is not an input of this service "
                               f"(its inputs: {', '.join(ports) or 'none'}).", target) from None
        raise bad_argument("MissingInput", f"Input '{key}' is missing or null.", target) from None


def convert(fn, *args):
    """Run a publisher conversion, turning its InputError into the HTTP error."""
    try:
        return fn(*args)
    except InputError as exc:
        raise from_input_error(exc) from None


def parameters(document: dict, schema: ServiceSchema) -> dict:
    return convert(resolve_parameters, document.get("GlobalParameters"), schema.parameters)


def details_fields(result: CallResult) -> dict:
    """What ``?details=true`` adds to a native response."""
    return {"output_log": result.log, "visualizations": result.plots_base64(), "timing": result.timing,
            **({"notes": result.notes} if result.notes else {})}
