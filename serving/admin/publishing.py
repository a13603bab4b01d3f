"""Publishing from the admin page: one job, answered as a page or streamed as it goes.

The publish page's form posts here either way. Without JavaScript the view runs the job in the
request and answers the result page (or the form with its errors). With JavaScript the page asks
for ``application/x-ndjson``: the job runs in a thread of the same request while the answer
streams one JSON object a line, a ``progress`` line per step (the CLI's environment stages, with
the checks before and the smoke call after) and a last line with the outcome. Nothing is shared
between web processes: the job lives exactly as long as its request.

Lines (each an object with ``event``)::

    {"event": "progress", "stage": "install", "detail": "installing 57 packages into 4d6495d7cb92",
     "step": 3, "steps": 7, "elapsed": 1.42}
    {"event": "heartbeat", "elapsed": 11.0}              # every HEARTBEAT_S without news
    {"event": "published", "service": ..., "version": 2, "created": true, "live": false,
     "environment": {...}, "seconds": 4.1, "url": "/admin/services/NAME", "html": "<!doctype html>..."}
    {"event": "invalid", "errors": {"requirements": "requirements.txt: cannot be resolved: ..."}}
    {"event": "error", "message": "Something went wrong (request id ...)."}

Exactly one of the last three ends every stream. ``html`` is the result page (the keys of a new
service are in it, shown once: the answer is ``Cache-Control: no-store``).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from typing import Callable, Iterator

import orjson
from flask import Response, stream_with_context

from publisher.environments import LOCK_SOURCES, STAGES
from publisher.errors import PublishError
from publisher.experiment import experiment_from_files
from publisher.publish import PublishOutcome, publish_experiment

log = logging.getLogger("scorepub.admin")

NDJSON = "application/x-ndjson"
# the form's file fields -> the experiment's file names (the lock's name is the upload's own)
UPLOADS = {"score_py": "score.py", "bundle": "bundle.zip", "schema": "schema.json", "sample": "sample.json",
           "requirements": "requirements.txt"}
LOCK_FIELD = "lock"
FORM_FIELD = {filename: field for field, filename in UPLOADS.items()}  # PublishError.field -> form field
# what a publish from the page goes through, in order; the CLI shows the middle four (STAGES)
PAGE_STAGES = ("validate", *STAGES, "smoke")
STEPS = len(PAGE_STAGES) + 1  # the last line is the last step
HEARTBEAT_S = 10.0  # a line at least this often, so no proxy takes a long install for a dead peer


def lock_name(filename: str) -> str:
    """The experiment file name of an uploaded lock: requirements.lock, pylock.toml or uv.lock
    (``pylock.<name>.toml`` is a pylock.toml too, as PEP 751 names them)."""
    base = os.path.basename(filename.replace("\\", "/"))
    if base in LOCK_SOURCES:
        return base
    if base.startswith("pylock.") and base.endswith(".toml"):
        return "pylock.toml"
    raise PublishError(f"{base}: a lock file is named {', '.join(LOCK_SOURCES[:-1])} or {LOCK_SOURCES[-1]}",
                       field=LOCK_FIELD)


def field_of(exc: PublishError, files: dict) -> str:
    """Which form field an error belongs next to: the file it names, else the service name. With
    a lock given, the environment is built from it: its errors go next to the lock field."""
    if exc.field == LOCK_FIELD:
        return LOCK_FIELD
    if exc.field == "requirements.txt" and any(name in files for name in LOCK_SOURCES):
        return LOCK_FIELD
    return FORM_FIELD.get(exc.field, "name")


@dataclasses.dataclass
class PublishJob:
    """One publish from the form: the files as uploaded, and what it needs of the app (taken in
    the request, so the job can run in another thread)."""

    files: dict
    name: str
    message: str
    promote: bool
    user: str
    settings: object
    registry: object
    store: object
    smoke: Callable | None
    log: list = dataclasses.field(default_factory=list)  # the progress lines, for the result page
    seconds: float = 0.0

    def run(self, report: Callable[[dict], None] | None = None) -> PublishOutcome:
        """Validate, build the environment, smoke-call, register; every step is reported (and
        kept in ``log``). Raises PublishError when the experiment is refused."""
        started = time.monotonic()

        def progress(stage: str, detail: str) -> None:
            step = PAGE_STAGES.index(stage) + 1 if stage in PAGE_STAGES else 1
            entry = {"stage": stage, "detail": detail, "step": step, "steps": STEPS,
                     "elapsed": round(time.monotonic() - started, 2)}
            self.log.append(entry)
            if report is not None:
                report(entry)

        smoke = self.smoke
        if smoke is not None:
            inner = smoke

            def smoke(art) -> None:
                progress("smoke", "calling score.py with sample.json")
                inner(art)

        try:
            progress("validate", "checking " + ", ".join(sorted(self.files)))
            experiment = experiment_from_files(self.files, self.settings)
            return publish_experiment(experiment, self.name, settings=self.settings, registry=self.registry,
                                      store=self.store, message=self.message, promote=self.promote,
                                      published_by=self.user, smoke=smoke, progress=progress)
        finally:
            self.seconds = round(time.monotonic() - started, 2)


def line(document: dict) -> bytes:
    return orjson.dumps(document) + b"\n"


def stream(job: PublishJob, *, published: Callable[[PublishOutcome], dict], invalid: Callable[[PublishError], dict],
           crashed: Callable[[], dict]) -> Response:
    """Run ``job`` in a thread and answer its progress as it comes, then the line that
    ``published``/``invalid``/``crashed`` makes (they run in the request's context)."""
    events: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            events.put(("published", job.run(lambda entry: events.put(("progress", entry)))))
        except PublishError as exc:
            events.put(("invalid", exc))
        except BaseException as exc:  # noqa: BLE001 - whatever it is, the stream ends with a line
            log.error("publish of %s from the admin page failed", job.name, exc_info=exc)
            events.put(("crashed", exc))

    started = time.monotonic()
    # a client that goes away does not stop the publish: it finishes, and the service page has it
    threading.Thread(target=work, name=f"admin-publish-{job.name}", daemon=True).start()

    def lines() -> Iterator[bytes]:
        try:
            while True:
                try:
                    kind, value = events.get(timeout=HEARTBEAT_S)
                except queue.Empty:
                    yield line({"event": "heartbeat", "elapsed": round(time.monotonic() - started, 2)})
                    continue
                if kind == "progress":
                    yield line({"event": "progress", **value})
                    continue
                if kind == "published":
                    yield line(published(value))
                elif kind == "invalid":
                    yield line(invalid(value))
                else:
                    yield line(crashed())
                return
        except Exception:  # noqa: BLE001 - e.g. the result page failed to render: still a last line
            log.exception("the admin page's publish stream failed")
            yield line(crashed())

    return Response(stream_with_context(lines()), mimetype=NDJSON, headers=STREAM_HEADERS)


STREAM_HEADERS = {
    "Cache-Control": "no-store",  # the last line may hold a new service's keys
    "X-Accel-Buffering": "no",  # nginx: pass each line on as it comes
    "X-Content-Type-Options": "nosniff",
    "Vary": "Accept",
}


def single(document: dict, status: int) -> Response:
    """A stream of one line: what is refused before anything runs (no name, no score.py)."""
    return Response(line(document), status=status, mimetype=NDJSON, headers=STREAM_HEADERS)
