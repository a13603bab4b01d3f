"""The call core and the runtime's shape (issue 12): one Runtime.call site, one pool host per
replica shared by every web process, leases the host enforces, the fork server, idle pools that
stop, and sandbox uids unique on the machine."""
from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import orjson
import pytest
import requests

from conftest import ROOT, Server, cli_env

sys.path.insert(0, str(ROOT / "bench"))
from memory import cmdline, descendants  # noqa: E402 - bench/memory.py walks process trees the same way
from publisher import artifact
from publisher.schema import parse_schema
from publisher.coercion import rows_to_table
from scorepub_sandbox import launch, messages
from serving.runtime import host as host_module
from serving.runtime.dispatcher import Runtime
from serving.runtime.uids import UidAllocator

ONE_PORT = {"inputs": {"input1": {"columns": [{"name": "x", "type": "integer"}]}}}
DOUBLE = "def azureml_main(df):\n    df['y'] = df['x'] * 2\n    return df,\n"
SLEEPY = "import time\n\ndef azureml_main(df):\n    time.sleep(df['x'][0])\n    return df,\n"


def frozen(source: str, schema: dict = ONE_PORT) -> tuple[str, bytes]:
    return artifact.build("t", {"score.py": textwrap.dedent(source).encode(), "schema.json": orjson.dumps(schema)},
                          {}, {})


def call(runtime: Runtime, digest: str, rows: list, schema: dict = ONE_PORT):
    parsed = parse_schema(schema)
    tables = [rows_to_table(port, spec, rows, 1000) for port, spec in parsed.inputs.items()]
    return runtime.call(digest, parsed, tables, {})


def wait_until(check, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout:g} s")


# -- one call site ---------------------------------------------------------------------------

def test_the_call_core_is_the_only_caller_of_runtime_call():
    sites = []
    for path in (ROOT / "serving").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\bruntime\.call\(", line):
                sites.append(f"{path.relative_to(ROOT)}:{number}")
    assert len(sites) == 1 and sites[0].startswith("serving/calls.py:"), sites


def test_serve_imports_no_metrics_before_it_sets_the_multiprocess_folder():
    """prometheus-client picks its storage when first imported: `scorepub serve` must set
    PROMETHEUS_MULTIPROC_DIR first, so neither the CLI nor the server module may import it."""
    code = "import sys, serving.cli, serving.server; print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the runtime in one process -------------------------------------------------------------

def test_a_warm_pool_grows_on_demand_and_an_idle_one_stops(settings):
    digest, archive = frozen(SLEEPY)
    runtime = Runtime(dataclasses.replace(settings, pool_size=2, pool_idle_s=2), {digest: archive}.__getitem__)
    try:
        assert runtime.status([digest]) == {digest: {"running": False, "stopped_idle": False}}
        assert runtime.pools == {}  # asking for status starts nothing
        call(runtime, digest, [{"x": 0}])
        assert runtime.status([digest])[digest]["workers"] == 1  # one call at a time: one worker
        threads = [threading.Thread(target=call, args=(runtime, digest, [{"x": 1}])) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert runtime.status([digest])[digest]["workers"] == 2  # two at once: a second one
        template_dir = runtime.pools[digest].template.pool_dir
        wait_until(lambda: runtime.status([digest])[digest] == {"running": False, "stopped_idle": True},
                   what="the idle pool stopping")
        wait_until(lambda: not template_dir.exists(), what="the pool's folder removed")
        assert call(runtime, digest, [{"x": 0}]).output.n_rows == 1  # and it starts again on use
    finally:
        runtime.close()


def test_templates_come_from_one_fork_server_and_survive_its_replacement(settings):
    digest, archive = frozen(DOUBLE)
    runtime = Runtime(dataclasses.replace(settings, pool_size=1), {digest: archive}.__getitem__)
    try:
        assert call(runtime, digest, [{"x": 2}]).output.columns[1].data.tolist() == [4]
        server = runtime.spawner._proc
        template = runtime.pools[digest].template.proc
        assert template.pid in descendants(server.pid)  # forked by the fork server, not executed
        os.kill(server.pid, signal.SIGKILL)
        template.wait(timeout=30)
        wait_until(lambda: not Path(f"/proc/{template.pid}").exists(),
                   what="the template dying with the fork server (PR_SET_PDEATHSIG)")
        assert runtime.pools[digest].template.dead  # known at once: no lease goes to its workers
        result = wait_until(lambda: _try_call(runtime, digest), what="a call after the fork server died")
        assert result.output.columns[1].data.tolist() == [4]
        assert runtime.spawner._proc.pid != server.pid
    finally:
        runtime.close()


def _try_call(runtime, digest):
    try:
        return call(runtime, digest, [{"x": 2}])
    except Exception:  # noqa: BLE001 - the first call may meet the dead template
        return None


# -- the pool host, in this process ----------------------------------------------------------

@pytest.fixture
def pool_host(settings, tmp_path, monkeypatch):
    """A real PoolHost on a unix socket (serving threads in this process), with one service."""
    digest, archive = frozen(SLEEPY, {"inputs": ONE_PORT["inputs"], "limits": {"timeout_s": 1}})
    settings.artifact_dir.mkdir(parents=True, exist_ok=True)
    from publisher.artifact_store import FolderArtifactStore

    FolderArtifactStore(settings.artifact_dir).put(digest, archive)
    monkeypatch.setattr(host_module, "LEASE_GRACE_S", 0.5)
    host = host_module.PoolHost(dataclasses.replace(settings, pool_size=1), tmp_path / "pools.sock")
    thread = threading.Thread(target=host.serve_forever, daemon=True)
    thread.start()
    yield host, digest
    host.close()


def _lease(path: Path, digest: str) -> tuple[socket.socket, dict, socket.socket]:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(str(path))
    messages.send(conn, {"op": "lease", "digest": digest})
    reply, _ = messages.recv(conn, max_bytes=0, deadline=time.monotonic() + 120)
    assert reply["op"] == "leased", reply
    _, fds, _, _ = socket.recv_fds(conn, 1, 1)
    return conn, reply, socket.socket(fileno=fds[0])


def _worker_gone(worker: socket.socket) -> bool:
    worker.settimeout(30)
    try:
        return worker.recv(1) == b""
    except ConnectionResetError:
        return True


def test_the_host_kills_the_leases_of_a_web_process_that_goes_away(pool_host):
    host, digest = pool_host
    conn, reply, worker = _lease(host.path, digest)
    assert reply["timeout_s"] == 1 and reply["call_id"] == 1
    conn.close()  # as if the web process died mid-call
    assert _worker_gone(worker)  # killed: a worker in an unknown state never serves again
    pool = host.runtime.pools[digest]
    wait_until(lambda: pool.restarts == 1 and pool.status()["workers"] == 1, what="a replacement worker")


def test_the_host_kills_a_lease_kept_past_the_call_time_limit(pool_host):
    host, digest = pool_host
    conn, _, worker = _lease(host.path, digest)
    started = time.monotonic()
    assert _worker_gone(worker)  # 1 s limit + 0.5 s grace, never handed back
    assert time.monotonic() - started >= 1.0
    assert conn.recv(1) == b""  # and that web process's connection is closed
    conn.close()


def test_a_connection_stays_open_while_idle_after_a_lease(pool_host):
    host, digest = pool_host
    conn, reply, worker = _lease(host.path, digest)
    worker.close()
    messages.send(conn, {"op": "release", "lease": reply["lease"], "cpu_s": 0.0, "kill": False})
    time.sleep(2.5)  # longer than the lease's deadline was (1 s + 0.5 s)
    messages.send(conn, {"op": "status", "digests": [digest]})
    status, _ = messages.recv(conn, max_bytes=0, deadline=time.monotonic() + 30)
    assert status["pools"][digest]["workers"] == 1 and host.runtime.pools[digest].restarts == 0
    conn.close()


def test_the_host_answers_an_unknown_digest_with_a_typed_failure(pool_host):
    host, _ = pool_host
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(str(host.path))
    messages.send(conn, {"op": "lease", "digest": "0" * 64})
    reply, _ = messages.recv(conn, max_bytes=0, deadline=time.monotonic() + 30)
    assert reply["op"] == "failed" and reply["failure"] == "ArtifactError"
    messages.send(conn, {"op": "status", "digests": ["0" * 64]})  # the connection still serves
    reply, _ = messages.recv(conn, max_bytes=0, deadline=time.monotonic() + 30)
    assert reply == {"op": "status", "pools": {"0" * 64: {"running": False, "stopped_idle": False}}}
    conn.close()


# -- sandbox uids ----------------------------------------------------------------------------

def test_sandbox_uids_are_claimed_once_on_the_machine(tmp_path):
    first = UidAllocator(500_000, tmp_path, count=3)
    second = UidAllocator(500_000, tmp_path, count=3)  # as another process would
    mine = {first.take().uid for _ in range(2)}
    theirs = second.take()
    assert theirs.uid not in mine and mine | {theirs.uid} == {500_000, 500_001, 500_002}
    with pytest.raises(RuntimeError, match="in use"):
        second.take()
    theirs.release()
    assert first.take().uid == theirs.uid


def test_a_uid_claim_ends_with_the_process_that_held_it(tmp_path):
    code = ("import sys, time; from serving.runtime.uids import UidAllocator; "
            f"c = UidAllocator(600_000, {str(tmp_path)!r}, count=1).take(); print(c.uid, flush=True); "
            "time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "600000"
        with pytest.raises(RuntimeError):
            UidAllocator(600_000, tmp_path, count=1).take()
    finally:
        holder.kill()
        holder.wait()
    assert UidAllocator(600_000, tmp_path, count=1).take().uid == 600_000


# -- one pool host per replica, under gunicorn -----------------------------------------------

@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    home = tmp_path_factory.mktemp("replica-home")
    folder = tmp_path_factory.mktemp("replica-exp")
    folder.joinpath("score.py").write_text(SLEEPY)
    folder.joinpath("schema.json").write_bytes(orjson.dumps(ONE_PORT))
    srv = Server(home, cli_env(home, SCOREPUB_WEB_WORKERS="2", SCOREPUB_WEB_THREADS="4", SCOREPUB_POOL_SIZE="2"))
    srv.publish(folder, "sleepy")
    srv.start()
    yield srv
    srv.stop()


def _tree(srv: Server) -> dict:
    pids = descendants(srv.proc.pid)
    hosts = [p for p in pids if "serving.runtime.host" in cmdline(p)]
    web = [p for p in pids if p not in hosts and not any(p in descendants(h) for h in hosts)]
    return {"hosts": hosts, "web": web, "sandbox": [p for h in hosts for p in descendants(h)]}


def test_every_web_process_leases_from_the_one_pool_host(replica):
    for _ in range(12):  # several connections, so both web processes serve some
        with requests.Session() as s:
            r = s.post(f"{replica.url}/services/sleepy/score", data=orjson.dumps([{"x": 0}]),
                       headers={"Authorization": f"Bearer {replica.keys['sleepy']['primary']}",
                                "Content-Type": "application/json"}, timeout=120)
            assert r.status_code == 200, r.text
    tree = _tree(replica)
    assert len(tree["hosts"]) == 1
    assert not [p for w in tree["web"] for p in descendants(w)]  # no web process has sandbox children
    # the fork server, one zygote and one template for the one service, and its workers
    forkservers = [p for p in tree["sandbox"] if f"{launch.PACKAGE_DIR} forkserver " in cmdline(p)]
    assert len(forkservers) == len(tree["sandbox"]) >= 3


def test_a_dead_pool_host_is_replaced_and_the_service_answers_again(replica):
    key = replica.keys["sleepy"]["primary"]
    old = _tree(replica)["hosts"][0]
    os.kill(old, signal.SIGKILL)

    def answered():
        try:
            r = requests.post(f"{replica.url}/services/sleepy/score", data=orjson.dumps([{"x": 0}]),
                              headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                              timeout=120)
        except requests.RequestException:
            return None
        assert r.status_code in (200, 503), r.text
        if r.status_code == 503:
            assert r.json()["error"]["details"][0]["code"] == "RuntimeUnavailable"
        return r.status_code == 200

    wait_until(answered, timeout=120, what="an answer from the new pool host")
    hosts = _tree(replica)["hosts"]
    assert len(hosts) == 1 and hosts[0] != old


def test_stopping_the_server_stops_its_pool_host_and_every_sandbox_process(replica):
    """Last in this module: SIGTERM to `scorepub serve` ends gunicorn, then the pool host, and
    with it the fork server, templates and workers; the web processes' exit does not stop the
    host early (it would be restarted, and the master would wait out its graceful timeout)."""
    tree = _tree(replica)
    sandbox, hosts = tree["sandbox"], tree["hosts"]
    assert hosts and sandbox
    with open(replica.log) as log:
        log.seek(0, 2)
        before = log.tell()
    replica.stop()
    assert replica.proc.returncode == 0
    wait_until(lambda: not any(Path(f"/proc/{p}").exists() for p in [*hosts, *sandbox]),
               what="every pool host and sandbox process gone")
    assert "starting it again" not in Path(replica.log).read_text()[before:]
