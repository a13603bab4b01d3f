"""Which version this process serves for each service, and how a promote reaches it.

The registry's live pointer is the truth; a replica follows it, but switches only once the new
version's workers are warm, and retires the old pool afterwards (the pool host closes it once
unused for ``retire_idle_s``), so no call waits for a cold start or fails during a promote. Changes are noticed by PostgreSQL LISTEN/NOTIFY (channel
``scorepub_registry``) with polling as the fallback, and by a cheap poll of the newest audit
entry on SQLite; a request also notices by itself, since it reads the service row anyway.
"""
from __future__ import annotations

import logging
import threading

from publisher.registry import NOTIFY_CHANNEL, Registry, ServiceRecord

log = logging.getLogger("scorepub.live_pointer")


class LiveRouter:
    def __init__(self, registry: Registry, runtime, poll_s: float = 0.25, retire_idle_s: float = 30.0):
        self.registry = registry
        self.runtime = runtime
        self.poll_s = poll_s
        self.retire_idle_s = retire_idle_s
        self.serving: dict[str, tuple[int, str]] = {}  # service id -> (version, digest) this process serves
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True, name="live-pointer")
        self.thread.start()

    # -- per request -----------------------------------------------------------------------------

    def version_for(self, service: ServiceRecord) -> int | None:
        """The version to serve now: the live one when warm, else the one served before."""
        target = service.live_version
        with self.lock:
            current = self.serving.get(service.id)
        if target is None:
            with self.lock:
                self.serving.pop(service.id, None)
            if current is not None:
                self._retire(current[1])
            return None
        if current is None or current[0] == target:
            if current is None:  # first seen here (a start, a new service): its pool starts now
                self._switch(service, target, None)
                self.runtime.warm(self.registry.version(service.name, target).digest)
            return target
        if self._warm(service, target):
            self._switch(service, target, current)
            return target
        previous = self.registry.version(service.name, current[0])
        return target if previous.retired else current[0]  # a retired version never serves again

    # -- switching -------------------------------------------------------------------------------

    def _warm(self, service: ServiceRecord, number: int) -> bool:
        """Start (or check) the pool of a version; True once it has workers ready."""
        digest = self.registry.version(service.name, number).digest
        self.runtime.warm(digest)
        status = self.runtime.status([digest])[digest]
        # a script that fails to load is switched to all the same: the registry is the truth, and
        # every replica then answers its load error alike
        return bool(status.get("ready") or status.get("load_error"))

    def _switch(self, service: ServiceRecord, number: int, previous: tuple[int, str] | None) -> None:
        digest = self.registry.version(service.name, number).digest
        with self.lock:
            if self.serving.get(service.id, (None,))[0] == number:
                return
            self.serving[service.id] = (number, digest)
        if previous is not None and previous[1] != digest:
            log.info("%s: now serving version %d (was %d)", service.name, number, previous[0])
            self._retire(previous[1])

    def _retire(self, digest: str) -> None:
        with self.lock:
            still_used = any(d == digest for _, d in self.serving.values())
        if not still_used:
            self.runtime.retire(digest, self.retire_idle_s)

    # -- noticing changes ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """Warm every service whose live version changed, and switch once warm."""
        for service in self.registry.services():
            with self.lock:
                current = self.serving.get(service.id)
            if service.live_version is None or current is None or current[0] != service.live_version:
                try:
                    self.version_for(service)
                except Exception:  # noqa: BLE001 - the next request or refresh tries again
                    log.exception("following the live version of %s failed", service.name)

    def pending(self) -> bool:
        """A switch is waiting for its pool to warm: keep refreshing until it is done."""
        pointers = self.registry.live_pointers()
        with self.lock:
            return any(self.serving.get(sid, (live,))[0] != live for sid, (_, live) in pointers.items()
                       if sid in self.serving)

    def _watch(self) -> None:
        registry = self.registry
        if registry.dialect == "postgresql":
            self._listen(registry)
        marker = None
        while not self.stopped.is_set():
            try:
                new = registry.change_marker()
                if new != marker or self.pending():
                    marker = new
                    self.refresh()
            except Exception:  # noqa: BLE001 - a passing database error; try again
                log.exception("watching the registry failed")
            self.stopped.wait(self.poll_s)

    def _listen(self, registry) -> None:
        """PostgreSQL: wake on NOTIFY, re-check every second anyway; return to polling on failure."""
        import psycopg

        url = registry.url.replace("postgresql+psycopg://", "postgresql://")
        while not self.stopped.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.refresh()
                    while not self.stopped.is_set():
                        woke = any(True for _ in conn.notifies(timeout=1.0, stop_after=1))
                        if woke or self.pending():
                            self.refresh()
            except Exception:  # noqa: BLE001 - fall back to polling until the database is back
                log.exception("LISTEN on the registry failed; polling instead")
                return

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=3)
