"""What a request needs from the registry (service, key hashes, version), cached per process.

Every change to the registry writes an audit entry, so the newest audit id is a version number
of the whole registry: each request asks for it (one indexed query) and the cache is kept only
while it has not moved. A regenerated key or a retired version is therefore refused at once, as
with no cache, for a quarter of the queries.
"""
from __future__ import annotations

import threading

from publisher import api_keys
from publisher.registry import Registry, ServiceRecord, VersionRecord


class Catalog:
    def __init__(self, registry: Registry):
        self.registry = registry
        self.lock = threading.Lock()
        self.marker: int | None = None
        self._services: dict[str, ServiceRecord] = {}
        self._keys: dict[str, list[str]] = {}
        self._versions: dict[tuple[str, int], VersionRecord] = {}

    def refresh(self) -> None:
        """Once per request: drop everything if the registry changed since the last look."""
        marker = self.registry.change_marker()
        if marker != self.marker:
            with self.lock:
                self._services, self._keys, self._versions = {}, {}, {}
                self.marker = marker

    def service(self, name_or_id: str) -> ServiceRecord:
        record = self._services.get(name_or_id)
        if record is None:
            record = self.registry.service(name_or_id)  # NotFound is not cached
            self._services[name_or_id] = record
        return record

    def check_key(self, service: ServiceRecord, key: str | None) -> bool:
        if not key:
            return False
        hashes = self._keys.get(service.id)
        if hashes is None:
            hashes = self.registry.key_hashes(service.id)
            self._keys[service.id] = hashes
        return api_keys.matches(key, hashes)

    def version(self, service: ServiceRecord, number: int) -> VersionRecord:
        record = self._versions.get((service.id, number))
        if record is None:
            record = self.registry.version_of(service, number)
            self._versions[(service.id, number)] = record
        return record
