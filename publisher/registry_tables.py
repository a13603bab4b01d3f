"""The registry's tables (SQLAlchemy Core). Changes go through Alembic migrations only."""
from sqlalchemy import (Boolean, Column, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Table,
                        Text, UniqueConstraint, false)

metadata = MetaData()

services = Table(
    "services", metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("next_version", Integer, nullable=False),
    Column("live_version", Integer, nullable=True),
    Column("store_payloads", Boolean, nullable=False, server_default=false()),
)

versions = Table(
    "versions", metadata,
    Column("service_id", String(36), ForeignKey("services.id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("published_by", String(128), nullable=False),
    Column("message", Text, nullable=False),
    Column("schema_json", Text, nullable=False),
    Column("retired_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("service_id", "digest", name="uq_versions_service_digest"),
)

api_keys = Table(
    "api_keys", metadata,
    Column("service_id", String(36), ForeignKey("services.id"), primary_key=True),
    Column("slot", String(16), primary_key=True),
    Column("key_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(36), ForeignKey("services.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("version", Integer, nullable=True),
    Column("from_version", Integer, nullable=True),
    Column("detail", Text, nullable=False),
    Index("ix_audit_log_service_at", "service_id", "at"),
)

users = Table(
    "users", metadata,
    Column("name", String(64), primary_key=True),
    Column("password_hash", String(256), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # bumped by logout: a session made in an older generation is no longer accepted
    Column("session_generation", Integer, nullable=False, server_default="0"),
)

login_failures = Table(
    "login_failures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_login_failures_name_at", "name", "at"),
)

calls = Table(
    "calls", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(36), ForeignKey("services.id"), nullable=False),
    Column("version", Integer, nullable=True),
    Column("request_id", String(128), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("face", String(16), nullable=False),
    Column("status", Integer, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("rows_in", Integer, nullable=False),
    Column("rows_out", Integer, nullable=False),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("traceback", Text, nullable=True),
    Column("log", Text, nullable=True),
    Column("plots", Text, nullable=True),
    Column("notes", Text, nullable=True),
    Column("payload", Text, nullable=True),
    Index("ix_calls_service_at", "service_id", "at"),
    Index("ix_calls_request_id", "request_id"),
)
