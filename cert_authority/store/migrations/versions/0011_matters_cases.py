"""Matters and cases at the counter (办事事项, 办件): matters, cases and their materials, holders'
standing authorisations; duty rules get an id, an optional list of matters, an end date and
withdrawal (rebuilt: their key was the department and type, one rule each, never withdrawn).

Revision ID: 0011_matters_cases
Revises: 0010_seal_governance
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_matters_cases"
down_revision = "0010_seal_governance"


def _utc(name: str, nullable: bool = False, index: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, index=index)


def upgrade() -> None:
    op.create_table(
        "duty_rule_new",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("department_uscc", sa.String(18), nullable=False),
        sa.Column("type_code", sa.String(40), nullable=False),
        sa.Column("matters_json", sa.Text(), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        _utc("created_at"),
        sa.Column("created_by", sa.String(40), nullable=False),
        _utc("withdrawn_at", nullable=True),
        sa.Column("withdrawn_by", sa.String(40), nullable=True),
    )
    op.execute(
        "INSERT INTO duty_rule_new (department_uscc, type_code, created_at, created_by) "
        "SELECT department_uscc, type_code, created_at, created_by FROM duty_rule ORDER BY created_at"
    )
    op.drop_table("duty_rule")
    op.rename_table("duty_rule_new", "duty_rule")
    op.create_index("ix_duty_rule_department_uscc", "duty_rule", ["department_uscc"])

    op.create_table(
        "matter",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(40), nullable=False, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        _utc("created_at"),
        sa.Column("created_by", sa.String(40), nullable=False),
    )
    op.create_table(
        "standing_authorisation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("holder_id", sa.Integer(), sa.ForeignKey("holder_account.id"), nullable=False),
        sa.Column("holder_code", sa.String(18), nullable=False, index=True),
        sa.Column("department_uscc", sa.String(18), nullable=False),
        sa.Column("matter_code", sa.String(40), nullable=False),
        _utc("expires_at"),
        _utc("created_at"),
        _utc("withdrawn_at", nullable=True),
    )
    op.create_table(
        "service_case",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("matter_code", sa.String(40), nullable=False, index=True),
        sa.Column("department_uscc", sa.String(18), nullable=False, index=True),
        sa.Column("applicant_code", sa.String(18), nullable=False),
        sa.Column("case_number", sa.String(60), nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        _utc("opened_at", index=True),
        sa.Column("opened_by", sa.String(40), nullable=False),
        _utc("closed_at", nullable=True),
        sa.Column("closed_by", sa.String(40), nullable=True),
        sa.Column("receipt_sm3", sa.String(64), nullable=True, index=True),
    )
    op.create_table(
        "case_material",
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("service_case.id"), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("type_code", sa.String(21), nullable=True),
        sa.Column("identifier", sa.String(120), nullable=True),
        sa.Column("licence_version", sa.Integer(), nullable=True),
        sa.Column("licence_sm3", sa.String(64), nullable=True),
        sa.Column("basis", sa.String(20), nullable=True),
        _utc("reused_at", nullable=True),
        sa.Column("reused_by", sa.String(40), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("case_material")
    op.drop_table("service_case")
    op.drop_table("standing_authorisation")
    op.drop_table("matter")
    op.create_table(
        "duty_rule_old",
        sa.Column("department_uscc", sa.String(18), primary_key=True),
        sa.Column("type_code", sa.String(40), primary_key=True),
        _utc("created_at"),
        sa.Column("created_by", sa.String(40), nullable=False),
    )
    # The old table knew no withdrawal, end dates or matters: only rules for any use, still in force.
    op.execute(
        "INSERT INTO duty_rule_old (department_uscc, type_code, created_at, created_by) "
        "SELECT department_uscc, type_code, MIN(created_at), MIN(created_by) FROM duty_rule "
        "WHERE withdrawn_at IS NULL AND valid_until IS NULL AND matters_json IS NULL "
        "GROUP BY department_uscc, type_code"
    )
    op.drop_index("ix_duty_rule_department_uscc", "duty_rule")
    op.drop_table("duty_rule")
    op.rename_table("duty_rule_old", "duty_rule")
