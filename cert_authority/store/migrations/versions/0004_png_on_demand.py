"""Licence phone images are rendered on first request, not at issue: licence.png_sm3 may be NULL.

Revision ID: 0004_png_on_demand
Revises: 0003_licences
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_png_on_demand"
down_revision = "0003_licences"


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a column in place, so Alembic copies the table there.
    with op.batch_alter_table("licence") as batch:
        batch.alter_column("png_sm3", existing_type=sa.String(64), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("licence") as batch:
        batch.alter_column("png_sm3", existing_type=sa.String(64), nullable=False)
