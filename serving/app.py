"""The Flask application factory."""
from __future__ import annotations

import atexit
import logging
import re
import time
import uuid

from flask import Flask, g, request

from publisher.settings import Settings

from . import errors, metrics
from .api_classic import bp as classic_bp
from .api_native import bp as native_bp
from .state import AppState

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__, template_folder="../templates")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    state = AppState.open(settings)
    app.extensions["scorepub"] = state
    atexit.register(state.close)

    @app.before_request
    def _request_id():
        g.started = time.perf_counter()
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex

    @app.after_request
    def _finish(response):
        response.headers["X-Request-Id"] = getattr(g, "request_id", "") or uuid.uuid4().hex
        labels = getattr(g, "metric_labels", None)
        if labels is not None:
            metrics.observe(*labels, response.status_code, time.perf_counter() - g.started,
                            getattr(g, "error_code", None), getattr(g, "rows_in", 0), getattr(g, "rows_out", 0))
        return response

    errors.register(app)
    app.register_blueprint(native_bp)
    app.register_blueprint(classic_bp)
    state.warm()
    logging.getLogger("scorepub").setLevel(logging.INFO)
    return app
