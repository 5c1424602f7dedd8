"""Ready for the commercial-cryptography assessment: the HMAC-SM3 chain columns of audit rows and
licence status events and the anchors of chain heads (store/chain.py; rows written before this
migration stay unchained: `ecas audit verify` counts them and flags an unchained row written after
the chain began); staff SM2 sign-in keys and their challenges (access/signin.py).

Revision ID: 0014_crypto_readiness
Revises: 0013_transparency_log
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_crypto_readiness"
down_revision = "0013_transparency_log"

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


    op.create_table(
        "staff_sign_key",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("staff_id", sa.Integer(), sa.ForeignKey("staff_account.id"), nullable=False, index=True),
        sa.Column("public_key_der", sa.LargeBinary(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_by", sa.String(40), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "staff_challenge",
        sa.Column("challenge_sha256", sa.String(64), primary_key=True),
        sa.Column("staff_id", sa.Integer(), sa.ForeignKey("staff_account.id"), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("staff_challenge")
    op.drop_table("staff_sign_key")
    op.drop_table("chain_anchor")
    for table in CHAINED:
        with op.batch_alter_table(table) as batch:
            for column in ("chain_mac", "chain_prev", "chain_seq", "chain_partition"):
                batch.drop_column(column)
