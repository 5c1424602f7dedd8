"""Packed licence files (issue 24, storage): `packed_file` names, for a file stored as a manifest
of literal bytes and shared parts (`store.packing`), the manifest in the file store.

Revision ID: 0017_packed_files
Revises: 0016_personal_data
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_packed_files"
down_revision = "0016_personal_data"


def upgrade() -> None:
    op.create_table(
        "packed_file",
        sa.Column("sm3", sa.String(64), primary_key=True),
        sa.Column("manifest_sm3", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("packed_file")
