"""Request/response formats, one module each, behind the :class:`~serving.codecs.base.Codec`
interface. A new format is one new module listed in ``CODECS``."""
from __future__ import annotations

from .base import Codec, DecodedRequest
from .csv_format import CsvCodec
from .rows import RowsCodec

CODECS: list[Codec] = [RowsCodec(), CsvCodec()]


def for_request(content_type: str | None) -> Codec | None:
    """The codec that reads this content type (None if no codec does)."""
    media = (content_type or "application/json").split(";", 1)[0].strip().lower()
    for codec in CODECS:
        if media in codec.media_types:
            return codec
    return None


__all__ = ["Codec", "DecodedRequest", "CODECS", "for_request"]
