"""All configuration, read once from ``SCOREPUB_*`` environment variables.

Nothing else in scorepub reads the environment for settings: build a :class:`Settings`
with :meth:`Settings.from_env` at the edge (CLI, app factory) and pass it down.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path

MiB = 1024 * 1024


def default_run_dir(home: Path) -> Path:
    """Worker directories live under the system temp folder by default: sandboxed uids must be
    able to reach them, and a home folder (such as /root) often is not traversable by others."""
    digest = hashlib.sha1(str(home).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"scorepub-run-{os.getuid()}-{digest}"


def _int(env, name, default):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {raw!r}") from None


@dataclasses.dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    artifact_dir: Path
    run_dir: Path
    # publishing limits
    max_bundle_bytes: int = 512 * MiB
    max_bundle_files: int = 10_000
    # server-wide maxima that cap what a schema.json may ask for
    max_timeout_s: int = 300
    max_memory_mb: int = 4096
    max_concurrent_calls: int = 100
    max_rows: int = 1_000_000
    # HTTP
    host: str = "127.0.0.1"
    port: int = 8080
    web_workers: int = 2
    web_threads: int = 8
    max_body_bytes: int = 64 * MiB
    # runtime
    pool_size: int = 2
    pool_idle_s: int = 900  # a pool unused this long stops (its memory returns); 0: never
    pool_socket: str = ""  # the replica's pool host (set by `scorepub serve`); empty: pools in-process
    log_cap_bytes: int = 64 * 1024
    max_output_bytes: int = 256 * MiB
    worker_start_timeout_s: int = 120
    # call log and admin page (secret_key signs admin sessions; default: made once under home)
    secret_key: str = ""
    call_log_keep: int = 1000
    login_max_failures: int = 5
    cookie_secure: int = 0
    proxy_hops: int = 0  # reverse proxies in front whose X-Forwarded-* headers are trusted
    # sandbox
    sandbox: str = "strict"
    sandbox_uid_base: int = 200_000
    uid_dir: Path = Path("/run/scorepub/uids")  # claims that keep sandbox uids unique on the machine
    max_file_bytes: int = 256 * MiB
    max_processes: int = 512
    worker_disk_mb: int = 1024  # each template's private tmpfs, which its workers' folders share
    # per-version Python environments (publisher/environments.py)
    env_dir: Path = Path()  # default: <home>/envs; a shared volume lets replicas find built ones
    env_max_mb: int = 4096  # a bigger environment is refused at publish (0: no cap)
    env_build_timeout_s: int = 900  # resolving, and installing, each stop after this long
    package_index: str = ""  # an index URL instead of PyPI (e.g. a mirror for an air-gapped site)
    find_links: str = ""  # folders or URLs of wheels, separated by spaces (a wheelhouse)
    env_installer: str = "uv"  # or "pip" (also used when uv is not installed)

    @classmethod
    def from_env(cls, env=None, **overrides) -> "Settings":
        env = os.environ if env is None else env
        home = Path(env.get("SCOREPUB_HOME") or ".scorepub").absolute()
        values = dict(
            home=home,
            database_url=env.get("SCOREPUB_DATABASE_URL") or f"sqlite:///{home / 'registry.sqlite3'}",
            artifact_dir=Path(env.get("SCOREPUB_ARTIFACT_DIR") or home / "artifacts").absolute(),
            run_dir=Path(env.get("SCOREPUB_RUN_DIR") or default_run_dir(home)).absolute(),
            host=env.get("SCOREPUB_HOST") or cls.host,
            sandbox=(env.get("SCOREPUB_SANDBOX") or cls.sandbox).lower(),
            secret_key=env.get("SCOREPUB_SECRET_KEY") or "",
            pool_socket=env.get("SCOREPUB_POOL_SOCKET") or "",
            uid_dir=Path(env.get("SCOREPUB_UID_DIR") or cls.uid_dir).absolute(),
            env_dir=Path(env.get("SCOREPUB_ENV_DIR") or home / "envs").absolute(),
            package_index=env.get("SCOREPUB_PACKAGE_INDEX") or "",
            find_links=env.get("SCOREPUB_FIND_LINKS") or "",
            env_installer=(env.get("SCOREPUB_ENV_INSTALLER") or cls.env_installer).lower(),
        )
        if values["env_installer"] not in ("uv", "pip"):
            raise ValueError(f"SCOREPUB_ENV_INSTALLER must be uv or pip, not {values['env_installer']!r}")
        if values["sandbox"] not in ("strict", "off"):
            raise ValueError(f"SCOREPUB_SANDBOX must be strict or off, not {values['sandbox']!r}")
        for field in dataclasses.fields(cls):
            if field.type == "int":
                values[field.name] = _int(env, f"SCOREPUB_{field.name.upper()}", field.default)
        values.update(overrides)
        return cls(**values)
