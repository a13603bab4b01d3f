"""One scoring call, whoever asks for it: both HTTP faces, the admin console, the CLI's
``score``, the publish-time smoke call and the API help page's example.

The core takes a resolved version and the request as its body bytes with their format, and
returns a typed result (:class:`Scored`) or a typed failure (:class:`CallFailed`), each with
the :class:`Record` of what the call did (for the call log). It holds the throttle slot, runs
the call on the runtime and counts worker restarts; it knows nothing of HTTP, so the transport
around it (Flask, the CLI, a batch job) only maps the outcome to its own terms.
"""
from __future__ import annotations

import dataclasses
from contextlib import nullcontext

from publisher.errors import ArtifactError
from publisher.schema import ServiceSchema

from . import codecs
from .errors import ApiError, detail, from_runtime
from .runtime.dispatcher import CallResult
from .runtime.errors import CallTimedOut, MemoryExceeded, RuntimeFailure, WorkerCrashed
from .throttle import Throttle

PAYLOAD_KEEP_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Target:
    """The service version to run. Without a ``service_id`` the call is not throttled."""

    service: str
    digest: str
    schema: ServiceSchema
    version: int | None = None
    service_id: str | None = None


@dataclasses.dataclass(frozen=True)
class CallRequest:
    body: bytes
    format: str  # the codec that reads it: rows, columns, csv, classic-table, classic-swagger
    response_format: str | None = None  # the codec that writes the answer (None: the result only)
    details: bool = False
    document: object = None  # the body already parsed as JSON (choosing its shape did), if so
    keep_payload: bool = False  # the service stores request payloads in its call log
    request_id: str = "-"


@dataclasses.dataclass
class Record:
    """What one call did, for the call log; the transport adds status, face and duration."""

    rows_in: int = 0
    rows_out: int = 0
    log: str | None = None
    traceback: str | None = None
    plots: list = dataclasses.field(default_factory=list)  # [{"name", "data" (base64)}]
    notes: list = dataclasses.field(default_factory=list)
    payload: str | None = None


@dataclasses.dataclass
class Scored:
    result: CallResult
    body: bytes | None  # encoded with the request's response_format
    media_type: str | None
    record: Record


class CallFailed(Exception):
    """``error`` is the answer to give; ``reason`` is the runtime's own one-line account (for a
    script's failure, ``score.py:LINE: Error: message``), for terminals."""

    def __init__(self, error: ApiError, record: Record, reason: str | None = None):
        super().__init__(error.message)
        self.error, self.record = error, record
        self.reason = reason or error.message

    def one_line(self) -> str:
        first = self.error.details[0]["message"] if self.error.details else ""
        text = f"{self.error.message} {first}".strip() if first != self.error.message else self.error.message
        return " ".join(text.split("\n"))


class CallCore:
    def __init__(self, settings, runtime, throttle: Throttle | None = None):
        self.settings = settings
        self.runtime = runtime
        self.throttle = throttle

    def score(self, target: Target, request: CallRequest) -> Scored:
        record = Record()
        if request.keep_payload and request.body:
            record.payload = request.body[:PAYLOAD_KEEP_BYTES].decode("utf-8", "replace")
        with self._slot(target) as slot:
            if slot is None:
                raise CallFailed(self._throttled(target), record)
            try:
                result = self._run(target, request, record)
            except (RuntimeFailure, ArtifactError) as exc:
                raise CallFailed(from_runtime(exc, request.request_id), record, str(exc)) from None
            except ApiError as exc:
                raise CallFailed(exc, record) from None
        record.rows_out = result.output.n_rows
        record.log, record.plots, record.notes = result.log or None, result.plots_base64(), result.notes
        body = media_type = None
        if request.response_format is not None:
            out = codecs.ALL[request.response_format]
            body, media_type = out.encode(result, request.details), out.media_type
        return Scored(result, body, media_type, record)

    def _limit(self, target: Target) -> int:
        return target.schema.limits.capped(self.settings).max_concurrent_calls

    def _slot(self, target: Target):
        """The service's ``max_concurrent_calls``, across every web process of this server: the
        slot held, or None when every slot is taken. Untargeted calls (CLI, smoke) take none."""
        if self.throttle is None or target.service_id is None:
            return nullcontext(-1)
        return self.throttle.slot(target.service_id, self._limit(target))

    def _throttled(self, target: Target) -> ApiError:
        limit = self._limit(target)
        return ApiError(503, "ServiceUnavailable", f"Service '{target.service}' is already running {limit} calls; "
                                                   "try again shortly.",
                        [detail("RequestThrottled", f"max_concurrent_calls is {limit}")])

    def _run(self, target: Target, request: CallRequest, record: Record) -> CallResult:
        codec = codecs.ALL[request.format]
        max_rows = self.settings.max_rows
        if request.document is not None:
            decoded = codec.decode_document(request.document, target.schema, max_rows)
        else:
            decoded = codec.decode(request.body, target.schema, max_rows)
        record.rows_in = sum(t.n_rows for t in decoded.inputs)
        try:
            return self.runtime.call(target.digest, target.schema, decoded.inputs, decoded.parameters)
        except (RuntimeFailure, ArtifactError) as exc:
            if isinstance(exc, (CallTimedOut, WorkerCrashed, MemoryExceeded)):
                from . import metrics  # not at import: `scorepub serve` imports this module before
                #                        prometheus-client may be (PROMETHEUS_MULTIPROC_DIR)
                metrics.worker_restarted(target.service, str(target.version or "-"), type(exc).__name__)
            record.traceback = getattr(exc, "traceback", None) or None
            record.log = getattr(exc, "log", None) or None
            raise
