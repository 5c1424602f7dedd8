"""A show token is accepted once, wherever it is checked first: show_token_use keyed by the nonce
alone (it was nonce and verifier, so a clerk could replay a token at every other department).

Revision ID: 0009_show_token_once
Revises: 0008_rate_limits
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_show_token_once"
down_revision = "0008_rate_limits"


def _table(name: str, *key: str) -> None:
    op.create_table(
        name,
        sa.Column("nonce", sa.String(32), nullable=False),
        sa.Column("verifier", sa.String(40), nullable=False),
        sa.Column("identifier", sa.String(120), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*key),
    )


def upgrade() -> None:
    _table("show_token_use_once", "nonce")
    op.execute(
        "INSERT INTO show_token_use_once (nonce, verifier, identifier, expires_at) "
        "SELECT nonce, MIN(verifier), MIN(identifier), MAX(expires_at) FROM show_token_use GROUP BY nonce"
    )
    op.drop_table("show_token_use")
    op.rename_table("show_token_use_once", "show_token_use")


def downgrade() -> None:
    _table("show_token_use_per_verifier", "nonce", "verifier")
    op.execute(
        "INSERT INTO show_token_use_per_verifier (nonce, verifier, identifier, expires_at) "
        "SELECT nonce, verifier, identifier, expires_at FROM show_token_use"
    )
    op.drop_table("show_token_use")
    op.rename_table("show_token_use_per_verifier", "show_token_use")
