"""The file store in the database (issue 24, a stateless application tier): table stored_file,
one row per file named by the SM3 digest of its content, the (SM4-GCM-sealed) value as bytea
(store/filestore_db.py says why bytea rather than large objects). Used when ECAS_FILE_STORE is
`database` (the default on PostgreSQL); files of a local store are copied in by
`ecas data encrypt-files`. And table data_key_ring: on PostgreSQL the data-encryption keys
(wrapped under the KEK, keys.datakeys) are kept there, so that every host shares one ring
(store/data_keys.py); a host's data-keys.json is imported on first use.

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
    op.create_table(
        "data_key_ring",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("document", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Sealed values do not compress: keep them out of line without trying (TOAST EXTERNAL).
        op.execute("ALTER TABLE stored_file ALTER COLUMN content SET STORAGE EXTERNAL")


def downgrade() -> None:
    """Refused while the tables hold files or keys: they would be lost (copy the files to a local
    store and the ring to data-keys.json first)."""
    connection = op.get_bind()
    if connection.execute(sa.text("SELECT 1 FROM data_key_ring WHERE document IS NOT NULL LIMIT 1")).first():
        raise RuntimeError("data_key_ring holds the data keys: dropping it would lose them")
    if connection.execute(sa.text("SELECT 1 FROM stored_file LIMIT 1")).first():
        raise RuntimeError("stored_file holds files: dropping it would lose them")
    op.drop_table("stored_file")
    op.drop_table("data_key_ring")
