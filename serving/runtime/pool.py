"""Worker processes for one artifact: a template to fork from, and the workers it forks.

``warm`` pools reuse a worker for many calls; ``per-call`` pools keep forked spares ready and
discard each after one call. A worker that dies, times out or breaks the protocol is killed
(its whole process group) and replaced by a fresh fork, so the pool returns to size and the
service keeps serving. If the template itself dies, the next call starts a new one.
"""
from __future__ import annotations

import concurrent.futures
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
import zlib
from pathlib import Path

from . import messages
from .errors import CallTimedOut, NoWorkerAvailable, OutputTooLarge, PoolClosed, ScriptFailed, WorkerCrashed

log = logging.getLogger("scorepub.runtime")

_PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
CONTROL_TIMEOUT_S = 10


def worker_env(home: Path) -> dict:
    """A small, clean environment: no SCOREPUB_* settings (database URLs) reach a script."""
    env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
    env.setdefault("LANG", "C.UTF-8")
    env.update({
        "HOME": str(home),
        "TMPDIR": str(home),
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(home / ".matplotlib"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


class Spawner:
    """Starts template processes from one long-lived thread.

    A template asks to be killed when its parent *thread* exits (PR_SET_PDEATHSIG), so it must
    not be started from a short-lived thread of the web process.
    """

    def __init__(self):
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawner")

    def popen(self, *args, **kwargs) -> subprocess.Popen:
        return self._executor.submit(subprocess.Popen, *args, **kwargs).result()

    def close(self) -> None:
        self._executor.shutdown(wait=False)


def exit_text(exit_: dict | None) -> str:
    if not exit_:
        return "stopped answering"
    if "signal" in exit_:
        return f"was killed by signal {exit_['signal']}"
    return f"exited with status {exit_.get('code')}"


class TemplateProcess:
    """The web process's handle on one template: start it, fork workers, kill them."""

    def __init__(self, digest: str, artifact_bytes: bytes, schema, settings, spawner: Spawner):
        self.settings = settings
        # named after this web process, so a sweep at start-up can tell stale folders (dead pid)
        self.pool_dir = Path(settings.run_dir) / f"p-{os.getpid()}-{digest[:12]}-{uuid.uuid4().hex[:8]}"
        (self.pool_dir / "workers").mkdir(parents=True)
        (self.pool_dir / "template").mkdir()
        os.chmod(self.pool_dir, 0o700)
        self.uid = None
        if os.getuid() == 0 and settings.sandbox != "off":
            self.uid = settings.sandbox_uid_base + zlib.crc32(self.pool_dir.name.encode()) % 50_000
            for path in (self.pool_dir, self.pool_dir / "workers", self.pool_dir / "template"):
                os.chown(path, self.uid, self.uid)
        limits = schema.limits.capped(settings)
        self.cpu_limit_s = max(60, 4 * limits.timeout_s)
        self.lock = threading.Lock()
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = spawner.popen(
                [sys.executable, "-m", "serving.runtime.template", str(child.fileno())],
                pass_fds=(child.fileno(),), close_fds=True, start_new_session=True, stdin=subprocess.DEVNULL,
                env=worker_env(self.pool_dir / "template"), cwd=self.pool_dir)
        except BaseException:
            self.sock.close()
            remove_pool_dir(self.pool_dir)
            raise
        finally:
            child.close()
        init = {"op": "init", "digest": digest, "pool_dir": str(self.pool_dir), "n_ports": len(schema.inputs),
                "log_cap": settings.log_cap_bytes, "max_output_bytes": settings.max_output_bytes,
                "sandbox": settings.sandbox, "uid": self.uid, "memory_mb": limits.memory_mb,
                "cpu_limit_s": self.cpu_limit_s, "max_processes": settings.max_processes,
                "max_file_bytes": settings.max_file_bytes}
        try:
            deadline = time.monotonic() + settings.worker_start_timeout_s
            messages.send(self.sock, init, [artifact_bytes], deadline=deadline)
            header, _ = messages.recv(self.sock, max_bytes=0, deadline=deadline)
        except (OSError, messages.ProtocolError) as exc:
            reason = "did not start in time" if isinstance(exc, socket.timeout) else self._death()
            self.close()
            raise WorkerCrashed(f"the service's template process {reason}") from None
        self.layers = header.get("layers") or {}
        if header.get("op") != "ready":
            self.close()
            if header.get("kind") in ("sandbox", "prepare"):  # not the script's fault: a 500
                raise WorkerCrashed(str(header.get("message", "the sandbox could not be set up")))
            raise ScriptFailed(str(header.get("message", "the script failed to load")),
                               str(header.get("traceback", "")), str(header.get("log", "")), at_load=True)
        self.dead = False

    def _death(self) -> str:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "broke the control protocol"
        return exit_text({"signal": signal.Signals(-code).name} if code < 0 else {"code": code})

    def _request(self, header: dict) -> dict:
        with self.lock:
            if self.dead:
                raise WorkerCrashed("the service's template process is gone")
            try:
                deadline = time.monotonic() + CONTROL_TIMEOUT_S
                messages.send(self.sock, header, deadline=deadline)
                reply, _ = messages.recv(self.sock, max_bytes=0, deadline=deadline)
                if reply.get("op") == "forked":
                    _, fds, _, _ = socket.recv_fds(self.sock, 1, 1)
                    if len(fds) != 1:
                        raise messages.ProtocolError("no socket came with the forked worker")
                    reply["fd"] = fds[0]
                return reply
            except (OSError, messages.ProtocolError) as exc:
                self.dead = True
                raise WorkerCrashed(f"the service's template process {self._death()}") from exc

    def fork(self) -> "WorkerProcess":
        t0 = time.perf_counter()
        reply = self._request({"op": "fork"})
        worker = WorkerProcess(socket.socket(fileno=reply["fd"]), int(reply["pid"]), self)
        worker.fork_ms = (time.perf_counter() - t0) * 1000
        return worker

    def kill(self, pid: int) -> dict | None:
        try:
            return self._request({"op": "kill", "pid": pid}).get("exit")
        except WorkerCrashed:
            return None

    def exit_of(self, pid: int) -> dict | None:
        try:
            return self._request({"op": "exit", "pid": pid}).get("exit")
        except WorkerCrashed:
            return None

    def close(self) -> None:
        """Stop the template; its workers go with it (its PID namespace ends)."""
        self.dead = True
        if getattr(self, "closed", False):
            return
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.error("template %s did not die after SIGKILL", self.proc.pid)
        remove_pool_dir(self.pool_dir)


def remove_pool_dir(path: Path) -> None:
    """Remove a pool's folder. Its Script Bundle was made read-only (0555 folders) by the
    template: those folders are opened up first, through descriptors opened with O_NOFOLLOW, so
    a link a script left in its folders can never make this (root) process chmod anything else."""
    bundle = Path(path) / "template" / "Script Bundle"
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        for _, dirs, _, dirfd in os.fwalk(bundle, follow_symlinks=False):
            for name in [None, *dirs]:
                try:
                    fd = os.dup(dirfd) if name is None else os.open(name, flags, dir_fd=dirfd)
                except OSError:
                    continue
                try:
                    os.fchmod(fd, 0o700)
                except OSError:
                    pass
                finally:
                    os.close(fd)
    except OSError:
        pass
    shutil.rmtree(path, ignore_errors=True)


class WorkerProcess:
    """One forked worker: its pid (in the template's namespace) and the web process's socket."""

    def __init__(self, sock: socket.socket, pid: int, template: TemplateProcess):
        self.sock, self.pid, self.template = sock, pid, template
        self.fork_ms = 0.0
        self.calls = 0
        self.killed = False

    def call(self, header: dict, blobs: list, timeout: float) -> tuple[dict, list]:
        self.calls += 1
        header = {**header, "id": self.calls}
        deadline = time.monotonic() + timeout
        try:
            messages.send(self.sock, header, blobs, deadline=deadline)
            reply, out = messages.recv(self.sock, max_bytes=self.template.settings.max_output_bytes
                                       + messages.MAX_HEADER, deadline=deadline)
        except socket.timeout:
            self.kill()
            raise CallTimedOut(f"the script ran past the service's time limit of {timeout:g} s") from None
        except messages.FrameTooLarge as exc:
            self.kill()
            raise OutputTooLarge(f"the worker's answer is over the limit ({exc})") from None
        except (OSError, messages.ProtocolError):
            reason = exit_text(self.template.exit_of(self.pid))
            self.kill()
            raise WorkerCrashed(f"the worker {reason}") from None
        if reply.get("id") != self.calls or not isinstance(reply.get("timing", {}), dict):
            self.kill()
            raise WorkerCrashed("the worker broke the wire protocol")
        return reply, out

    def kill(self) -> None:
        if self.killed:
            return
        self.killed = True
        self.template.kill(self.pid)
        try:
            self.sock.close()
        except OSError:
            pass


class Pool:
    """The workers of one artifact (service version), forked from its template."""

    RETRY_LOAD_AFTER_S = 10.0

    def __init__(self, digest: str, artifact_bytes: bytes, schema, size: int, settings, spawner: Spawner):
        self.digest = digest
        self.artifact_bytes = artifact_bytes
        self.schema = schema
        self.per_call = schema.isolation == "per-call"
        self.size = max(1, size)
        self.settings = settings
        self.spawner = spawner
        self.idle: queue.Queue[WorkerProcess] = queue.Queue()
        self.lock = threading.Lock()
        self.template: TemplateProcess | None = None
        self.template_starting = False
        self.starting = 0
        self.live = 0
        self.load_error: tuple[float, Exception] | None = None
        self.closed = False
        self.restarts = 0
        self.ever_ready = False  # a template has loaded the script here at least once
        self.fork_ms: list[float] = []
        self.in_flight = 0
        self.last_used = time.monotonic()

    # -- template -----------------------------------------------------------------------------

    def _ensure_template(self) -> TemplateProcess | None:
        """The running template, or None while one is being started (in the background)."""
        with self.lock:
            template = self.template
            if template is not None and not template.dead:
                return template
            if template is not None:  # it died: its workers went with it
                self.template, self.live, self.idle = None, 0, queue.Queue()
                threading.Thread(target=template.close, daemon=True).start()
            if self.template_starting or self.closed:
                return None
            if self.load_error is not None and time.monotonic() - self.load_error[0] < self.RETRY_LOAD_AFTER_S:
                return None  # the script failed to load just now: no restart storm
            self.template_starting = True
        threading.Thread(target=self._start_template, daemon=True, name=f"template-{self.digest[:8]}").start()
        return None

    def _start_template(self) -> None:
        try:
            template = TemplateProcess(self.digest, self.artifact_bytes, self.schema, self.settings, self.spawner)
        except (ScriptFailed, WorkerCrashed) as exc:
            with self.lock:
                self.template_starting = False
                self.load_error = (time.monotonic(), exc)
            return
        except Exception as exc:  # noqa: BLE001 - logged; callers see NoWorkerAvailable
            log.exception("template for %s failed to start", self.digest[:12])
            with self.lock:
                self.template_starting = False
                self.load_error = (time.monotonic(), WorkerCrashed(f"the template failed to start: {exc}"))
            return
        with self.lock:
            self.template_starting = False
            if self.closed:
                template.close()
                return
            self.template = template
            self.load_error = None
            self.ever_ready = True
        self.warm()

    # -- workers ------------------------------------------------------------------------------

    def warm(self) -> None:
        """Bring the pool to size: a template, then forked workers (in the background)."""
        template = self._ensure_template()
        if template is None:
            return
        with self.lock:
            missing = max(0, self.size - self.live - self.starting)
            self.starting += missing
        for _ in range(missing):
            threading.Thread(target=self._fork_one, args=(template,), daemon=True).start()

    def _fork_one(self, template: TemplateProcess) -> None:
        try:
            worker = template.fork()
        except WorkerCrashed:
            with self.lock:
                self.starting -= 1
            return
        with self.lock:
            self.starting -= 1
            self.fork_ms = (self.fork_ms + [worker.fork_ms])[-100:]
            if self.closed or template is not self.template:
                threading.Thread(target=worker.kill, daemon=True).start()
                return
            self.live += 1
        self.idle.put(worker)

    def _acquire(self, wait_s: float) -> WorkerProcess:
        deadline = time.monotonic() + wait_s
        while True:
            if self.closed:
                raise PoolClosed("the pool was closed")
            if self.load_error is not None:
                at, err = self.load_error
                if time.monotonic() - at < self.RETRY_LOAD_AFTER_S:
                    raise err
                self.load_error = None
            self.warm()
            try:
                worker = self.idle.get(timeout=min(0.05, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    raise NoWorkerAvailable("no worker became free in time; try again") from None
                continue
            if worker.template is self.template and not worker.template.dead:
                return worker

    def call(self, header: dict, blobs: list, timeout: float, wait_s: float) -> tuple[dict, list, dict]:
        with self.lock:
            self.in_flight += 1
        try:
            return self._call(header, blobs, timeout, wait_s)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _call(self, header: dict, blobs: list, timeout: float, wait_s: float) -> tuple[dict, list, dict]:
        t0 = time.perf_counter()
        worker = self._acquire(wait_s)
        queued_ms = (time.perf_counter() - t0) * 1000
        try:
            reply, out = worker.call(header, blobs, timeout)
        except BaseException:
            self._discard(worker, restart=True)
            raise
        self.last_used = time.monotonic()
        cpu = (reply.get("timing") or {}).get("cpu_s")
        worn = isinstance(cpu, (int, float)) and cpu > worker.template.cpu_limit_s / 2
        if self.per_call or worn:
            self._discard(worker, restart=worn)
        else:
            self.idle.put(worker)
        return reply, out, {"queue_ms": round(queued_ms, 3)}

    def _discard(self, worker: WorkerProcess, restart: bool) -> None:
        with self.lock:
            if worker.template is self.template:
                self.live -= 1
            self.restarts += int(restart)
        threading.Thread(target=worker.kill, daemon=True).start()
        if not self.closed:
            self.warm()

    def status(self) -> dict:
        with self.lock:
            error = self.load_error[1] if self.load_error else None
            template = self.template
            forks = sorted(self.fork_ms)
            # ready: the template loaded the script and workers are there (per-call spares refill in ms)
            return {"ready": self.ever_ready and error is None and (self.live > 0 or self.per_call),
                    "workers": self.live,
                    "starting": self.starting,
                    "idle": self.idle.qsize(), "isolation": "per-call" if self.per_call else "warm",
                    "restarts": self.restarts, "load_error": bool(error),
                    "layers": template.layers if template else {},
                    "fork_ms_p50": round(forks[len(forks) // 2], 2) if forks else None}

    def drain(self, grace_s: float) -> None:
        """Close once the calls in flight are done (or after ``grace_s``)."""
        deadline = time.monotonic() + grace_s
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        self.close()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            template, self.template = self.template, None
        if template is not None:
            template.close()
