"""Per-client request counters for rate limiting, shared by every worker.

Revision ID: 0008_rate_limits
Revises: 0007_web_console
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_rate_limits"
down_revision = "0007_web_console"


def upgrade() -> None:
    op.create_table(
        "rate_window",
        sa.Column("client", sa.String(80), primary_key=True),
        sa.Column("window_start", sa.BigInteger(), primary_key=True),  # Unix seconds
        sa.Column("hits", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_window")
