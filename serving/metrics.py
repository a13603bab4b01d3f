"""Prometheus metrics, per service and version.

Under ``scorepub serve`` the gunicorn master points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
folder before forking, so every web process writes its samples there and ``/metrics`` (answered
by any one process) adds them all up: prometheus-client's multiprocess mode.
"""
from __future__ import annotations

import os

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram,
                               generate_latest, multiprocess)

LABELS = ("service", "version")

REQUESTS = Counter("scorepub_requests_total", "Scoring requests answered", LABELS + ("code",))
ERRORS = Counter("scorepub_errors_total", "Scoring requests that failed, by error code",
                 LABELS + ("status", "error"))
LATENCY = Histogram("scorepub_request_duration_seconds", "Time to answer a scoring request", LABELS,
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
ROWS = Counter("scorepub_rows_total", "Rows scored", LABELS + ("direction",))
WORKER_RESTARTS = Counter("scorepub_worker_restarts_total", "Workers killed and replaced", LABELS + ("reason",))


def observe(service: str, version: str, status: int, seconds: float, error: str | None,
            rows_in: int, rows_out: int) -> None:
    REQUESTS.labels(service, version, str(status)).inc()
    LATENCY.labels(service, version).observe(seconds)
    if error:
        ERRORS.labels(service, version, str(status), error).inc()
    if rows_in:
        ROWS.labels(service, version, "in").inc(rows_in)
    if rows_out:
        ROWS.labels(service, version, "out").inc(rows_out)


def worker_restarted(service: str, version: str, reason: str) -> None:
    WORKER_RESTARTS.labels(service, version, reason).inc()


def exposition() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
