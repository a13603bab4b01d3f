"""Per-version Python environments at publish (publisher/environments.py), with the real uv
and the real package index: resolution, locks, sharing, caps, refusals, list and prune.

uv's own cache (~/.cache/uv) is left where it is, so a second run downloads nothing."""
from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import orjson
import pytest

from publisher import artifact
from publisher.artifact_store import FolderArtifactStore
from publisher.environments import ENV_INFO, Environments, lock_id, pinned
from publisher.installers import one_line
from publisher.errors import PublishError
from publisher.experiment import read_experiment
from publisher.publish import build_environment, publish
from publisher.registry import Registry
from publisher.settings import Settings

from conftest import HOMES, cli, cli_env, sandbox_env_dir

SCORE = b"def azureml_main(df1=None, df2=None):\n    return df1\n"
SAMPLE = {"input1": [{"x": 1}]}
TABULATE = "tabulate==0.9.0\n"
SKLEARN = "scikit-learn==1.5.2\n" + TABULATE  # the one classic-set environment most tests share


def small_lock(tabulate: str = "0.9.0") -> dict:
    """A given lock: installed as it is, no classic set, so a build costs a few seconds."""
    return {"requirements.lock": f"tabulate=={tabulate}\n".encode()}


def folder_with(tmp_path, name="exp", requirements=None, files=None):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "score.py").write_bytes(SCORE)
    (folder / "sample.json").write_bytes(orjson.dumps(SAMPLE))
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements)
    for file_name, data in (files or {}).items():
        (folder / file_name).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    """One SCOREPUB_HOME for the tests that may share environments (each build costs seconds)."""
    home = tmp_path_factory.mktemp("envs") / "home"
    HOMES.add(home)
    return home


def env_dir_of(home) -> str:
    """Each home's environments, in a folder the sandbox's uids can read (tmp_path is private)."""
    import hashlib

    return str(sandbox_env_dir() / hashlib.sha1(str(home).encode()).hexdigest()[:12])


def settings_for(home, **env):
    return Settings.from_env({"SCOREPUB_HOME": str(home), "SCOREPUB_ENV_DIR": env_dir_of(home),
                              **{f"SCOREPUB_{k.upper()}": str(v) for k, v in env.items()}})


def publish_folder(folder, name, settings, **kw):
    registry = Registry(settings.database_url)
    return publish(folder, name, settings=settings, registry=registry,
                   store=FolderArtifactStore(settings.artifact_dir), **kw)


def env_python(settings, outcome) -> str:
    return str(settings.env_dir / outcome.environment["id"] / "bin" / "python")


# -- the default environment -----------------------------------------------------------------

@pytest.mark.parametrize("requirements", [None, "pandas>=1.0\nnumpy\n", "PyYAML; python_version < '3'\n"])
def test_requirements_the_server_meets_use_the_default_environment(settings, tmp_path, requirements):
    outcome = publish_folder(folder_with(tmp_path, requirements=requirements), "plain", settings)
    assert outcome.environment["id"] == "default"
    art = artifact.load(FolderArtifactStore(settings.artifact_dir).get(outcome.published.version.digest),
                        outcome.published.version.digest)
    assert art.lock is None and "requirements.lock" not in art.members
    assert art.manifest["environment"]["id"] == "default"
    assert not settings.env_dir.exists() or not [p for p in settings.env_dir.iterdir() if not p.name.startswith(".")]


# -- a custom environment ----------------------------------------------------------------------

def test_a_package_the_server_lacks_gets_an_environment_with_the_classic_set(shared_home, tmp_path):
    settings = settings_for(shared_home)
    outcome = publish_folder(folder_with(tmp_path, requirements=SKLEARN), "skl", settings)
    env = outcome.environment
    assert env["id"] != "default" and env["built"] and env["resolved"] and env["packages"] > 20
    store = FolderArtifactStore(settings.artifact_dir)
    digest = outcome.published.version.digest
    art = artifact.load(store.get(digest), digest)
    assert lock_id(art.lock) == env["id"] and art.manifest["environment"]["id"] == env["id"]
    packages = pinned(art.lock)
    assert packages["scikit-learn"] == "1.5.2" and packages["tabulate"] == "0.9.0"
    # the classic set and what the sandboxed runtime needs came with it
    for name in ("numpy", "pandas", "scipy", "matplotlib", "statsmodels", "orjson", "pyseccomp"):
        assert name in packages
    assert b"--hash=sha256:" in art.lock and art.lock.startswith(b"# scorepub requirements.lock")
    python = env_python(settings, outcome)
    out = subprocess.run([python, "-I", "-c", "import sklearn, tabulate, matplotlib; print(sklearn.__version__)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "1.5.2"
    # isolated: the server's web stack is not in it
    assert subprocess.run([python, "-I", "-c", "import flask"], capture_output=True).returncode != 0
    info = orjson.loads((settings.env_dir / env["id"] / ENV_INFO).read_bytes())
    assert info["packages"] == packages and info["size_bytes"] > 50 * 2**20


def test_the_server_versions_are_preferred_where_the_requirements_allow(shared_home, tmp_path):
    import importlib.metadata

    settings = settings_for(shared_home)
    envs = Environments(settings)
    lock = envs.resolve(TABULATE.encode()).lock
    assert pinned(lock)["scikit-learn"] == importlib.metadata.version("scikit-learn")
    assert pinned(lock)["pandas"] == importlib.metadata.version("pandas")


def test_same_requirements_share_one_environment_and_the_second_publish_costs_nothing(shared_home, tmp_path):
    settings = settings_for(shared_home)
    requirements = "tabulate==0.8.10\n"  # a lock no other test builds, so the first build is cold
    first_exp = read_experiment(folder_with(tmp_path, "one", requirements), settings)
    start = time.monotonic()
    first, _ = build_environment(first_exp, settings)
    cold = time.monotonic() - start
    assert first["built"] and first["resolved"]
    second_exp = read_experiment(folder_with(tmp_path, "two", requirements), settings)
    start = time.monotonic()
    second, _ = build_environment(second_exp, settings)
    warm = time.monotonic() - start
    assert second["id"] == first["id"] and not second["built"] and not second["resolved"]
    assert warm < 0.1 * cold, (warm, cold)
    # and through publish: two services, one environment, the same lock frozen into both
    a = publish_folder(folder_with(tmp_path, "three", requirements), "share-a", settings)
    b = publish_folder(folder_with(tmp_path, "four", requirements), "share-b", settings)
    assert a.environment["id"] == b.environment["id"] == first["id"]
    assert not b.environment["built"]


def test_the_same_folder_twice_gives_the_same_lock_and_digest_and_upgrade_resolves_again(shared_home, tmp_path):
    settings = settings_for(shared_home)
    folder = folder_with(tmp_path, requirements=SKLEARN)
    one = publish_folder(folder, "twice", settings)
    two = publish_folder(folder, "twice", settings)
    assert one.published.version.digest == two.published.version.digest and not two.published.created
    three = publish_folder(folder, "twice", settings, upgrade=True)
    assert three.environment["resolved"]  # resolved again, not taken from the cache
    assert three.published.version.digest == one.published.version.digest  # nothing newer fits the pin


def test_pandas_below_2_gets_a_numpy_it_imports_with(shared_home, tmp_path):
    settings = settings_for(shared_home)
    outcome = publish_folder(folder_with(tmp_path, requirements="pandas<2\n"), "old-pandas", settings)
    python = env_python(settings, outcome)
    out = subprocess.run([python, "-I", "-c", "import pandas, numpy; print(pandas.__version__, numpy.__version__)"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0].startswith("1.") and out[1].startswith("1.")


def test_a_given_lock_wins_and_gets_only_what_the_runtime_needs(shared_home, tmp_path):
    settings = settings_for(shared_home)
    given = b"tabulate==0.9.0\n"
    outcome = publish_folder(folder_with(tmp_path, files={"requirements.lock": given}), "given", settings)
    store = FolderArtifactStore(settings.artifact_dir)
    digest = outcome.published.version.digest
    packages = pinned(artifact.load(store.get(digest), digest).lock)
    assert packages["tabulate"] == "0.9.0"
    assert {"numpy", "pandas", "orjson", "pyseccomp"} <= set(packages)
    assert "scikit-learn" not in packages  # a lock is taken as it is: no classic set added


def test_a_pylock_toml_is_read_as_a_lock(settings, tmp_path):
    from publisher.environments import given_lock_pins

    pylock = b'lock-version = "1.0"\n[[packages]]\nname = "tabulate"\nversion = "0.9.0"\n'
    assert given_lock_pins("pylock.toml", pylock) == ["tabulate==0.9.0"]
    uv_lock = (b'version = 1\n[[package]]\nname = "me"\nversion = "0.1.0"\nsource = { virtual = "." }\n'
               b'[[package]]\nname = "tabulate"\nversion = "0.9.0"\nsource = { registry = "https://pypi.org/simple" }\n')
    assert given_lock_pins("uv.lock", uv_lock) == ["tabulate==0.9.0"]
    with pytest.raises(PublishError, match="every line must pin one version"):
        given_lock_pins("requirements.lock", b"tabulate>=0.9\n")


# -- refusals ----------------------------------------------------------------------------------

def nothing_left(settings, name):
    registry = Registry(settings.database_url)
    assert name not in [s.name for s in registry.services()]
    assert not settings.artifact_dir.exists() or not list(settings.artifact_dir.rglob("*.zip"))
    leftovers = [p.name for p in settings.env_dir.iterdir() if not p.name.startswith(".")] if settings.env_dir.exists() else []
    assert leftovers == []


@pytest.mark.parametrize("requirements, fragment", [
    ("scorepub-no-such-package-zz==1.0\n", "scorepub-no-such-package-zz was not found in the package index"),
    ("tabulate==99.0\n", "there is no version of tabulate==99.0"),
    ("pandas<1.0\n", "wheels only"),
])
def test_what_does_not_resolve_is_one_line_naming_it(settings, tmp_path, requirements, fragment):
    with pytest.raises(PublishError) as info:
        publish_folder(folder_with(tmp_path, requirements=requirements), "refused", settings)
    message = str(info.value)
    assert message.startswith("requirements.txt: cannot be resolved: ") and fragment in message
    assert "\n" not in message and info.value.field == "requirements.txt"
    nothing_left(settings, "refused")


def test_a_build_over_the_size_cap_is_refused_and_leaves_nothing(tmp_path):
    settings = settings_for(tmp_path / "home", env_max_mb=5)
    HOMES.add(tmp_path / "home")
    with pytest.raises(PublishError, match=r"environment: \d+ MB is over SCOREPUB_ENV_MAX_MB=5"):
        publish_folder(folder_with(tmp_path, files=small_lock()), "big", settings)
    nothing_left(settings, "big")


def test_an_environment_that_does_not_import_is_refused_and_leaves_nothing(shared_home, tmp_path):
    settings = settings_for(tmp_path / "home")
    HOMES.add(tmp_path / "home")
    with pytest.raises(PublishError) as info:  # a lock that insists on NumPy 2 under pandas 1.5
        publish_folder(folder_with(tmp_path, files={"requirements.lock": b"pandas==1.5.3\nnumpy==2.0.2\n"}), "abi",
                       settings)
    assert "does not import" in str(info.value) and "pandas 1.5" in str(info.value) and "\n" not in str(info.value)
    nothing_left(settings, "abi")


def test_a_private_environments_folder_is_refused_as_root(tmp_path):
    import os

    if os.getuid() != 0:
        pytest.skip("only root drops to sandbox uids (as a user, the sandbox runs under the same uid)")
    settings = Settings.from_env({"SCOREPUB_HOME": str(tmp_path / "home")})  # under pytest's 0700 tmp
    HOMES.add(tmp_path / "home")
    with pytest.raises(PublishError, match="other users cannot enter .* so the sandbox cannot read SCOREPUB_ENV_DIR"):
        publish_folder(folder_with(tmp_path, files=small_lock()), "private", settings)
    nothing_left(settings, "private")


def test_a_build_timeout_is_refused(tmp_path):
    settings = settings_for(tmp_path / "home", env_build_timeout_s=1)
    HOMES.add(tmp_path / "home")
    slow = tmp_path / "uv"
    slow.write_text("#!/bin/sh\nexec sleep 60\n")  # a resolver that never answers in time
    slow.chmod(0o755)
    envs = Environments(settings, uv=str(slow))
    with pytest.raises(PublishError, match="took longer than SCOREPUB_ENV_BUILD_TIMEOUT_S=1 s"):
        envs.resolve(TABULATE.encode())


def test_uv_messages_become_one_line():
    text = ("  × No solution found when resolving dependencies:\n  ╰─▶ Because nosuch was not found in the "
            "package registry and you require nosuch, we can conclude that your requirements are unsatisfiable.\n")
    assert one_line(text) == "nosuch was not found in the package index (you require nosuch)"


# -- concurrency, list, prune, diff --------------------------------------------------------------

def test_concurrent_builds_of_one_lock_build_it_once(tmp_path):
    settings = settings_for(tmp_path / "home")
    HOMES.add(tmp_path / "home")
    envs = Environments(settings)
    lock = envs.resolve(None, ("requirements.lock", small_lock()["requirements.lock"])).lock
    said: list[str] = []
    results = []

    def build():
        results.append(Environments(settings).ensure(lock, progress=lambda stage, detail: said.append(detail)))

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.path for r in results}) == 1
    assert sum(d.startswith("built in") for d in said) == 1, said
    assert sum(d == "built by another publish meanwhile" for d in said) == 2, said


def test_envs_list_and_prune(shared_home, tmp_path):
    settings = settings_for(shared_home)
    keep = publish_folder(folder_with(tmp_path, "keep", SKLEARN), "prune-keep", settings)
    gone = publish_folder(folder_with(tmp_path, "gone", files=small_lock("0.8.9")), "prune-gone", settings)
    env = cli_env(shared_home, SCOREPUB_ENV_DIR=env_dir_of(shared_home))
    listed = orjson.loads(cli("envs", "list", "--json", env=env).stdout)
    by_id = {row["id"]: row for row in listed}
    assert "prune-gone v1" in by_id[gone.environment["id"]]["users"]
    assert by_id[keep.environment["id"]]["size_mb"] > 50
    Registry(settings.database_url).retire("prune-gone", 1, "test")
    out = orjson.loads(cli("envs", "prune", "--min-age-s", "0", "--json", env=env).stdout)
    assert gone.environment["id"] in out["removed"] and keep.environment["id"] not in out["removed"]
    assert not (settings.env_dir / gone.environment["id"]).exists()
    assert (settings.env_dir / keep.environment["id"] / ENV_INFO).is_file()
    assert orjson.loads(cli("envs", "prune", "--min-age-s", "0", "--json", env=env).stdout)["removed"] == []


def test_versions_and_diff_show_the_environment(shared_home, tmp_path):
    settings = settings_for(shared_home)
    publish_folder(folder_with(tmp_path, "v1"), "shown", settings)
    publish_folder(folder_with(tmp_path, "v2", SKLEARN), "shown", settings, promote=True)
    env = cli_env(shared_home, SCOREPUB_ENV_DIR=env_dir_of(shared_home))
    rows = orjson.loads(cli("versions", "shown", "--json", env=env).stdout)
    assert rows[0]["environment"]["id"] == "default" and rows[1]["environment"]["packages"]["tabulate"] == "0.9.0"
    human = cli("versions", "shown", env=env).stdout
    assert "environment default (Python" in human and "scikit-learn" in human
    diff = orjson.loads(cli("diff", "shown", "1", "2", "--json", env=env).stdout)
    assert diff["packages"][0].startswith("environment default -> ")
    assert "tabulate 0.9.0 added" in diff["packages"]
    assert "requirements.lock" not in diff["files"]  # the package list says it better than a diff of hashes
    assert "packages: tabulate 0.9.0 added" in cli("diff", "shown", "1", "2", env=env).stdout


def test_publish_shows_progress_and_json_stays_quiet(shared_home, tmp_path):
    env = cli_env(shared_home, SCOREPUB_ENV_DIR=env_dir_of(shared_home))
    folder = folder_with(tmp_path, files=small_lock("0.8.8"))
    shown = cli("publish", str(folder), "--name", "progress", "--no-smoke", env=env)
    assert "environment [" in shown.stderr and "resolving requirements.lock (1 pinned package" in shown.stderr
    assert "built in" in shown.stderr
    assert "packages," in shown.stdout and "MB, built in" in shown.stdout
    quiet = cli("publish", str(folder), "--name", "progress-json", "--no-smoke", "--json", env=env)
    assert quiet.stderr == "" and orjson.loads(quiet.stdout)["environment"]["built"] is False


def test_prune_removes_nothing_when_an_artifact_cannot_be_read(tmp_path):
    home = tmp_path / "home"
    settings = settings_for(home)
    outcome = publish_folder(folder_with(tmp_path), "unreadable", settings)
    for path in settings.artifact_dir.rglob(f"{outcome.published.version.digest}.zip"):
        path.unlink()
    env = cli_env(home, SCOREPUB_ENV_DIR=env_dir_of(home))
    refused = cli("envs", "prune", "--min-age-s", "0", env=env, check=False)
    assert refused.returncode == 1 and "unreadable v1 uses (its artifact is unreadable); nothing removed" in refused.stderr
    listed = cli("versions", "unreadable", env=env).stdout
    assert "environment unknown (" in listed


# -- where packages come from -----------------------------------------------------------------

def demo_wheel(folder) -> str:
    """A real (hand-made) wheel that no index has: only a wheelhouse can give it."""
    import base64
    import hashlib
    import zipfile

    name, version = "scorepub_wheelhouse_demo", "1.0"
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n".encode(),
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: scorepub-wheelhouse-demo\nVersion: {version}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: scorepub-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
                     f"{len(data)}\n" for path, data in files.items()) + f"{info}/RECORD,,\n"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for member, data in {**files, f"{info}/RECORD": record.encode()}.items():
            z.writestr(member, data)
    return str(folder)


def test_a_wheelhouse_gives_what_the_index_does_not(tmp_path):
    wheelhouse = demo_wheel(tmp_path / "wheels")
    lock = {"requirements.lock": b"scorepub-wheelhouse-demo==1.0\n"}
    plain = settings_for(tmp_path / "plain")
    HOMES.add(tmp_path / "plain")
    with pytest.raises(PublishError, match="scorepub-wheelhouse-demo"):
        publish_folder(folder_with(tmp_path, "without", files=lock), "wheel", plain)
    settings = settings_for(tmp_path / "home", find_links=wheelhouse)
    HOMES.add(tmp_path / "home")
    outcome = publish_folder(folder_with(tmp_path, "with", files=lock), "wheel", settings)
    out = subprocess.run([env_python(settings, outcome), "-I", "-c", "import scorepub_wheelhouse_demo as d; print(d.VERSION)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "1.0"


def test_the_package_index_setting_is_where_packages_come_from(tmp_path):
    settings = settings_for(tmp_path / "home", package_index="http://127.0.0.1:9/simple")  # nothing listens there
    HOMES.add(tmp_path / "home")
    with pytest.raises(PublishError) as info:
        publish_folder(folder_with(tmp_path, requirements=TABULATE), "indexed", settings)
    message = str(info.value)
    assert message.startswith("requirements.txt: cannot be resolved: ") and "http://127.0.0.1:9/simple" in message
    assert "\n" not in message
    nothing_left(settings, "indexed")


def test_pip_is_the_fallback_installer(tmp_path):
    settings = settings_for(tmp_path / "home", env_installer="pip")
    HOMES.add(tmp_path / "home")
    outcome = publish_folder(folder_with(tmp_path, files=small_lock()), "with-pip", settings)
    store = FolderArtifactStore(settings.artifact_dir)
    lock = artifact.load(store.get(outcome.published.version.digest), outcome.published.version.digest).lock
    assert pinned(lock)["tabulate"] == "0.9.0" and {"numpy", "pandas", "orjson", "pyseccomp"} <= set(pinned(lock))
    assert lock.count(b"--hash=sha256:") == len(pinned(lock))  # every pin hashed, as uv's are
    python = env_python(settings, outcome)
    out = subprocess.run([python, "-I", "-c", "import tabulate, pandas; print(tabulate.__version__)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "0.9.0"
    assert list((Path(python).parent.parent / "lib").rglob("pandas/__pycache__/*.pyc"))  # bytecode compiled
    with pytest.raises(PublishError, match="scorepub-no-such-package-zz"):
        publish_folder(folder_with(tmp_path, "bad", requirements="scorepub-no-such-package-zz==1.0\n"), "bad", settings)
    with pytest.raises(ValueError, match="SCOREPUB_ENV_INSTALLER must be uv or pip"):
        settings_for(tmp_path / "other", env_installer="conda")
