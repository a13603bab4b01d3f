"""Building the artifact, one immutable archive per published version (publishing.md, "The artifact").

Reading and verifying one (``Artifact``, ``load``) and the digest are the sandbox package's
(``scorepub_sandbox/artifact.py``), as a template verifies the artifact it is given.
"""
from __future__ import annotations

import io
import zipfile

from scorepub_sandbox.artifact import (CONTENT_MEMBERS, FORMAT, MANIFEST, Artifact, canonical_json, content_digest,
                                       load, sha256)

from .bundle import FIXED_TIME

__all__ = ["FORMAT", "CONTENT_MEMBERS", "MANIFEST", "Artifact", "build", "load", "sha256", "canonical_json",
           "content_digest"]


def build(service: str, members: dict, environment: dict, published: dict) -> tuple[str, bytes]:
    """Freeze content members into an archive; return (digest, archive bytes)."""
    unknown = set(members) - set(CONTENT_MEMBERS)
    if unknown:
        raise ValueError(f"not artifact members: {sorted(unknown)}")
    hashes = {name: sha256(data) for name, data in sorted(members.items())}
    digest = content_digest(service, hashes)
    manifest = {
        "format": FORMAT,
        "service": service,
        "digest": digest,
        "members": {n: {"sha256": h, "size": len(members[n])} for n, h in hashes.items()},
        "environment": environment,
        "published": published,
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in [(MANIFEST, canonical_json(manifest))] + sorted(members.items()):
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.external_attr = 0o644 << 16
            # the bundle is a zip already: store it as it is
            info.compress_type = zipfile.ZIP_STORED if name == "bundle.zip" else zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return digest, out.getvalue()
