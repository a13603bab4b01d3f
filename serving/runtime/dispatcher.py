"""The runtime's front door: lease a worker of a version's pool and run one call on it.

:class:`Runtime` keeps the pools of one process (the pool host of a replica, or a one-off
process such as the CLI's ``score`` and the publish-time smoke call). Web processes use
:class:`~serving.runtime.client.HostRuntime` instead, which leases the same workers from the
replica's pool host; both run the call itself with :meth:`Calls.call`, on the leased socket.
"""
from __future__ import annotations

import base64
import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import orjson

from publisher.schema import ServiceSchema, parse_schema
from scorepub_sandbox import artifact, launch, messages
from scorepub_sandbox.messages import ErrorKind
from scorepub_sandbox.table import Table

from .environments import RuntimeEnvironments
from .errors import (CallTimedOut, EnvironmentBuilding, EnvironmentUnavailable, MemoryExceeded, NoWorkerAvailable,
                     OutputTooLarge, PoolClosed, ScriptFailed, WorkerCrashed)
from .pool import Pool, WorkerProcess, remove_pool_dir, worker_env
from .spawner import Spawner
from .uids import UidAllocator

HOUSEKEEPING_S = 1.0
SANDBOX_OFF_WARNING = ("SCOREPUB_SANDBOX=off: scripts run WITHOUT the sandbox (no namespaces, uid drop, Landlock "
                       "or seccomp). Development only: never serve untrusted scripts or callers like this.")


@dataclasses.dataclass
class CallResult:
    output: Table
    log: str
    log_truncated: bool
    plots: list  # [(file name, PNG bytes)]
    notes: list
    timing: dict

    def plots_base64(self) -> list[dict]:
        return [{"name": n, "data": base64.b64encode(b).decode("ascii")} for n, b in self.plots]


@dataclasses.dataclass
class Lease:
    """One worker, lent to one call: its socket, the call's id and limits, and how to hand it back."""

    sock: socket.socket
    call_id: int
    timeout_s: float
    memory_mb: int
    queue_ms: float
    give_back: Callable[..., None]  # (cpu_s=None, kill=False)
    crashed: Callable[[], str]  # kill it and say how it ended; the lease is over


def probe_sandbox(mode: str, python: str = sys.executable) -> dict:
    """Run the sandbox probe in a fresh single-threaded process of ``python``; the layers it could set up."""
    proc = subprocess.run(launch.command(python, "template", "--probe", mode), capture_output=True, timeout=60)
    try:
        layers = orjson.loads(proc.stdout)
    except orjson.JSONDecodeError:
        layers = {"probe": {"active": False, "detail": (proc.stderr or proc.stdout).decode()[-500:]}}
    abi = layers.pop("landlock_abi", None)
    missing = [name for name, state in layers.items() if not state.get("active")]
    return {"mode": mode, "landlock_abi": abi, "layers": layers, "missing": missing}


class Calls:
    """What every runtime does with a lease: send the tables, read the answer, hand the worker back."""

    settings: object
    _sandbox_report: dict | None = None

    def lease(self, digest: str, schema: ServiceSchema | None = None) -> Lease:
        raise NotImplementedError

    def call(self, digest: str, schema: ServiceSchema | None, inputs: list[Table], parameters: dict) -> CallResult:
        started = time.perf_counter()
        blobs: list = []
        header = {"op": "call", "inputs": [messages.encode_table(t, blobs) for t in inputs],
                  "parameters": parameters}
        lease = self.lease(digest, schema)
        reply, out = self._exchange(lease, header, blobs)
        return self._result(reply, out, lease, started)

    def _exchange(self, lease: Lease, header: dict, blobs: list) -> tuple[dict, list]:
        header["id"] = lease.call_id
        deadline = time.monotonic() + lease.timeout_s
        try:
            messages.send(lease.sock, header, blobs, deadline=deadline)
            reply, out = messages.recv(lease.sock, max_bytes=self.settings.max_output_bytes + messages.MAX_HEADER,
                                       deadline=deadline)
        except socket.timeout:
            lease.give_back(kill=True)
            raise CallTimedOut(f"the script ran past the service's time limit of {lease.timeout_s:g} s") from None
        except messages.FrameTooLarge as exc:
            lease.give_back(kill=True)
            raise OutputTooLarge(f"the worker's answer is over the limit ({exc})") from None
        except (OSError, messages.ProtocolError):
            raise WorkerCrashed(f"the worker {lease.crashed()}") from None
        except BaseException:
            lease.give_back(kill=True)
            raise
        timing = reply.get("timing")
        if reply.get("id") != lease.call_id or not isinstance(timing, dict) or reply.get("op") != "result":
            lease.give_back(kill=True)
            raise WorkerCrashed("the worker broke the wire protocol")
        lease.give_back(cpu_s=timing.get("cpu_s"))
        return reply, out

    @staticmethod
    def _result(reply: dict, out: list, lease: Lease, started: float) -> CallResult:
        log_text = reply.get("log") if isinstance(reply.get("log"), str) else ""
        error = reply.get("error")
        if error is not None:
            if not isinstance(error, dict):
                raise WorkerCrashed("the worker sent a malformed error")
            kind = error.get("kind")
            message = str(error.get("message", ""))
            if kind == ErrorKind.MEMORY:
                raise MemoryExceeded(f"the script went over the service's memory limit of {lease.memory_mb} MB")
            if kind == ErrorKind.OUTPUT_TOO_LARGE:
                raise OutputTooLarge(message)
            raise ScriptFailed(message, str(error.get("traceback", "")), log_text)
        output = messages.decode_table(reply.get("output"), out)
        plots = []
        for p in reply.get("plots") or []:
            try:
                plots.append((str(p["name"]), bytes(out[p["blob"]])))
            except (KeyError, IndexError, TypeError):
                raise WorkerCrashed("the worker sent a malformed plot entry") from None
        timing = {**reply["timing"], "queue_ms": round(lease.queue_ms, 3),
                  "total_ms": round((time.perf_counter() - started) * 1000, 3)}
        notes = [str(n) for n in reply.get("notes") or []]
        return CallResult(output, log_text, bool(reply.get("log_truncated")), plots, notes, timing)

    def sandbox_report(self) -> dict:
        """The layers this host provides, probed once in a fresh process (for /readyz)."""
        if self._sandbox_report is None:
            self._sandbox_report = probe_sandbox(self.settings.sandbox)
        return self._sandbox_report


class Runtime(Calls):
    """The pools of this process, keyed by artifact digest, made on first use and shared by its
    threads. Pools idle for ``pool_idle_s`` are closed, and so return their memory.

    A version runs under the interpreter of its environment (``environments.py``: this one for
    the default environment), or of ``python_for(artifact)`` when given; each interpreter gets one
    fork server (:meth:`spawner_for`), shared by its pools."""

    def __init__(self, settings, fetch_artifact: Callable[[str], bytes],
                 python_for: Callable[[artifact.Artifact], str] | None = None):
        self.settings = settings
        self.fetch_artifact = fetch_artifact
        self.python_for = python_for
        self.environments = RuntimeEnvironments(settings)
        self.pools: dict[str, Pool] = {}
        self.stopped_idle: set[str] = set()  # pools closed for being unused (they start again on use)
        self.lock = threading.Lock()
        self.spawners: dict[str, Spawner] = {}  # interpreter path -> its fork server
        self.spawner = self.spawner_for(sys.executable)
        self.uids = (UidAllocator(settings.sandbox_uid_base, settings.uid_dir)
                     if os.getuid() == 0 and settings.sandbox != "off" else None)
        self.stopped = threading.Event()
        self._housekeeper: threading.Thread | None = None

    def spawner_for(self, python: str) -> Spawner:
        """The fork server of interpreter ``python``, made on first use (started on first spawn)."""
        with self.lock:
            spawner = self.spawners.get(python)
            if spawner is None:
                name = "forkserver" if python == sys.executable else f"forkserver-{len(self.spawners)}"
                home = Path(self.settings.run_dir) / f"p-{os.getpid()}-{name}"
                spawner = self.spawners[python] = Spawner(worker_env(home), home, python)
            return spawner

    def pool(self, digest: str, schema: ServiceSchema | None = None, warm: bool = False) -> Pool:
        """The version's pool, made on first use. Raises EnvironmentBuilding while this replica
        builds its environment (with ``warm``, the pool is warmed once the build is over)."""
        pool = self.pools.get(digest)
        if pool is not None:
            return pool
        # read and verify outside the lock: a slow shared store must not hold up other services
        data = self.fetch_artifact(digest)
        art = artifact.load(data, digest)  # refuse a damaged artifact before any worker starts
        if schema is None:
            schema = parse_schema(art.schema_document, source=f"schema of {digest[:12]}")
        if self.python_for is not None:
            python = self.python_for(art)
        else:
            python = self.environments.python(digest, art, (lambda: self.warm(digest, schema)) if warm else None)
        spawner = self.spawner_for(python)
        with self.lock:
            pool = self.pools.get(digest)
            if pool is None:
                pool = Pool(digest, data, schema, self.settings, spawner,
                            self.uids.take if self.uids else (lambda: None))
                self.pools[digest] = pool
                self.stopped_idle.discard(digest)
            if self._housekeeper is None:
                self._housekeeper = threading.Thread(target=self._housekeeping, daemon=True, name="pool-housekeeping")
                self._housekeeper.start()
        return pool

    def take(self, digest: str, schema: ServiceSchema | None = None) -> tuple[Pool, WorkerProcess, float]:
        """An idle worker of the version's pool, and the milliseconds spent waiting for it."""
        for attempt in (1, 2):
            pool = self.pool(digest, schema)
            # waiting for a worker may include starting one: a slow module-level load is not the call's time
            wait_s = pool.limits.timeout_s + self.settings.worker_start_timeout_s
            t0 = time.perf_counter()
            try:
                return pool, pool.lease(wait_s), (time.perf_counter() - t0) * 1000
            except PoolClosed:  # closed just now (unused for its idle limit): take a fresh pool
                if attempt == 2:
                    raise NoWorkerAvailable("the service's workers were replaced; try again") from None
        raise AssertionError("unreachable")

    def lease(self, digest: str, schema: ServiceSchema | None = None) -> Lease:
        return self._local_lease(*self.take(digest, schema))

    @staticmethod
    def _local_lease(pool: Pool, worker: WorkerProcess, queue_ms: float) -> Lease:
        def crashed() -> str:
            reason = worker.crash_reason()
            pool.give_back(worker, kill=True)
            return reason

        return Lease(worker.sock, worker.next_call_id(), pool.limits.timeout_s, pool.limits.memory_mb, queue_ms,
                     lambda cpu_s=None, kill=False: pool.give_back(worker, cpu_s, kill), crashed)

    def warm(self, digest: str, schema: ServiceSchema | None = None) -> None:
        """Start the version's pool in the background (after its environment, if being built)."""
        try:
            self.pool(digest, schema, warm=True).warm()
        except (EnvironmentBuilding, EnvironmentUnavailable):
            pass  # status() reports it; the pool starts when the build is over

    def status(self, digests) -> dict:
        """The state of the pools of ``digests``; starts nothing. A pool not running is
        ``{"running": False}``, with ``stopped_idle`` when it was closed for being unused."""
        out = {}
        for digest in digests:
            pool = self.pools.get(digest)
            if pool is not None:
                out[digest] = pool.status()
                continue
            out[digest] = {"running": False, "stopped_idle": digest in self.stopped_idle}
            environment = self.environments.status(digest)
            if environment is not None:
                out[digest]["environment"] = environment
        return out

    def retire(self, digest: str, idle_s: float) -> None:
        """A version no longer live: close its pool once nobody has used it for ``idle_s``
        (calls in flight finish; a replica still switching, or an explicit version call, keeps it)."""
        pool = self.pools.get(digest)
        if pool is not None:
            pool.idle_limit_s = idle_s

    def _housekeeping(self) -> None:
        """Close pools unused for their idle limit (``pool_idle_s``, or a retired version's)."""
        while not self.stopped.wait(HOUSEKEEPING_S):
            now = time.monotonic()
            with self.lock:
                unused = [(d, p) for d, p in self.pools.items() if p.unused_for(now, self.settings.pool_idle_s)]
                for digest, _ in unused:
                    del self.pools[digest]
                    self.stopped_idle.add(digest)
            for _, pool in unused:
                pool.close()

    def close(self) -> None:
        self.stopped.set()
        self.environments.close()
        with self.lock:
            pools, self.pools = list(self.pools.values()), {}
        for pool in pools:
            pool.close()
        for pool in pools:  # let each template's close run (it kills the namespace, removes the folder)
            pool.ops.shutdown(wait=True)
        with self.lock:
            spawners, self.spawners = list(self.spawners.values()), {}
        for spawner in spawners:
            spawner.close()
            remove_pool_dir(spawner.cwd)
