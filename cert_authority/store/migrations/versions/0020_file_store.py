"""The file store in the database (issue 24, a stateless application tier): table stored_file,
one row per file named by the SM3 digest of its content, the (SM4-GCM-sealed) value as bytea
(store/filestore_db.py says why bytea rather than large objects). Used when ECAS_FILE_STORE is
`database` (the default on PostgreSQL); files of a local store are copied in by
`ecas data encrypt-files`. And table data_key_ring: on PostgreSQL the data-encryption keys
(wrapped under the KEK, keys.datakeys) are kept there, so that every host shares one ring
(store/data_keys.py); a host's data-keys.json is imported on first use.

Revision ID: 0020_file_store
Revises: 0019_licence_keyset
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_file_store"
down_revision = "0019_licence_keyset"


def upgrade() -> None:
    # Created only if absent: a downgrade leaves tables that hold files or keys in place (below).
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "stored_file" not in existing:
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
    if "data_key_ring" not in existing:
        op.create_table(
            "data_key_ring",
            sa.Column("name", sa.String(40), primary_key=True),
            sa.Column("document", sa.Text(), nullable=True),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        )


def downgrade() -> None:
    """Drops each table only while it is empty: files and data keys are never lost to a downgrade.
    A table that holds them stays (older code does not look at it; upgrading again uses it), so
    copy the files out (a local store) before running older code on this database."""
    connection = op.get_bind()
    if not connection.execute(sa.text("SELECT 1 FROM stored_file LIMIT 1")).first():
        op.drop_table("stored_file")
    if not connection.execute(sa.text("SELECT 1 FROM data_key_ring WHERE document IS NOT NULL LIMIT 1")).first():
        op.drop_table("data_key_ring")
