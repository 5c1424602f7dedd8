"""Lists of licences page by key (issue 24): an index on (created_at, id), the newest-first order,
so a page deep in the list is an index range rather than an offset scan.

Revision ID: 0019_licence_keyset
Revises: 0018_province_personal
"""

from alembic import op

revision = "0019_licence_keyset"
down_revision = "0018_province_personal"


def upgrade() -> None:
    op.create_index("ix_licence_created_at_id", "licence", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_licence_created_at_id", table_name="licence")
