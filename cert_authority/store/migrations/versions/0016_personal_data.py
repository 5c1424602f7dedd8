"""Personal data at rest (issue 25, item 2): licences, holder accounts and cases get a column for
their personal data sealed with SM4-GCM and a blind index (HMAC-SM3) of the holder code; the
plain columns become nullable. Existing rows are sealed by `ecas data encrypt` (it needs the data
key, which a schema migration does not have), which then empties the plain columns.

Revision ID: 0016_personal_data
Revises: 0015_exchange
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_personal_data"
down_revision = "0015_exchange"


def upgrade() -> None:
    with op.batch_alter_table("licence") as batch:
        batch.drop_index("ix_licence_holder_code")
        batch.alter_column("holder_name", existing_type=sa.Text(), nullable=True)
        batch.alter_column("holder_code", existing_type=sa.String(40), nullable=True)
        batch.alter_column("face_json", existing_type=sa.Text(), nullable=True)
        batch.add_column(sa.Column("personal_sealed", sa.Text(), nullable=True))
        batch.add_column(sa.Column("face_sealed", sa.Text(), nullable=True))
        batch.add_column(sa.Column("holder_code_index", sa.String(64), nullable=True))
        batch.create_index("ix_licence_holder_code_index", ["holder_code_index"])
    with op.batch_alter_table("holder_account") as batch:
        batch.alter_column("holder_code", existing_type=sa.String(18), nullable=True)
        batch.alter_column("name", existing_type=sa.String(200), nullable=True)
        batch.add_column(sa.Column("personal_sealed", sa.Text(), nullable=True))
        batch.add_column(sa.Column("holder_code_index", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_holder_account_holder_code_index", ["holder_code_index"])
    with op.batch_alter_table("standing_authorisation") as batch:
        batch.drop_index("ix_standing_authorisation_holder_code")
        batch.alter_column("holder_code", existing_type=sa.String(18), nullable=True)
        batch.add_column(sa.Column("holder_code_index", sa.String(64), nullable=True))
        batch.create_index("ix_standing_authorisation_holder_code_index", ["holder_code_index"])
    with op.batch_alter_table("service_case") as batch:
        batch.alter_column("applicant_code", existing_type=sa.String(18), nullable=True)
        batch.add_column(sa.Column("applicant_sealed", sa.Text(), nullable=True))
        batch.add_column(sa.Column("applicant_index", sa.String(64), nullable=True))
        batch.create_index("ix_service_case_applicant_index", ["applicant_index"])


SEALED = {
    "licence": "personal_sealed",
    "holder_account": "personal_sealed",
    "standing_authorisation": "holder_code_index",
    "service_case": "applicant_sealed",
}


def downgrade() -> None:
    """Only for a database whose rows were never sealed: a migration has no key, so sealed values
    cannot be opened here, and dropping them would lose the data. Refused, before any change, when
    a row holds one."""
    connection = op.get_bind()
    for table, column in SEALED.items():
        query = sa.select(sa.literal(1)).select_from(sa.table(table, sa.column(column)))
        if connection.execute(query.where(sa.column(column).is_not(None)).limit(1)).first():
            raise RuntimeError(
                f"{table} holds personal data sealed with SM4-GCM: a downgrade below 0016 would lose it"
            )
    with op.batch_alter_table("service_case") as batch:
        batch.drop_index("ix_service_case_applicant_index")
        batch.drop_column("applicant_index")
        batch.drop_column("applicant_sealed")
        batch.alter_column("applicant_code", existing_type=sa.String(18), nullable=False)
    with op.batch_alter_table("standing_authorisation") as batch:
        batch.drop_index("ix_standing_authorisation_holder_code_index")
        batch.drop_column("holder_code_index")
        batch.alter_column("holder_code", existing_type=sa.String(18), nullable=False)
        batch.create_index("ix_standing_authorisation_holder_code", ["holder_code"])
    with op.batch_alter_table("holder_account") as batch:
        batch.drop_constraint("uq_holder_account_holder_code_index", type_="unique")
        batch.drop_column("holder_code_index")
        batch.drop_column("personal_sealed")
        batch.alter_column("name", existing_type=sa.String(200), nullable=False)
        batch.alter_column("holder_code", existing_type=sa.String(18), nullable=False)
    with op.batch_alter_table("licence") as batch:
        batch.drop_index("ix_licence_holder_code_index")
        batch.drop_column("holder_code_index")
        batch.drop_column("face_sealed")
        batch.drop_column("personal_sealed")
        batch.alter_column("face_json", existing_type=sa.Text(), nullable=False)
        batch.alter_column("holder_code", existing_type=sa.String(40), nullable=False)
        batch.alter_column("holder_name", existing_type=sa.Text(), nullable=False)
        batch.create_index("ix_licence_holder_code", ["holder_code"])
