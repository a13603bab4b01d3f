"""Request/response formats, one module each, behind the :class:`~serving.codecs.base.Codec`
interface. A new format is one new module, listed in ``NATIVE`` or ``CLASSIC`` below."""
from __future__ import annotations

from .base import Codec, DecodedRequest, JsonCodec, parse_json
from .classic_swagger import ClassicSwaggerCodec
from .classic_table import ClassicTableCodec
from .columns import ColumnsCodec
from .csv_format import CsvCodec
from .rows import RowsCodec

NATIVE: list[Codec] = [RowsCodec(), ColumnsCodec(), CsvCodec()]
CLASSIC = {"table": ClassicTableCodec(), "swagger": ClassicSwaggerCodec()}
BY_NAME = {c.name: c for c in NATIVE}
ALL: dict[str, Codec] = {c.name: c for c in (*NATIVE, *CLASSIC.values())}


def media_type(content_type: str | None) -> str:
    return (content_type or "application/json").split(";", 1)[0].strip().lower()


def native_request(content_type: str | None, body: bytes) -> tuple[Codec, object] | None:
    """The native codec that reads this request, and the parsed JSON document if it is JSON."""
    media = media_type(content_type)
    readers = [c for c in NATIVE if media in c.reads]
    if not readers:
        return None
    if not isinstance(readers[0], JsonCodec):
        return readers[0], None
    document = parse_json(body)
    return next((c for c in readers if c.matches(document)), readers[0]), document


# Accept values that pick a JSON shape explicitly; plain application/json mirrors the request.
SHAPES = {"application/vnd.scorepub.rows+json": "rows", "application/vnd.scorepub.columns+json": "columns"}


def native_response(accept, request_codec: Codec) -> Codec:
    """The request's own shape, unless Accept asks for CSV or a JSON shape by name."""
    if not accept or all(value == "*/*" for value, _ in accept):
        return request_codec
    offered = ["application/json", "text/csv", *SHAPES]
    best = accept.best_match(offered, default=None)
    if best in SHAPES:
        return BY_NAME[SHAPES[best]]
    if best == "text/csv":
        return BY_NAME["csv"]
    if best == "application/json" and request_codec.name == "csv":
        return BY_NAME["rows"]
    return request_codec


__all__ = ["Codec", "DecodedRequest", "NATIVE", "CLASSIC", "ALL", "native_request", "native_response"]
