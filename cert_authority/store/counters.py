"""Licence serials, licence numbers and seal codes from named counters in the database.

Each value is taken in its own short transaction, committed before the caller does anything with
it: a crash afterwards leaves a gap (a value nobody uses), never a value handed out twice. Safe
with several workers: one INSERT ... ON CONFLICT DO UPDATE ... RETURNING is atomic on PostgreSQL and
on SQLite (>= 3.35), and the row locks (PostgreSQL) or the single writer (SQLite) queue concurrent
callers.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from sqlalchemy import Insert, bindparam, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from cert_authority.store.models import LicenceCounterRow


def next_values(bind: Engine | Connection, names: Sequence[str], count: int = 1) -> list[int]:
    """The next value of each named counter, taken together in one statement (committed at once); with
    `count` > 1 a block of that many values, of which the first is returned (a batch takes its
    serials in one step). Rows are locked in the order named and callers always name counters in the
    same order (serial before number), so two callers never wait for each other's locks in a cycle.
    A caller's connection must be in autocommit, so the values are committed when this returns."""
    if isinstance(bind, Engine):
        with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            return next_values(connection, names, count)
    if bind.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        raise ValueError("next_values needs an autocommit connection: values must be committed before use")
    if count < 1:
        raise ValueError("count must be at least 1")
    if not names:
        return []
    values = {f"name{n}": name for n, name in enumerate(names)} | {"count": count}
    last = {name: value for name, value in bind.execute(_take(bind.dialect.name, len(names)), values)}
    return [int(last[name]) - count + 1 for name in names]


@functools.lru_cache(maxsize=16)
def _take(dialect: str, names: int) -> Insert:
    """INSERT ... ON CONFLICT DO UPDATE ... RETURNING for `names` counters, built once (bound
    name0, name1, ... and count): building and compiling it per call cost more than running it."""
    table = LicenceCounterRow.__table__  # type: ignore[attr-defined]
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    statement = insert(table).values(
        [{"name": bindparam(f"name{n}"), "value": bindparam("count")} for n in range(names)]
    )
    return statement.on_conflict_do_update(
        index_elements=[table.c.name], set_={"value": table.c.value + statement.excluded.value}
    ).returning(table.c.name, table.c.value)


def current_value(engine: Engine, name: str) -> int:
    """The last value handed out (0 if none): for tests and reports, never for allocation."""
    with engine.connect() as connection:
        value = connection.execute(
            text("SELECT value FROM licence_counter WHERE name = :name"), {"name": name}
        ).scalar_one_or_none()
    return int(value or 0)


def serial_counter(type_code: str, issuer_code: str) -> str:
    """Identifier serials run per licence type and issuer (GB/T 36904: type + issuer + serial)."""
    return f"serial:{type_code}:{issuer_code}"


def number_counter(issuer_code: str) -> str:
    """Licence numbers (证照编号) run per issuer, across its licence types."""
    return f"number:{issuer_code}"


def seal_counter(area_code: str) -> str:
    """Seal codes (esID) run per administrative area."""
    return f"seal:{area_code}"
