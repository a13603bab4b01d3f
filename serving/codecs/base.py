"""The interface every request/response format implements."""
from __future__ import annotations

import dataclasses
from typing import Protocol

import orjson

from publisher.schema import ServiceSchema
from publisher.table import Table

from ..errors import bad_argument
from ..runtime.dispatcher import CallResult


@dataclasses.dataclass
class DecodedRequest:
    inputs: list[Table]  # one table per declared port, in port order
    parameters: dict
    shape: str  # which response shape mirrors this request


class Codec(Protocol):
    name: str
    media_types: tuple[str, ...]

    def decode(self, body: bytes, schema: ServiceSchema, max_rows: int) -> DecodedRequest:
        """Parse and validate a request body into typed tables; raise ApiError if it does not fit."""

    def encode(self, result: CallResult, details: bool, shape: str) -> tuple[bytes, str]:
        """The response body and its content type."""


def parse_json(body: bytes):
    if not body:
        raise bad_argument("InputParseError", "The request body is empty; send a JSON document.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_argument("InputParseError", f"The request body is not valid JSON: {exc}.") from None


def details_fields(result: CallResult) -> dict:
    """What ``?details=true`` adds to a native response."""
    return {"output_log": result.log, "visualizations": result.plots_base64(), "timing": result.timing,
            **({"notes": result.notes} if result.notes else {})}
