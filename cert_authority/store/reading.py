"""Reads without a transaction of their own (PostgreSQL's autocommit mode).

A read through the pool's engine is wrapped in BEGIN … ROLLBACK: two more round trips to the server
for a one-statement read, a third of a case's time at the counter waiting on them. In autocommit,
each statement is its own transaction and sees what was committed when it began, which is what every
statement of a READ COMMITTED transaction (PostgreSQL's default, and ours) sees anyway: for reads
the answers are the same. Not for anything that writes, or locks rows (SELECT … FOR UPDATE) to
hold them until a commit. SQLite keeps its engine: a read there costs no round trip.
"""

from __future__ import annotations

import weakref

from sqlalchemy.engine import Engine

_READERS: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def reader(engine: Engine) -> Engine:
    """`engine` for reads: on PostgreSQL the same pool in autocommit (no BEGIN, no ROLLBACK)."""
    if engine.dialect.name != "postgresql":
        return engine
    found = _READERS.get(engine)
    if found is None:
        found = _READERS[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return found
