"""Worker processes for one artifact: a template to fork from, and the workers it forks.

``warm`` pools reuse a worker for many calls; ``per-call`` pools keep forked spares ready and
discard each after one call. A worker that dies, times out or breaks the protocol is killed
(its whole process group) and replaced by a fresh fork, so the pool returns to size and the
service keeps serving. If the template itself dies, the next lease starts a new one.

A pool's lifecycle (template start, forks, kills, close) runs in order on one executor thread
of its own; callers wait for an idle worker on a condition variable, never by polling. A
worker is *leased* to one call at a time and handed back with what the call learnt (its CPU
time, or that it must be killed).
"""
from __future__ import annotations

import collections
import concurrent.futures
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

from scorepub_sandbox import messages
from scorepub_sandbox.messages import ErrorKind

from .errors import NoWorkerAvailable, PoolClosed, ScriptFailed, WorkerCrashed
from .spawner import Spawner
from .uids import UidClaim

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


def exit_text(exit_: dict | None) -> str:
    if not exit_:
        return "stopped answering"
    if "signal" in exit_:
        return f"was killed by signal {exit_['signal']}"
    return f"exited with status {exit_.get('code')}"


class TemplateProcess:
    """The web process's handle on one template: start it, fork workers, kill them."""

    def __init__(self, digest: str, artifact_bytes: bytes, schema, settings, spawner: Spawner,
                 uid: UidClaim | None = None):
        self.settings = settings
        # named after this web process, so a sweep at start-up can tell stale folders (dead pid)
        self.pool_dir = Path(settings.run_dir) / f"p-{os.getpid()}-{digest[:12]}-{uuid.uuid4().hex[:8]}"
        (self.pool_dir / "workers").mkdir(parents=True)
        (self.pool_dir / "template").mkdir()
        os.chmod(self.pool_dir, 0o700)
        self.uid_claim = uid  # held (and so unique on this machine) until close()
        self.uid = uid.uid if uid is not None else None
        if self.uid is not None:
            for path in (self.pool_dir, self.pool_dir / "workers", self.pool_dir / "template"):
                os.chown(path, self.uid, self.uid)
        limits = schema.limits.capped(settings)
        self.cpu_limit_s = max(60, 4 * limits.timeout_s)
        self.lock = threading.Lock()
        self.dead = False
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = spawner.spawn(child.fileno(), worker_env(self.pool_dir / "template"), self.pool_dir)
            self.proc.on_exit = self._ended
            if self.proc.poll() is not None:  # it ended before it could be told
                self._ended()
        except BaseException:
            self.sock.close()
            remove_pool_dir(self.pool_dir)
            if uid is not None:
                uid.release()
            raise
        finally:
            child.close()
        init = {"op": "init", "digest": digest, "pool_dir": str(self.pool_dir), "n_ports": len(schema.inputs),
                "log_cap": settings.log_cap_bytes, "max_output_bytes": settings.max_output_bytes,
                "sandbox": settings.sandbox, "uid": self.uid, "memory_mb": limits.memory_mb,
                "cpu_limit_s": self.cpu_limit_s, "max_processes": settings.max_processes,
                "max_file_bytes": settings.max_file_bytes, "disk_mb": settings.worker_disk_mb}
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
            if header.get("kind") in (ErrorKind.SANDBOX, ErrorKind.PREPARE):  # not the script's fault: a 500
                raise WorkerCrashed(str(header.get("message", "the sandbox could not be set up")))
            raise ScriptFailed(str(header.get("message", "the script failed to load")),
                               str(header.get("traceback", "")), str(header.get("log", "")), at_load=True)

    def _ended(self) -> None:
        """The template's zygote ended (the fork server says so): no lease may use its workers."""
        self.dead = True

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

    def kill(self, pid: int) -> None:
        """SIGKILL a worker's process group; the template answers at once, it reaps later."""
        try:
            self._request({"op": "kill", "pid": pid})
        except WorkerCrashed:
            pass

    def exit_of(self, pid: int) -> dict | None:
        """Kill a worker (if it still runs) and wait for how it ended: for a crash's message."""
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
        if self.uid_claim is not None:
            self.uid_claim.release()


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


def sweep_run_dir(run_dir) -> None:
    """Remove pool folders left by pool hosts (or one-off runtimes) that are gone (a crash, a kill -9)."""
    for folder in run_dir.glob("p-*-*"):
        try:
            pid = int(folder.name.split("-")[1])
            os.kill(pid, 0)
        except (ValueError, IndexError):
            continue
        except ProcessLookupError:
            remove_pool_dir(folder)
        except PermissionError:
            pass  # alive, someone else's


class WorkerProcess:
    """One forked worker: its pid (in the template's namespace) and the pool's end of its socket."""

    def __init__(self, sock: socket.socket, pid: int, template: TemplateProcess):
        self.sock, self.pid, self.template = sock, pid, template
        self.fork_ms = 0.0
        self.calls = 0  # the id of the last call sent; replies must echo it
        self.killed = False

    def next_call_id(self) -> int:
        self.calls += 1
        return self.calls

    def crash_reason(self) -> str:
        return exit_text(self.template.exit_of(self.pid))

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

    def __init__(self, digest: str, artifact_bytes: bytes, schema, settings, spawner: Spawner,
                 take_uid=lambda: None):
        self.digest = digest
        self.artifact_bytes = artifact_bytes
        self.schema = schema
        self.limits = schema.limits.capped(settings)
        self.per_call = schema.isolation == "per-call"
        self.size = max(1, settings.pool_size)
        self.settings = settings
        self.spawner = spawner
        self.take_uid = take_uid
        self.ops = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"pool-{digest[:8]}")
        self.cond = threading.Condition()
        self.idle: collections.deque[WorkerProcess] = collections.deque()
        self.template: TemplateProcess | None = None
        self.template_starting = False
        self.forking = 0
        self.live = 0  # forked workers of the current template, idle or leased
        self.load_error: tuple[float, Exception] | None = None
        self.closed = False
        self.idle_limit_s: float | None = None  # set when retired: close after this long unused
        self.restarts = 0
        self.ever_ready = False  # a template has loaded the script here at least once
        self.fork_ms: list[float] = []
        self.in_flight = 0
        self.waiting = 0  # callers in lease(), not yet given a worker
        self.last_used = time.monotonic()

    # -- lifecycle (on self.ops, in order) ----------------------------------------------------

    def _submit(self, fn, *args) -> None:
        """Queue a lifecycle step; once closed there is none left to do (close() ends the template,
        and its workers with it)."""
        if not self.closed:
            self.ops.submit(fn, *args)

    def _top_up(self) -> None:
        """Schedule what brings the pool to size: a template, then forks. Call with self.cond held."""
        if self.closed:
            return
        template = self.template
        if template is not None and template.dead:  # it died: its workers went with it
            self.template, self.live = None, 0
            self.idle.clear()
            self._submit(template.close)
            template = None
        if template is None:
            if self.template_starting:
                return
            if self.load_error is not None and time.monotonic() - self.load_error[0] < self.RETRY_LOAD_AFTER_S:
                return  # the script failed to load just now: no restart storm
            self.template_starting = True
            self._submit(self._start_template)
            return
        # warm pools grow on demand: one worker, and one more whenever every worker is leased,
        # up to the pool size (an idle service holds one); per-call pools keep every spare ready
        wanted = self.size if self.per_call else min(self.size, self.in_flight + 1)
        for _ in range(max(0, wanted - self.live - self.forking)):
            self.forking += 1
            self._submit(self._fork_one, template)

    def _start_template(self) -> None:
        try:
            template = TemplateProcess(self.digest, self.artifact_bytes, self.schema, self.settings, self.spawner,
                                       self.take_uid())
        except (ScriptFailed, WorkerCrashed, NoWorkerAvailable) as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - logged; callers see the failure
            log.exception("template for %s failed to start", self.digest[:12])
            error = WorkerCrashed(f"the template failed to start: {exc}")
        else:
            error = None
        with self.cond:
            self.template_starting = False
            if error is not None:
                self.load_error = (time.monotonic(), error)
            elif self.closed:
                template.close()  # on the executor already
            else:
                self.template, self.load_error, self.ever_ready = template, None, True
                self._top_up()
            self.cond.notify_all()

    def _fork_one(self, template: TemplateProcess) -> None:
        try:
            worker = template.fork()
        except WorkerCrashed:
            worker = None
        with self.cond:
            self.forking -= 1
            if worker is None:
                self._top_up()  # the template is dead: start another
            elif self.closed or template is not self.template:
                self._submit(worker.kill)
            else:
                self.fork_ms = (self.fork_ms + [worker.fork_ms])[-100:]
                self.live += 1
                self.idle.append(worker)
            self.cond.notify_all()

    # -- leases -------------------------------------------------------------------------------

    def warm(self) -> None:
        """Bring the pool to size in the background."""
        with self.cond:
            self._top_up()

    def lease(self, wait_s: float) -> WorkerProcess:
        """An idle worker for one call, waiting up to ``wait_s`` (which may include a start)."""
        deadline = time.monotonic() + wait_s
        with self.cond:
            self.waiting += 1  # a caller waiting (for a template start, say) is a use: no idle stop
            try:
                return self._lease_locked(deadline)
            finally:
                self.waiting -= 1
                self.last_used = time.monotonic()

    def _lease_locked(self, deadline: float) -> WorkerProcess:
        """The body of lease(), with ``self.cond`` held."""
        while True:
            if self.closed:
                raise PoolClosed("the pool was closed")
            if self.load_error is not None:
                at, err = self.load_error
                if time.monotonic() - at < self.RETRY_LOAD_AFTER_S:
                    raise err
                self.load_error = None
            self._top_up()
            while self.idle:
                worker = self.idle.popleft()
                if worker.template is self.template and not worker.template.dead:
                    self.in_flight += 1
                    self.last_used = time.monotonic()
                    return worker
            left = deadline - time.monotonic()
            if left <= 0:
                raise NoWorkerAvailable("no worker became free in time; try again")
            self.cond.wait(left)

    def give_back(self, worker: WorkerProcess, cpu_s: float | None = None, kill: bool = False) -> None:
        """End a lease: the worker serves again, or (per-call, worn, failed) is replaced."""
        worn = isinstance(cpu_s, (int, float)) and cpu_s > worker.template.cpu_limit_s / 2
        with self.cond:
            self.in_flight -= 1
            self.last_used = time.monotonic()
            if kill or worn or self.per_call or worker.template is not self.template:
                if worker.template is self.template:
                    self.live -= 1
                self.restarts += int(kill or worn)
                self._submit(worker.kill)
                self._top_up()
            else:
                self.idle.append(worker)
            self.cond.notify_all()

    # -- status and ending --------------------------------------------------------------------

    def status(self) -> dict:
        with self.cond:
            error = self.load_error[1] if self.load_error else None
            template = self.template
            forks = sorted(self.fork_ms)
            # ready: the template loaded the script and workers are there (per-call spares refill in ms)
            return {"running": True, "ready": self.ever_ready and error is None and (self.live > 0 or self.per_call),
                    "workers": self.live, "starting": self.forking + int(self.template_starting),
                    "idle": len(self.idle), "isolation": "per-call" if self.per_call else "warm",
                    "restarts": self.restarts, "load_error": bool(error),
                    "layers": template.layers if template else {},
                    "uid": template.uid if template else None,
                    "fork_ms_p50": round(forks[len(forks) // 2], 2) if forks else None}

    def unused_for(self, now: float, default_s: float) -> bool:
        """Nothing in flight and no lease for this pool's idle limit (0: no limit)."""
        limit = self.idle_limit_s if self.idle_limit_s is not None else default_s
        with self.cond:
            return limit > 0 and self.in_flight == 0 and self.waiting == 0 and now - self.last_used > limit

    def _close_locked(self) -> None:
        if self.closed:
            return
        self.closed = True
        template, self.template = self.template, None
        self.idle.clear()
        if template is not None:
            self.ops.submit(template.close)
        self.ops.shutdown(wait=False)

    def close(self) -> None:
        with self.cond:
            self._close_locked()
            self.cond.notify_all()
