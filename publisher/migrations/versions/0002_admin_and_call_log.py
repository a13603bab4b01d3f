"""Admin users, login failures, the call log, and per-service payload logging.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "users",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_login_failures_name_at", "login_failures", ["name", "at"])
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service_id", sa.String(36), sa.ForeignKey("services.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("face", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("rows_in", sa.Integer, nullable=False),
        sa.Column("rows_out", sa.Integer, nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("traceback", sa.Text, nullable=True),
        sa.Column("log", sa.Text, nullable=True),
        sa.Column("plots", sa.Text, nullable=True),
        sa.Column("notes", sa.Text, nullable=True),
        sa.Column("payload", sa.Text, nullable=True),
    )
    op.create_index("ix_calls_service_at", "calls", ["service_id", "at"])
    op.create_index("ix_calls_request_id", "calls", ["request_id"])
    with op.batch_alter_table("services") as batch:
        batch.add_column(sa.Column("store_payloads", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade():
    with op.batch_alter_table("services") as batch:
        batch.drop_column("store_payloads")
    op.drop_index("ix_calls_request_id", "calls")
    op.drop_index("ix_calls_service_at", "calls")
    op.drop_table("calls")
    op.drop_index("ix_login_failures_name_at", "login_failures")
    op.drop_table("login_failures")
    op.drop_table("users")
