"""The native JSON API (http-api.md, "Native endpoints")."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from publisher.errors import NotFound

from . import codecs
from .auth import require_key
from .errors import ApiError, from_runtime
from .runtime.errors import RuntimeFailure

bp = Blueprint("native", __name__)


def state():
    return current_app.extensions["scorepub"]


def _flag(name: str) -> bool:
    return request.args.get(name, "").lower() in ("1", "true", "yes")


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.post("/services/<name>/score")
def score(name: str):
    st = state()
    try:
        service = st.registry.service(name)
    except NotFound:
        raise ApiError(404, "NotFound", f"There is no service named '{name}'.") from None
    require_key(st.registry, service, request)
    if service.live_version is None:
        raise ApiError(503, "ServiceUnavailable", f"Service '{name}' has no live version.",
                       [{"code": "NoLiveVersion", "message": "Promote a version to serve calls."}])
    version = st.registry.version(service.name, service.live_version)
    return _score(version)


def _score(version) -> Response:
    st = state()
    codec = codecs.for_request(request.content_type)
    if codec is None:
        raise ApiError(415, "UnsupportedMediaType",
                       f"Content type '{request.content_type}' is not supported; send application/json.")
    schema = st.schema(version.digest, version.schema_json)
    decoded = codec.decode(request.get_data(cache=False), schema, st.settings.max_rows)
    try:
        result = st.runtime.call(version.digest, schema, decoded.inputs, decoded.parameters)
    except (RuntimeFailure, NotFound) as exc:
        raise from_runtime(exc) from None
    details = _flag("details")
    body, content_type = codec.encode(result, details, decoded.shape)
    response = Response(body, status=200, content_type=content_type)
    response.headers["X-Scorepub-Version"] = str(version.version)
    return response
