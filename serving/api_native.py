"""The native JSON API (http-api.md, "Native endpoints")."""
from __future__ import annotations

import orjson
from flask import Blueprint, Response, request

from . import codecs, metrics
from .auth import require_key
from .errors import ApiError
from .calls import CallRequest
from .scoring import find_service, flag, resolve, run, state

bp = Blueprint("native", __name__)


def _json(data, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status=status, mimetype="application/json")


@bp.get("/healthz")
def healthz():
    return _json({"status": "ok"})


@bp.get("/readyz")
def readyz():
    report = state().readiness()
    return _json(report, 200 if report["ready"] else 503)


@bp.get("/metrics")
def metrics_text():
    body, content_type = metrics.exposition()
    return Response(body, mimetype=None, content_type=content_type)


@bp.post("/services/<name>/score")
def score(name: str):
    return _score(name, None)


@bp.post("/services/<name>/versions/<int(signed=True):number>/score")
def score_version(name: str, number: int):
    return _score(name, number)


def _score(name: str, number: int | None) -> Response:
    service, version = resolve(name, request, number)
    body = request.get_data(cache=False)
    found = codecs.native_request(request.content_type, body)
    if found is None:
        raise ApiError(415, "UnsupportedMediaType", f"Content type '{request.content_type}' is not supported; "
                                                    "send application/json or text/csv.")
    codec, document = found
    out = codecs.native_response(request.accept_mimetypes if "Accept" in request.headers else None, codec)
    return run(service, version, CallRequest(body, codec.name, out.name, flag(request, "details"), document))


@bp.get("/services/<name>")
def metadata(name: str):
    st = state()
    service = find_service(name)
    require_key(st.catalog, service, request)
    versions = st.registry.versions(service.name)
    live = next((v for v in versions if v.version == service.live_version), None)
    body = {
        "name": service.name,
        "id": service.id,
        "live_version": service.live_version,
        "versions": [{"version": v.version, "digest": v.digest, "published_at": v.created_at.isoformat(),
                      "published_by": v.published_by, "message": v.message, "retired": v.retired,
                      "live": v.version == service.live_version} for v in versions],
    }
    if live is not None:
        schema = st.schema(live.digest, live.schema_json)
        body["schema"] = orjson.loads(live.schema_json)
        body["limits"] = vars(schema.limits.capped(st.settings))
        body["isolation"] = schema.isolation
    return _json(body)


@bp.get("/services/<name>/swagger.json")
def swagger(name: str):
    """Public, as the classic service's API help was: it shows shapes, never data or keys."""
    st = state()
    service = find_service(name)
    versions = [v for v in st.registry.versions(service.name) if not v.retired]
    wanted = request.args.get("version", type=int)
    if wanted is not None:
        versions = [v for v in versions if v.version == wanted]
    else:
        live = [v for v in versions if v.version == service.live_version]
        versions = live or versions[-1:]
    if not versions:
        raise ApiError(404, "NotFound", f"Service '{service.name}' has no version to describe.")
    version = versions[-1]
    body = st.versions.openapi(service.name, version.version, version.digest, version.schema_json)
    return Response(body, mimetype="application/json")
