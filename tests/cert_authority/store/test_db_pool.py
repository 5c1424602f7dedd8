"""The PostgreSQL pool pings a connection before use only when it may have been lost (the server
closed it, or it sat idle a while); one in steady use goes straight to work."""

from __future__ import annotations

import gc
import time
import weakref

import pytest
from sqlalchemy import create_engine, event, text

from cert_authority.store import db
from cert_authority.store.reading import reader

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _backend_pid(engine: object) -> int:
    with engine.connect() as connection:  # type: ignore[attr-defined]
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _count_pings(engine: object) -> list[int]:
    pings: list[int] = []
    real_ping = engine.dialect.do_ping  # type: ignore[attr-defined]

    def counting_ping(dbapi_connection: object) -> bool:
        pings.append(1)
        return bool(real_ping(dbapi_connection))

    engine.dialect.do_ping = counting_ping  # type: ignore[attr-defined]
    return pings


def test_a_connection_the_server_closed_is_replaced_before_use(database_url: str) -> None:
    engine = db.create_db_engine(database_url)
    pings = _count_pings(engine)
    first = _backend_pid(engine)
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:  # the server ends the pooled connection's session
        connection.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": first})
    time.sleep(0.2)  # for the closed socket to reach us

    assert _backend_pid(engine) != first  # no error: the ping failed and a new connection served
    assert pings == [1]
    admin.dispose()
    engine.dispose()


def test_a_connection_idle_for_a_while_is_pinged(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = db.create_db_engine(database_url)
    pings = _count_pings(engine)
    first = _backend_pid(engine)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert _backend_pid(engine) == first
    assert pings == [1]
    engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged(database_url: str) -> None:
    engine = db.create_db_engine(database_url)
    pings = _count_pings(engine)
    checkouts: list[int] = []
    event.listen(engine.pool, "checkout", lambda *_: checkouts.append(1))
    pids = {_backend_pid(engine) for _ in range(20)}
    assert len(pids) == 1 and len(checkouts) == 20
    assert pings == []
    engine.dispose()


def test_an_engine_read_through_is_freed_with_its_connections(database_url: str) -> None:
    """`reader` once kept every engine alive (and its pooled connections open) for the life of the
    process: a test suite that made many engines ran PostgreSQL out of connections."""
    engine = db.create_db_engine(database_url)
    with reader(engine).connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    gone = weakref.ref(engine)
    del engine, connection
    gc.collect()
    assert gone() is None
    admin = create_engine(database_url)
    deadline = time.monotonic() + 10  # the server ends the session just after the client closes it
    with admin.connect() as probe:
        while probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}).scalar_one():
            assert time.monotonic() < deadline, "the freed engine's connection is still open"
            time.sleep(0.05)
    admin.dispose()
