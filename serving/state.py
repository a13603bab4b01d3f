"""What one web process holds, built in a fixed order: settings, the registry and its catalog,
the artifact store, the runtime, the call core, the version cache, the live router, the call log."""
from __future__ import annotations

import dataclasses
import logging
import threading

from publisher.artifact_store import FolderArtifactStore
from publisher.packages import installed_versions
from publisher.registry import Registry
from publisher.settings import Settings

from .call_log import CallLog
from .calls import CallCore
from .catalog import Catalog
from .live_pointer import LiveRouter
from .runtime.client import HostRuntime
from .runtime.dispatcher import SANDBOX_OFF_WARNING, Runtime
from .runtime.errors import RuntimeFailure
from .throttle import Throttle
from .version_cache import VersionCache

log = logging.getLogger("scorepub.state")

@dataclasses.dataclass(frozen=True)
class AppState:
    settings: Settings
    registry: Registry
    catalog: Catalog
    store: FolderArtifactStore
    runtime: Runtime | HostRuntime  # the replica's pool host under `scorepub serve`, else in-process
    throttle: Throttle
    calls: CallCore
    versions: VersionCache
    router: LiveRouter
    call_log: CallLog

    @classmethod
    def open(cls, settings: Settings) -> "AppState":
        registry = Registry(settings.database_url)
        store = FolderArtifactStore(settings.artifact_dir)
        runtime = HostRuntime(settings) if settings.pool_socket else Runtime(settings, store.get)
        throttle = Throttle(settings.run_dir / "throttle")
        calls = CallCore(settings, runtime, throttle)
        return cls(settings, registry, Catalog(registry), store, runtime, throttle, calls,
                   VersionCache(store, calls), LiveRouter(registry, runtime), CallLog(registry, settings.call_log_keep))

    def schema(self, digest: str, schema_json: str):
        return self.versions.schema(digest, schema_json)

    def sample(self, digest: str):
        return self.versions.sample(digest)

    def live_versions(self):
        for service in self.registry.services():
            if service.live_version is not None:
                yield service, self.registry.version(service.name, service.live_version)

    def warm(self) -> None:
        """Start the workers of every live version in the background, so first calls are fast."""
        def run():
            try:
                for _service, version in self.live_versions():
                    self.runtime.warm(version.digest)
            except Exception:  # noqa: BLE001 - warming is an optimization; calls start pools anyway
                log.exception("warming the live versions failed")

        threading.Thread(target=run, daemon=True, name="warm-pools").start()

    def readiness(self) -> dict:
        """Registry reachable, sandbox layers, the pools of live versions (for /readyz). It reads
        state only: pools are started by the live router and by calls, never by a probe."""
        sandbox = self.runtime.sandbox_report()
        report = {"ready": True, "registry": {"ok": True}, "services": {}, "sandbox": sandbox,
                  "packages": installed_versions()}
        if sandbox["mode"] == "off":
            sandbox["warning"] = SANDBOX_OFF_WARNING
        elif sandbox["missing"]:
            report["ready"] = False  # strict mode without every layer: nothing may run
        try:
            live = list(self.live_versions())
        except Exception as exc:  # noqa: BLE001 - the report says what failed
            report["ready"] = False
            report["registry"] = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            return report
        try:
            pools = self.runtime.status([version.digest for _, version in live])
        except RuntimeFailure as exc:  # the pool host is down (it is restarted by scorepub serve)
            report["ready"] = False
            report["runtime"] = {"ok": False, "error": str(exc)}
            return report
        environments: dict[str, dict] = {}
        for service, version in live:
            status = {"version": version.version, **pools[version.digest]}
            report["services"][service.name] = status
            # a pool stopped for being unused starts on the next call; a script that fails to load
            # is reported, but does not take the other services down; a version whose environment
            # this replica is still building (or failed to build) cannot serve yet
            report["ready"] &= bool(status.get("ready") or status.get("load_error") or status.get("stopped_idle"))
            if "environment" in status:
                environments[status["environment"]["id"]] = status["environment"]
        report["environments"] = {
            "building": sorted(i for i, e in environments.items() if e["state"] == "building"),
            "failed": {i: e["error"] for i, e in environments.items() if e["state"] == "failed"}}
        return report

    def close(self) -> None:
        self.router.close()
        self.call_log.close()
        self.runtime.close()
        self.throttle.close()
        self.registry.dispose()
