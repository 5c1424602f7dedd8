"""Reads without a transaction of their own (PostgreSQL's autocommit mode).

A read through the pool's engine is wrapped in BEGIN … ROLLBACK: two more round trips to the server
for a one-statement read, a third of a case's time at the counter waiting on them. In autocommit,
each statement is its own transaction and sees what was committed when it began, which is what every
statement of a READ COMMITTED transaction (PostgreSQL's default, and ours) sees anyway: for reads
the answers are the same. Not for anything that writes, or locks rows (SELECT … FOR UPDATE) to
hold them until a commit. SQLite keeps its engine: a read there costs no round trip.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

# Kept on the engine itself: a weak-keyed map would never drop an entry, since the autocommit engine
# it holds refers to its key, so every engine (and its pooled connections) lived as long as the process.
_READER = "_ecas_reader"


def reader(engine: Engine) -> Engine:
    """`engine` for reads: on PostgreSQL the same pool in autocommit (no BEGIN, no ROLLBACK)."""
    if engine.dialect.name != "postgresql":
        return engine
    found: Engine | None = getattr(engine, _READER, None)
    if found is None:
        found = engine.execution_options(isolation_level="AUTOCOMMIT")
        setattr(engine, _READER, found)
    return found
