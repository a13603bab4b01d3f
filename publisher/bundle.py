"""The Script Bundle (third port): checked, then normalized into a reproducible zip.

Normalizing (sorted members, fixed timestamps and permissions) makes the same bundle content
give the same bytes, hence the same artifact digest, however it was zipped.
"""
from __future__ import annotations

import io
import os
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from scorepub_sandbox.bundle import check_name as _check_name
from scorepub_sandbox.bundle import read_zip  # the publisher's readers of bundles find it here too

from .errors import BundleError

__all__ = ["FIXED_TIME", "normalize_zip", "zip_folder", "read_zip", "write_zip"]

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_CHUNK = 1 << 20


def normalize_zip(data: bytes, max_bytes: int, max_files: int) -> bytes:
    """Check a bundle zip and return its normalized bytes; raise BundleError naming the problem."""
    try:
        source = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError):
        raise BundleError("bundle: not a zip file") from None
    with source:
        members = []
        for info in source.infolist():
            name = _check_name(info.filename)
            if info.flag_bits & 0x1:
                raise BundleError(f"bundle: entry '{info.filename}' is encrypted")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise BundleError(f"bundle: entry '{info.filename}' is a symbolic link")
            if info.is_dir() or not name:
                continue
            if stat.S_IFMT(mode) and not stat.S_ISREG(mode):  # many zips store no file type
                raise BundleError(f"bundle: entry '{info.filename}' is not a regular file")
            members.append((name, info))
        if len(members) > max_files:
            raise BundleError(f"bundle: {len(members)} files; at most {max_files} are allowed")
        names = [n for n, _ in members]
        if len(set(names)) != len(names):
            dupe = next(n for n in names if names.count(n) > 1)
            raise BundleError(f"bundle: entry '{dupe}' appears twice")
        taken = set(names)
        for name in names:
            clash = next((str(p) for p in PurePosixPath(name).parents if str(p) in taken), None)
            if clash:
                raise BundleError(f"bundle: entry '{name}' is inside '{clash}', which is a file")
        files = []
        total = 0
        for name, info in sorted(members, key=lambda m: m[0]):
            chunks = []
            try:
                with source.open(info) as f:
                    while chunk := f.read(_CHUNK):
                        total += len(chunk)
                        if total > max_bytes:
                            raise BundleError(f"bundle: unpacks to more than {max_bytes} bytes")
                        chunks.append(chunk)
            except BundleError:
                raise
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as exc:
                raise BundleError(f"bundle: entry '{info.filename}' is damaged ({exc})") from None
            files.append((name, b"".join(chunks)))
    return write_zip(files)


def zip_folder(folder: Path, max_bytes: int, max_files: int) -> bytes:
    """Zip a bundle folder reproducibly; links and special files are refused."""
    files, total = [], 0
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for entry in list(dirs) + names:
            path = Path(root, entry)
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                raise BundleError(f"bundle: '{rel}' is a symbolic link")
            if entry in names and not path.is_file():
                raise BundleError(f"bundle: '{rel}' is not a regular file")
        for name in names:
            path = Path(root, name)
            if name.endswith(".pyc"):
                continue
            data = path.read_bytes()
            total += len(data)
            if total > max_bytes:
                raise BundleError(f"bundle: more than {max_bytes} bytes")
            files.append((path.relative_to(folder).as_posix(), data))
            if len(files) > max_files:
                raise BundleError(f"bundle: more than {max_files} files")
    return write_zip(sorted(files))


def write_zip(files) -> bytes:
    """(name, bytes) pairs, in order, as a normalized zip (fixed times and permissions)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files:
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data, compresslevel=6)
    return out.getvalue()
