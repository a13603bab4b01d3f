"""The HTTP side of a scoring call, shared by the native and the classic face and the admin
console: find the service, check the key, pick the version, hand the body to the call core
(``calls.py``) and answer. Only this layer touches Flask's ``g`` and ``current_app``."""
from __future__ import annotations

import dataclasses

from flask import Response, current_app, g

from publisher.errors import NotFound
from publisher.registry import ServiceRecord, VersionRecord

from .auth import require_key
from .calls import CallFailed, CallRequest, Scored, Target
from .errors import ApiError, detail


MAX_VERSION = 2**31 - 1  # the registry's integer column; larger numbers cannot exist


def state():
    return current_app.extensions["scorepub"]


def find_service(name_or_id: str) -> ServiceRecord:
    """The service, from this process's catalog (checked against the registry once per request)."""
    catalog = state().catalog
    catalog.refresh()
    try:
        return catalog.service(name_or_id)
    except NotFound:
        message = f"There is no service named '{name_or_id[:80]}'."
        raise ApiError(404, "NotFound", message, [detail("ServiceNotFound", message)]) from None


def resolve(name_or_id: str, request, number: int | None = None) -> tuple[ServiceRecord, VersionRecord]:
    """The service and the version to run, after the key check: 404, 401, 410 or 503 otherwise."""
    st = state()
    service = find_service(name_or_id)
    g.service = service
    g.metric_labels = (service.name, "-")
    require_key(st.catalog, service, request)
    if number is None:
        number = st.router.version_for(service)  # the live version, once this replica has it warm
        if number is None:
            raise ApiError(503, "ServiceUnavailable", f"Service '{service.name}' has no live version.",
                           [detail("NoLiveVersion", "Promote a version to serve calls.")])
    try:
        if not 1 <= number <= MAX_VERSION:
            raise NotFound(number)
        version = st.catalog.version(service, number)
    except NotFound:
        message = f"Service '{service.name}' has no version {number}."
        raise ApiError(404, "NotFound", message, [detail("VersionNotFound", message)]) from None
    g.metric_labels = (service.name, str(version.version))
    g.version_number = version.version
    if version.retired:
        raise ApiError(410, "Gone", f"Version {number} of '{service.name}' was retired.")
    return service, version


def target(service: ServiceRecord, version: VersionRecord) -> Target:
    return Target(service.name, version.digest, state().schema(version.digest, version.schema_json),
                  version.version, service.id)


def call(service: ServiceRecord, version: VersionRecord, call_request: CallRequest) -> Scored:
    """Run one call through the call core; what it did goes to the call log (``g.record``)."""
    call_request = dataclasses.replace(call_request, keep_payload=bool(service.store_payloads),
                                       request_id=g.request_id)
    try:
        scored = state().calls.score(target(service, version), call_request)
    except CallFailed as failed:
        g.record = failed.record
        raise failed.error from None
    g.record = scored.record
    return scored


def run(service: ServiceRecord, version: VersionRecord, call_request: CallRequest) -> Response:
    """One call answered over HTTP, with the version that answered it."""
    scored = call(service, version, call_request)
    media = scored.media_type + ("; charset=utf-8" if scored.media_type == "text/csv" else "")
    response = Response(scored.body, status=200, content_type=media)
    response.headers["X-Scorepub-Version"] = str(version.version)
    return response


def flag(request, name: str) -> bool:
    return request.args.get(name, "").lower() in ("1", "true", "yes")
