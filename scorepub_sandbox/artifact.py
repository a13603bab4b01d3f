"""The artifact: one immutable archive per published version (publishing.md, "The artifact").

Its **digest** identifies its content: the sha256 of a canonical listing of the service name
and every content member's sha256. The manifest's publish record (version, who, when,
message) and environment are kept inside the archive but outside the digest, so publishing
the same folder twice gives the same digest however and whenever it is done.

Reading and verifying an artifact happens in the template too, so it lives here; building one
(``build``) is the publisher's (``publisher/artifact.py``).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import zipfile

import orjson

from .bundle import read_zip
from .errors import ArtifactError

FORMAT = 1
CONTENT_MEMBERS = ("score.py", "bundle.zip", "schema.json", "sample.json", "requirements.txt", "requirements.lock",
                   # a Python 2.7 experiment: the sources as published, and what the conversion did
                   "original/score.py", "original/bundle.zip", "conversion.json")
MANIFEST = "manifest.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def content_digest(service: str, member_hashes: dict) -> str:
    return sha256(canonical_json({"format": FORMAT, "service": service, "members": member_hashes}))


@dataclasses.dataclass
class Artifact:
    """An artifact's members, in memory."""

    service: str
    members: dict  # name -> bytes (content members only)
    manifest: dict

    @property
    def digest(self) -> str:
        return self.manifest["digest"]

    @property
    def score_py(self) -> bytes:
        return self.members["score.py"]

    @property
    def bundle(self) -> bytes | None:
        return self.members.get("bundle.zip")

    @property
    def schema_document(self) -> dict:
        return orjson.loads(self.members["schema.json"])

    @property
    def lock(self) -> bytes | None:
        """The environment's lock (``requirements.lock``); None: the default environment."""
        return self.members.get("requirements.lock")

    @property
    def conversion(self) -> dict | None:
        raw = self.members.get("conversion.json")
        return orjson.loads(raw) if raw is not None else None

    @functools.cached_property
    def _bundle_files(self) -> dict:
        return {} if self.bundle is None else read_zip(self.bundle)

    @functools.cached_property
    def _published_bundle_files(self) -> dict:
        original = self.members.get("original/bundle.zip")
        return self._bundle_files if original is None else read_zip(original)

    def published_source(self, name: str) -> bytes | None:
        """A converted file as the user published it: ``score.py`` or ``Script Bundle/<path>``."""
        if name == "score.py":
            return self.members.get("original/score.py", self.score_py)
        return self._published_bundle_files.get(name.split("/", 1)[1])

    def running_source(self, name: str) -> bytes | None:
        """The same file as it runs (after conversion)."""
        if name == "score.py":
            return self.score_py
        return self._bundle_files.get(name.split("/", 1)[1])

    @property
    def sample(self) -> dict | None:
        raw = self.members.get("sample.json")
        return orjson.loads(raw) if raw is not None else None


def load(data: bytes, expected_digest: str) -> Artifact:
    """Open archive bytes and verify every member and the digest; raise ArtifactError if not."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            manifest = orjson.loads(z.read(MANIFEST))
            listed = manifest["members"]
            members = {name: z.read(name) for name in listed}
            expected = {name: (entry["sha256"], entry["size"]) for name, entry in listed.items()}
            unlisted = sorted(set(z.namelist()) - set(listed) - {MANIFEST})
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, AttributeError, OSError) as exc:
        raise ArtifactError(f"artifact {expected_digest[:12]} is unreadable ({exc})") from None
    if unlisted:
        raise ArtifactError(f"artifact {expected_digest[:12]} has an unexpected member {unlisted[0]!r}")
    hashes = {}
    for name, data_ in members.items():
        if name not in CONTENT_MEMBERS:
            raise ArtifactError(f"artifact {expected_digest[:12]} has an unexpected member {name!r}")
        hashes[name] = sha256(data_)
        if (hashes[name], len(data_)) != expected[name]:
            raise ArtifactError(f"artifact {expected_digest[:12]}: member {name} does not match its sha256 and size")
    digest = content_digest(manifest.get("service", ""), dict(sorted(hashes.items())))
    if digest != expected_digest or manifest.get("digest") != expected_digest:
        raise ArtifactError(f"artifact does not match its digest (expected {expected_digest}, content is {digest})")
    return Artifact(manifest["service"], members, manifest)
