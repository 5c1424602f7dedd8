"""Every verification reads, with the licence row, how many certificates are revoked on record and
which one was revoked last (the CRL served must list them): an index on (revoked_at, serial) makes
both an index range instead of a scan of the issued certificates.

Revision ID: 0023_revocation_index
Revises: 0022_lazy_copy
"""

from alembic import op

revision = "0023_revocation_index"
down_revision = "0022_lazy_copy"


def upgrade() -> None:
    op.create_index("ix_issued_certificate_revoked_at_serial", "issued_certificate", ["revoked_at", "serial"])


def downgrade() -> None:
    op.drop_index("ix_issued_certificate_revoked_at_serial", table_name="issued_certificate")
