"""The pool host: one process per replica that owns every template and worker.

``scorepub serve`` starts it beside gunicorn (``python -m serving.runtime.host SOCKET``); every
web process of the replica connects to its unix socket (one connection per web thread) and
*leases* workers: the host picks an idle worker of the version's pool (starting the template
when needed), sends the web process a duplicate of the worker's socket over SCM_RIGHTS, and the
web process talks to the worker directly, so table data never passes through the host. When the
call ends the web process hands the worker back (or asks for it to be killed).

The host enforces what a web process cannot be trusted to: a lease not handed back by the
call's time limit (plus a grace) is killed, and a web process that disappears has its leases
killed, so a worker in an unknown state never serves again.

Messages (JSON frames, ``messages.py``), each answered except ``release``:
lease(digest) -> leased (+fd) | failed;  release(lease, cpu_s, kill);  crashed(lease) -> exit;
warm(digest) -> ok | failed;  status(digests) -> status;  retire(digest, idle_s) -> ok.
"""
from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from publisher.artifact_store import FolderArtifactStore
from publisher.errors import ArtifactError
from publisher.settings import Settings
from scorepub_sandbox import messages

from .dispatcher import Runtime
from .errors import RuntimeFailure, failure_to_wire
from .pool import Pool, WorkerProcess, sweep_run_dir

log = logging.getLogger("scorepub.pool_host")
LEASE_GRACE_S = 10.0  # past the call's own time limit, before the host kills a lease itself


class PoolHost:
    def __init__(self, settings, socket_path: Path):
        self.settings = settings
        self.runtime = Runtime(settings, FolderArtifactStore(settings.artifact_dir).get)
        self.path = Path(socket_path)
        self.ids = itertools.count(1)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.path.unlink(missing_ok=True)
        old = os.umask(0o177)  # the socket is born 0600: only this user's web processes connect
        try:
            self.listener.bind(str(self.path))
        finally:
            os.umask(old)
        self.listener.listen(256)

    def serve_forever(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed by close()
            threading.Thread(target=self._serve, args=(conn,), daemon=True, name="pool-host-conn").start()

    def _serve(self, conn: socket.socket) -> None:
        leases: dict[int, tuple[Pool, WorkerProcess, float]] = {}  # id -> (pool, worker, kill after)
        try:
            while True:
                deadline = min((d for _, _, d in leases.values()), default=None)
                if deadline is None:
                    conn.settimeout(None)  # an idle connection waits as long as it likes
                try:
                    header, _ = messages.recv(conn, max_bytes=0, deadline=deadline)
                except socket.timeout:
                    log.warning("a web process kept a worker past its time limit: killing it")
                    return
                except (OSError, messages.ProtocolError):
                    return  # the web process closed its connection (or died)
                self._answer(conn, header, leases)
        finally:
            for pool, worker, _ in leases.values():
                pool.give_back(worker, kill=True)
            conn.close()

    def _answer(self, conn: socket.socket, header: dict, leases: dict) -> None:
        op = header.get("op")
        if op == "release":
            pool, worker, _ = leases.pop(int(header.get("lease", 0)), (None, None, None))
            if pool is not None:
                pool.give_back(worker, header.get("cpu_s"), bool(header.get("kill")))
            return
        if op == "crashed":
            pool, worker, _ = leases.pop(int(header.get("lease", 0)), (None, None, None))
            reason = "stopped answering"
            if pool is not None:
                reason = worker.crash_reason()
                pool.give_back(worker, kill=True)
            messages.send(conn, {"op": "exit", "reason": reason})
            return
        try:
            if op == "lease":
                self._lease(conn, str(header.get("digest", "")), leases)
            elif op == "warm":
                self.runtime.warm(str(header.get("digest", "")))
                messages.send(conn, {"op": "ok"})
            elif op == "status":
                digests = [str(d) for d in header.get("digests") or []]
                messages.send(conn, {"op": "status", "pools": self.runtime.status(digests)})
            elif op == "retire":
                self.runtime.retire(str(header.get("digest", "")), float(header.get("idle_s", 0)))
                messages.send(conn, {"op": "ok"})
            else:
                raise messages.ProtocolError(f"unknown operation {op!r}")
        except RuntimeFailure as exc:
            messages.send(conn, {"op": "failed", **failure_to_wire(exc)})
        except ArtifactError as exc:
            messages.send(conn, {"op": "failed", "failure": "ArtifactError", "message": str(exc)})

    def _lease(self, conn: socket.socket, digest: str, leases: dict) -> None:
        pool, worker, queue_ms = self.runtime.take(digest)  # a RuntimeFailure when no worker can be had
        lease_id = next(self.ids)
        limits = pool.limits
        leases[lease_id] = (pool, worker, time.monotonic() + limits.timeout_s + LEASE_GRACE_S)
        messages.send(conn, {"op": "leased", "lease": lease_id, "call_id": worker.next_call_id(),
                             "timeout_s": limits.timeout_s, "memory_mb": limits.memory_mb, "queue_ms": queue_ms})
        socket.send_fds(conn, [b"F"], [worker.sock.fileno()])

    def close(self) -> None:
        try:
            self.listener.close()
        finally:
            self.path.unlink(missing_ok=True)
            self.runtime.close()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="[pool host] %(levelname)s %(message)s")
    from scorepub_sandbox.sandbox import die_with_parent

    die_with_parent()  # scorepub serve's supervisor thread; the templates die with us in turn
    settings = Settings.from_env()
    sweep_run_dir(settings.run_dir)  # the folders of a pool host that died before us
    host = PoolHost(settings, Path(argv[0]))

    def stop(signum, _frame):
        try:
            host.listener.shutdown(socket.SHUT_RDWR)  # wakes accept(): serve_forever returns
        except OSError:
            pass  # closing already

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        host.serve_forever()
    finally:
        host.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
