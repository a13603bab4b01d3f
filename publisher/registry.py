"""The registry: services, versions, the live pointer, hashed keys and the audit log.

SQLite file by default, PostgreSQL when the URL names one; the schema is made and changed by
the Alembic migrations in ``publisher/migrations`` only. Every change is one transaction.
"""
from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import functools
import getpass
import os
import re
import uuid
from contextlib import contextmanager
from pathlib import Path

import orjson
from sqlalchemy import create_engine, delete, event, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from . import api_keys
from .errors import Conflict, NotFound, PublishError
from .registry_tables import api_keys as keys_t
from .registry_tables import audit_log, calls, login_failures, services, users, versions

SERVICE_NAME = re.compile(r"^[a-z0-9-]{1,64}$")
NOTIFY_CHANNEL = "scorepub_registry"
AUDIT_KEEP = 10_000
_MIGRATIONS = Path(__file__).parent / "migrations"


@functools.cache
def head_revision() -> str:
    """The newest migration's revision, read from the migration files (without Alembic)."""
    revisions, parents = set(), set()
    for path in (_MIGRATIONS / "versions").glob("*.py"):
        assigned = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                if node.targets[0].id in ("revision", "down_revision"):
                    assigned[node.targets[0].id] = ast.literal_eval(node.value)
        revisions.add(assigned["revision"])
        down = assigned.get("down_revision")
        parents.update(down if isinstance(down, (tuple, list)) else [down] if down else [])
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations in {_MIGRATIONS} have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def check_service_name(name: str) -> None:
    if not SERVICE_NAME.fullmatch(name or ""):
        raise PublishError(f"service name {name!r} is invalid: use 1 to 64 lowercase letters, digits or '-'")
    if _is_uuid(name):  # ids and names share the classic URL: a name must never look like an id
        raise PublishError(f"service name {name!r} looks like a service id; choose another")


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def default_actor() -> str:
    """Who acts, for the audit log, when no one is named: the OS user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _utc(value):
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


@dataclasses.dataclass(frozen=True)
class ServiceRecord:
    id: str
    name: str
    created_at: dt.datetime
    live_version: int | None
    store_payloads: bool = False

    @classmethod
    def from_row(cls, row) -> "ServiceRecord":
        return cls(row.id, row.name, _utc(row.created_at), row.live_version, bool(row.store_payloads))


@dataclasses.dataclass(frozen=True)
class VersionRecord:
    service_id: str
    service: str
    version: int
    digest: str
    created_at: dt.datetime
    published_by: str
    message: str
    schema_json: str
    retired_at: dt.datetime | None

    @property
    def retired(self) -> bool:
        return self.retired_at is not None


@dataclasses.dataclass(frozen=True)
class Published:
    version: VersionRecord
    created: bool  # False: identical content was already a version (a no-op)
    live: bool
    keys: dict | None  # slot -> key, only when the service was just made


def _private(database: Path) -> None:
    """The registry holds password and key hashes: readable by its owner only (the file and the
    journal SQLite makes beside it, which takes the file's mode)."""
    old = os.umask(0o077)
    try:
        database.touch(exist_ok=True)
    finally:
        os.umask(old)
    if database.stat().st_mode & 0o077:
        database.chmod(0o600)


class Registry:
    def __init__(self, url: str, migrate: bool = True):
        self.url = url
        self.dialect = url.split(":", 1)[0].split("+", 1)[0]
        if self.dialect == "sqlite":
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                _private(Path(path))
            self.engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        if migrate:
            self.migrate()

    def migrate(self) -> None:
        """Bring the schema to the newest migration (safe to run from several processes).

        One query tells whether it is there already, the common case; only otherwise is Alembic
        loaded, which upgrades under a lock and looks again (so two processes opening a fresh
        database at once both end at the head, migrated once).
        """
        if self.schema_revisions() != {head_revision()}:
            self._upgrade()

    def schema_revisions(self) -> set[str]:
        """The revisions in the database's alembic_version table (none for a fresh database)."""
        try:
            with self._read() as conn:
                return set(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())
        except DBAPIError:  # no such table yet
            return set()

    def _upgrade(self, target: str = "head") -> None:
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with self._write() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7305143)")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, target)

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self):
        with self.engine.connect() as conn:
            conn.execution_options(scorepub_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self):
        with self.engine.connect() as conn:
            yield conn

    # -- reading --------------------------------------------------------------------

    def service(self, name_or_id: str) -> ServiceRecord:
        column = services.c.id if _is_uuid(name_or_id) else services.c.name
        with self._read() as conn:
            row = conn.execute(select(services).where(column == name_or_id.lower() if column is services.c.id
                                                      else column == name_or_id)).first()
        if row is None:
            raise NotFound(f"no service named {name_or_id!r}")
        return ServiceRecord.from_row(row)

    def services(self) -> list[ServiceRecord]:
        with self._read() as conn:
            rows = conn.execute(select(services).order_by(services.c.name)).all()
        return [ServiceRecord.from_row(r) for r in rows]

    def versions(self, name: str) -> list[VersionRecord]:
        svc = self.service(name)
        with self._read() as conn:
            rows = conn.execute(select(versions).where(versions.c.service_id == svc.id)
                                .order_by(versions.c.version)).all()
        return [self._version(svc, r) for r in rows]

    def version(self, name: str, number: int) -> VersionRecord:
        return self.version_of(self.service(name), number)

    def version_of(self, svc: ServiceRecord, number: int) -> VersionRecord:
        """A version of a service record already in hand (one query, not two)."""
        with self._read() as conn:
            row = conn.execute(select(versions).where(
                versions.c.service_id == svc.id, versions.c.version == number)).first()
        if row is None:
            raise NotFound(f"service {svc.name!r} has no version {number}")
        return self._version(svc, row)

    def key_hashes(self, service_id: str) -> list[str]:
        with self._read() as conn:
            return list(conn.execute(select(keys_t.c.key_hash).where(keys_t.c.service_id == service_id)).scalars())

    def audit(self, name: str) -> list[dict]:
        svc = self.service(name)
        with self._read() as conn:
            rows = conn.execute(select(audit_log).where(audit_log.c.service_id == svc.id)
                                .order_by(audit_log.c.id)).all()
        return [{"at": _utc(r.at).isoformat(), "actor": r.actor, "action": r.action, "version": r.version,
                 "from_version": r.from_version, "detail": orjson.loads(r.detail)} for r in rows]

    @staticmethod
    def _version(svc: ServiceRecord, r) -> VersionRecord:
        return VersionRecord(svc.id, svc.name, r.version, r.digest, _utc(r.created_at), r.published_by,
                             r.message, r.schema_json, _utc(r.retired_at))

    # -- writing --------------------------------------------------------------------

    def publish(self, name: str, digest: str, schema_json: str, published_by: str, message: str,
                promote: bool = False, store_artifact=None) -> Published:
        """Register ``digest`` as the next version of ``name`` (made if new), in one transaction.

        ``store_artifact(version)`` is called inside the transaction once the version number is
        known, so the archive can record it; if it fails, nothing is registered. Content
        identical to an existing version makes no new version; with ``promote`` that version
        goes live (unless retired, which is final).
        """
        check_service_name(name)
        for attempt in range(3):
            try:
                return self._publish(name, digest, schema_json, published_by, message, promote, store_artifact)
            except IntegrityError:
                # A concurrent publisher made the same new service first; go again as an update.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _publish(self, name, digest, schema_json, published_by, message, promote, store_artifact) -> Published:
        at = now()
        with self._write() as conn:
            row = conn.execute(select(services).where(services.c.name == name)).first()
            new_keys = None
            if row is None:
                service_id = str(uuid.uuid4())
                conn.execute(insert(services).values(id=service_id, name=name, created_at=at,
                                                     next_version=1, live_version=None))
                new_keys = {slot: api_keys.new_key() for slot in api_keys.SLOTS}
                conn.execute(insert(keys_t), [
                    {"service_id": service_id, "slot": slot, "key_hash": api_keys.hash_key(k), "created_at": at}
                    for slot, k in new_keys.items()])
                self._log(conn, service_id, at, published_by, "create", None, None, {"name": name})
                live = None
            else:
                service_id, live = row.id, row.live_version
            svc = ServiceRecord(service_id, name, at, live)
            same = conn.execute(select(versions).where(versions.c.service_id == service_id,
                                                       versions.c.digest == digest)).first()
            if same is not None:
                record = self._version(svc, same)
                if promote and live != record.version:
                    if record.retired:
                        raise Conflict(f"identical to version {record.version} of {name}, which is retired "
                                       "(a retired version never serves again)")
                    self._set_live(conn, service_id, at, published_by, "promote", record.version, live)
                    live = record.version
                return Published(record, created=False, live=live == record.version, keys=None)
            number = conn.execute(update(services).where(services.c.id == service_id)
                                  .values(next_version=services.c.next_version + 1)
                                  .returning(services.c.next_version)).scalar_one() - 1
            if store_artifact is not None:
                store_artifact(number)
            conn.execute(insert(versions).values(
                service_id=service_id, version=number, digest=digest, created_at=at,
                published_by=published_by, message=message, schema_json=schema_json, retired_at=None))
            self._log(conn, service_id, at, published_by, "publish", number, None,
                      {"digest": digest, "message": message})
            goes_live = promote or live is None
            if goes_live:
                self._set_live(conn, service_id, at, published_by, "promote", number, live)
            record = VersionRecord(service_id, name, number, digest, at, published_by, message, schema_json, None)
            return Published(record, created=True, live=goes_live, keys=new_keys)

    def promote(self, name: str, number: int, actor: str) -> VersionRecord:
        with self._write() as conn:
            svc, record = self._locked_version(conn, name, number)
            if record.retired:
                raise Conflict(f"version {number} of {name} is retired and cannot go live")
            if svc.live_version != number:
                self._set_live(conn, svc.id, now(), actor, "promote", number, svc.live_version)
        return record

    def rollback(self, name: str, actor: str) -> VersionRecord:
        """Move the live pointer back to the version that was live before the current one."""
        with self._write() as conn:
            svc = self._locked_service(conn, name)
            if svc.live_version is None:
                raise Conflict(f"{name} has no live version to roll back from")
            target = self._previous_live(conn, svc)
            if target is None:
                raise Conflict(f"{name} has no earlier live version to roll back to")
            self._set_live(conn, svc.id, now(), actor, "rollback", target, svc.live_version)
            row = conn.execute(select(versions).where(versions.c.service_id == svc.id,
                                                      versions.c.version == target)).one()
            return self._version(svc, row)

    def retire(self, name: str, number: int, actor: str) -> VersionRecord:
        """Stop a version from serving for good; retiring the live one leaves no live version."""
        at = now()
        with self._write() as conn:
            svc, record = self._locked_version(conn, name, number)
            if record.retired:
                return record
            conn.execute(update(versions).where(versions.c.service_id == svc.id, versions.c.version == number)
                         .values(retired_at=at))
            self._log(conn, svc.id, at, actor, "retire", number, None, {})
            if svc.live_version == number:
                conn.execute(update(services).where(services.c.id == svc.id).values(live_version=None))
        return dataclasses.replace(record, retired_at=at)

    def regenerate_key(self, name: str, slot: str, actor: str) -> str:
        if slot not in api_keys.SLOTS:
            raise PublishError(f"key slot must be one of {', '.join(api_keys.SLOTS)}, not {slot!r}")
        key, at = api_keys.new_key(), now()
        with self._write() as conn:
            svc = self._locked_service(conn, name)
            conn.execute(update(keys_t).where(keys_t.c.service_id == svc.id, keys_t.c.slot == slot)
                         .values(key_hash=api_keys.hash_key(key), created_at=at))
            self._log(conn, svc.id, at, actor, "regenerate-key", None, None, {"slot": slot})
        return key

    def set_store_payloads(self, name: str, store: bool, actor: str) -> None:
        with self._write() as conn:
            svc = self._locked_service(conn, name)
            conn.execute(update(services).where(services.c.id == svc.id).values(store_payloads=store))
            self._log(conn, svc.id, now(), actor, "store-payloads", None, None, {"store": store})

    # -- admin users ------------------------------------------------------------------

    def create_user(self, name: str, password_hash: str) -> None:
        """Make an admin login, or give an existing one a new password."""
        if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name or ""):
            raise PublishError(f"user name {name!r} is invalid: 1 to 64 letters, digits or _.@-")
        with self._write() as conn:
            if conn.execute(select(users.c.name).where(users.c.name == name)).first():
                conn.execute(update(users).where(users.c.name == name).values(password_hash=password_hash))
            else:
                conn.execute(insert(users).values(name=name, password_hash=password_hash, created_at=now()))

    def password_hash(self, name: str) -> str | None:
        with self._read() as conn:
            return conn.execute(select(users.c.password_hash).where(users.c.name == name)).scalar()

    def login_state(self, name: str) -> tuple[str, int] | None:
        """A login's password hash and session generation (what an admin session is checked against)."""
        with self._read() as conn:
            row = conn.execute(select(users.c.password_hash, users.c.session_generation)
                               .where(users.c.name == name)).first()
        return None if row is None else (row.password_hash, row.session_generation)

    def revoke_sessions(self, name: str) -> None:
        """Log every session of ``name`` out (logout): sessions carry the generation they were made in."""
        with self._write() as conn:
            conn.execute(update(users).where(users.c.name == name)
                         .values(session_generation=users.c.session_generation + 1))

    def login_failures(self, name: str, since: dt.datetime) -> int:
        with self._read() as conn:
            return conn.execute(select(func.count()).select_from(login_failures).where(
                login_failures.c.name == name, login_failures.c.at >= since)).scalar_one()

    def claim_login_attempt(self, name: str, since: dt.datetime, limit: int) -> int | None:
        """Count the failures of ``name`` since ``since`` and, under ``limit``, record this attempt as
        one, in one transaction: concurrent attempts queue (SQLite's write lock, a PostgreSQL
        advisory lock per name), so at most ``limit`` passwords are ever checked in a window.
        None: locked out. Otherwise the failure's id, for ``forgive_login_attempt`` once the
        password proved right."""
        name = name[:64]
        with self._write() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(7305144, hashtext(:name))"), {"name": name})
            count = conn.execute(select(func.count()).select_from(login_failures).where(
                login_failures.c.name == name, login_failures.c.at >= since)).scalar_one()
            if count >= limit:
                return None
            attempt = conn.execute(insert(login_failures).values(name=name, at=now())).inserted_primary_key[0]
            conn.execute(delete(login_failures).where(login_failures.c.at < now() - dt.timedelta(days=1)))
            return attempt

    def forgive_login_attempt(self, attempt: int) -> None:
        with self._write() as conn:
            conn.execute(delete(login_failures).where(login_failures.c.id == attempt))

    # -- the call log ------------------------------------------------------------------

    def record_calls(self, rows: list[dict], keep: int) -> None:
        """Append calls (one transaction) and keep only the newest ``keep`` per service."""
        if not rows:
            return
        with self._write() as conn:
            conn.execute(insert(calls), rows)
            for service_id in {r["service_id"] for r in rows}:
                cutoff = conn.execute(select(calls.c.id).where(calls.c.service_id == service_id)
                                      .order_by(calls.c.id.desc()).offset(keep).limit(1)).scalar()
                if cutoff is not None:
                    conn.execute(delete(calls).where(calls.c.service_id == service_id, calls.c.id <= cutoff))

    def recent_calls(self, service_id: str, limit: int = 100) -> list[dict]:
        columns = [calls.c[n] for n in ("id", "version", "request_id", "at", "face", "status", "duration_ms",
                                         "rows_in", "rows_out", "error_code", "error_message")]
        with self._read() as conn:
            rows = conn.execute(select(*columns).where(calls.c.service_id == service_id)
                                .order_by(calls.c.id.desc()).limit(limit)).all()
        return [{**r._asdict(), "at": _utc(r.at)} for r in rows]

    def call(self, service_id: str, call_id: int) -> dict:
        with self._read() as conn:
            row = conn.execute(select(calls).where(calls.c.service_id == service_id, calls.c.id == call_id)).first()
        if row is None:
            raise NotFound(f"no call {call_id}")
        return {**row._asdict(), "at": _utc(row.at)}

    def call_stats(self, since: dt.datetime) -> dict:
        """Per service id: calls, errors and latencies since ``since``."""
        with self._read() as conn:
            rows = conn.execute(select(calls.c.service_id, calls.c.status, calls.c.duration_ms)
                                .where(calls.c.at >= since)).all()
        stats: dict = {}
        for service_id, status, duration in rows:
            entry = stats.setdefault(service_id, {"calls": 0, "errors": 0, "durations": []})
            entry["calls"] += 1
            entry["errors"] += status >= 400
            entry["durations"].append(duration)
        return stats

    # -- helpers --------------------------------------------------------------------

    def _locked_service(self, conn, name) -> ServiceRecord:
        query = select(services).where(services.c.name == name)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"no service named {name!r}")
        return ServiceRecord.from_row(row)

    def _locked_version(self, conn, name, number):
        svc = self._locked_service(conn, name)
        row = conn.execute(select(versions).where(versions.c.service_id == svc.id,
                                                  versions.c.version == number)).first()
        if row is None:
            raise NotFound(f"service {name!r} has no version {number}")
        return svc, self._version(svc, row)

    def _set_live(self, conn, service_id, at, actor, action, number, previous):
        conn.execute(update(services).where(services.c.id == service_id).values(live_version=number))
        self._log(conn, service_id, at, actor, action, number, previous, {})

    def _previous_live(self, conn, svc) -> int | None:
        """Replay the live-pointer history as a stack: promote pushes, rollback pops."""
        rows = conn.execute(select(audit_log.c.action, audit_log.c.version)
                            .where(audit_log.c.service_id == svc.id,
                                   audit_log.c.action.in_(("promote", "rollback")))
                            .order_by(audit_log.c.id)).all()
        retired = set(conn.execute(select(versions.c.version).where(
            versions.c.service_id == svc.id, versions.c.retired_at.is_not(None))).scalars())
        stack: list[int] = []
        for action, version in rows:
            if action == "promote":
                stack.append(version)
            else:
                while stack and stack[-1] != version:
                    stack.pop()
        # stack[-1] is the current live version; the one below it (not retired) is the target
        candidates = [v for v in stack[:-1] if v not in retired and v != svc.live_version]
        return candidates[-1] if candidates else None

    def _log(self, conn, service_id, at, actor, action, version, from_version, detail):
        """Every change is audited; on PostgreSQL it also wakes the replicas (LISTEN/NOTIFY)."""
        conn.execute(insert(audit_log).values(service_id=service_id, at=at, actor=actor, action=action,
                                              version=version, from_version=from_version,
                                              detail=orjson.dumps(detail).decode()))
        cutoff = conn.execute(select(audit_log.c.id).where(audit_log.c.service_id == service_id)
                              .order_by(audit_log.c.id.desc()).offset(AUDIT_KEEP).limit(1)).scalar()
        if cutoff is not None:  # bounded retention: the newest AUDIT_KEEP entries per service
            conn.execute(delete(audit_log).where(audit_log.c.service_id == service_id, audit_log.c.id <= cutoff))
        if self.dialect == "postgresql":
            conn.exec_driver_sql(f"NOTIFY {NOTIFY_CHANNEL}")  # delivered when the transaction commits

    # -- what replicas watch -------------------------------------------------------------

    def change_marker(self) -> int:
        """Grows with every change (the newest audit entry): a cheap "anything new?" poll."""
        with self._read() as conn:
            return conn.execute(select(func.max(audit_log.c.id))).scalar() or 0

    def live_pointers(self) -> dict[str, tuple[str, int | None]]:
        """service id -> (name, live version), in one query."""
        with self._read() as conn:
            rows = conn.execute(select(services.c.id, services.c.name, services.c.live_version)).all()
        return {r.id: (r.name, r.live_version) for r in rows}


def _sqlite_connect(dbapi_connection, _record):
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own handling defers it).
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn):
    # Writers take the write lock up front, so two publishers queue instead of deadlocking.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("scorepub_write") else "BEGIN")
