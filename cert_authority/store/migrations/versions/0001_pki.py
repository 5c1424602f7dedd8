"""PKI: issued certificates, CRLs, counters.

Revision ID: 0001_pki
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_pki"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "issued_certificate",
        sa.Column("serial", sa.String(40), primary_key=True),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("uscc", sa.String(18), nullable=True, index=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("key_label", sa.String(100), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.String(40), nullable=True),
    )
    op.create_table(
        "crl",
        sa.Column("number", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("this_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "counter",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("counter")
    op.drop_table("crl")
    op.drop_table("issued_certificate")
