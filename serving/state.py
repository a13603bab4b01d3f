"""What one web process holds: settings, the registry, the artifact store, the runtime."""
from __future__ import annotations

import dataclasses
import logging
import threading

import orjson

from publisher import artifact
from publisher.artifact_store import FolderArtifactStore
from publisher.packages import installed_versions
from publisher.registry import Registry
from publisher.schema import ServiceSchema, parse_schema

from .call_log import CallLog
from .catalog import Catalog
from .live_pointer import LiveRouter
from .runtime.dispatcher import Runtime
from .throttle import Throttle

log = logging.getLogger("scorepub.state")

SANDBOX_OFF_WARNING = ("SCOREPUB_SANDBOX=off: scripts run WITHOUT the sandbox (no namespaces, uid drop, Landlock "
                       "or seccomp). Development only: never serve untrusted scripts or callers like this.")


@dataclasses.dataclass
class AppState:
    settings: object
    registry: Registry
    store: FolderArtifactStore
    runtime: Runtime
    throttle: Throttle
    call_log: CallLog
    catalog: Catalog | None = None
    router: "LiveRouter | None" = None
    _schemas: dict = dataclasses.field(default_factory=dict)
    _samples: dict = dataclasses.field(default_factory=dict)
    _examples: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def open(cls, settings) -> "AppState":
        registry = Registry(settings.database_url)
        store = FolderArtifactStore(settings.artifact_dir)
        state = cls(settings, registry, store, Runtime(settings, store.get), Throttle(settings.run_dir / "throttle"),
                    CallLog(registry, settings.call_log_keep))
        state.catalog = Catalog(registry)
        state.router = LiveRouter(state)
        return state

    def schema(self, digest: str, schema_json: str) -> ServiceSchema:
        """Parsed once per version (versions are immutable, so the digest is a safe key)."""
        schema = self._schemas.get(digest)
        if schema is None:
            schema = parse_schema(orjson.loads(schema_json), source=f"schema of {digest[:12]}")
            self._schemas[digest] = schema
        return schema

    def sample(self, digest: str) -> dict | None:
        if digest not in self._samples:
            self._samples[digest] = artifact.load(self.store.get(digest), digest).sample
        return self._samples[digest]

    def example_response(self, digest: str, schema_json: str) -> dict | None:
        """The native response to sample.json, for the API help page (computed once per version)."""
        if digest not in self._examples:
            from . import codecs

            sample = self.sample(digest)
            example = None
            if sample is not None:
                schema = self.schema(digest, schema_json)
                try:
                    request = codecs.BY_NAME["rows"].decode_document(sample, schema, self.settings.max_rows)
                    result = self.runtime.call(digest, schema, request.inputs, request.parameters)
                    example = orjson.loads(codecs.BY_NAME["rows"].encode(result, False))
                except Exception:  # noqa: BLE001 - the page still shows the request side
                    log.exception("example response for %s failed", digest[:12])
            self._examples[digest] = example
        return self._examples[digest]

    def live_versions(self):
        for service in self.registry.services():
            if service.live_version is not None:
                yield service, self.registry.version(service.name, service.live_version)

    def warm(self) -> None:
        """Start the workers of every live version in the background, so first calls are fast."""
        def run():
            try:
                for _service, version in self.live_versions():
                    self.runtime.pool(version.digest, self.schema(version.digest, version.schema_json)).warm()
            except Exception:  # noqa: BLE001 - warming is an optimization; calls start pools anyway
                log.exception("warming the live versions failed")

        threading.Thread(target=run, daemon=True, name="warm-pools").start()

    def readiness(self) -> dict:
        """Registry reachable, sandbox layers, workers of each live version warm (for /readyz)."""
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
        for service, version in live:
            # a version promoted or published since start is warmed here, so readiness converges
            pool = self.runtime.pool(version.digest, self.schema(version.digest, version.schema_json))
            pool.warm()
            status = {"version": version.version, **pool.status()}
            report["services"][service.name] = status
            # a script that fails to load is reported, but does not take the other services down
            report["ready"] &= status["ready"] or status["load_error"]
        return report

    def close(self) -> None:
        self.router.close()
        self.call_log.close()
        self.runtime.close()
        self.throttle.close()
        self.registry.dispose()
