"""Migration 0011 (matters, cases, standing authorisations, duty rules with an id): the schema
matches the models, duty rules granted before it survive it, and it goes down and up again."""

from __future__ import annotations

import datetime as dt

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from cert_authority.store.db import MIGRATIONS, create_db_engine, migrate

NEW_TABLES = {"matter", "service_case", "case_material", "standing_authorisation"}
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _alembic(connection: object, *args: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    getattr(command, args[0])(config, *args[1:])


def test_matters_and_cases_migration(database_url: str) -> None:
    engine = create_db_engine(database_url)
    with engine.begin() as connection:
        _alembic(connection, "upgrade", "0009_show_token_once")
        connection.execute(
            text("INSERT INTO duty_rule (department_uscc, type_code, created_at, created_by) "
                 "VALUES (:d, :t, :at, 'cli')"),
            {"d": "11350100MB00000302", "t": "11100000MA0000001Q001", "at": NOW},
        )
    migrate(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []
        head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
        assert context.get_current_revision() == head
        rule = connection.execute(text("SELECT id, department_uscc, matters_json, withdrawn_at FROM duty_rule")).one()
        assert (rule.department_uscc, rule.matters_json, rule.withdrawn_at) == ("11350100MB00000302", None, None)
    assert set(inspect(engine).get_table_names()) >= NEW_TABLES
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO duty_rule (department_uscc, type_code, matters_json, created_at, created_by) "
                 "VALUES (:d, :t, '[\"m\"]', :at, 'cli')"),
            {"d": "11350100MB00000302", "t": "11100000MA0000001Q002", "at": NOW},
        )
        _alembic(connection, "downgrade", "0009_show_token_once")
    assert not NEW_TABLES & set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        # Only what the old table could say survives: a rule for any use, in force.
        assert connection.execute(text("SELECT type_code FROM duty_rule")).scalars().all() == ["11100000MA0000001Q001"]
    migrate(engine)
    assert set(inspect(engine).get_table_names()) >= NEW_TABLES
    engine.dispose()
