"""The file store in the database (issue 24, a stateless application tier): table stored_file,
one row per file named by the SM3 digest of its content, the (SM4-GCM-sealed) value as bytea
(store/filestore_db.py says why bytea rather than large objects). Used when ECAS_FILE_STORE is
`database` (the default on PostgreSQL); files of a local store are copied in by
`ecas data encrypt-files`.

Revision ID: 0017_file_store
Revises: 0016_personal_data
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_file_store"
down_revision = "0016_personal_data"


def upgrade() -> None:
    op.create_table(
        "stored_file",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Sealed values do not compress: keep them out of line without trying (TOAST EXTERNAL).
        op.execute("ALTER TABLE stored_file ALTER COLUMN content SET STORAGE EXTERNAL")


def downgrade() -> None:
    """Refused while the table holds files: they would be lost (copy them to a local store first)."""
    connection = op.get_bind()
    if connection.execute(sa.text("SELECT 1 FROM stored_file LIMIT 1")).first():
        raise RuntimeError("stored_file holds files: dropping it would lose them")
    op.drop_table("stored_file")
