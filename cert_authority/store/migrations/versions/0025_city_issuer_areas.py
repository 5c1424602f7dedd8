"""Province mode: the administrative areas whose issuers a city may push licences for. Without
it, a registered city could file another city's identifiers (predictable: issuer code and counter)
under itself first, with any status, and the real city's every later batch was refused. NULL: the
area of the city authority's own code (its first four digits: a prefecture-level city).

Revision ID: 0025_city_issuer_areas
Revises: 0024_disclosed_fields
"""

import sqlalchemy as sa
from alembic import op

revision = "0025_city_issuer_areas"
down_revision = "0024_disclosed_fields"


def upgrade() -> None:
    op.add_column("province_city", sa.Column("issuer_areas", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("province_city") as batch:
        batch.drop_column("issuer_areas")
