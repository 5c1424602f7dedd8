"""A material reused on a show token records the face fields the holder disclosed in it: the
department gets those and no others, then and on the case's page (NULL: every field, on a duty
rule, a use code or a standing authorisation).

Revision ID: 0024_disclosed_fields
Revises: 0023_revocation_index
"""

import sqlalchemy as sa
from alembic import op

revision = "0024_disclosed_fields"
down_revision = "0023_revocation_index"


def upgrade() -> None:
    op.add_column("case_material", sa.Column("disclosed_fields", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("case_material") as batch:
        batch.drop_column("disclosed_fields")
