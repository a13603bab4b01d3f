"""Where artifact archives live, addressed by digest.

An interface with one implementation per kind of storage; the local folder serves both the
embedded default and a shared mounted folder in a cluster (rename is atomic on one file
system, so readers never see half an artifact).
"""
from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path
from typing import Protocol

from .errors import ArtifactError

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class ArtifactStore(Protocol):
    def put(self, digest: str, data: bytes) -> None: ...
    def get(self, digest: str) -> bytes: ...


class FolderArtifactStore:
    """Artifacts as ``<root>/<digest[:2]>/<digest>.zip``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        if not _DIGEST.fullmatch(digest):
            raise ArtifactError(f"not a sha256 digest: {digest!r}")
        return self.root / digest[:2] / f"{digest}.zip"

    def put(self, digest: str, data: bytes) -> None:
        """Write to a temporary name in the same folder, fsync, check, then rename into place."""
        target = self.path(digest)
        if target.is_file():
            return  # content-addressed: the same digest is the same content
        for folder in (self.root, target.parent):  # scripts and models: not for every local user
            folder.mkdir(mode=0o750, parents=True, exist_ok=True)
        _sweep_stale(target.parent)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".zip", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if Path(tmp).stat().st_size != len(data):
                raise ArtifactError(f"artifact {digest[:12]}: short write")
            os.chmod(tmp, 0o440)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def get(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"artifact {digest[:12]} is missing from {self.root}") from None


STALE_TMP_S = 3600  # a publish writes its artifact in seconds: an older temporary file was abandoned


def _sweep_stale(folder: Path) -> None:
    """Remove temporary files a killed publish left (``kill -9`` between write and rename)."""
    now = time.time()
    for leftover in folder.glob(".tmp-*.zip"):
        try:
            if now - leftover.stat().st_mtime > STALE_TMP_S:
                leftover.unlink()
        except OSError:
            pass  # another publish's, just renamed or removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
