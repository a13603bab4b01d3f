"""The classic request/response (RRS) endpoint, for clients of Azure ML Studio (classic).

A classic client changes only its base URL and key: the path shape, ``api-version=2.0``,
``details=true``, ``format=swagger`` and the JSON bodies are the classic service's.
"""
from __future__ import annotations

from flask import Blueprint, g, request

from . import codecs
from .errors import ApiError, bad_argument
from .calls import CallRequest
from .scoring import flag, resolve, run

bp = Blueprint("classic", __name__)


@bp.post("/workspaces/<workspace>/services/<service>/execute")
def execute(workspace: str, service: str):
    record, version = resolve(service, request)
    api_version = request.args.get("api-version")
    if api_version != "2.0":
        raise bad_argument("InputParseError", f"api-version must be 2.0 (got {api_version!r}).", "api-version")
    fmt = request.args.get("format", "table").lower()
    codec = codecs.CLASSIC.get(fmt)
    if codec is None:
        raise bad_argument("InputParseError", f"format must be swagger or absent (got {fmt!r}).", "format")
    if codecs.media_type(request.content_type) not in codec.reads:
        raise ApiError(415, "UnsupportedMediaType",
                       f"Content type '{request.content_type}' is not supported; send application/json.")
    g.face = "classic"
    body = request.get_data(cache=False)
    return run(record, version, CallRequest(body, codec.name, codec.name, flag(request, "details")))
