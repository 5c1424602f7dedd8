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

from sqlalchemy import TextClause, text
from sqlalchemy.engine import Connection, Engine


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
    last = {name: value for name, value in bind.execute(_take(len(names)), values)}
    return [int(last[name]) - count + 1 for name in names]


@functools.lru_cache(maxsize=16)
def _take(names: int) -> TextClause:
    """INSERT ... ON CONFLICT DO UPDATE ... RETURNING for `names` counters (bound name0, name1, ...
    and count), the same SQL on PostgreSQL and SQLite. Written as text: SQLAlchemy does not cache a
    multi-row INSERT built with .values([...]), so that one was compiled again on every call (about
    2% of a worker's CPU under `ecas bench serve` issue)."""
    rows = ", ".join(f"(:name{n}, :count)" for n in range(names))  # placeholders only, never values
    return text(
        f"INSERT INTO licence_counter (name, value) VALUES {rows} "  # noqa: S608
        "ON CONFLICT (name) DO UPDATE SET value = licence_counter.value + excluded.value RETURNING name, value"
    )


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
