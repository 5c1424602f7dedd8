"""The web console: department staff accounts and their sessions, and batch jobs uploaded there.

Revision ID: 0007_web_console
Revises: 0006_sharing
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_web_console"
down_revision = "0006_sharing"


def _utc(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "staff_account",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(40), nullable=False, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("department_id", sa.Integer(), sa.ForeignKey("department.id"), nullable=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        _utc("created_at"),
        sa.Column("disabled", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "staff_session",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("staff_id", sa.Integer(), sa.ForeignKey("staff_account.id"), nullable=False),
        _utc("expires_at"),
    )
    op.create_table(
        "batch_job",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("type_code", sa.String(40), nullable=False),
        sa.Column("issuer_uscc", sa.String(18), nullable=False, index=True),
        sa.Column("filename", sa.String(200), nullable=False),
        sa.Column("file_sm3", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=False),
        _utc("created_at"),
        _utc("updated_at"),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("issued", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("rejects_json", sa.Text(), nullable=False),
        sa.Column("message", sa.String(500), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("batch_job")
    op.drop_table("staff_session")
    op.drop_table("staff_account")
