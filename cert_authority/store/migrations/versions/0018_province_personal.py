"""Personal data at rest in the province's copies (issue 25, item 2): `province_licence` keeps the
holder code only as a blind index (HMAC-SM3) and its payload sealed (SM4-GCM); `province_event`
keeps a licence event's payload sealed. Existing rows are sealed by `ecas data encrypt` (it needs
the data key, which a schema migration does not have), which then empties the plain column.

Revision ID: 0018_province_personal
Revises: 0017_packed_files
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_province_personal"
down_revision = "0017_packed_files"


def upgrade() -> None:
    with op.batch_alter_table("province_licence") as batch:
        batch.drop_index("ix_province_licence_holder_code")
        batch.alter_column("holder_code", existing_type=sa.String(40), nullable=True)
        batch.add_column(sa.Column("holder_code_index", sa.String(64), nullable=True))
        batch.create_index("ix_province_licence_holder_code_index", ["holder_code_index"])


def downgrade() -> None:
    """Only for a database whose province rows were never sealed (a migration has no key to open
    them): refused, before any change, when one is."""
    connection = op.get_bind()
    sealed = connection.execute(
        sa.text("SELECT 1 FROM province_licence WHERE holder_code IS NULL LIMIT 1")
    ).first() or connection.execute(
        sa.text("SELECT 1 FROM province_event WHERE payload_json NOT LIKE '{%' LIMIT 1")
    ).first()
    if sealed:
        raise RuntimeError(
            "the province's copies hold personal data sealed with SM4-GCM: a downgrade below 0017 would lose it"
        )
    with op.batch_alter_table("province_licence") as batch:
        batch.drop_index("ix_province_licence_holder_code_index")
        batch.drop_column("holder_code_index")
        batch.alter_column("holder_code", existing_type=sa.String(40), nullable=False)
        batch.create_index("ix_province_licence_holder_code", ["holder_code"])
