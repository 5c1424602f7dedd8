"""Stock conversion (存量) and paper twins (同步制发): licence.origin (new, stock, paper_twin; the
change feed carries it) and licence.original_issuer_name (the issuer printed on a converted
licence, when a merged department issued the paper one).

Revision ID: 0012_licence_origin
Revises: 0011_matters_cases
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_licence_origin"
down_revision = "0011_matters_cases"


def upgrade() -> None:
    with op.batch_alter_table("licence") as batch:
        batch.add_column(sa.Column("origin", sa.String(12), nullable=False, server_default="new"))
        batch.add_column(sa.Column("original_issuer_name", sa.String(100), nullable=True))
        batch.create_index("ix_licence_origin", ["origin"])


def downgrade() -> None:
    with op.batch_alter_table("licence") as batch:
        batch.drop_index("ix_licence_origin")
        batch.drop_column("original_issuer_name")
        batch.drop_column("origin")
