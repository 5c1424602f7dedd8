"""E-seals and licences: registered seals, issued licences with their status history, counters for
licence serials and numbers, idempotency keys, audit events.

Revision ID: 0003_licences
Revises: 0002_registry
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_licences"
down_revision = "0002_registry"


def _utc(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "seal",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("department_id", sa.Integer(), sa.ForeignKey("department.id"), nullable=False, index=True),
        sa.Column("es_id", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("seal_type", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(50), nullable=True),
        sa.Column(
            "cert_serial", sa.String(40), sa.ForeignKey("issued_certificate.serial"), nullable=False, unique=True
        ),
        sa.Column("seal_sm3", sa.String(64), nullable=False),
        sa.Column("picture_sm3", sa.String(64), nullable=False),
        sa.Column("width_mm", sa.Integer(), nullable=False),
        sa.Column("height_mm", sa.Integer(), nullable=False),
        _utc("valid_start"),
        _utc("valid_end"),
        sa.Column("status", sa.String(10), nullable=False),
        _utc("revoked_at", nullable=True),
        sa.Column("revocation_reason", sa.String(40), nullable=True),
        sa.Column("revocation_note", sa.String(200), nullable=True),
        _utc("created_at"),
        sa.Column("created_by", sa.String(40), nullable=False),
    )
    op.create_table(
        "licence_counter",
        sa.Column("name", sa.String(80), primary_key=True),
        sa.Column("value", sa.Integer(), nullable=False),
    )
    op.create_table(
        "licence",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("identifier", sa.String(120), nullable=False, unique=True),
        sa.Column("type_code", sa.String(21), nullable=False, index=True),
        sa.Column("serial", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("licence_number", sa.String(40), nullable=False, index=True),
        sa.Column("issuer_name", sa.String(100), nullable=False),
        sa.Column("issuer_code", sa.String(18), nullable=False, index=True),
        sa.Column("issuer_level", sa.String(10), nullable=False),
        sa.Column("department_id", sa.Integer(), sa.ForeignKey("department.id"), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("holder_name", sa.Text(), nullable=False),
        sa.Column("holder_code", sa.String(40), nullable=False, index=True),
        sa.Column("holder_code_type", sa.String(3), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("seal_id", sa.Integer(), sa.ForeignKey("seal.id"), nullable=False),
        sa.Column("seal_name", sa.String(200), nullable=False),
        sa.Column("sealed_by", sa.String(200), nullable=False),
        _utc("sealed_at"),
        sa.Column("template_version", sa.Integer(), nullable=False),
        sa.Column("face_json", sa.Text(), nullable=False),
        sa.Column("photo_sm3", sa.String(64), nullable=True),
        sa.Column("pdf_sm3", sa.String(64), nullable=False),
        sa.Column("ofd_sm3", sa.String(64), nullable=False),
        sa.Column("png_sm3", sa.String(64), nullable=False),
        sa.Column("status", sa.String(12), nullable=False, index=True),
        sa.Column("status_reason", sa.String(500), nullable=True),
        _utc("status_changed_at"),
        sa.Column("superseded_by", sa.String(120), nullable=True),
        _utc("created_at"),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.UniqueConstraint("type_code", "issuer_code", "serial", "version", name="uq_licence_serial_version"),
    )
    op.create_table(
        "licence_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("licence_id", sa.Integer(), sa.ForeignKey("licence.id"), nullable=False, index=True),
        sa.Column("identifier", sa.String(120), nullable=False),
        sa.Column("previous_status", sa.String(12), nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("action", sa.String(12), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        _utc("at"),
        sa.Column("actor", sa.String(40), nullable=False),
    )
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        _utc("at"),
        sa.Column("actor", sa.String(40), nullable=False),
        sa.Column("actor_role", sa.String(10), nullable=False),
        sa.Column("actor_department", sa.String(18), nullable=True),
        sa.Column("action", sa.String(20), nullable=False, index=True),
        sa.Column("target", sa.String(120), nullable=False, index=True),
        sa.Column("holder_code_masked", sa.String(40), nullable=True),
        sa.Column("detail_json", sa.Text(), nullable=True),
    )
    op.create_table(
        "idempotency_key",
        sa.Column("scope", sa.String(18), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("request_sm3", sa.String(64), nullable=False),
        sa.Column("licence_id", sa.Integer(), sa.ForeignKey("licence.id"), nullable=False),
        _utc("created_at"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_key")
    op.drop_table("audit_event")
    op.drop_table("licence_event")
    op.drop_table("licence")
    op.drop_table("licence_counter")
    op.drop_table("seal")
