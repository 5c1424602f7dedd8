"""Licence serials, licence numbers and seal codes from named counters in the database.

Each value is taken in its own short transaction, committed before the caller does anything with
it: a crash afterwards leaves a gap (a value nobody uses), never a value handed out twice. Safe
with several workers: UPDATE ... RETURNING is atomic on PostgreSQL and on SQLite (>= 3.35), and the
row lock (PostgreSQL) or the single writer (SQLite) queues concurrent callers.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.engine import Engine

_CREATE = text("INSERT INTO licence_counter (name, value) VALUES (:name, 0) ON CONFLICT (name) DO NOTHING")
_TAKE = text("UPDATE licence_counter SET value = value + :count WHERE name = :name RETURNING value")


def next_values(engine: Engine, names: Sequence[str], count: int = 1) -> list[int]:
    """The next value of each named counter, taken together in one committed transaction; with
    `count` > 1 a block of that many values, of which the first is returned (a batch takes its
    serials in one step). Callers always name counters in the same order (serial before number),
    so two transactions never wait for each other's locks in a cycle."""
    if count < 1:
        raise ValueError("count must be at least 1")
    values = []
    with engine.begin() as connection:
        for name in names:
            connection.execute(_CREATE, {"name": name})
            last = int(connection.execute(_TAKE, {"name": name, "count": count}).scalar_one())
            values.append(last - count + 1)
    return values


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
