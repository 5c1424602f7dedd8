"""Private keys in the database (issue 25, several hosts): table stored_key, one row per key label,
the encrypted PKCS#8 file (PBES2 with SM4-CBC under ECAS_KEK) as bytes. Used when ECAS_FILE_STORE is
`database` (the default on PostgreSQL), so that a seal key made on one host seals on every host
(store/keys_db.py).

Revision ID: 0021_stored_keys
Revises: 0020_file_store
"""

import sqlalchemy as sa
from alembic import op

revision = "0021_stored_keys"
down_revision = "0020_file_store"


def upgrade() -> None:
    # Created only if absent: a downgrade leaves a table that holds keys in place (below).
    if "stored_key" not in set(sa.inspect(op.get_bind()).get_table_names()):
        op.create_table(
            "stored_key",
            sa.Column("label", sa.String(100), primary_key=True),
            sa.Column("content", sa.LargeBinary(), nullable=False),
            sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        )


def downgrade() -> None:
    """Drops the table only while it is empty: private keys are never lost to a downgrade (copy
    each row's content to keys/<label>.key.pem on every host before running older code)."""
    if not op.get_bind().execute(sa.text("SELECT 1 FROM stored_key LIMIT 1")).first():
        op.drop_table("stored_key")
