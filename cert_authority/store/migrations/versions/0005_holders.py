"""Holders' built-in accounts and sessions, and the show tokens verifiers have accepted.

Revision ID: 0005_holders
Revises: 0004_png_on_demand
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_holders"
down_revision = "0004_png_on_demand"


def _utc(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "holder_account",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("holder_code", sa.String(18), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        _utc("created_at"),
        sa.Column("disabled", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "holder_session",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("holder_id", sa.Integer(), sa.ForeignKey("holder_account.id"), nullable=False),
        _utc("expires_at"),
    )
    op.create_table(
        "show_token_use",
        sa.Column("nonce", sa.String(32), primary_key=True),
        sa.Column("verifier", sa.String(40), primary_key=True),
        sa.Column("identifier", sa.String(120), nullable=False),
        _utc("expires_at"),
    )


def downgrade() -> None:
    op.drop_table("show_token_use")
    op.drop_table("holder_session")
    op.drop_table("holder_account")
