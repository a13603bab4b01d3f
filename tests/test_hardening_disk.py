"""A full disk must not take the server down (issue 15, finding 1): the run folder (worker
folders, Prometheus' memory-mapped files) on a small tmpfs this test mounts, a script that
writes until its disk is full, and the server answering every call afterwards."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import orjson
import pytest

from conftest import EXAMPLES, Server, cli_env

RUN_DIR_MB = 48
FILL = """
import os
import pandas as pd

def azureml_main():
    written = 0
    try:
        with open("big", "wb") as f:
            while written < (1 << 30):
                f.write(b"x" * (1 << 20))
                f.flush()
                written += 1 << 20
    except OSError as exc:
        return pd.DataFrame({"written_mb": [written >> 20], "error": [exc.strerror]}),
    return pd.DataFrame({"written_mb": [written >> 20], "error": [None]}),
"""


@pytest.fixture
def small_run_dir():
    if os.getuid() != 0:
        pytest.skip("NOT TESTED HERE: mounting the small tmpfs this test needs takes root (CI runs it as root)")
    folder = Path(tempfile.mkdtemp(prefix="scorepub-small-disk-"))
    folder.chmod(0o755)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={RUN_DIR_MB}m,mode=0755", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_script_filling_its_disk_leaves_the_servers_run_folder_free(small_run_dir, tmp_path):
    home = tmp_path / "home"
    srv = Server(home, cli_env(home, SCOREPUB_RUN_DIR=str(small_run_dir), SCOREPUB_WORKER_DISK_MB="64",
                               SCOREPUB_WEB_WORKERS="2", SCOREPUB_POOL_SIZE="1"))
    folder = tmp_path / "fill"
    folder.mkdir()
    (folder / "score.py").write_text(FILL)
    (folder / "schema.json").write_bytes(orjson.dumps({"inputs": {}}))
    srv.publish(folder, "fill")
    srv.publish(EXAMPLES / "hello-bundle", "hello")
    srv.start()
    try:
        r = srv.score("fill", {})
        assert r.status_code == 200, r.text
        row = r.json()["output1"][0]
        assert row["error"] == "No space left on device" and row["written_mb"] <= 64, row
        assert shutil.disk_usage(small_run_dir).free > (RUN_DIR_MB - 16) << 20  # the run folder stays free
        for i in range(10):  # every web process still answers (none died of SIGBUS on its metrics files)
            answer = srv.score("hello", [{"name": f"after-{i}"}])
            assert answer.status_code == 200, answer.text
        assert srv.get("/healthz").status_code == 200 and srv.get("/metrics").status_code == 200
    finally:
        srv.stop()


@pytest.fixture
def small_home():
    if os.getuid() != 0:
        pytest.skip("NOT TESTED HERE: mounting the small tmpfs this test needs takes root (CI runs it as root)")
    folder = Path(tempfile.mkdtemp(prefix="scorepub-small-home-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
        shutil.rmtree(folder, ignore_errors=True)


def fill(folder: Path) -> None:
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_a_full_home_refuses_in_one_line_and_never_skips_the_lockout(small_home):
    """Finding 21: with SCOREPUB_HOME full, `keys regenerate` printed a 73-line traceback, and
    failed logins were not recorded, so the lock-out stopped counting."""
    from conftest import App, cli

    from serving.admin.auth import hash_password

    home = small_home / "home"
    app = App(home, cli_env(home)).start()
    try:
        app.publish(EXAMPLES / "hello-bundle", "hello")
        app.registry.create_user("erin", hash_password("a long enough password"))
        fill(small_home)
        refused = cli("keys", "regenerate", "hello", "secondary", env=cli_env(home), check=False)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: the registry could not be read or written ("), lines
        client = app.client()
        page = client.get("/admin/login").get_data(as_text=True)
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        for password in ("wrong", "a long enough password"):  # not even the right one is checked
            r = client.post("/admin/login", data={"name": "erin", "password": password, "csrf_token": token})
            assert r.status_code == 503 and "cannot be recorded" in r.get_data(as_text=True)
    finally:
        (small_home / "filler").unlink(missing_ok=True)
        app.stop()
