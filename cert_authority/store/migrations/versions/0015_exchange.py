"""The provincial link (issue 20): the city's outbox of licence, seal and type events and the
pusher's state; in province mode, the registered cities, their events and their licences.

Revision ID: 0015_exchange
Revises: 0014_crypto_readiness
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_exchange"
down_revision = "0014_crypto_readiness"


def _utc(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "exchange_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("seq", sa.BigInteger(), nullable=True, unique=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("subject", sa.String(120), nullable=False, index=True),
        _utc("at"),
        sa.Column("day", sa.Date(), nullable=False, index=True),
        sa.Column("payload_json", sa.Text(), nullable=False),
    )
    op.create_table(
        "exchange_push",
        sa.Column("target", sa.String(200), primary_key=True),
        sa.Column("acked_seq", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("sent_events", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("total_failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        _utc("last_attempt_at", nullable=True),
        _utc("last_success_at", nullable=True),
    )
    op.create_table(
        "province_city",
        sa.Column("uscc", sa.String(18), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("certificate_der", sa.LargeBinary(), nullable=False),
        sa.Column("branch_der", sa.LargeBinary(), nullable=False),
        sa.Column("root_der", sa.LargeBinary(), nullable=False),
        sa.Column("crl_der", sa.LargeBinary(), nullable=True),
        sa.Column("acked_seq", sa.BigInteger(), nullable=False, server_default="0"),
        _utc("registered_at"),
        _utc("last_batch_at", nullable=True),
    )
    op.create_table(
        "province_event",
        sa.Column("city_uscc", sa.String(18), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("subject", sa.String(120), nullable=False, index=True),
        _utc("at"),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("payload_json", sa.Text(), nullable=False),
        _utc("received_at"),
        sa.UniqueConstraint("city_uscc", "seq", name="uq_province_event_city_seq"),
    )
    op.create_table(
        "province_licence",
        sa.Column("identifier", sa.String(120), primary_key=True),
        sa.Column("city_uscc", sa.String(18), nullable=False, index=True),
        sa.Column("type_code", sa.String(21), nullable=False),
        sa.Column("issuer_code", sa.String(18), nullable=False),
        sa.Column("holder_code", sa.String(40), nullable=False, index=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("status_reason", sa.String(500), nullable=True),
        sa.Column("superseded_by", sa.String(120), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("pdf_sm3", sa.String(64), nullable=False),
        sa.Column("ofd_sm3", sa.String(64), nullable=False),
        sa.Column("files_complete", sa.Boolean(), nullable=False),
        sa.Column("payload_json", sa.Text(), nullable=False),
        sa.Column("updated_seq", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    for table in ("province_licence", "province_event", "province_city", "exchange_push", "exchange_event"):
        op.drop_table(table)
