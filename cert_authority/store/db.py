"""Database engine and schema migration. SQLite under the data directory by default,
PostgreSQL by URL (ECAS_DATABASE_URL)."""

from __future__ import annotations

import fcntl
import os
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import DBAPIConnection, Dialect
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import create_engine

from cert_authority.errors import DatabaseUnavailableError
from cert_authority.settings import Settings
from cert_authority.store.chain import attach_chain
from cert_authority.store.data_keys import RECORDS, data_key_ring

MIGRATIONS = Path(__file__).parent / "migrations"
PING_AFTER_IDLE_SECONDS = 2.0


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    # WAL lets readers work while one writer commits; busy_timeout makes concurrent writers
    # (several CLI processes or workers) wait instead of failing with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def normalise_url(url: str) -> str:
    # Plain postgresql:// would pick psycopg2, which we do not install; we ship psycopg 3.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create_db_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            _create_private(Path(path))
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # 15 kept per worker (up to 20): uvicorn's threadpool runs many requests at once, and a
    # connection made afresh for each (overflow ones are closed after use) cost more than the
    # request. PostgreSQL's max_connections must cover workers × 20 (docs/deployment.md). A server
    # that does not answer is a 503 after 5 s, not a request hanging on the TCP connect.
    engine = create_engine(url, pool_size=15, max_overflow=5, connect_args={"connect_timeout": 5})
    event.listen(engine, "connect", _generic_plans)
    event.listen(engine.pool, "checkin", _note_idle)
    event.listen(engine.pool, "checkout", partial(_ping_if_maybe_lost, engine.dialect))
    return engine


def _generic_plans(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    """Prepared statements keep one generic plan. psycopg prepares a query on its fifth run on a
    connection; PostgreSQL then still planned the verification's row query afresh on every run
    (its subqueries made the generic plan look dearer): planning 0.25 ms against 0.1 ms executing.
    Forced generic, the database's CPU per verification fell 0.80-0.96 -> 0.47-0.56 ms and
    verify_identifier rose 13-20 % (ecas bench serve, alternating runs). Our hot statements are
    lookups by key, whose plan does not depend on the value."""
    cursor = dbapi_connection.cursor()
    cursor.execute("SET plan_cache_mode = force_generic_plan")
    cursor.close()
    dbapi_connection.commit()  # a session setting, kept: not rolled back with the pool's reset


def _create_private(database: Path) -> None:
    """The database holds ID numbers and face data: its folder is made 0700 and the file 0600
    (SQLite gives its -wal and -shm files the database file's mode)."""
    database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Only ever a new file: closing any descriptor of a database this process has open drops
    # SQLite's POSIX locks on it (https://sqlite.org/howtocorrupt.html §2.2), and a batch of
    # workers corrupted its database that way.
    if database.exists():
        return
    with suppress(FileExistsError):  # another process made it first
        os.close(os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


# A pooled connection is pinged before use only when it may have been lost: the server closed or
# wrote to it while it sat in the pool (its socket is readable: a restart, a terminated backend),
# or it sat idle long enough for a silent loss. Pinging every checkout (pool_pre_ping) cost a round
# trip per use, and a show-token check makes two (verify_token 255-278 -> 290-298 requests/s, alternating runs).
def _note_idle(_dbapi_connection: object, record: ConnectionPoolEntry) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_maybe_lost(
    dialect: Dialect, dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _proxy: object
) -> None:
    idle_since = record.info.get("idle_since")
    if idle_since is None:
        return  # new: just connected
    try:
        readable = bool(select.select([dbapi_connection.fileno()], [], [], 0)[0])
        if readable or time.monotonic() - idle_since >= PING_AFTER_IDLE_SECONDS:
            dialect.do_ping(dbapi_connection)  # what pool_pre_ping runs (outside any transaction)
    except Exception as exc:  # the pool discards this connection and checks out another
        raise DisconnectionError(f"a pooled connection failed its ping: {type(exc).__name__}") from exc


def open_database(settings: Settings) -> Engine:
    """The settings' database, migrated, with the data directory made first, private (0700): it
    holds the licence files, the encrypted keys and, by default, the SQLite database."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = create_db_engine(settings.effective_database_url)
    migrate(engine)
    # Audit rows and status events are chained with the `records` key, opened at the first one.
    attach_chain(engine, lambda: data_key_ring(settings).current(RECORDS))
    return engine


# Any fixed number: the key of the PostgreSQL advisory lock that migrations take.
MIGRATION_LOCK_KEY = 0x45434153  # "ECAS"


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent).

    Safe when several processes start at once (`ecas serve --workers N`, several hosts): one
    migrates while the others wait for it, then find the schema at its newest revision. On
    PostgreSQL the lock is an advisory lock held to the end of the migrating transaction; on
    SQLite a file lock beside the database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    sqlite = engine.dialect.name == "sqlite"
    try:
        with _sqlite_file_lock(engine), engine.connect() as connection:
            if sqlite:
                # SQLite changes a column by copying its table (Alembic's batch mode); with foreign
                # keys enforced, dropping the old copy fails as soon as rows point at it. So, as
                # SQLite's documentation prescribes, enforcement is off while the schema changes
                # (the pragma only works outside a transaction) and every reference is checked
                # before the change is committed.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            try:
                with connection.begin():
                    if engine.dialect.name == "postgresql":
                        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                    if sqlite:
                        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise RuntimeError(f"schema migration left broken references: {broken[:5]}")
            finally:
                if sqlite:
                    connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                    connection.commit()
    except OperationalError as exc:
        raise DatabaseUnavailableError(f"数据库不可用：{exc.orig}") from exc


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        yield
