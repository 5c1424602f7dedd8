"""Several processes starting at once on a fresh (or upgraded) database migrate it once: on
PostgreSQL under an advisory lock, on SQLite under a file lock; `ecas serve` migrates before it
starts its workers."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, inspect, text

from cert_authority.store.db import create_db_engine, migrate


def _migrate(url: str) -> str:
    engine = create_db_engine(url)
    try:
        migrate(engine)
        return "ok"
    except Exception as exc:  # reported to the test, which shows it
        return f"{type(exc).__name__}: {exc}"
    finally:
        engine.dispose()


@pytest.fixture
def fresh_schemas(database_url: str) -> Iterator[list[str]]:
    """Ten fresh, empty databases of the parametrised kind (schemas on PostgreSQL, files on SQLite)."""
    if database_url.startswith("sqlite"):
        folder = database_url.split(":///", 1)[1].rsplit("/", 1)[0]
        yield [f"sqlite:///{folder}/fresh-{n}.db" for n in range(10)]
        return
    base, _ = database_url.split("?", 1)
    names = [f"m_{uuid.uuid4().hex[:10]}" for _ in range(10)]
    admin = create_engine(base)
    with admin.begin() as connection:
        for name in names:
            connection.execute(text(f'CREATE SCHEMA "{name}"'))
    yield [f"{base}?options=-csearch_path%3D{name}" for name in names]
    with admin.begin() as connection:
        for name in names:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    admin.dispose()


@pytest.mark.slow
def test_four_processes_migrate_a_fresh_database_at_once_ten_times(fresh_schemas: list[str]) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        for url in fresh_schemas:
            outcomes = pool.map(_migrate, [url] * 4)
            assert outcomes == ["ok"] * 4, outcomes
            engine = create_db_engine(url)
            with engine.connect() as connection:
                assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
            assert "licence" in inspect(engine).get_table_names()
            engine.dispose()
