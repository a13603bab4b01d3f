"""Shared fixtures: fresh SCOREPUB_HOMEs, registries on SQLite and PostgreSQL, a real server."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest
import requests

from publisher.artifact_store import FolderArtifactStore
from publisher.registry import Registry
from publisher.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
POSTGRES_ADMIN_URL = os.environ.get("SCOREPUB_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


HOMES: set[Path] = set()  # every SCOREPUB_HOME a test made: their run folders are removed at the end


def pytest_sessionfinish(session, exitstatus):
    import shutil

    from publisher.settings import default_run_dir

    for home in HOMES:
        shutil.rmtree(default_run_dir(home.absolute()), ignore_errors=True)


@pytest.fixture
def settings(tmp_path) -> Settings:
    HOMES.add(tmp_path / "home")
    return Settings.from_env({"SCOREPUB_HOME": str(tmp_path / "home")})


@pytest.fixture
def store(settings) -> FolderArtifactStore:
    return FolderArtifactStore(settings.artifact_dir)


def _postgres_database():
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    import psycopg

    admin = POSTGRES_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    name = f"scorepub_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Each registry test runs on the embedded SQLite file and on a real PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def registry(database_url):
    reg = Registry(database_url)
    yield reg
    reg.dispose()


def error_of(response, status: int, code: str, detail_code: str | None = None) -> dict:
    """The error envelope of ``response``, checked: status, JSON, code, and a details item with a
    classic detail code (every error has one: classic clients read ``error.details[0]``)."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    err = response.json()["error"]
    assert err["code"] == code and err["message"]
    assert err["details"] and err["details"][0]["code"], err
    if detail_code:
        assert err["details"][0]["code"] == detail_code, err
    return err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scorepub(*args, env: dict, check=True, input=None) -> subprocess.CompletedProcess:
    """Run the real ``scorepub`` command line."""
    proc = subprocess.run([sys.executable, "-m", "serving.cli", *args], env=env, cwd=ROOT, input=input,
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"scorepub {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def cli_env(home: Path, **extra) -> dict:
    HOMES.add(Path(home))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREPUB_")}
    env["SCOREPUB_HOME"] = str(home)
    env.update(extra)
    return env


def _die_with_pytest() -> None:
    """A server started by a test stops when pytest does, however pytest ends."""
    import ctypes
    import signal

    ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


class Server:
    """A real ``scorepub serve`` (gunicorn) on a loopback port."""

    def __init__(self, home: Path, env: dict):
        self.home = home
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.keys: dict[str, dict] = {}
        self.proc = None
        self.log = home / "server.log"

    def publish(self, folder: Path, name: str, *extra) -> dict:
        out = orjson.loads(scorepub("publish", str(folder), "--name", name, "--json", *extra, env=self.env).stdout)
        if out.get("keys"):
            self.keys[name] = out["keys"]
        return out

    def start(self) -> "Server":
        self.home.mkdir(parents=True, exist_ok=True)
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "serving.cli", "serve", "--port", str(self.port)],
                                     env=self.env, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=_die_with_pytest)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()

    def wait_for_version(self, name: str, version: int, body, timeout: float = 10.0) -> float:
        """Call until the live version served is ``version`` (a replica switches once it is warm);
        every answer on the way must be a success. Returns the seconds it took."""
        started = time.monotonic()
        while True:
            r = self.score(name, body)
            assert r.status_code == 200, r.text
            if r.headers["X-Scorepub-Version"] == str(version):
                return time.monotonic() - started
            assert time.monotonic() - started < timeout, f"{name} still serves {r.headers['X-Scorepub-Version']}"
            time.sleep(0.05)

    def score(self, name: str, body, key: str | None = None, path: str = "score", **kw) -> requests.Response:
        headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
        if key is None and name in self.keys:
            key = self.keys[name]["primary"]
        if key:
            headers.setdefault("Authorization", f"Bearer {key}")
        data = body if isinstance(body, (bytes, str)) else orjson.dumps(body)
        return requests.post(f"{self.url}/services/{name}/{path}", data=data, headers=headers, timeout=60, **kw)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One real server with every example published, shared by the HTTP tests."""
    home = tmp_path_factory.mktemp("server-home")
    env = cli_env(home, SCOREPUB_MAX_BODY_BYTES=str(2 * 1024 * 1024), SCOREPUB_WEB_WORKERS="1")
    srv = Server(home, env)
    for folder in sorted(EXAMPLES.iterdir()):
        if (folder / "score.py").is_file():
            srv.publish(folder, folder.name)
    srv.start()
    yield srv
    srv.stop()
