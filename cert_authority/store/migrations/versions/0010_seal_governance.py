"""Seal governance (印章备案): a seal is applied for, approved (filed) or rejected, and may be
suspended. An application has no seal code, certificate, SES_Seal or validity yet, so those columns
become nullable; new columns hold the legal representative, where the seal was made, the picture's
fingerprint, the dates asked for, and the decisions. Seals filed before this revision stay active.

Revision ID: 0010_seal_governance
Revises: 0009_show_token_once
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_seal_governance"
down_revision = "0009_show_token_once"

_FILED_ONLY = ("es_id", "cert_serial", "seal_sm3")


def upgrade() -> None:
    # Batch mode: SQLite changes a column's nullability by copying the table (store.db.migrate
    # turns foreign-key enforcement off around it and checks every reference afterwards).
    with op.batch_alter_table("seal") as batch:
        batch.alter_column("es_id", existing_type=sa.String(64), nullable=True)
        batch.alter_column("cert_serial", existing_type=sa.String(40), nullable=True)
        batch.alter_column("seal_sm3", existing_type=sa.String(64), nullable=True)
        batch.alter_column("valid_start", existing_type=sa.DateTime(timezone=True), nullable=True)
        batch.alter_column("valid_end", existing_type=sa.DateTime(timezone=True), nullable=True)
        batch.add_column(sa.Column("legal_representative", sa.String(50), nullable=True))
        batch.add_column(sa.Column("origin", sa.String(10), nullable=False, server_default="made"))
        batch.add_column(sa.Column("picture_fingerprint", sa.Text(), nullable=True))
        batch.add_column(sa.Column("requested_start", sa.Date(), nullable=True))
        batch.add_column(sa.Column("requested_end", sa.Date(), nullable=True))
        batch.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("decided_by", sa.String(40), nullable=True))
        batch.add_column(sa.Column("decision_note", sa.String(500), nullable=True))
        batch.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("suspension_reason", sa.String(200), nullable=True))
        batch.create_index("ix_seal_status", ["status"])
    # Seals filed before governance were approved by whoever registered them.
    op.execute("UPDATE seal SET decided_at = created_at, decided_by = created_by")


def downgrade() -> None:
    # Applications and rejected ones have no certificate: the old table cannot hold them.
    op.execute("DELETE FROM seal WHERE es_id IS NULL OR cert_serial IS NULL OR seal_sm3 IS NULL")
    # A suspended seal stays suspended: the older code uses active seals only.
    with op.batch_alter_table("seal") as batch:
        batch.drop_index("ix_seal_status")
        for column in (
            "suspension_reason",
            "suspended_at",
            "decision_note",
            "decided_by",
            "decided_at",
            "requested_end",
            "requested_start",
            "picture_fingerprint",
            "origin",
            "legal_representative",
        ):
            batch.drop_column(column)
        batch.alter_column("valid_end", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.alter_column("valid_start", existing_type=sa.DateTime(timezone=True), nullable=False)
        for column, length in zip(_FILED_ONLY, (64, 40, 64), strict=True):
            batch.alter_column(column, existing_type=sa.String(length), nullable=False)
