"""The one error envelope of the HTTP API (http-api.md, "Errors") and the mapping to it."""
from __future__ import annotations

import logging

import orjson
from flask import Flask, Response, g, render_template, request
from werkzeug.exceptions import HTTPException

from publisher.coercion import InputError
from publisher.errors import ArtifactError

from .runtime.errors import (CallTimedOut, EnvironmentBuilding, EnvironmentUnavailable, MemoryExceeded,
                             NoWorkerAvailable, OutputTooLarge, RuntimeUnavailable, ScriptFailed, WorkerCrashed)

log = logging.getLogger("scorepub.http")

ERROR_0085 = ("Error 0085: The following error occurred during script evaluation, please view the output log "
              "for more information:\n---------- Start of error message from Python interpreter ----------\n"
              "{traceback}---------- End of error message from Python interpreter ----------")


# Every error has a details item with the classic detail code (classic clients read
# error.details[0]); these are the codes of errors raised without details of their own.
DEFAULT_DETAIL = {"Unauthorized": "ScoreRequestUnauthorized", "NotFound": "NotFound", "Gone": "VersionRetired",
                  "RequestTooLarge": "RequestBodyTooLarge", "MemoryQuotaViolation": "OutOfMemoryLimit",
                  "UnsupportedMediaType": "UnsupportedContentType", "InternalError": "InternalError",
                  "MethodNotAllowed": "MethodNotAllowed", "RequestThrottled": "RequestThrottled",
                  "BadArgument": "RequestBodyInvalid", "ServiceUnavailable": "ServiceUnavailable"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or [detail(DEFAULT_DETAIL.get(code, code), message)]

    def response(self) -> Response:
        body = {"error": {"code": self.code, "message": self.message}}
        if self.details:
            body["error"]["details"] = self.details
        return Response(orjson.dumps(body), status=self.status, mimetype="application/json")


def detail(code: str, message: str, target: str | None = None) -> dict:
    out = {"code": code, "message": message}
    if target is not None:
        out["target"] = target
    return out


def bad_argument(code: str, message: str, target: str | None = None) -> ApiError:
    return ApiError(400, "BadArgument", message, [detail(code, message, target)])


# a cell or column that does not match the schema is the caller's data (BadUserArgument);
# anything else about the request's shape is BadArgument, as in the classic service
USER_ARGUMENT_CODES = frozenset({"InputParseError", "InputMismatchError", "MissingColumn", "UnexpectedColumn",
                                 "NullValue"})


def from_input_error(exc: InputError) -> ApiError:
    code = "BadUserArgument" if exc.code in USER_ARGUMENT_CODES else "BadArgument"
    return ApiError(400, code, exc.message, [detail(exc.code, exc.message, exc.target)])


def module_error(traceback: str, message: str) -> ApiError:
    text = traceback if traceback.endswith("\n") or not traceback else traceback + "\n"
    return ApiError(400, "ModuleExecutionError", "Module execution encountered an error.",
                    [detail("Error0085", ERROR_0085.format(traceback=text or message + "\n"), "azureml_main")])


def from_runtime(exc: Exception, request_id: str = "-") -> ApiError:
    """Map a runtime failure to its status and code (the README's error table)."""
    if isinstance(exc, ScriptFailed):
        return module_error(exc.traceback, str(exc))
    if isinstance(exc, OutputTooLarge):
        return ApiError(400, "ModuleExecutionError", str(exc), [detail("OutputTooLarge", str(exc))])
    if isinstance(exc, CallTimedOut):
        return ApiError(504, "GatewayTimeout", str(exc), [detail("BackendScoreTimeout", str(exc))])
    if isinstance(exc, MemoryExceeded):
        return ApiError(413, "MemoryQuotaViolation", str(exc), [detail("OutOfMemoryLimit", str(exc))])
    if isinstance(exc, RuntimeUnavailable):
        return ApiError(503, "ServiceUnavailable", str(exc), [detail("RuntimeUnavailable", str(exc))])
    for kind in (EnvironmentBuilding, EnvironmentUnavailable):
        if isinstance(exc, kind):
            return ApiError(503, "ServiceUnavailable", str(exc), [detail(kind.__name__, str(exc))])
    if isinstance(exc, NoWorkerAvailable):
        return ApiError(503, "ServiceUnavailable", str(exc), [detail("WorkersBusy", str(exc))])
    if isinstance(exc, WorkerCrashed):
        return internal(str(exc), request_id, "WorkerCrashed")
    if isinstance(exc, ArtifactError):
        log.error("artifact problem: %s", exc)
        return internal("the service's artifact could not be loaded", request_id)
    raise exc


def internal(what: str, request_id: str, reason: str = "InternalError") -> ApiError:
    message = f"{what} (request id {request_id})"
    return ApiError(500, "InternalError", message, [detail(reason, message)])


_HTTP_CODES = {400: "BadArgument", 401: "Unauthorized", 404: "NotFound", 405: "MethodNotAllowed",
               413: "RequestTooLarge", 415: "UnsupportedMediaType", 429: "RequestThrottled"}


def register(app: Flask) -> None:
    """Every error, whatever raised it, leaves as the JSON envelope: never an HTML page."""

    @app.errorhandler(ApiError)
    def _api(exc: ApiError):
        g.error_code = exc.details[0]["code"] if exc.details else exc.code
        g.error_message = exc.details[0]["message"] if exc.details else exc.message
        return exc.response()

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if request.path.startswith("/admin"):  # people, not programs: an HTML page
            return render_template("error.html", status=exc.code, title=exc.name,
                                   message=_admin_message(exc)), exc.code or 500
        code = _HTTP_CODES.get(exc.code, "InternalError" if (exc.code or 500) >= 500 else "BadArgument")
        message = exc.description or exc.name
        if exc.code == 413:
            message = f"The request body is larger than the limit of {app.config['MAX_CONTENT_LENGTH']} bytes."
        return ApiError(exc.code or 500, code, message).response()

    @app.errorhandler(Exception)
    def _any(exc: Exception):
        log.exception("unhandled error")
        if request.path.startswith("/admin"):
            return render_template("error.html", status=500, title="Internal error",
                                   message=f"Something went wrong (request id {g.get('request_id', '-')})."), 500
        return internal("an internal error occurred", g.get("request_id", "-")).response()


def _admin_message(exc: HTTPException) -> str:
    if exc.code == 400 and "CSRF" in (exc.description or ""):
        return ("This form was not sent from this site's page, or it expired (CSRF check failed). "
                "Go back, reload the page and try again.")
    return exc.description or exc.name
