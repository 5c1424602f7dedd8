"""Sharing (用证): holders' use codes, duty-based rules, temporary links to annotated copies.

Revision ID: 0006_sharing
Revises: 0005_holders
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_sharing"
down_revision = "0005_holders"


def _utc(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "use_code",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("holder_id", sa.Integer(), sa.ForeignKey("holder_account.id"), nullable=False),
        sa.Column("identifier", sa.String(120), nullable=False, index=True),
        sa.Column("department_uscc", sa.String(18), nullable=False),
        sa.Column("purpose", sa.String(200), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        _utc("expires_at"),
        _utc("withdrawn_at", nullable=True),
        _utc("created_at"),
    )
    op.create_table(
        "duty_rule",
        sa.Column("department_uscc", sa.String(18), primary_key=True),
        sa.Column("type_code", sa.String(40), primary_key=True),
        _utc("created_at"),
        sa.Column("created_by", sa.String(40), nullable=False),
    )
    op.create_table(
        "shared_file",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("file_sm3", sa.String(64), nullable=False),
        sa.Column("identifier", sa.String(120), nullable=False),
        _utc("expires_at"),
    )


def downgrade() -> None:
    op.drop_table("shared_file")
    op.drop_table("duty_rule")
    op.drop_table("use_code")
