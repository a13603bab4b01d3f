"""The Flask application factory."""
from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import re
import secrets
import sys
import time
import uuid
from pathlib import Path

from flask import Flask, g, request
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from publisher.registry import now
from publisher.settings import Settings

from . import errors, metrics
from .admin import bp as admin_bp
from .api_classic import bp as classic_bp
from .api_native import bp as native_bp
from .call_log import clip, plots_json
from .calls import Record
from .state import AppState

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
ROOT = Path(__file__).resolve().parent.parent


def template_folder() -> Path:
    """templates/ beside the sources (a checkout), or where ``pip install`` put it."""
    for folder in (ROOT / "templates", Path(sys.prefix) / "share" / "scorepub" / "templates"):
        if (folder / "base.html").is_file():
            return folder
    raise RuntimeError("the admin page's templates are missing: reinstall scorepub")


def secret_key(settings: Settings) -> str:
    """SCOREPUB_SECRET_KEY, or a key made once under SCOREPUB_HOME and shared by every process."""
    if settings.secret_key:
        return settings.secret_key
    path = settings.home / "secret_key"
    settings.home.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    except FileExistsError:
        pass
    for _ in range(50):  # another process may be writing it right now
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.02)
    raise RuntimeError(f"{path} is empty")


class _BoundedInput:
    """A body without Content-Length (``Transfer-Encoding: chunked``) counted against the limit.

    Werkzeug stops reading such a body at MAX_CONTENT_LENGTH without telling the body was longer
    (a silently cut request); this stream reads one byte past the limit and answers 413 when
    there is one."""

    def __init__(self, stream, limit: int):
        self.stream, self.limit, self.seen = stream, limit, 0

    def read(self, size: int = -1) -> bytes:
        left = self.limit - self.seen
        if size is None or size < 0 or size > left:
            size = left
        data = self.stream.read(size) if size > 0 else b""
        self.seen += len(data)
        if self.seen >= self.limit and self.stream.read(1):
            raise RequestEntityTooLarge()
        return data

    def readline(self, size: int = -1) -> bytes:
        left = self.limit - self.seen
        data = self.stream.readline(left if size is None or size < 0 else min(size, left)) if left > 0 else b""
        self.seen += len(data)
        if self.seen >= self.limit and self.stream.read(1):
            raise RequestEntityTooLarge()
        return data

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line


def _bound_chunked(wsgi_app, limit: int):
    def bounded(environ, start_response):
        if not environ.get("CONTENT_LENGTH") and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            environ["wsgi.input"] = _BoundedInput(environ["wsgi.input"], limit)
        return wsgi_app(environ, start_response)

    return bounded


def _csp_nonce() -> str:
    """This response's nonce: the only inline scripts the admin page's CSP lets run carry it."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def _admin_headers(response):
    """The admin pages: no framing (clickjacking), scripts only from this site or with this
    response's nonce, nothing loaded from elsewhere."""
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'self' 'nonce-{_csp_nonce()}'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__, template_folder=str(template_folder()))
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SECRET_KEY=secret_key(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(settings.cookie_secure),
        SESSION_COOKIE_NAME="scorepub_session",
        WTF_CSRF_TIME_LIMIT=None,  # tied to the session instead
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=12),
    )
    app.json.sort_keys = False
    app.jinja_env.globals["csp_nonce"] = _csp_nonce
    if settings.proxy_hops:  # behind nginx/ingress: scheme and host as the client saw them
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops,
                                x_host=settings.proxy_hops)
    app.wsgi_app = _bound_chunked(app.wsgi_app, settings.max_body_bytes)
    state = AppState.open(settings)
    app.extensions["scorepub"] = state
    atexit.register(state.close)

    csrf = CSRFProtect(app)
    csrf.exempt(native_bp)  # the scoring APIs authenticate with keys, not cookies
    csrf.exempt(classic_bp)

    @app.before_request
    def _begin():
        g.started = time.perf_counter()
        g.record = None  # the call core's Record, once a call ran
        g.face = "native"
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex

    @app.after_request
    def _finish(response):
        response.headers["X-Request-Id"] = getattr(g, "request_id", "") or uuid.uuid4().hex
        if request.path.startswith("/admin"):
            _admin_headers(response)
        labels = getattr(g, "metric_labels", None)
        if labels is not None:
            seconds = time.perf_counter() - g.started
            status = getattr(g, "call_status", response.status_code)  # the console's call, not its page
            record = g.record or Record()
            metrics.observe(*labels, status, seconds, getattr(g, "error_code", None), record.rows_in, record.rows_out)
            _log_call(state, status, seconds)
        return response

    errors.register(app)
    app.register_blueprint(native_bp)
    app.register_blueprint(classic_bp)
    app.register_blueprint(admin_bp)
    state.warm()
    logging.getLogger("scorepub").setLevel(logging.INFO)
    return app


def _log_call(state: AppState, status: int, seconds: float) -> None:
    record = g.record or Record()
    state.call_log.record({
        "service_id": g.service.id, "version": getattr(g, "version_number", None), "request_id": g.request_id,
        "at": now(), "face": g.face, "status": status, "duration_ms": round(seconds * 1000, 3),
        "rows_in": record.rows_in, "rows_out": record.rows_out,
        "error_code": getattr(g, "error_code", None), "error_message": clip(getattr(g, "error_message", None), 4000),
        "traceback": clip(record.traceback), "log": clip(record.log), "plots": plots_json(record.plots),
        "notes": "\n".join(record.notes) or None, "payload": record.payload,
    })
