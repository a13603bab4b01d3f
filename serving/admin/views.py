"""The admin pages. Each handler reads the registry or acts through it, then renders a template."""
from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import pprint
import textwrap

import orjson
from flask import Response, abort, flash, g, make_response, redirect, render_template, request, url_for

from publisher.diff import diff_versions
from publisher.environments import version_environment
from publisher.errors import Conflict, NotFound, PublishError
from publisher.packages import installed_versions
from publisher.registry import now

from .. import codecs
from ..errors import ApiError
from ..runtime.errors import RuntimeFailure
from ..calls import CallRequest
from ..scoring import call as score_call, state
from ..smoke import smoke_call
from . import bp, publishing
from .auth import login_required

log = logging.getLogger("scorepub.admin")


def _service(name: str):
    try:
        return state().registry.service(name)
    except NotFound:
        abort(404, f"There is no service named '{name}'.")


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _live_states(st, services) -> dict:
    """Per service name, what its live version's pool says: ``ok`` (loaded, or stopped for being
    idle), ``error`` (the script or its environment fails to load), ``starting`` or ``unknown``.
    Only the pool's state is read: nothing is started."""
    digests = {}
    for svc in services:
        if svc.live_version is not None:
            try:
                digests[svc.name] = st.registry.version(svc.name, svc.live_version).digest
            except NotFound:
                pass
    try:
        pools = st.runtime.status(sorted(set(digests.values()))) if digests else {}
    except RuntimeFailure as exc:
        return {name: {"state": "unknown", "detail": f"The runtime does not answer: {exc}"} for name in digests}
    states = {}
    for name, digest in digests.items():
        status, env = pools.get(digest) or {}, (pools.get(digest) or {}).get("environment") or {}
        if status.get("load_error"):
            found = {"state": "error", "detail": "The live version's script fails to load: every call answers an "
                                                 "error (the console shows the traceback)."}
        elif env.get("state") == "failed":
            found = {"state": "error", "detail": f"The live version's environment failed to build: {env.get('error')}"}
        elif status.get("ready") or status.get("stopped_idle"):
            found = {"state": "ok", "detail": "Loaded and serving." if status.get("ready") else
                     "Stopped for being unused: it starts on the next call."}
        elif env.get("state") == "building":
            found = {"state": "starting", "detail": "Its environment is being built."}
        elif status.get("running"):
            found = {"state": "starting", "detail": "Its workers are starting."}
        else:
            found = {"state": "starting", "detail": "Not started yet in this process: it starts on the first call."}
        states[name] = found
    return states


@bp.get("/")
@login_required
def services():
    st = state()
    stats = st.registry.call_stats(now() - dt.timedelta(hours=1))
    rows = []
    all_services = st.registry.services()
    live_states = _live_states(st, all_services)
    for svc in all_services:
        s = stats.get(svc.id, {"calls": 0, "errors": 0, "durations": []})
        rows.append({"service": svc, "calls": s["calls"], "errors": s["errors"],
                     "p50": _percentile(s["durations"], 0.5), "p99": _percentile(s["durations"], 0.99),
                     "versions": len(st.registry.versions(svc.name)), "live_state": live_states.get(svc.name)})
    return render_template("services.html", rows=rows, packages=installed_versions())


@bp.get("/services/<name>")
@login_required
def service(name: str):
    st = state()
    svc = _service(name)
    versions = list(reversed(st.registry.versions(svc.name)))
    audit = list(reversed(st.registry.audit(svc.name)))[:50]
    environments: dict = {}  # per digest: a version published twice is read once
    for v in versions:
        if v.digest not in environments:
            environments[v.digest] = _environment(st.store, v.digest)
    return render_template("service.html", svc=svc, versions=versions, audit=audit, environments=environments,
                           live_state=_live_states(st, [svc]).get(svc.name))


SHOWN_PACKAGES = ("pandas", "numpy", "scikit-learn")  # the compact line; the rest under <details>


def _environment(store, digest: str) -> dict | None:
    """What a version runs on, for the versions table (None: its artifact cannot be read)."""
    try:
        env = version_environment(store, digest)
    except Exception:  # noqa: BLE001 - one unreadable artifact must not take the page down
        log.exception("the environment of %s could not be read", digest)
        return None
    packages = sorted(env["packages"].items())
    return {"id": env["id"], "short": "default" if env["id"] == "default" else env["id"][:12],
            "python": env["python"], "packages": packages,
            "shown": [(n, env["packages"][n]) for n in SHOWN_PACKAGES if n in env["packages"]]}


ACTIONS = {"promote": "make version {v} live", "retire": "retire version {v} for good (it will answer 410)",
           "rollback": "roll back to the previously live version", "key-primary": "replace the primary key",
           "key-secondary": "replace the secondary key", "payloads-on": "store request payloads in the call log",
           "payloads-off": "stop storing request payloads"}


@bp.post("/services/<name>/action")
@login_required
def action(name: str):
    """Every change asks for confirmation first (a second form, so it works without JavaScript)."""
    st = state()
    svc = _service(name)
    what = request.form.get("action", "")
    version = request.form.get("version", type=int)
    if what not in ACTIONS:
        abort(400, f"Unknown action {what!r}.")
    if request.form.get("confirmed") != "yes":
        return render_template("confirm.html", svc=svc, action=what, version=version,
                               question=ACTIONS[what].format(v=version))
    actor = g.user
    try:
        if what == "promote":
            st.registry.promote(svc.name, version, actor)
            flash(f"Version {version} is live.", "ok")
        elif what == "retire":
            st.registry.retire(svc.name, version, actor)
            flash(f"Version {version} is retired.", "ok")
        elif what == "rollback":
            v = st.registry.rollback(svc.name, actor)
            flash(f"Rolled back to version {v.version}.", "ok")
        elif what.startswith("key-"):
            slot = what.split("-", 1)[1]
            key = st.registry.regenerate_key(svc.name, slot, actor)
            return _no_store(render_template("new_key.html", svc=svc, slot=slot, key=key))
        else:
            st.registry.set_store_payloads(svc.name, what == "payloads-on", actor)
            flash("Request payloads are " + ("now stored." if what == "payloads-on" else "no longer stored."), "ok")
    except (Conflict, NotFound, PublishError) as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.service", name=svc.name))


@bp.get("/services/<name>/diff")
@login_required
def diff(name: str):
    st = state()
    svc = _service(name)
    numbers = [v.version for v in st.registry.versions(svc.name)]
    a = request.args.get("a", type=int) or (numbers[-2] if len(numbers) > 1 else numbers[0])
    b = request.args.get("b", type=int) or numbers[-1]
    try:
        result = diff_versions(st.registry, st.store, svc.name, a, b)
    except NotFound as exc:
        abort(404, str(exc))
    return render_template("diff.html", svc=svc, numbers=numbers, a=a, b=b, diff=result)


@bp.route("/publish", methods=["GET", "POST"])
@login_required
def publish():
    """The upload form. Posted plainly, it answers the result page; asked for
    ``application/x-ndjson`` (the page's script), it streams the progress (publishing.py)."""
    st = state()
    names = [s.name for s in st.registry.services()]
    form = {"name": request.values.get("name", ""), "message": request.form.get("message", ""),
            "promote": bool(request.form.get("promote"))}
    if request.method == "GET":
        return render_template("publish.html", names=names, form=form, errors={})
    streamed = request.accept_mimetypes.best_match(["text/html", publishing.NDJSON]) == publishing.NDJSON
    files, errors = _uploaded_files()
    if not form["name"]:
        errors["name"] = "A service name is required."
    if "score.py" not in files:
        errors["score_py"] = "score.py is required."
    if errors:
        if streamed:
            return publishing.single({"event": "invalid", "errors": errors}, 400)
        return render_template("publish.html", names=names, form=form, errors=errors), 400
    job = publishing.PublishJob(files, form["name"], form["message"], form["promote"], g.user, st.settings,
                                st.registry, st.store, smoke_call(st.settings))
    if streamed:
        request_id = g.request_id

        def published(outcome) -> dict:
            data = outcome.as_dict()
            return {"event": "published", "service": data["service"], "version": data["version"],
                    "digest": data["digest"], "created": data["created"], "live": data["live"],
                    "environment": data["environment"], "seconds": job.seconds,
                    "url": url_for("admin.service", name=data["service"]), "html": _published_page(job, data)}

        def invalid(exc) -> dict:
            return {"event": "invalid", "errors": {_field_of(exc, files): str(exc)}}

        def crashed() -> dict:
            return {"event": "error", "message": f"Something went wrong (request id {request_id})."}

        return publishing.stream(job, published=published, invalid=invalid, crashed=crashed)
    try:
        outcome = job.run()
    except PublishError as exc:
        errors[_field_of(exc, files)] = str(exc)
        return render_template("publish.html", names=names, form=form, errors=errors), 400
    return _no_store(_published_page(job, outcome.as_dict()))


def _uploaded_files() -> tuple[dict, dict]:
    """The form's files as the experiment's file names, and the errors of a misnamed lock."""
    files, errors = {}, {}
    for field, filename in publishing.UPLOADS.items():
        upload = request.files.get(field)
        if upload and upload.filename:
            files[filename] = upload.read()
    upload = request.files.get(publishing.LOCK_FIELD)
    if upload and upload.filename:
        try:
            files[publishing.lock_name(upload.filename)] = upload.read()
        except PublishError as exc:
            errors[publishing.LOCK_FIELD] = str(exc)
    return files, errors


def _published_page(job, outcome: dict) -> str:
    return render_template("published.html", outcome=outcome, seconds=job.seconds, log=job.log)


def _no_store(html: str) -> Response:
    """Pages that show a key once must not be kept by the browser or a proxy."""
    response = make_response(html)
    response.headers["Cache-Control"] = "no-store"
    return response


def _field_of(exc: PublishError, files=()) -> str:
    """Which form field an error belongs next to (publishing.field_of)."""
    return publishing.field_of(exc, files)


def _version_or_live(svc, number: int | None):
    st = state()
    versions = st.registry.versions(svc.name)
    if not versions:
        abort(404, f"Service '{svc.name}' has no versions.")
    if number is None:
        number = svc.live_version or versions[-1].version
    try:
        return versions, st.registry.version(svc.name, number)
    except NotFound:
        abort(404, f"Service '{svc.name}' has no version {number}.")


@bp.route("/services/<name>/console", methods=["GET", "POST"])
@login_required
def console(name: str):
    """Run a request against any version; shows the table, the log, the plots and the timing."""
    st = state()
    svc = _service(name)
    versions, version = _version_or_live(svc, request.values.get("version", type=int))
    sample = st.sample(version.digest)
    body = request.form.get("body") or (json.dumps(sample, indent=2) if sample else "[]")
    result = error = None
    if request.method == "POST":
        g.service, g.face, g.version_number = svc, "console", version.version
        g.metric_labels = (svc.name, str(version.version))
        try:
            raw = body.encode()
            codec, document = codecs.native_request("application/json", raw)
            result = score_call(svc, version, CallRequest(raw, codec.name, document=document)).result
            g.call_status = 200
        except ApiError as exc:
            g.call_status = exc.status
            g.error_code = exc.details[0]["code"] if exc.details else exc.code
            g.error_message = exc.message
            error = {"status": exc.status, "code": exc.code, "message": exc.message, "details": exc.details}
    table = None
    if result is not None:
        out = result.output
        columns = [c.to_pylist() for c in out.columns]
        table = {"names": out.names, "types": [c.classic_label for c in out.columns],
                 "rows": [list(r) for r in zip(*columns)][:500], "n_rows": out.n_rows}
    return render_template("console.html", svc=svc, versions=versions, version=version, body=body, result=result,
                           table=table, error=error)


@bp.get("/services/<name>/help")
@login_required
def api_help(name: str):
    """The classic "API help page", generated from the version's schema and sample.json."""
    st = state()
    svc = _service(name)
    versions, version = _version_or_live(svc, request.args.get("version", type=int))
    schema = st.schema(version.digest, version.schema_json)
    sample = st.sample(version.digest) or {"input1": []}
    doc = orjson.loads(st.versions.openapi(svc.name, version.version, version.digest, version.schema_json))
    base = request.host_url.rstrip("/")
    native_url = f"{base}/services/{svc.name}/score"
    classic_url = f"{base}/workspaces/my-workspace/services/{svc.name}/execute?api-version=2.0&details=true"
    classic_body = doc["paths"][f"/workspaces/{{workspace}}/services/{svc.name}/execute"]["post"][
        "requestBody"]["content"]["application/json"].get("example") or {"Inputs": {}, "GlobalParameters": {}}
    response_example, example_error = st.versions.example(svc.name, version.digest, version.schema_json)
    return render_template(
        "help.html", svc=svc, version=version, versions=versions, schema=schema, native_url=native_url,
        classic_url=classic_url, swagger_url=f"{base}/services/{svc.name}/swagger.json",
        native_body=json.dumps(sample, indent=2), classic_body=json.dumps(classic_body, indent=2),
        python_body=textwrap.indent(pprint.pformat(sample, sort_dicts=False, width=80), "    ").lstrip(),
        native_compact=json.dumps(sample), classic_compact=json.dumps(classic_body),
        response_example=json.dumps(response_example, indent=2) if response_example else None,
        example_error=example_error)


@bp.get("/services/<name>/calls")
@login_required
def calls(name: str):
    svc = _service(name)
    return render_template("calls.html", svc=svc, calls=state().registry.recent_calls(svc.id, 200))


@bp.get("/services/<name>/calls/<int:call_id>")
@login_required
def call(name: str, call_id: int):
    svc = _service(name)
    try:
        record = state().registry.call(svc.id, call_id)
    except NotFound as exc:
        abort(404, str(exc))
    plots = orjson.loads(record["plots"]) if record.get("plots") else []
    for plot in plots:
        base64.b64decode(plot["data"], validate=True)  # only ever rendered as a data: URL of a PNG
    return render_template("call.html", svc=svc, call=record, plots=plots)
