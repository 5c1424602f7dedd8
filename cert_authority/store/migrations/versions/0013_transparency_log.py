"""The issuance transparency log: leaves (queued, then sequenced), tiles, signed tree heads.

Revision ID: 0013_transparency_log
Revises: 0012_licence_origin
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_transparency_log"
down_revision = "0012_licence_origin"

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "log_entry",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("identifier", sa.String(120), nullable=False, index=True),
        sa.Column("event", sa.String(12), nullable=False),
        sa.Column("leaf", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_index", sa.BigInteger(), nullable=True, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "log_tile",
        sa.Column("level", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "log_head",
        sa.Column("tree_size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("origin", sa.String(200), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("log_head")
    op.drop_table("log_tile")
    op.drop_table("log_entry")
