"""The registry (publishing.md, "The registry"), on SQLite and on PostgreSQL."""
from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import inspect, select, text

from publisher import api_keys
from publisher.errors import Conflict, NotFound, PublishError
from publisher.registry import Registry, head_revision
from publisher.registry_tables import api_keys as keys_table
from serving.catalog import Catalog

D = [c * 64 for c in "abcdef0123456789"]


def publish(registry, digest, name="svc", promote=False, message="m"):
    return registry.publish(name, digest, "{}", "tester", message, promote=promote)


def key_ok(registry, svc, key):
    """The check a request gets (a fresh catalog, so nothing cached from an earlier check)."""
    return Catalog(registry).check_key(svc, key)


def test_migrations_create_every_table_and_are_idempotent(registry, database_url):
    tables = set(inspect(registry.engine).get_table_names())
    assert {"services", "versions", "api_keys", "audit_log", "alembic_version", "users", "login_failures",
            "calls"} <= tables
    Registry(database_url).dispose()  # a second open migrates nothing and does not fail
    with registry.engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar() == head_revision() == "0003"
    assert "session_generation" in {c["name"] for c in inspect(registry.engine).get_columns("users")}


def test_first_version_goes_live_and_prints_two_keys_once(registry):
    first = publish(registry, D[0])
    assert first.version.version == 1 and first.live and first.created
    assert set(first.keys) == {"primary", "secondary"} and first.keys["primary"] != first.keys["secondary"]
    second = publish(registry, D[1])
    assert second.version.version == 2 and not second.live and second.keys is None
    assert registry.service("svc").live_version == 1


def test_service_has_a_stable_uuid_and_is_found_by_name_or_id(registry):
    svc_id = publish(registry, D[0]).version.service_id
    assert registry.service(svc_id).name == "svc"
    publish(registry, D[1])
    assert registry.service("svc").id == svc_id


def test_keys_are_stored_only_as_hashes(registry):
    keys = publish(registry, D[0]).keys
    with registry.engine.connect() as conn:
        stored = [r.key_hash for r in conn.execute(select(keys_table))]
    assert sorted(stored) == sorted(api_keys.hash_key(k) for k in keys.values())
    assert not set(keys.values()) & set(stored)
    svc = registry.service("svc")
    assert key_ok(registry, svc, keys["primary"]) and key_ok(registry, svc, keys["secondary"])
    assert not key_ok(registry, svc, "wrong") and not key_ok(registry, svc, None)


def test_regenerating_one_key_keeps_the_other(registry):
    keys = publish(registry, D[0]).keys
    svc = registry.service("svc")
    new = registry.regenerate_key("svc", "secondary", "tester")
    assert not key_ok(registry, svc, keys["secondary"])
    assert key_ok(registry, svc, new) and key_ok(registry, svc, keys["primary"])
    with pytest.raises(PublishError, match="slot"):
        registry.regenerate_key("svc", "tertiary", "tester")


def test_a_key_of_another_service_is_refused(registry):
    keys_a = publish(registry, D[0], name="a").keys
    publish(registry, D[1], name="b")
    assert not key_ok(registry, registry.service("b"), keys_a["primary"])


def test_identical_content_makes_no_new_version(registry):
    publish(registry, D[0])
    publish(registry, D[1])
    again = publish(registry, D[0])
    assert not again.created and again.version.version == 1
    assert [v.version for v in registry.versions("svc")] == [1, 2]
    promoted = publish(registry, D[1], promote=True)
    assert not promoted.created and promoted.live and registry.service("svc").live_version == 2


def test_promote_rollback_retire(registry):
    for d in D[:3]:
        publish(registry, d)
    registry.promote("svc", 2, "t")
    registry.promote("svc", 3, "t")
    assert registry.rollback("svc", "t").version == 2
    assert registry.rollback("svc", "t").version == 1
    with pytest.raises(Conflict, match="no earlier live version"):
        registry.rollback("svc", "t")
    registry.promote("svc", 3, "t")
    registry.retire("svc", 1, "t")
    with pytest.raises(Conflict, match="retired"):
        registry.promote("svc", 1, "t")
    assert registry.version("svc", 1).retired
    # rollback skips a retired version
    registry.promote("svc", 2, "t")
    registry.promote("svc", 3, "t")
    assert registry.rollback("svc", "t").version == 2


def test_retiring_the_live_version_leaves_none_live_and_keeps_the_record(registry):
    publish(registry, D[0])
    registry.retire("svc", 1, "t")
    assert registry.service("svc").live_version is None
    assert registry.version("svc", 1).digest == D[0]
    with pytest.raises(Conflict, match="retired"):
        publish(registry, D[0], promote=True)


def test_versions_are_never_reused(registry):
    publish(registry, D[0])
    publish(registry, D[1])
    registry.retire("svc", 2, "t")
    assert publish(registry, D[2]).version.version == 3


def test_unknown_service_and_version(registry):
    with pytest.raises(NotFound):
        registry.service("nope")
    publish(registry, D[0])
    with pytest.raises(NotFound):
        registry.version("svc", 9)
    with pytest.raises(NotFound):
        registry.promote("svc", 9, "t")


@pytest.mark.parametrize("name", ["", "Upper", "has space", "a" * 65, "under_score", "dot.name"])
def test_service_names_are_checked(registry, name):
    with pytest.raises(PublishError, match="service name"):
        publish(registry, D[0], name=name)


def test_every_change_is_in_the_audit_log(registry):
    publish(registry, D[0])
    publish(registry, D[1])
    registry.promote("svc", 2, "alice")
    registry.rollback("svc", "bob")
    registry.retire("svc", 2, "carol")
    registry.regenerate_key("svc", "primary", "dave")
    actions = [(e["action"], e["version"], e["actor"]) for e in registry.audit("svc")]
    assert actions == [("create", None, "tester"), ("publish", 1, "tester"), ("promote", 1, "tester"),
                       ("publish", 2, "tester"), ("promote", 2, "alice"), ("rollback", 1, "bob"),
                       ("retire", 2, "carol"), ("regenerate-key", None, "dave")]


def test_a_failing_artifact_write_registers_nothing(registry):
    publish(registry, D[0])

    def fail(version):
        raise OSError("disk full")

    with pytest.raises(OSError):
        registry.publish("svc", D[1], "{}", "t", "m", store_artifact=fail)
    assert [v.version for v in registry.versions("svc")] == [1]
    assert publish(registry, D[1]).version.version == 2  # the number was not burnt either


_PUBLISHER = """
import sys
from publisher.registry import Registry
reg = Registry(sys.argv[1])
out = []
for digest in sys.argv[2:]:
    out.append(str(reg.publish("race", digest, "{}", "p", "m").version.version))
print(",".join(out))
"""


def test_concurrent_publishers_never_get_the_same_version(database_url):
    Registry(database_url).dispose()
    procs = [subprocess.Popen([sys.executable, "-c", _PUBLISHER, database_url, *[f"{i:x}{j:063x}" for j in range(5)]],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    numbers = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        numbers += [int(n) for n in out.strip().split(",")]
    assert sorted(numbers) == list(range(1, 21))
    reg = Registry(database_url)
    assert len(reg.versions("race")) == 20 and reg.service("race").live_version is not None
    reg.dispose()


def test_call_log_and_audit_log_keep_bounded_retention(registry, monkeypatch):
    from publisher import registry as registry_module
    from publisher.registry import now

    publish(registry, D[0])
    svc = registry.service("svc")
    rows = [{"service_id": svc.id, "version": 1, "request_id": f"r{i}", "at": now(), "face": "native",
             "status": 200, "duration_ms": 1.0, "rows_in": 1, "rows_out": 1} for i in range(30)]
    registry.record_calls(rows, keep=10)
    kept = registry.recent_calls(svc.id, limit=100)
    assert [c["request_id"] for c in kept] == [f"r{i}" for i in range(29, 19, -1)]
    assert registry.call(svc.id, kept[0]["id"])["request_id"] == "r29"
    monkeypatch.setattr(registry_module, "AUDIT_KEEP", 3)
    for _ in range(5):
        registry.regenerate_key("svc", "primary", "t")
    assert [e["action"] for e in registry.audit("svc")] == ["regenerate-key"] * 3


def test_change_marker_and_live_pointers_follow_every_change(registry):
    publish(registry, D[0])
    publish(registry, D[1])
    before = registry.change_marker()
    registry.promote("svc", 2, "t")
    assert registry.change_marker() > before
    (name, live), = registry.live_pointers().values()
    assert (name, live) == ("svc", 2)


@pytest.fixture
def postgres_registry():
    from conftest import _postgres_database

    database = _postgres_database()
    url = next(database)
    reg = Registry(url)
    yield reg
    reg.dispose()
    next(database, None)


def test_postgresql_notifies_listeners_of_every_change(postgres_registry):
    """(SQLite replicas poll change_marker() instead: tested above.)"""
    import psycopg

    from publisher.registry import NOTIFY_CHANNEL

    registry, database_url = postgres_registry, postgres_registry.url
    publish(registry, D[0])
    publish(registry, D[1])
    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        registry.promote("svc", 2, "t")
        received = [n.channel for n in conn.notifies(timeout=60, stop_after=1)]
    assert received == [NOTIFY_CHANNEL]


@pytest.mark.parametrize("name", ["good\n", "6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab"])
def test_names_that_are_not_names_are_refused(registry, name):
    with pytest.raises(PublishError, match="service name"):
        publish(registry, D[0], name=name)
