"""Tamper-evident records: the HMAC-SM3 chain columns of audit rows and licence status events, and
the anchors of chain heads (store/chain.py). Rows written before this migration stay unchained;
`ecas audit verify` counts them and flags an unchained row written after the chain began.

Revision ID: 0012_record_chain
Revises: 0011_matters_cases
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_record_chain"
down_revision = "0011_matters_cases"

CHAINED = ("audit_event", "licence_event")


def upgrade() -> None:
    for table in CHAINED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("chain_partition", sa.BigInteger(), nullable=True))
            batch.add_column(sa.Column("chain_seq", sa.BigInteger(), nullable=True))
            batch.add_column(sa.Column("chain_prev", sa.String(64), nullable=True))
            batch.add_column(sa.Column("chain_mac", sa.String(64), nullable=True))
    op.create_table(
        "chain_anchor",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("chain_partition", sa.BigInteger(), nullable=False),
        sa.Column("chain_seq", sa.BigInteger(), nullable=False),
        sa.Column("chain_mac", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("chain_anchor")
    for table in CHAINED:
        with op.batch_alter_table(table) as batch:
            for column in ("chain_mac", "chain_prev", "chain_seq", "chain_partition"):
                batch.drop_column(column)
