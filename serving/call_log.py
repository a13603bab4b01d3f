"""The call log: one row per scoring call, written in batches off the request path.

A request only puts a dict on a queue; a background thread writes what has gathered in one
transaction every half second, and the registry keeps the newest ``keep`` calls per service.
Request payloads are stored only for services that opted in.
"""
from __future__ import annotations

import logging
import queue
import threading

import orjson

log = logging.getLogger("scorepub.call_log")
MAX_TEXT = 64 * 1024
MAX_PLOT_BYTES = 2 * 1024 * 1024


def clip(text: str | None, limit: int = MAX_TEXT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"\n[cut: {len(text)} characters in all]"


def plots_json(plots_base64: list[dict]) -> str | None:
    kept, total = [], 0
    for plot in plots_base64:
        total += len(plot["data"])
        if total > MAX_PLOT_BYTES:
            break
        kept.append(plot)
    return orjson.dumps(kept).decode() if kept else None


class CallLog:
    def __init__(self, registry, keep: int, interval_s: float = 0.5):
        self.registry = registry
        self.keep = keep
        self.interval_s = interval_s
        self.queue: queue.Queue[dict] = queue.Queue(maxsize=10_000)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="call-log")
        self.thread.start()

    def record(self, row: dict) -> None:
        try:
            self.queue.put_nowait(row)
        except queue.Full:  # the database is far behind: drop rather than slow every call down
            log.warning("call log queue full; a call was not logged")

    def _drain(self) -> list[dict]:
        rows = []
        while len(rows) < 500:
            try:
                rows.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return rows

    def flush(self) -> None:
        while rows := self._drain():
            try:
                self.registry.record_calls(rows, self.keep)
            except Exception:  # noqa: BLE001 - logging calls must never take scoring down
                log.exception("writing %d calls to the call log failed", len(rows))

    def _run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            self.flush()
        self.flush()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
