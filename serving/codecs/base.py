"""The interface every request/response format implements, and what they share."""
from __future__ import annotations

import dataclasses
from typing import Protocol

import orjson

from publisher.coercion import InputError
from publisher.parameters import resolve_parameters
from publisher.schema import ServiceSchema
from scorepub_sandbox.table import Table

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


def check_envelope(document, ports: tuple[str, ...], where: str = "", with_parameters: bool = True) -> None:
    """The ports of a request (each required, not null) and, if allowed, GlobalParameters: no other key.

    A misnamed port is both an unknown key and a missing port: the unknown key is named.
    """
    if not isinstance(document, dict):
        raise bad_argument("InputParseError", f"{where or 'The request body'} must be a JSON object of input "
                                              f"ports (like {{\"input1\": ...}}).", where or None)
    allowed = set(ports) | ({"GlobalParameters"} if with_parameters else set())
    unknown = next((key for key in document if key not in allowed), None)
    if unknown is not None:
        raise bad_argument("UnexpectedInput", f"'{unknown}' is not an input of this service "
                           f"(its inputs: {', '.join(ports) or 'none'}).", _target(where, unknown))
    missing = next((port for port in ports if document.get(port) is None), None)
    if missing is not None:
        raise bad_argument("MissingInput", f"Input '{missing}' is missing or null.", _target(where, missing))


def _target(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


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
