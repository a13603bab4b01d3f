"""A web process's side of the pool host (``host.py``): lease workers, run calls on them.

Each thread keeps its own connection to the host (a gunicorn thread serves one request at a
time), so a lease never waits behind another thread's. If the host is being restarted, a
call fails with :class:`RuntimeUnavailable` (503) and the next one connects again.
"""
from __future__ import annotations

import socket
import threading
import time

from publisher.errors import ArtifactError
from scorepub_sandbox import messages

from .dispatcher import Calls, Lease
from .errors import RuntimeUnavailable, failure_from_wire

CONTROL_TIMEOUT_S = 30  # for anything but waiting for a worker, which has its own limit


class HostRuntime(Calls):
    def __init__(self, settings):
        self.settings = settings
        self.path = settings.pool_socket
        self.local = threading.local()
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()

    # -- the connection ---------------------------------------------------------------------

    def _conn(self) -> socket.socket:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                conn.connect(self.path)
            except OSError as exc:
                conn.close()
                raise RuntimeUnavailable(f"this replica's pool host is not answering ({exc.strerror})") from None
            self.local.conn = conn
            with self.lock:
                self.connections.add(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            self.local.conn = None
            with self.lock:
                self.connections.discard(conn)
            conn.close()

    def _ask(self, header: dict, wait_s: float = CONTROL_TIMEOUT_S) -> dict:
        """One request and its answer; a broken connection is dropped (the next call reconnects)."""
        for attempt in (1, 2):
            conn = self._conn()
            deadline = time.monotonic() + wait_s
            try:
                messages.send(conn, header, deadline=deadline)
                reply, _ = messages.recv(conn, max_bytes=0, deadline=deadline)
                if reply.get("op") == "leased":
                    _, fds, _, _ = socket.recv_fds(conn, 1, 1)
                    if len(fds) != 1:
                        raise messages.ProtocolError("no socket came with the lease")
                    reply["fd"] = fds[0]
            except (OSError, messages.ProtocolError) as exc:
                self._drop()
                # a connection the host closed while idle (a restart): one fresh try
                if attempt == 1 and not isinstance(exc, socket.timeout):
                    continue
                raise RuntimeUnavailable("this replica's pool host stopped answering") from None
            if reply.get("op") == "failed":
                if reply.get("failure") == "ArtifactError":
                    raise ArtifactError(str(reply.get("message", "")))
                raise failure_from_wire(reply)
            return reply
        raise AssertionError("unreachable")

    def _tell(self, header: dict) -> None:
        try:
            messages.send(self._conn(), header, deadline=time.monotonic() + CONTROL_TIMEOUT_S)
        except (OSError, messages.ProtocolError):
            self._drop()  # the host kills the leases of a connection that goes away

    # -- what the web process asks for --------------------------------------------------------

    def lease(self, digest: str, schema=None) -> Lease:
        # the host waits for a worker up to the version's limit plus a start; so do we, and more
        reply = self._ask({"op": "lease", "digest": digest},
                          wait_s=self.settings.max_timeout_s + self.settings.worker_start_timeout_s + 30)
        sock = socket.socket(fileno=reply["fd"])
        lease_id = reply["lease"]
        done = False

        def give_back(cpu_s=None, kill=False) -> None:
            nonlocal done
            if not done:
                done = True
                sock.close()
                self._tell({"op": "release", "lease": lease_id, "cpu_s": cpu_s, "kill": kill})

        def crashed() -> str:
            nonlocal done
            done = True
            sock.close()
            try:
                return str(self._ask({"op": "crashed", "lease": lease_id}).get("reason", "stopped answering"))
            except RuntimeUnavailable:
                return "stopped answering"

        return Lease(sock, int(reply["call_id"]), float(reply["timeout_s"]), int(reply["memory_mb"]),
                     float(reply.get("queue_ms", 0.0)), give_back, crashed)

    def warm(self, digest: str, schema=None) -> None:
        self._ask({"op": "warm", "digest": digest})

    def status(self, digests) -> dict:
        return self._ask({"op": "status", "digests": list(digests)})["pools"]

    def retire(self, digest: str, idle_s: float) -> None:
        self._ask({"op": "retire", "digest": digest, "idle_s": idle_s})

    def close(self) -> None:
        with self.lock:
            connections, self.connections = self.connections, set()
        for conn in connections:
            try:
                conn.close()
            except OSError:
                pass
