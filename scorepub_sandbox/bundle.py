"""Reading a normalized Script Bundle: its files, and unpacking it into a template's folder.

The checks and normalization at publish stay in ``publisher/bundle.py``; the entry-name check
is shared, as the template applies it again (defence in depth).
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath

from .errors import BundleError

_CHUNK = 1 << 20


def check_name(name: str) -> str:
    """Refuse names that could escape the bundle folder; return the normalized name."""
    if "\x00" in name:
        raise BundleError(f"bundle: entry {name!r} has a NUL byte in its name")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise BundleError(f"bundle: entry '{name}' has an absolute path")
    parts = PurePosixPath(unified).parts
    if ".." in parts:
        raise BundleError(f"bundle: entry '{name}' has a '..' component")
    # what the file system takes (NAME_MAX, PATH_MAX): a longer name would make every call fail
    # when the bundle is unpacked, not the publish
    long = next((p for p in parts if len(p.encode("utf-8", "surrogateescape")) > 255), None)
    if long is not None:
        raise BundleError(f"bundle: entry '{name[:80]}...' has a name part of {len(long.encode('utf-8', 'surrogateescape'))} "
                          "bytes (at most 255)")
    if len(unified.encode("utf-8", "surrogateescape")) > 3000:
        raise BundleError(f"bundle: entry '{name[:80]}...' has a path over 3000 bytes")
    return "/".join(p for p in parts if p not in ("", "."))


def read_zip(data: bytes) -> dict:
    """A normalized bundle's files, name -> bytes."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}


def unpack(data: bytes, dest: Path) -> None:
    """Unpack a normalized bundle (already checked at publish) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            name = check_name(info.filename)  # defence in depth
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
