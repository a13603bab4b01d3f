"""Worker processes for one artifact: start, hand out, replace, stop.

``warm`` pools reuse a worker for many calls; ``per-call`` pools keep spare workers ready and
discard each after one call. A worker that dies, times out or breaks the protocol is killed
and replaced in the background, so the pool returns to size and the service keeps serving.
"""
from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from . import messages
from .errors import CallTimedOut, NoWorkerAvailable, OutputTooLarge, ScriptFailed, WorkerCrashed

log = logging.getLogger("scorepub.runtime")

_PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def worker_env(workdir: Path) -> dict:
    """A small, clean environment: no SCOREPUB_* settings (database URLs) reach a script."""
    env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
    env.setdefault("LANG", "C.UTF-8")
    env.update({
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(workdir / ".matplotlib"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


class WorkerProcess:
    """One worker: a process and the parent's end of its socketpair."""

    def __init__(self, digest: str, artifact_bytes: bytes, n_ports: int, settings):
        self.settings = settings
        self.workdir = Path(settings.run_dir) / f"w-{digest[:12]}-{uuid.uuid4().hex[:8]}"
        self.workdir.mkdir(parents=True, mode=0o700)
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        started = time.perf_counter()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "serving.runtime.worker", str(child.fileno())],
                pass_fds=(child.fileno(),), close_fds=True, start_new_session=True,
                stdin=subprocess.DEVNULL, env=worker_env(self.workdir), cwd=self.workdir)
        except BaseException:
            self.sock.close()
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        finally:
            child.close()
        self.pid = self.proc.pid
        try:
            messages.send(self.sock, {"op": "init", "digest": digest, "workdir": str(self.workdir),
                                      "log_cap": settings.log_cap_bytes, "n_ports": n_ports,
                                      "max_output_bytes": settings.max_output_bytes}, [artifact_bytes])
            self.sock.settimeout(settings.worker_start_timeout_s)
            header, _ = messages.recv(self.sock, max_bytes=0)
        except (OSError, messages.ProtocolError) as exc:
            reason = self._death_reason() if not isinstance(exc, socket.timeout) else "did not start in time"
            self.kill()
            raise WorkerCrashed(f"the worker failed to start: {reason}") from None
        if header.get("op") != "ready":
            self.kill()
            raise ScriptFailed(str(header.get("message", "the script failed to load")),
                               str(header.get("traceback", "")), str(header.get("log", "")), at_load=True)
        self.start_ms = (time.perf_counter() - started) * 1000
        self.load_log = header.get("log", "")

    def call(self, header: dict, blobs: list, timeout: float) -> tuple[dict, list]:
        try:
            self.sock.settimeout(timeout)
            messages.send(self.sock, header, blobs)
            return messages.recv(self.sock, max_bytes=self.settings.max_output_bytes + messages.MAX_HEADER)
        except socket.timeout:
            self.kill()
            raise CallTimedOut(f"the script ran past the service's time limit of {timeout:g} s") from None
        except messages.FrameTooLarge as exc:
            self.kill()
            raise OutputTooLarge(f"the worker's answer is over the limit ({exc})") from None
        except (OSError, messages.ProtocolError):
            reason = self._death_reason()
            self.kill()
            raise WorkerCrashed(f"the worker {reason}") from None

    def _death_reason(self) -> str:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "broke the wire protocol"
        if code < 0:
            try:
                return f"was killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with status {code}"

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.error("worker %s did not die after SIGKILL", self.pid)
        self.sock.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


class Pool:
    """Workers of one artifact (service version)."""

    RETRY_LOAD_AFTER_S = 10.0

    def __init__(self, digest: str, artifact_bytes: bytes, n_ports: int, isolation: str, size: int, settings):
        self.digest = digest
        self.artifact_bytes = artifact_bytes
        self.n_ports = n_ports
        self.per_call = isolation == "per-call"
        self.size = max(1, size)
        self.settings = settings
        self.idle: queue.Queue[WorkerProcess] = queue.Queue()
        self.lock = threading.Lock()
        self.starting = 0
        self.live = 0
        self.load_error: tuple[float, ScriptFailed] | None = None
        self.closed = False
        self.restarts = 0
        self.ever_ready = False  # a worker has loaded the script here at least once

    def warm(self) -> None:
        """Start workers up to the pool's size (in the background)."""
        with self.lock:
            missing = self.size - self.live - self.starting
            self.starting += max(0, missing)
        for _ in range(max(0, missing)):
            threading.Thread(target=self._start_one, daemon=True, name=f"start-{self.digest[:8]}").start()

    def _start_one(self) -> None:
        try:
            worker = WorkerProcess(self.digest, self.artifact_bytes, self.n_ports, self.settings)
        except ScriptFailed as exc:
            with self.lock:
                self.starting -= 1
                self.load_error = (time.monotonic(), exc)
            return
        except Exception as exc:  # noqa: BLE001 - a failed start is logged; callers see NoWorkerAvailable
            log.error("worker for %s failed to start: %s", self.digest[:12], exc)
            with self.lock:
                self.starting -= 1
            return
        with self.lock:
            self.starting -= 1
            if self.closed:
                worker.kill()
                return
            self.live += 1
            self.load_error = None
            self.ever_ready = True
        self.idle.put(worker)

    def _acquire(self, wait_s: float) -> WorkerProcess:
        deadline = time.monotonic() + wait_s
        while True:
            if self.load_error is not None:
                at, err = self.load_error
                if time.monotonic() - at < self.RETRY_LOAD_AFTER_S:
                    raise err
                self.load_error = None
            self.warm()
            try:
                return self.idle.get(timeout=min(0.25, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    raise NoWorkerAvailable("no worker became free in time; try again") from None

    def call(self, header: dict, blobs: list, timeout: float, wait_s: float) -> tuple[dict, list, dict]:
        t0 = time.perf_counter()
        worker = self._acquire(wait_s)
        queued_ms = (time.perf_counter() - t0) * 1000
        try:
            reply, out = worker.call(header, blobs, timeout)
        except BaseException:
            self._discard(worker)
            raise
        if self.per_call:
            self._discard(worker)
        else:
            self.idle.put(worker)
        return reply, out, {"queue_ms": round(queued_ms, 3)}

    def _discard(self, worker: WorkerProcess) -> None:
        with self.lock:
            self.live -= 1
            self.restarts += 0 if self.per_call else 1
        threading.Thread(target=worker.kill, daemon=True).start()
        if not self.closed:
            self.warm()

    def status(self) -> dict:
        with self.lock:
            error = self.load_error[1] if self.load_error else None
            return {"ready": self.ever_ready and error is None, "workers": self.live, "starting": self.starting,
                    "idle": self.idle.qsize(),
                    "isolation": "per-call" if self.per_call else "warm", "restarts": self.restarts,
                    "load_error": str(error) if error else None}

    def close(self) -> None:
        with self.lock:
            self.closed = True
        while True:
            try:
                self.idle.get_nowait().kill()
            except queue.Empty:
                break
