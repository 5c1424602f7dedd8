"""Licence-type registry: departments, licence types, their issuers and template versions, API keys.

Revision ID: 0002_registry
Revises: 0001_pki
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_registry"
down_revision = "0001_pki"


def upgrade() -> None:
    op.create_table(
        "department",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("uscc", sa.String(18), nullable=False, unique=True),
        sa.Column("area_code", sa.String(6), nullable=False),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("roles", sa.String(40), nullable=False),
        sa.Column("contact", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "licence_type",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(21), nullable=False, unique=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("authority_name", sa.String(100), nullable=False),
        sa.Column("authority_uscc", sa.String(18), nullable=False),
        sa.Column("issuer_level", sa.String(10), nullable=False),
        sa.Column("holder_category", sa.String(20), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=False),
    )
    op.create_table(
        "licence_type_issuer",
        sa.Column("type_id", sa.Integer(), sa.ForeignKey("licence_type.id"), primary_key=True),
        sa.Column("department_id", sa.Integer(), sa.ForeignKey("department.id"), primary_key=True),
    )
    op.create_table(
        "template_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("type_id", sa.Integer(), sa.ForeignKey("licence_type.id"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("template_json", sa.Text(), nullable=False),
        sa.Column("background_sm3", sa.String(64), nullable=False),
        sa.Column("note", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.UniqueConstraint("type_id", "version", name="uq_template_version_type_version"),
    )
    op.create_table(
        "api_key",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("prefix", sa.String(16), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("department_id", sa.Integer(), sa.ForeignKey("department.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("api_key")
    op.drop_table("template_version")
    op.drop_table("licence_type_issuer")
    op.drop_table("licence_type")
    op.drop_table("department")
