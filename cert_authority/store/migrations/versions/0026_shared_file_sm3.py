"""A file verified that is no licence is looked up among the annotated copies (加注件) this
authority made, by SM3: an index on shared_file.file_sm3.

Revision ID: 0026_shared_file_sm3
Revises: 0025_city_issuer_areas
"""

from alembic import op

revision = "0026_shared_file_sm3"
down_revision = "0025_city_issuer_areas"


def upgrade() -> None:
    op.create_index("ix_shared_file_file_sm3", "shared_file", ["file_sm3"])


def downgrade() -> None:
    op.drop_index("ix_shared_file_file_sm3", table_name="shared_file")
