"""The registry tables: the Alembic migration matches the models, and goes down and up again."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

from cert_authority.store.db import MIGRATIONS, create_db_engine, migrate
from cert_authority.store.models import DepartmentRow, LicenceTypeRow, TemplateVersionRow

REGISTRY_TABLES = {"department", "licence_type", "licence_type_issuer", "template_version", "api_key"}
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _alembic(connection: object, *args: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    getattr(command, args[0])(config, *args[1:])


def test_migration_matches_models_and_round_trips(database_url: str) -> None:
    engine = create_db_engine(database_url)
    migrate(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        assert context.get_current_revision() == ScriptDirectory.from_config(config).get_current_head()
    with engine.begin() as connection:
        _alembic(connection, "downgrade", "0001_pki")
    tables = set(inspect(engine).get_table_names())
    assert not tables & REGISTRY_TABLES and "issued_certificate" in tables
    migrate(engine)
    assert set(inspect(engine).get_table_names()) >= REGISTRY_TABLES


def test_constraints_hold_in_the_database(database_url: str) -> None:
    engine = create_db_engine(database_url)
    migrate(engine)

    def department(uscc: str) -> DepartmentRow:
        return DepartmentRow(name="局", uscc=uscc, area_code="350100", level="city", roles="issuer", created_at=NOW)

    with Session(engine) as session:
        session.add(department("11350100MB00000100"))
        session.add(
            LicenceTypeRow(
                id=1, code="11100000MA0000001Q001", name="证", authority_name="局", authority_uscc="11100000MA0000001Q",
                issuer_level="city", holder_category="legal_person", spec_json="{}", created_at=NOW, created_by="cli",
            )
        )
        session.commit()
    for row in (
        department("11350100MB00000100"),
        TemplateVersionRow(
            type_id=999, version=1, template_json="{}", background_sm3="0" * 64, created_at=NOW, created_by="cli"
        ),
    ):
        with Session(engine) as session, pytest.raises(IntegrityError):
            session.add(row)
            session.commit()
    version = {"type_id": 1, "template_json": "{}", "background_sm3": "0" * 64, "created_at": NOW, "created_by": "cli"}
    with Session(engine) as session:
        session.add(TemplateVersionRow(version=1, **version))
        session.commit()
    with Session(engine) as session, pytest.raises(IntegrityError):
        session.add(TemplateVersionRow(version=1, **version))
        session.commit()
