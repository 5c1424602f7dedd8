"""The seal and licence tables: the Alembic migration matches the models, goes down and up again,
and the database itself refuses duplicate identifiers and reused idempotency keys."""

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

from cert_authority.store.counters import current_value, next_values
from cert_authority.store.db import MIGRATIONS, create_db_engine, migrate
from cert_authority.store.models import IdempotencyRow

LICENCE_TABLES = {"seal", "licence", "licence_counter", "licence_event", "audit_event", "idempotency_key"}
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _config(connection: object) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def test_migration_matches_models_and_round_trips(database_url: str) -> None:
    engine = create_db_engine(database_url)
    migrate(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []
        head = ScriptDirectory.from_config(_config(connection)).get_current_head()
        assert context.get_current_revision() == head
    with engine.begin() as connection:
        command.downgrade(_config(connection), "0002_registry")
    tables = set(inspect(engine).get_table_names())
    assert not tables & LICENCE_TABLES and "department" in tables
    migrate(engine)
    assert set(inspect(engine).get_table_names()) >= LICENCE_TABLES


def test_counters_and_keys_hold_in_the_database(database_url: str) -> None:
    engine = create_db_engine(database_url)
    migrate(engine)
    assert next_values(engine, ["serial:a", "number:x"]) == [1, 1]
    assert next_values(engine, ["serial:a", "number:x"]) == [2, 2]
    assert next_values(engine, ["serial:b"]) == [1]
    assert current_value(engine, "serial:a") == 2 and current_value(engine, "never") == 0
    with Session(engine) as session:
        # An idempotency record must point at a licence (foreign key), and one key per department.
        session.add(IdempotencyRow(scope="11350100MB00000100", key="k", request_sm3="0" * 64, licence_id=1,
                                   created_at=NOW))
        with pytest.raises(IntegrityError):
            session.commit()
