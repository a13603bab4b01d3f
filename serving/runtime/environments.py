"""Which interpreter a version's sandbox runs under, and building the ones a replica lacks.

A version with a ``requirements.lock`` runs in the environment built from that lock
(``publisher.environments``). A replica that does not have it yet builds it here, from the
lock frozen in the artifact, in the background: a call never waits for an install. Until the
build is done the version's pool does not start: calls get :class:`EnvironmentBuilding` (503),
``warm`` (warm-before-switch, start-up) starts the pool once the build is over, and
``status`` reports the build, so a replica does not switch to, or report ready for, a version
it cannot run yet.
"""
from __future__ import annotations

import concurrent.futures
import logging
import sys
import threading
import time
from typing import Callable

from publisher.environments import Environments, lock_id
from publisher.errors import PublishError
from scorepub_sandbox import artifact

from .errors import EnvironmentBuilding, EnvironmentUnavailable, RuntimeFailure

log = logging.getLogger("scorepub.runtime")
RETRY_FAILED_AFTER_S = 60.0  # a build that failed (the index unreachable, say) is tried again after this


class RuntimeEnvironments:
    def __init__(self, settings):
        self.envs = Environments(settings)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="env-build")
        self._lock = threading.Lock()
        self._building: dict[str, concurrent.futures.Future] = {}  # env id -> its build
        self._failed: dict[str, tuple[float, str]] = {}  # env id -> (when, why)
        self._waiting: dict[str, list[Callable[[], None]]] = {}  # env id -> what to run once built
        self.of_digest: dict[str, str] = {}  # digest -> env id, for the versions not in the default one

    def python(self, digest: str, art: artifact.Artifact, when_built: Callable[[], None] | None = None) -> str:
        """The interpreter of the version's environment; raise EnvironmentBuilding (after starting
        the build, if none runs) when this replica does not have it yet."""
        lock = art.lock
        if lock is None:
            return sys.executable
        env_id = lock_id(lock)
        self.of_digest[digest] = env_id
        found = self.envs.find(lock)
        if found is not None:
            self.envs.mark_used(env_id)
            return str(found.python)
        with self._lock:
            failed = self._failed.get(env_id)
            if failed is not None and time.monotonic() - failed[0] < RETRY_FAILED_AFTER_S:
                raise EnvironmentUnavailable(f"the environment {env_id[:12]} of this version could not be built "
                                             f"on this replica: {failed[1]}")
            if when_built is not None:
                self._waiting.setdefault(env_id, []).append(when_built)
            if env_id not in self._building:
                log.info("building environment %s (from the lock of %s)", env_id[:12], digest[:12])
                self._building[env_id] = self._executor.submit(self._build, env_id, lock)
        raise EnvironmentBuilding(f"this version's environment ({env_id[:12]}) is being built on this replica; "
                                  "try again in a few seconds")

    def _build(self, env_id: str, lock: bytes) -> None:
        start = time.monotonic()
        try:
            self.envs.ensure(lock)
        except (PublishError, OSError) as exc:
            log.error("building environment %s failed: %s", env_id[:12], exc)
            with self._lock:
                self._failed[env_id] = (time.monotonic(), str(exc))
                self._building.pop(env_id, None)
                self._waiting.pop(env_id, None)
            return
        log.info("environment %s built in %.1f s", env_id[:12], time.monotonic() - start)
        with self._lock:
            self._failed.pop(env_id, None)
            self._building.pop(env_id, None)
            then = self._waiting.pop(env_id, [])
        for fn in then:
            try:
                fn()
            except RuntimeFailure:
                pass  # the next call or warm says why
            except Exception:  # noqa: BLE001 - a warm-up after the build; calls start pools anyway
                log.exception("starting a pool after its environment was built")

    def status(self, digest: str) -> dict | None:
        """``{"id", "state": "building" | "failed", "error"?}`` while a digest's environment is
        not ready on this replica; None otherwise."""
        env_id = self.of_digest.get(digest)
        if env_id is None:
            return None
        with self._lock:
            if env_id in self._building:
                return {"id": env_id, "state": "building"}
            if env_id in self._failed:
                return {"id": env_id, "state": "failed", "error": self._failed[env_id][1]}
        return None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
