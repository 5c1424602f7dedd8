"""Department staff accounts and their web sessions (the console and the counter page).

Revision ID: 0007_staff
Revises: 0006_sharing
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_staff"
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


def downgrade() -> None:
    op.drop_table("staff_session")
    op.drop_table("staff_account")
