"""Registry commands start fast: no pandas, numpy, runtime or Alembic; migrations only when needed."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from sqlalchemy import inspect, text

from publisher.registry import Registry, head_revision
from publisher.settings import Settings

from conftest import cli_env

ROOT = Path(__file__).resolve().parent.parent
SCOREPUB = Path(sys.executable).parent / "scorepub"
# what a command that only reads the registry must not load
HEAVY = ("pandas", "numpy", "serving.runtime", "alembic", "flask", "publisher.publish", "publisher.coercion")


def imported_by(*args, env) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run the installed ``scorepub`` with -X importtime; the modules it imported."""
    proc = subprocess.run([str(SCOREPUB), *args], env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    modules = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "sqlalchemy" in modules, proc.stderr[-2000:]  # the report is there at all
    return proc, modules


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_services_json_loads_neither_pandas_numpy_nor_the_runtime(tmp_path):
    env = cli_env(tmp_path / "home")
    first, modules = imported_by("services", "--json", env=env)  # a fresh registry: migrated now
    assert first.returncode == 0 and orjson.loads(first.stdout) == []
    assert "alembic" in modules and [m for m in heavy(modules) if not m.startswith("alembic")] == []
    reg = Registry(Settings.from_env({"SCOREPUB_HOME": str(tmp_path / "home")}).database_url)
    reg.publish("svc", "a" * 64, "{}", "tester", "first", promote=True)
    reg.dispose()
    for args in (("services", "--json"), ("versions", "svc", "--json")):
        proc, modules = imported_by(*args, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert heavy(modules) == [], f"scorepub {' '.join(args)} imported {heavy(modules)}"
    services = orjson.loads(imported_by("services", "--json", env=env)[0].stdout)
    assert [(s["name"], s["live_version"], s["digest"]) for s in services] == [("svc", 1, "a" * 64)]


def test_head_revision_is_alembics_head():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "publisher" / "migrations"))
    assert head_revision() == ScriptDirectory.from_config(cfg).get_current_head()


def _count_upgrades(monkeypatch) -> list[str]:
    calls = []
    real = Registry._upgrade

    def counting(self, target="head"):
        calls.append(target)
        return real(self, target)

    monkeypatch.setattr(Registry, "_upgrade", counting)
    return calls


def test_alembic_runs_only_when_the_revision_differs(database_url, monkeypatch):
    calls = _count_upgrades(monkeypatch)
    reg = Registry(database_url)  # fresh and empty: migrated
    assert calls == ["head"] and reg.schema_revisions() == {head_revision()}
    reg.dispose()
    Registry(database_url).dispose()  # at the head: one query, no Alembic
    assert calls == ["head"]


def test_an_older_schema_is_brought_to_the_head(database_url, monkeypatch):
    reg = Registry(database_url, migrate=False)
    assert reg.schema_revisions() == set()
    reg._upgrade("0001")
    assert reg.schema_revisions() == {"0001"} and "users" not in inspect(reg.engine).get_table_names()
    reg.dispose()
    calls = _count_upgrades(monkeypatch)
    reg = Registry(database_url)
    assert calls == ["head"] and reg.schema_revisions() == {head_revision()}
    assert "users" in inspect(reg.engine).get_table_names()
    reg.dispose()


_OPEN = "import sys; from publisher.registry import Registry; Registry(sys.argv[1]).dispose(); print('ok')"


def test_processes_opening_a_fresh_database_at_once_all_succeed(database_url):
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN, database_url], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and out.strip() == "ok", err
    reg = Registry(database_url)
    with reg.engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalars().all() == [head_revision()]
    reg.dispose()


def test_a_database_newer_than_this_code_is_refused_as_before(database_url):
    reg = Registry(database_url)
    with reg.engine.begin() as conn:
        conn.execute(text("update alembic_version set version_num = '9999'"))
    reg.dispose()
    with pytest.raises(Exception, match="9999"):
        Registry(database_url)
