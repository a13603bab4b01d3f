"""What never changes for a published version, computed once per process: versions are
immutable, so the digest is a safe key."""
from __future__ import annotations

import logging
import threading

import orjson

from publisher import artifact
from publisher.schema import ServiceSchema, parse_schema

from . import openapi
from .calls import CallCore, CallFailed, CallRequest, Target

log = logging.getLogger("scorepub.versions")


class VersionCache:
    def __init__(self, store, calls: CallCore):
        self.store = store
        self.calls = calls
        self.lock = threading.Lock()
        self._schemas: dict[str, ServiceSchema] = {}
        self._samples: dict[str, dict | None] = {}
        self._examples: dict[str, tuple[dict | None, str | None]] = {}
        self._openapi: dict[tuple[str, int, str], bytes] = {}

    def schema(self, digest: str, schema_json: str) -> ServiceSchema:
        schema = self._schemas.get(digest)
        if schema is None:
            schema = parse_schema(orjson.loads(schema_json), source=f"schema of {digest[:12]}")
            self._schemas[digest] = schema
        return schema

    def sample(self, digest: str) -> dict | None:
        if digest not in self._samples:
            self._samples[digest] = artifact.load(self.store.get(digest), digest).sample
        return self._samples[digest]

    def openapi(self, service: str, number: int, digest: str, schema_json: str) -> bytes:
        """The version's OpenAPI document as JSON, built once (it names the service and the
        version number, so those are part of the key with the digest)."""
        key = (service, number, digest)
        doc = self._openapi.get(key)
        if doc is None:
            sample = openapi.capped_example(self.sample(digest))
            doc = orjson.dumps(openapi.build(service, number, self.schema(digest, schema_json), sample))
            with self.lock:
                self._openapi[key] = doc
        return doc

    def example(self, service: str, digest: str, schema_json: str) -> tuple[dict | None, str | None]:
        """The native response to sample.json (for the API help page), or why it failed."""
        if digest not in self._examples:
            sample = self.sample(digest)
            found: tuple[dict | None, str | None] = (None, None)
            if sample is not None:
                target = Target(service, digest, self.schema(digest, schema_json))
                try:
                    scored = self.calls.score(target, CallRequest(b"", "rows", "rows", document=sample))
                    found = (orjson.loads(scored.body), None)
                except CallFailed as failed:
                    log.warning("the example call of %s (%s) failed: %s", service, digest[:12], failed)
                    found = (None, f"{failed.error.code}: {failed.error.message}")
            self._examples[digest] = found
        return self._examples[digest]
