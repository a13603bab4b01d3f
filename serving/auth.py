"""API keys on requests: ``Authorization: Bearer <key>`` or ``api-key: <key>``."""
from __future__ import annotations

from flask import Request

from publisher.registry import ServiceRecord

from .errors import ApiError


def key_from(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = request.headers.get("api-key", "").strip()
    return key or None


def require_key(catalog, service: ServiceRecord, request: Request) -> None:
    """401 unless the request carries one of this service's keys (``catalog``: serving/catalog.py)."""
    key = key_from(request)
    if key is None:
        raise ApiError(401, "Unauthorized", "An API key is required: send 'Authorization: Bearer <key>' "
                                            "or 'api-key: <key>'.")
    if not catalog.check_key(service, key):
        raise ApiError(401, "Unauthorized", "The API key is not valid for this service.")
