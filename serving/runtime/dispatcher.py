"""The runtime's front door: find (or start) the pool of a version and run one call on it."""
from __future__ import annotations

import base64
import dataclasses
import subprocess
import sys
import threading
import time
from typing import Callable

import orjson

from publisher import artifact
from publisher.schema import ServiceSchema
from publisher.table import Table

from . import messages
from .errors import MemoryExceeded, NoWorkerAvailable, OutputTooLarge, PoolClosed, ScriptFailed, WorkerCrashed
from .pool import Pool, Spawner


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


def probe_sandbox(mode: str) -> dict:
    """Run the sandbox probe in a fresh single-threaded process; the layers it could set up."""
    proc = subprocess.run([sys.executable, "-m", "serving.runtime.template", "--probe", mode],
                          capture_output=True, timeout=60)
    try:
        layers = orjson.loads(proc.stdout)
    except orjson.JSONDecodeError:
        layers = {"probe": {"active": False, "detail": (proc.stderr or proc.stdout).decode()[-500:]}}
    abi = layers.pop("landlock_abi", None)
    missing = [name for name, state in layers.items() if not state.get("active")]
    return {"mode": mode, "landlock_abi": abi, "layers": layers, "missing": missing}


class Runtime:
    """Pools keyed by artifact digest, made on first use, shared by the threads of one process."""

    def __init__(self, settings, fetch_artifact: Callable[[str], bytes]):
        self.settings = settings
        self.fetch_artifact = fetch_artifact
        self.pools: dict[str, Pool] = {}
        self.lock = threading.Lock()
        self.spawner = Spawner()
        self._sandbox_report: dict | None = None

    def pool(self, digest: str, schema: ServiceSchema) -> Pool:
        pool = self.pools.get(digest)
        if pool is not None:
            return pool
        # read and verify outside the lock: a slow shared store must not hold up other services
        data = self.fetch_artifact(digest)
        artifact.load(data, digest)  # refuse a damaged artifact before any worker starts
        with self.lock:
            pool = self.pools.get(digest)
            if pool is None:
                pool = Pool(digest, data, schema, self.settings.pool_size, self.settings, self.spawner)
                self.pools[digest] = pool
        return pool

    def evict_idle(self, keep: set[str], idle_s: float) -> None:
        """Close pools nobody routes to any more (old or explicitly called versions) once idle."""
        now = time.monotonic()
        with self.lock:
            idle = [d for d, p in self.pools.items() if d not in keep and not p.in_flight
                    and now - p.last_used > idle_s]
        for digest in idle:
            self.retire_pool(digest, 0)

    def call(self, digest: str, schema: ServiceSchema, inputs: list[Table], parameters: dict) -> CallResult:
        started = time.perf_counter()
        limits = schema.limits.capped(self.settings)
        blobs: list = []
        header = {"op": "call", "inputs": [messages.encode_table(t, blobs) for t in inputs],
                  "parameters": parameters}
        for attempt in (1, 2):
            pool = self.pool(digest, schema)
            try:
                # waiting for a worker may include starting one: a slow module-level load is not
                # the call's time
                reply, out, timing = pool.call(header, blobs, timeout=limits.timeout_s,
                                               wait_s=limits.timeout_s + self.settings.worker_start_timeout_s)
                break
            except PoolClosed:  # drained just now (a promote): take the fresh pool
                if attempt == 2:
                    raise NoWorkerAvailable("the service's workers were replaced; try again") from None
        if reply.get("op") != "result":
            raise WorkerCrashed("the worker sent an unexpected message")
        log_text = reply.get("log") if isinstance(reply.get("log"), str) else ""
        error = reply.get("error")
        if error is not None:
            if not isinstance(error, dict):
                raise WorkerCrashed("the worker sent a malformed error")
            kind = error.get("kind")
            message = str(error.get("message", ""))
            if kind == "memory":
                raise MemoryExceeded(f"the script went over the service's memory limit of {limits.memory_mb} MB")
            if kind == "output_too_large":
                raise OutputTooLarge(message)
            raise ScriptFailed(message, str(error.get("traceback", "")), log_text)
        output = messages.decode_table(reply.get("output"), out)
        plots = []
        for p in reply.get("plots") or []:
            try:
                plots.append((str(p["name"]), bytes(out[p["blob"]])))
            except (KeyError, IndexError, TypeError):
                raise WorkerCrashed("the worker sent a malformed plot entry") from None
        timing = {**timing, **(reply.get("timing") or {}),
                  "total_ms": round((time.perf_counter() - started) * 1000, 3)}
        notes = [str(n) for n in reply.get("notes") or []]
        return CallResult(output, log_text, bool(reply.get("log_truncated")), plots, notes, timing)

    def retire_pool(self, digest: str, grace_s: float) -> None:
        """Stop routing to a pool, let its calls in flight finish (up to ``grace_s``), then close it."""
        with self.lock:
            pool = self.pools.pop(digest, None)
        if pool is not None:
            threading.Thread(target=pool.drain, args=(grace_s,), daemon=True, name=f"drain-{digest[:8]}").start()

    def sandbox_report(self) -> dict:
        """The layers this host provides, probed once in a fresh process (for /readyz)."""
        if self._sandbox_report is None:
            self._sandbox_report = probe_sandbox(self.settings.sandbox)
        return self._sandbox_report

    def close(self) -> None:
        with self.lock:
            pools, self.pools = list(self.pools.values()), {}
        for pool in pools:
            pool.close()
        self.spawner.close()
