"""What one web process holds: settings, the registry, the artifact store and the runtime."""
from __future__ import annotations

import dataclasses
import threading

import orjson

from publisher.artifact_store import FolderArtifactStore
from publisher.registry import Registry
from publisher.schema import ServiceSchema, parse_schema

from .runtime.dispatcher import Runtime


@dataclasses.dataclass
class AppState:
    settings: object
    registry: Registry
    store: FolderArtifactStore
    runtime: Runtime
    _schemas: dict = dataclasses.field(default_factory=dict)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @classmethod
    def open(cls, settings) -> "AppState":
        registry = Registry(settings.database_url)
        store = FolderArtifactStore(settings.artifact_dir)
        return cls(settings, registry, store, Runtime(settings, store.get))

    def schema(self, digest: str, schema_json: str) -> ServiceSchema:
        """Parsed once per version (versions are immutable, so the digest is a safe key)."""
        schema = self._schemas.get(digest)
        if schema is None:
            schema = parse_schema(orjson.loads(schema_json), source=f"schema of {digest[:12]}")
            with self._lock:
                self._schemas[digest] = schema
        return schema

    def close(self) -> None:
        self.runtime.close()
        self.registry.dispose()
