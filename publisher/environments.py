"""Per-version Python environments: resolved into a lock at publish, built once per lock.

A service whose ``requirements.txt`` asks for what the server does not have gets its own
environment. Publishing resolves the requirements *together with the classic package set*
(so a script that adds xgboost still has scikit-learn and matplotlib) into a fully pinned,
hashed ``requirements.lock`` with uv, and the lock is frozen into the artifact. Building
installs exactly that lock into ``<env_dir>/<sha256 of the lock>``, so identical locks share
one environment across versions and services, and every replica builds the same thing.

Why these choices:
- wheels only (``--no-build``): building an sdist runs its setup code on the host, outside the
  sandbox, and takes minutes; a package without a wheel for this Python is refused at publish;
- the server's versions of the classic packages are uv's *preferences*: adding ``tabulate``
  keeps the scikit-learn a model was pickled with, where the requirements allow it;
- pandas, numpy, orjson and pyseccomp are in every environment: the sandboxed runtime runs on
  them (``scorepub_sandbox`` itself is loaded from scorepub's install, never copied in);
- an environment is complete only once its ``ENV_INFO`` file is written, last; a build holds
  an exclusive lock file, so concurrent publishes of one lock build it once.

Nothing here runs at call time: the serving side calls :meth:`Environments.ensure` before a
version's pool starts (warm-before-switch), never while a call waits.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import hashlib
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Callable

import orjson
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .errors import PublishError
from .installers import installer_for
from .packages import CLASSIC_PACKAGES

# what the sandboxed runtime imports: in every environment, at the server's versions if unpinned
RUNTIME_PACKAGES = ("numpy", "pandas", "orjson", "pyseccomp")
LOCK_NAME = "requirements.lock"
LOCK_SOURCES = ("requirements.lock", "pylock.toml", "uv.lock")  # a lock the user gives wins
ENV_INFO = ".scorepub-env.json"
FORMAT = 1  # of the lock header and the resolution cache key
# Releases built against NumPy 1's ABI: with NumPy 2 they fail to import ("numpy.dtype size
# changed"), yet their metadata allows it. A lock pinning one below these gets numpy<2.
NUMPY1_ABI = {"pandas": "2.2.2", "scipy": "1.13.0", "scikit-learn": "1.4.2", "matplotlib": "3.8.4",
              "statsmodels": "0.14.2", "pyarrow": "16.0.0", "numexpr": "2.10.0", "bottleneck": "1.4.0"}

Progress = Callable[[str, str], None]  # (stage, what is happening); stages in STAGES order
STAGES = ("resolve", "install", "check", "done")


def _quiet(stage: str, detail: str) -> None:
    pass


@dataclasses.dataclass(frozen=True)
class Environment:
    id: str  # sha256 of the lock: also the folder's name
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def info(self) -> dict:
        return orjson.loads((self.path / ENV_INFO).read_bytes())


@dataclasses.dataclass
class Resolution:
    lock: bytes | None  # None: the default environment (the server's own) serves it
    warnings: list[str]
    cached: bool = False


def lock_id(lock: bytes) -> str:
    return hashlib.sha256(lock).hexdigest()


def python_tag() -> str:
    """What a lock was resolved for; part of the lock, so another Python gives another id."""
    return f"{sys.implementation.name}-{platform.python_version()}-{sysconfig.get_platform()}"


def pinned(lock: bytes) -> dict[str, str]:
    """``{canonical name: version}`` of a lock's ``name==version`` lines."""
    out = {}
    for line in lock.decode("utf-8", "replace").splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", line)
        if match:
            out[canonicalize_name(match.group(1))] = match.group(2)
    return out


def parse_requirements(text: bytes, source: str = "requirements.txt") -> list[Requirement]:
    reqs = []
    for number, line in enumerate(text.decode("utf-8", "replace").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            raise PublishError(f"{source}:{number}: options such as {line.split()[0]!r} are not taken; "
                               "package indexes are the server's (SCOREPUB_PACKAGE_INDEX)", field="requirements.txt")
        try:
            reqs.append(Requirement(line))
        except InvalidRequirement as exc:
            raise PublishError(f"{source}:{number}: {exc}", field="requirements.txt") from None
        if reqs[-1].url:
            raise PublishError(f"{source}:{number}: a direct URL ({reqs[-1].url}) is not taken: name a "
                               "package from the index", field="requirements.txt")
    return reqs


def satisfied_here(reqs: list[Requirement]) -> bool:
    """Every requirement is met by the server's own installation (the default environment)."""
    for req in reqs:
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            return False
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            return False
    return True


def given_lock_pins(name: str, data: bytes) -> list[str]:
    """A lock the user gave, as ``name==version`` lines (its hashes are checked again by uv)."""
    if name == "requirements.lock":
        reqs = parse_requirements(re.sub(rb"\\\s*\n\s*--hash=\S+", b"", data).replace(b"\\\n", b""), name)
        loose = [str(r) for r in reqs if len(r.specifier) != 1 or next(iter(r.specifier)).operator != "=="]
        if loose:
            raise PublishError(f"{name}: every line must pin one version (name==version); not {loose[0]}",
                               field="requirements.txt")
        return [str(r) for r in reqs]
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PublishError(f"{name}: not valid TOML ({exc})", field="requirements.txt") from None
    pins = []
    for package in document.get("packages" if name == "pylock.toml" else "package", []):
        source = package.get("source", {})
        if not isinstance(package, dict) or "version" not in package or "name" not in package:
            continue  # the project itself (virtual/editable): not a package to install
        if isinstance(source, dict) and (source.get("editable") or source.get("virtual")):
            continue
        pins.append(f"{package['name']}=={package['version']}")
    if not pins:
        raise PublishError(f"{name}: lists no packages", field="requirements.txt")
    return pins


class Environments:
    """The environments folder: resolve, build, look up, list and prune."""

    def __init__(self, settings, uv: str | None = None):
        self.settings = settings
        self.root = Path(settings.env_dir)
        self._uv = uv  # the uv binary (tests give a stand-in); None: the installed one
        self._installer = None

    @property
    def installer(self):
        if self._installer is None:
            self._installer = installer_for(self.settings, self._index_args(), self._uv)
        return self._installer

    def _index_args(self) -> list[str]:
        args = []
        if self.settings.package_index:
            args += ["--index-url", self.settings.package_index]
        for link in self.settings.find_links.split():
            args += ["--find-links", link]
        return args

    # -- resolution -------------------------------------------------------------------------

    def resolve(self, requirements: bytes | None, given: tuple[str, bytes] | None = None, *,
                upgrade: bool = False, progress: Progress = _quiet) -> Resolution:
        """The lock for an experiment's requirements (None: the default environment serves it)."""
        if given is not None:
            pins, source = given_lock_pins(*given), given[0]
            reqs = [Requirement(p) for p in pins]
        elif requirements:
            reqs, source = parse_requirements(requirements), "requirements.txt"
            if satisfied_here(reqs):
                return Resolution(None, [])
        else:
            return Resolution(None, [])
        start = time.monotonic()
        key_doc = {"format": FORMAT, "python": python_tag(), "requirements": [str(r) for r in reqs],
                   "given": given is not None, "index": self._index_args(), "preferences": self._preferences(),
                   "installer": self.installer.name}
        key = hashlib.sha256(orjson.dumps(key_doc, option=orjson.OPT_SORT_KEYS)).hexdigest()
        cached = self.root / ".resolved" / f"{key}.lock"
        if cached.is_file() and not upgrade:
            progress("resolve", f"resolved earlier ({source} unchanged)")
            return Resolution(cached.read_bytes(), [], cached=True)
        progress("resolve", f"resolving {len(reqs)} requirement(s) with the classic package set" if given is None
                 else f"resolving {source} ({len(reqs)} pinned package(s)) with what the runtime needs")
        warnings: list[str] = []
        named = {canonicalize_name(r.name) for r in reqs}
        extras = [n for n in (RUNTIME_PACKAGES if given is not None else CLASSIC_PACKAGES + RUNTIME_PACKAGES)
                  if canonicalize_name(n) not in named]
        try:
            lock = self._compile(reqs, extras)
        except PublishError as first:
            # the requirements win a conflict: drop the classic set, keep what the runtime needs
            runtime_only = [n for n in RUNTIME_PACKAGES if canonicalize_name(n) not in named]
            if given is not None or runtime_only == extras:
                raise
            try:
                lock = self._compile(reqs, runtime_only)
            except PublishError:
                raise first from None
            left_out = sorted(set(extras) - set(runtime_only))
            warnings.append(f"{source} conflicts with the classic package set; left out: {', '.join(left_out)}")
        header = (f"# scorepub {LOCK_NAME} (format {FORMAT}) for {python_tag()}\n"
                  f"# resolved from {source}; install with: uv pip sync --require-hashes {LOCK_NAME}\n").encode()
        lock = header + lock
        cached.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(cached, lock)
        progress("resolve", f"resolved {len(pinned(lock))} packages in {time.monotonic() - start:.1f} s")
        return Resolution(lock, warnings)

    def _preferences(self) -> list[str]:
        out = []
        for name in CLASSIC_PACKAGES + RUNTIME_PACKAGES:
            try:
                out.append(f"{name}=={importlib.metadata.version(name)}")
            except importlib.metadata.PackageNotFoundError:
                pass
        return out

    def _compile(self, reqs: list[Requirement], extras: list[str]) -> bytes:
        with tempfile.TemporaryDirectory(prefix="scorepub-resolve-") as tmp:
            folder = Path(tmp)
            (folder / "requirements.txt").write_text("".join(f"{r}\n" for r in reqs))
            (folder / "classic.txt").write_text("".join(f"{n}\n" for n in extras))
            lock = self._resolve_in(folder, "")
            if _needs_numpy1(pinned(lock)):
                try:
                    lock = self._resolve_in(folder, "numpy<2\n")
                except PublishError:
                    pass  # the requirements want NumPy 2 themselves: the import check will say why
            return lock

    def _resolve_in(self, folder: Path, constraints: str) -> bytes:
        (folder / "constraints.txt").write_text(constraints)
        return self.installer.compile(folder, self._preferences(), self.settings.env_build_timeout_s)

    # -- building ---------------------------------------------------------------------------

    def path(self, lock: bytes) -> Path:
        return self.root / lock_id(lock)

    def find(self, lock: bytes) -> Environment | None:
        path = self.path(lock)
        return Environment(path.name, path) if (path / ENV_INFO).is_file() else None

    def ensure(self, lock: bytes, progress: Progress = _quiet) -> Environment:
        """The environment for ``lock``, built now if it is not there (once, however many ask)."""
        found = self.find(lock)
        if found is not None:
            return found
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / lock_id(lock), "w") as held:
            _lock_file(held, self.settings.env_build_timeout_s)
            found = self.find(lock)  # another process built it while we waited
            if found is not None:
                progress("done", "built by another publish meanwhile")
                return found
            path = self.path(lock)
            try:
                return self._build(lock, path, progress)
            except BaseException:
                _remove_tree(path)
                raise

    def _build(self, lock: bytes, path: Path, progress: Progress) -> Environment:
        start = time.monotonic()
        self.check_readable_by_sandbox()
        _remove_tree(path)  # a build that crashed half-way
        timeout = self.settings.env_build_timeout_s
        left = lambda: max(1.0, timeout - (time.monotonic() - start))  # noqa: E731 - the build's time budget
        packages = pinned(lock)
        python = str(path / "bin" / "python")
        progress("install", f"installing {len(packages)} packages into {path.name[:12]}")
        installer = self.installer
        installer.create(path, timeout)
        (path / LOCK_NAME).write_bytes(lock)
        installer.install(path / LOCK_NAME, python, left())
        self._check_size(path)  # before compiling: a refusal costs no more than the install
        progress("check", "checking that numpy and pandas import")
        check = self._python(python, ["-I", "-c", "import numpy, pandas, orjson"], left(), "importing numpy and pandas")
        if check.returncode != 0:
            last = (check.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise PublishError(f"environment: pandas {packages.get('pandas')} with numpy {packages.get('numpy')} "
                               f"does not import: {last}", field="requirements.txt")
        # bytecode now, while the folder may be written: sandboxed templates cannot write it, and
        # without it each would compile pandas afresh (a start 1.6x slower than the default's)
        progress("check", "compiling bytecode")
        installer.compile_bytecode(path / LOCK_NAME, python, left())
        size = self._check_size(path)
        seconds = time.monotonic() - start
        info = {"id": path.name, "python": python_tag(), "packages": packages, "size_bytes": size,
                "build_seconds": round(seconds, 2), "built_at": dt.datetime.now(dt.timezone.utc).isoformat()}
        _write_atomically(path / ENV_INFO, orjson.dumps(info, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        progress("done", f"built in {seconds:.1f} s, {size / 2**20:.0f} MB")
        return Environment(path.name, path)

    def _check_size(self, path: Path) -> int:
        size = tree_size(path)
        cap = self.settings.env_max_mb
        if cap and size > cap * 1024 * 1024:
            raise PublishError(f"environment: {size / 2**20:.0f} MB is over SCOREPUB_ENV_MAX_MB={cap}; "
                               "ask for fewer packages or raise the cap", field="requirements.txt")
        return size

    def _python(self, python: str, args: list[str], timeout: float, what: str) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([python, *args], capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise PublishError(f"environment: {what} took longer than SCOREPUB_ENV_BUILD_TIMEOUT_S="
                               f"{self.settings.env_build_timeout_s} s", field="requirements.txt") from None

    def check_readable_by_sandbox(self) -> None:
        """As root, scripts run under uids of their own, which must reach the environments folder:
        refuse to build into one they cannot (say, under /root) rather than fail every call."""
        if os.getuid() != 0 or self.settings.sandbox == "off":
            return
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in [self.root, *self.root.parents]:
            mode = folder.stat().st_mode
            if not mode & 0o001:
                raise PublishError(f"environment: other users cannot enter {folder} (mode {mode & 0o777:o}), so the "
                                   f"sandbox cannot read SCOREPUB_ENV_DIR={self.root}; set it to a folder they can "
                                   "read (e.g. /var/lib/scorepub/envs)", field="requirements.txt")

    # -- operations -------------------------------------------------------------------------

    def mark_used(self, env_id: str) -> None:
        used = self.root / ".used"
        used.mkdir(parents=True, exist_ok=True)
        (used / env_id).touch()

    def listing(self) -> list[dict]:
        """Every complete environment: id, size, packages, when built and last used."""
        out = []
        if not self.root.is_dir():
            return out
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(".") or not (path / ENV_INFO).is_file():
                continue
            info = Environment(path.name, path).info()
            used = self.root / ".used" / path.name
            info["last_used"] = (dt.datetime.fromtimestamp(used.stat().st_mtime, dt.timezone.utc).isoformat()
                                 if used.exists() else None)
            out.append(info)
        return out

    def prune(self, keep: set[str], min_age_s: float = 0) -> list[str]:
        """Remove every environment whose id is not in ``keep`` and that is older than
        ``min_age_s`` (and half-built leftovers that no build holds)."""
        removed = []
        if not self.root.is_dir():
            return removed
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(".") or path.name in keep or not path.is_dir():
                continue
            if time.time() - path.stat().st_mtime < min_age_s:
                continue
            locks = self.root / ".locks"
            locks.mkdir(exist_ok=True)
            with open(locks / path.name, "w") as held:
                _lock_file(held, 0)  # refuse to remove one being built right now
                _remove_tree(path)
            (self.root / ".used" / path.name).unlink(missing_ok=True)
            (locks / path.name).unlink(missing_ok=True)
            removed.append(path.name)
        return removed


def _needs_numpy1(packages: dict[str, str]) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        if Version(packages.get("numpy", "0")) < Version("2"):
            return False
        return any(name in packages and Version(packages[name]) < Version(first)
                   for name, first in NUMPY1_ABI.items())
    except InvalidVersion:
        return False


def _lock_file(handle, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise PublishError("environment: another build of the same lock is still running",
                                   field="requirements.txt") from None
            time.sleep(0.2)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _remove_tree(path: Path) -> None:
    if path.exists() or path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)


def tree_size(path: Path) -> int:
    """Bytes of the files under ``path`` (a file hard-linked from uv's cache counts in full)."""
    total = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def version_environment(store, digest: str) -> dict:
    """What a published version runs on: its environment's id, Python and packages."""
    from . import artifact
    from .packages import installed_versions

    try:
        art = artifact.load(store.get(digest), digest)
    except PublishError as exc:  # the artifact is missing or damaged: say so, list the rest
        return {"id": None, "python": None, "packages": {}, "error": str(exc)}
    python = art.manifest.get("environment", {}).get("python") or platform.python_version()
    if art.lock is None:
        return {"id": "default", "python": python,
                "packages": {n: v for n, v in installed_versions().items() if n != "python" and v}}
    return {"id": lock_id(art.lock), "python": python, "packages": pinned(art.lock)}


def environment_users(registry, store) -> dict[str, list[str]]:
    """``{environment id: ["service vN", ...]}`` over every version that is not retired."""
    users: dict[str, list[str]] = {}
    for service in registry.services():
        for version in registry.versions(service.name):
            if version.retired:
                continue
            env_id = version_environment(store, version.digest)["id"]
            users.setdefault(env_id, []).append(f"{service.name} v{version.version}")
    return users
