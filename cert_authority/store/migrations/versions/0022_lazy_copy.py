"""Annotated copies (加注件) made on first download: a use records its copy's link with what the copy
will say (the department, the cause, the time of the use, the SM3 of the licence's sealed PDF); the
copy is rendered, sealed and stored the first time the link is fetched, and its SM3 kept, so every
later download is the same file. Rows from before keep their file_sm3.

Revision ID: 0022_lazy_copy
Revises: 0021_stored_keys
"""

import sqlalchemy as sa
from alembic import op

revision = "0022_lazy_copy"
down_revision = "0021_stored_keys"


def upgrade() -> None:
    with op.batch_alter_table("shared_file") as batch:
        batch.alter_column("file_sm3", existing_type=sa.String(64), nullable=True)
        batch.add_column(sa.Column("department_uscc", sa.String(18), nullable=True))
        batch.add_column(sa.Column("cause", sa.Text(), nullable=True))
        batch.add_column(sa.Column("used_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("licence_sm3", sa.String(64), nullable=True))


def downgrade() -> None:
    # A link whose copy was never made has nothing to point at in the older shape: it goes.
    op.execute("DELETE FROM shared_file WHERE file_sm3 IS NULL")
    with op.batch_alter_table("shared_file") as batch:
        batch.drop_column("licence_sm3")
        batch.drop_column("used_at")
        batch.drop_column("cause")
        batch.drop_column("department_uscc")
        batch.alter_column("file_sm3", existing_type=sa.String(64), nullable=False)
