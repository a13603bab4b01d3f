"""One scoring call, shared by the native and the classic face: resolve, throttle, run, answer."""
from __future__ import annotations

from flask import Response, current_app, g

from publisher.errors import ArtifactError, NotFound
from publisher.registry import ServiceRecord, VersionRecord

from . import metrics
from .auth import require_key
from .errors import ApiError, detail, from_runtime
from .runtime.errors import CallTimedOut, MemoryExceeded, RuntimeFailure, WorkerCrashed


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


def run(service: ServiceRecord, version: VersionRecord, decode, encode, details: bool,
        media_type: str, body: bytes = b"") -> Response:
    """Decode with ``decode(schema)``, run the script, encode with ``encode(result, details)``."""
    if service.store_payloads and body:
        g.call_detail["payload"] = body[:64 * 1024].decode("utf-8", "replace")
    result = execute(service, version, decode)
    response = Response(encode(result, details), status=200, content_type=media_type)
    response.headers["X-Scorepub-Version"] = str(version.version)
    return response


def execute(service: ServiceRecord, version: VersionRecord, decode):
    """Throttle, decode and run one call; what it did goes to the call log (``g.call_detail``)."""
    st = state()
    schema = st.schema(version.digest, version.schema_json)
    limit = schema.limits.capped(st.settings).max_concurrent_calls
    with st.throttle.slot(service.id, limit) as slot:
        if slot is None:
            raise ApiError(503, "ServiceUnavailable",
                           f"Service '{service.name}' is already running {limit} calls; try again shortly.",
                           [detail("RequestThrottled", f"max_concurrent_calls is {limit}")])
        decoded = decode(schema)
        g.rows_in = sum(t.n_rows for t in decoded.inputs)
        try:
            result = st.runtime.call(version.digest, schema, decoded.inputs, decoded.parameters)
        except (RuntimeFailure, ArtifactError) as exc:
            if isinstance(exc, (CallTimedOut, WorkerCrashed, MemoryExceeded)):
                metrics.worker_restarted(service.name, str(version.version), type(exc).__name__)
            g.call_detail.update(traceback=getattr(exc, "traceback", None) or None,
                                 log=getattr(exc, "log", None) or None)
            raise from_runtime(exc) from None
    g.rows_out = result.output.n_rows
    g.call_detail.update(log=result.log or None, plots=result.plots_base64(), notes=result.notes)
    return result


def flag(request, name: str) -> bool:
    return request.args.get(name, "").lower() in ("1", "true", "yes")
