"""Per-version environments at run time: real servers (gunicorn, the pool host, the sandbox),
versions in their own environments beside the default one, and a replica that builds an
environment from the frozen lock before it serves the version."""
from __future__ import annotations

import dataclasses
import time

import orjson
import pytest

from conftest import (EXAMPLES, POLL_TIMEOUT, SMALL_LOCK, Server, cli_env, error_of, sandbox_env_dir, shared_env_dir,
                      wait_until)
from publisher import artifact
from publisher.artifact_store import FolderArtifactStore
from publisher.environments import Environments, lock_id
from publisher.settings import Settings
from serving.runtime.dispatcher import Runtime
from serving.runtime.errors import EnvironmentBuilding

REPORT_VERSIONS = """
import sys
import pandas as pd

def azureml_main(df1=None, df2=None):
    import sklearn
    try:
        import tabulate
        tab = tabulate.__version__
    except ImportError:
        tab = None
    return pd.DataFrame({"sklearn": [sklearn.__version__], "pandas": [pd.__version__], "tabulate": [tab],
                         "prefix": [sys.prefix]})
"""

# compat "none": pandas' own DataFrame.append, which pandas 1.5 still has
NATIVE_APPEND = """
import pandas as pd

def azureml_main(df1):
    out = df1.append(pd.DataFrame({"n": [99]}), ignore_index=True)
    return pd.DataFrame({"n": out["n"], "pandas": pd.__version__, "append": pd.DataFrame.append.__module__})
"""
ONE_PORT = {"inputs": {"input1": {"columns": [{"name": "n", "type": "integer"}]}}, "compat": "none"}
NO_INPUT = {"inputs": {}}


def experiment(root, name, script, schema=NO_INPUT, requirements=None):
    folder = root / name
    folder.mkdir()
    (folder / "score.py").write_text(script)
    (folder / "schema.json").write_bytes(orjson.dumps(schema))
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("env-serving") / "home"
    srv = Server(home, cli_env(home, SCOREPUB_POOL_SIZE="1", SCOREPUB_ENV_DIR=str(shared_env_dir())))
    root = tmp_path_factory.mktemp("env-experiments")
    srv.publish(experiment(root, "own", REPORT_VERSIONS, requirements="scikit-learn==1.5.2\ntabulate==0.9.0\n"), "own")
    srv.publish(experiment(root, "default", REPORT_VERSIONS), "default")
    srv.publish(experiment(root, "old-pandas", NATIVE_APPEND, ONE_PORT, requirements="pandas<2\n"), "old-pandas")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    """A registry holding one service in a small environment: what a replica rebuilds below."""
    home = tmp_path_factory.mktemp("env-small") / "home"
    srv = Server(home, cli_env(home, SCOREPUB_POOL_SIZE="1", SCOREPUB_ENV_DIR=str(shared_env_dir())))
    small = experiment(tmp_path_factory.mktemp("env-small-experiment"), "small",
                       "import tabulate\nimport pandas as pd\n\ndef azureml_main():\n"
                       "    return pd.DataFrame({'tabulate': [tabulate.__version__]})\n")
    (small / "requirements.lock").write_bytes(SMALL_LOCK)
    srv.publish(small, "small")
    srv.start()
    yield srv
    srv.stop()


def test_each_service_reports_its_own_environments_versions(server):
    import sklearn

    own = server.score("own", {})
    assert own.status_code == 200, own.text
    row = own.json()["output1"][0] if "output1" in own.json() else own.json()["rows"][0]
    assert row["sklearn"] == "1.5.2" and row["tabulate"] == "0.9.0"
    assert row["prefix"].startswith(str(server.settings.env_dir))
    default = server.score("default", {})
    assert default.status_code == 200, default.text
    row = default.json()["output1"][0] if "output1" in default.json() else default.json()["rows"][0]
    assert row["sklearn"] == sklearn.__version__ and row["tabulate"] is None  # tabulate is not in the default set


def test_pandas_below_2_appends_natively(server):
    r = server.score("old-pandas", {"input1": [{"n": 1}]})
    assert r.status_code == 200, r.text
    rows = r.json()["output1"] if "output1" in r.json() else r.json()["rows"]
    assert [x["n"] for x in rows] == [1, 99]
    assert rows[0]["pandas"].startswith("1.5") and rows[0]["append"].startswith("pandas.")


def test_readyz_reports_the_environments_and_the_layers_in_them(server):
    report = server.get("/readyz", timeout=POLL_TIMEOUT).json()
    assert report["environments"] == {"building": [], "failed": {}}
    wait_until(lambda: server.get("/readyz", timeout=POLL_TIMEOUT).json()["services"]["own"]["ready"], 120,
               "the own-environment service ready")
    layers = server.get("/readyz", timeout=POLL_TIMEOUT).json()["services"]["own"]["layers"]
    assert layers and all(state["active"] for state in layers.values()), layers


def test_a_replica_without_the_environment_builds_it_from_the_lock(small_server, tmp_path):
    """A second replica, its own env folder (no shared volume): it builds the environment from
    the artifact's lock, answering 503 EnvironmentBuilding meanwhile, never a call that waits."""
    replica_envs = sandbox_env_dir() / "replica"  # not the publisher's: nothing built there yet
    env = dict(small_server.env, SCOREPUB_ENV_DIR=str(replica_envs), SCOREPUB_POOL_SIZE="1")
    replica = Server(tmp_path / "replica-home", env)
    replica.keys = small_server.keys
    replica.start()
    try:
        answers = []

        def served():
            r = replica.score("small", {}, timeout=POLL_TIMEOUT)
            answers.append(r.status_code)
            if r.status_code == 503:
                error_of(r, 503, "ServiceUnavailable", "EnvironmentBuilding")
            return r.status_code == 200

        wait_until(served, 300, "the replica serving the small-environment service", interval=0.2)
        assert set(answers) <= {200, 503}, answers
        assert replica.score("small", {}).json()["output1"][0]["tabulate"] == "0.9.0"
        store = FolderArtifactStore(small_server.settings.artifact_dir)
        digest = small_server.registry.version("small", 1).digest
        env_id = lock_id(artifact.load(store.get(digest), digest).lock)
        assert (replica_envs / env_id / ".scorepub-env.json").is_file()
        report = replica.get("/readyz", timeout=POLL_TIMEOUT).json()
        assert report["environments"] == {"building": [], "failed": {}} and report["ready"], report
    finally:
        replica.stop()


def test_a_runtime_never_waits_for_a_build(small_server, tmp_path):
    """Deterministic: the first pool of a version whose environment is missing raises at once,
    reports the build, and warms the pool when the build is over."""
    settings = dataclasses.replace(Settings.from_env(small_server.env), env_dir=sandbox_env_dir() / "runtime", pool_size=1)
    digest = small_server.registry.version("small", 1).digest
    runtime = Runtime(settings, FolderArtifactStore(settings.artifact_dir).get)
    try:
        start = time.monotonic()
        with pytest.raises(EnvironmentBuilding, match="being built on this replica"):
            runtime.pool(digest, warm=True)
        assert time.monotonic() - start < 5
        assert runtime.status([digest])[digest]["environment"]["state"] == "building"
        wait_until(lambda: runtime.status([digest])[digest].get("ready"), 300, "the pool warm after the build")
        assert Environments(settings).listing()[0]["id"] == runtime.environments.of_digest[digest]
    finally:
        runtime.close()


def test_the_hello_example_still_runs_in_the_default_environment(server):
    server.publish(EXAMPLES / "hello-bundle", "hello")
    r = server.score("hello", [{"name": "env"}])
    assert r.status_code == 200, r.text
