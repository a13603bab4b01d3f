"""Shared fixtures: fresh SCOREPUB_HOMEs, registries on SQLite and PostgreSQL, the app in this
process (Flask's test client) and a real server (gunicorn)."""
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


def pytest_configure(config):
    config.addinivalue_line("markers", "anonymous: the admin browser test starts with no session")


def pytest_sessionfinish(session, exitstatus):
    import shutil

    from publisher.settings import default_run_dir

    for home in HOMES:
        shutil.rmtree(default_run_dir(home.absolute()), ignore_errors=True)
    if _ENV_DIR:
        shutil.rmtree(_ENV_DIR[0], ignore_errors=True)


_ENV_DIR: list[Path] = []
# a pinned lock the user gives is installed as it is (no classic set): a small environment, for
# the tests that need a build but not the classic packages
SMALL_LOCK = b"tabulate==0.9.0\n"


def shared_env_dir() -> Path:
    """Environments kept between test runs, for tests that only need one to exist: content-
    addressed (a folder per lock) and built under a lock file, so sharing them is safe."""
    path = Path("/var/tmp") / f"scorepub-test-envs-{os.getuid()}"
    path.mkdir(mode=0o755, exist_ok=True)
    path.chmod(0o755)
    return path


def sandbox_env_dir() -> Path:
    """An environments folder the sandbox's uids can read (pytest's own tmp folders are 0700),
    shared by this test process's servers: each lock is built once per run."""
    import tempfile

    if not _ENV_DIR:
        path = Path(tempfile.mkdtemp(prefix="scorepub-test-envs-"))
        path.chmod(0o755)
        _ENV_DIR.append(path)
    return _ENV_DIR[0]


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


class Reply:
    """A Flask test-client response seen through the parts of ``requests.Response`` the tests read
    (status_code, headers, text, content, json()), so one test body runs on either client."""

    def __init__(self, response):
        self.status_code = response.status_code
        self.headers = response.headers  # case-insensitive, like requests'
        self.content = response.get_data()

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self):
        return orjson.loads(self.content)


def error_of(response, status: int, code: str, detail_code: str | None = None) -> dict:
    """The error envelope of ``response`` (a ``requests`` response or a :class:`Reply`), checked:
    status, JSON, code, and a details item with a classic detail code (every error has one:
    classic clients read ``error.details[0]``)."""
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


def cli(*args, env: dict, check=True, input=None) -> subprocess.CompletedProcess:
    """``scorepub ARGS`` in this process with click's runner: stdout and stderr apart, the exit code,
    the environment of ``env`` (SCOREPUB_* of this process left out, as for a real run)."""
    from click.testing import CliRunner

    from serving.cli import cli as command

    environ = {k: None for k in os.environ if k.startswith("SCOREPUB_")}
    environ.update({k: v for k, v in env.items() if k.startswith("SCOREPUB_")})
    result = CliRunner().invoke(command, list(args), env=environ, input=input, prog_name="scorepub")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback: a real run would have printed it and exited 1
    proc = subprocess.CompletedProcess(["scorepub", *args], result.exit_code, result.stdout, result.stderr)
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


START_TIMEOUT_S = 120  # a busy 2-core machine can take long to start gunicorn and its workers
POLL_TIMEOUT = (5, 10)  # connect, read: one slow answer is not fatal, the poll goes on
SWITCH_TIMEOUT_S = 60  # a promote reaches a process once the new version's workers are warm


def wait_until(check, timeout: float, what: str, interval: float = 0.2):
    """Poll ``check()`` until it returns something true; an exception counts as not yet."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - e.g. a read timeout on a busy machine: poll again
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout} s (last error: {last!r})")
        time.sleep(interval)


class Home:
    """A SCOREPUB_HOME, with services published into it in this process (``publisher.publish``,
    what ``scorepub publish`` runs; the CLI itself is tested in test_cli.py)."""

    def __init__(self, home: Path, env: dict | None = None):
        self.home = Path(home)
        self.env = env if env is not None else cli_env(self.home)
        HOMES.add(self.home)
        self.settings = Settings.from_env(self.env)
        self.keys: dict[str, dict] = {}
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self.home.mkdir(parents=True, exist_ok=True)
            self._registry = Registry(self.settings.database_url)
        return self._registry

    def publish(self, folder: Path, name: str, *, smoke: bool = False, promote: bool = False,
                message: str = "") -> dict:
        """Publish ``folder`` as ``name`` (without the smoke call unless asked); its keys are kept."""
        from publisher.publish import publish

        smoke_fn = None
        if smoke:
            from serving.smoke import smoke_call

            smoke_fn = smoke_call(self.settings)
        out = publish(Path(folder), name, settings=self.settings, registry=self.registry,
                      store=FolderArtifactStore(self.settings.artifact_dir), message=message, promote=promote,
                      published_by="tests", smoke=smoke_fn).as_dict()
        if out.get("keys"):
            self.keys[name] = out["keys"]
        return out

    def publish_examples(self, names=None) -> None:
        for folder in sorted(EXAMPLES.iterdir()):
            if (folder / "score.py").is_file() and (names is None or folder.name in names):
                self.publish(folder, folder.name)

    def close_registry(self) -> None:
        if self._registry is not None:
            self._registry.dispose()
            self._registry = None

    # -- HTTP, through ``request`` (a real socket or the in-process test client) ------------------

    def request(self, method: str, path: str, **kw):
        raise NotImplementedError

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw):
        return self.request("POST", path, **kw)

    def score(self, name: str, body, key: str | None = None, path: str = "score", **kw):
        headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
        if key is None and name in self.keys:
            key = self.keys[name]["primary"]
        if key:
            headers.setdefault("Authorization", f"Bearer {key}")
        data = body if isinstance(body, (bytes, str)) else orjson.dumps(body)
        return self.post(f"/services/{name}/{path}", data=data, headers=headers, **kw)

    def wait_for_version(self, name: str, version: int, body, timeout: float = SWITCH_TIMEOUT_S) -> float:
        """Call until the live version served is ``version`` (a process switches once it is warm);
        every answer on the way must be a success. Returns the seconds it took."""
        started = time.monotonic()
        while True:
            r = self.score(name, body)
            assert r.status_code == 200, r.text
            if r.headers["X-Scorepub-Version"] == str(version):
                return time.monotonic() - started
            assert time.monotonic() - started < timeout, f"{name} still serves {r.headers['X-Scorepub-Version']}"
            time.sleep(0.05)


class App(Home):
    """scorepub's Flask app in this process (``create_app`` and its test client), for what needs
    HTTP semantics but no real server. Scripts still run in real sandboxed worker processes,
    started from the pytest process."""

    def __init__(self, home: Path, env: dict | None = None):
        super().__init__(home, env)
        self.app = None

    def start(self) -> "App":
        from serving.app import create_app

        self.home.mkdir(parents=True, exist_ok=True)
        self.app = create_app(self.settings)
        return self

    @property
    def state(self):
        return self.app.extensions["scorepub"]

    def client(self):
        """A fresh test client (its own cookie jar): one per thread or browser-like session."""
        return self.app.test_client()

    def request(self, method: str, path: str, *, params=None, data=None, headers=None, client=None,
                **kw) -> Reply:
        client = client or self.app.test_client()
        return Reply(client.open(path, method=method, query_string=params, data=data, headers=headers, **kw))

    def stop(self) -> None:
        if self.app is not None:
            import atexit

            atexit.unregister(self.state.close)
            self.state.close()
            self.app = None
        self.close_registry()


class Server(Home):
    """A real ``scorepub serve`` (gunicorn) on a loopback port."""

    def __init__(self, home: Path, env: dict):
        super().__init__(home, env)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log = self.home / "server.log"

    def start(self, timeout: float = START_TIMEOUT_S) -> "Server":
        self.launch()
        return self.wait_started(timeout)

    def launch(self) -> None:
        """Start ``scorepub serve`` without waiting (``wait_started`` waits): several start at once."""
        self.home.mkdir(parents=True, exist_ok=True)
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "serving.cli", "serve", "--port", str(self.port)],
                                     env=self.env, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=_die_with_pytest)
        logf.close()

    def wait_started(self, timeout: float = START_TIMEOUT_S) -> "Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=POLL_TIMEOUT).status_code == 200:
                    return self
            except requests.RequestException:
                pass  # not listening yet, or too busy to answer in time: keep polling
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start within {timeout} s:\n{self.log.read_text()}")

    def terminate(self) -> None:
        """Ask gunicorn to stop (SIGTERM to its group) without waiting: several stop at once."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.close_registry()

    def request(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 120)
        return requests.request(method, f"{self.url}{path}", **kw)


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    """One in-process app with every example published, shared by the HTTP tests."""
    home = tmp_path_factory.mktemp("app-home")
    srv = App(home, cli_env(home, SCOREPUB_MAX_BODY_BYTES=str(2 * 1024 * 1024), SCOREPUB_POOL_SIZE="1"))
    srv.publish_examples()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One real server (gunicorn) with two examples published, for what needs a real socket."""
    home = tmp_path_factory.mktemp("server-home")
    env = cli_env(home, SCOREPUB_MAX_BODY_BYTES=str(2 * 1024 * 1024), SCOREPUB_WEB_WORKERS="1",
                  SCOREPUB_POOL_SIZE="1")
    srv = Server(home, env)
    srv.publish_examples(("expression-evaluator", "hello-bundle"))  # what its tests call: no idle pools to warm
    srv.start()
    yield srv
    srv.stop()
