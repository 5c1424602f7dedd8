"""The file store's database backend: table `stored_file`, one row per name (the SM3 digest of
the content), the stored value (sealed, see store/filestore.py) in a bytea column. With it, every
host sharing the PostgreSQL database reads every file: nothing a host must keep on its own disk.

Why bytea and not large objects (pg_largeobject):
- The values are small and read whole: a licence file is tens to hundreds of KB (and shrinks to a
  few KB once template-constant bytes are factored out), an upload at most 20 MB; bytea takes up
  to 1 GB. Large objects pay off for streaming or partial reads of bigger values, which nothing
  here does.
- A bytea row is an ordinary row: written in the same kind of transaction as everything else (one
  commit makes a batch of files durable together, and a rolled-back transaction leaves nothing),
  dumped by pg_dump, copied by streaming replication, readable under row-level privileges, and
  deleted with its row. A large object lives apart from the row that names it: deleting the row
  orphans it unless something runs lo_unlink/vacuumlo, pg_dump needs --large-objects rights, and
  every object takes an OID from one 4-billion space shared by the cluster's catalogue.
- The same column works on SQLite (a BLOB), so the backend is tested on both databases.
The column is STORAGE EXTERNAL on PostgreSQL (migration 0020): values are SM4-GCM ciphertext,
which does not compress, so TOAST should not try.

Concurrency: two hosts putting the same content at once both insert with ON CONFLICT DO NOTHING;
the first commit wins and the other's value (the same plaintext under another nonce) is dropped.
A damaged value is replaced (`replace=True`) with ON CONFLICT DO UPDATE.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Table, bindparam, null, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from cert_authority.errors import StorageUnavailableError
from cert_authority.store.models import StoredFileRow
from cert_authority.store.reading import reader
from cert_authority.timeutil import utc_now

TABLE: Table = StoredFileRow.__table__  # type: ignore[attr-defined]
# Built once with bound parameters (lists expanded when run): a statement built per call paid for its
# expressions and for walking it to find its cache key, on every verification.
_READ = select(TABLE.c.content).where(TABLE.c.digest == bindparam("name"))
_FIND = select(TABLE.c.digest).where(TABLE.c.digest == bindparam("name"))
_READ_MANY = select(TABLE.c.digest, TABLE.c.content).where(TABLE.c.digest.in_(bindparam("names", expanding=True)))
_READ_AND_FIND = union_all(
    _READ_MANY,
    select(TABLE.c.digest, null().label("content")).where(TABLE.c.digest.in_(bindparam("find", expanding=True))),
)


class DatabaseFiles:
    """Stored values in table `stored_file` of the service's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        insert = postgresql.insert(TABLE) if engine.dialect.name == "postgresql" else sqlite.insert(TABLE)
        # Built once: run with the rows as parameters, on every issuance.
        self._insert_new = insert.on_conflict_do_nothing(index_elements=[TABLE.c.digest])
        self._insert_or_replace = insert.on_conflict_do_update(
            index_elements=[TABLE.c.digest],
            set_={"content": insert.excluded.content, "size": insert.excluded.size},
        )

    def where(self, name: str) -> str:
        return f"数据库表 stored_file，digest={name}"

    def read(self, name: str) -> bytes | None:
        with self._connection() as connection:
            value = connection.execute(_READ, {"name": name}).scalar()
        return None if value is None else bytes(value)

    def read_many(self, names: Sequence[str]) -> dict[str, bytes]:
        if not names:
            return {}
        with self._connection() as connection:
            rows = connection.execute(_READ_MANY, {"names": list(names)})
            return {digest: bytes(content) for digest, content in rows}

    def read_and_find(self, names: Sequence[str], find: Sequence[str]) -> tuple[dict[str, bytes], set[str]]:
        with self._connection() as connection:
            rows = connection.execute(_READ_AND_FIND, {"names": list(names), "find": list(find)}).all()
        return {digest: bytes(content) for digest, content in rows if content is not None}, {
            digest for digest, content in rows if content is None
        }

    def contains(self, name: str) -> bool:
        with self._connection() as connection:
            return connection.execute(_FIND, {"name": name}).first() is not None

    def names(self, after: str = "", limit: int = 1000) -> list[str]:
        query = select(TABLE.c.digest).where(TABLE.c.digest > after).order_by(TABLE.c.digest).limit(limit)
        with self._connection() as connection:
            return list(connection.execute(query).scalars())

    def write(self, items: Sequence[tuple[str, bytes]], *, replace: bool = False) -> None:
        """All the values in one transaction: durable together when it commits, none of them if
        it does not."""
        if not items:
            return
        statement = self._insert_or_replace if replace else self._insert_new
        with self._connection(begin=True) as connection:
            connection.execute(statement, _rows(items))

    def write_within(self, connection: Connection, items: Sequence[tuple[str, bytes]]) -> bool:
        """Write new values in the caller's transaction on this database (durable when it commits,
        gone if it rolls back): no transaction and commit of their own. False, and nothing
        written, if `connection` is not to this store's database."""
        if connection.engine is not self.engine or not items:
            return False
        connection.execute(self._insert_new, _rows(items))
        return True

    @contextmanager
    def _connection(self, begin: bool = False) -> Iterator[Connection]:
        """A connection (a transaction when writing); a database that is gone or full is
        StorageUnavailableError, and the transaction is rolled back: nothing stored."""
        try:
            with self.engine.begin() if begin else reader(self.engine).connect() as connection:
                yield connection
        except DBAPIError as exc:
            if not (exc.connection_invalidated or _is_unavailable(exc)):
                raise
            raise StorageUnavailableError(
                "文件存储（数据库）暂不可用，本次未保存任何内容，请联系管理员"
            ) from exc


def _rows(items: Sequence[tuple[str, bytes]]) -> list[dict[str, object]]:
    # In name order: two transactions writing the same new names (a first licence of a template
    # issued on two hosts at once) then wait for each other's rows in one order, never deadlock.
    now = utc_now()
    return [{"digest": name, "content": data, "size": len(data), "stored_at": now} for name, data in sorted(items)]


def _is_unavailable(exc: DBAPIError) -> bool:
    """Connection lost, server gone, disk full (SQLSTATE class 08, 53, 57; SQLite's I/O errors)."""
    state = getattr(exc.orig, "sqlstate", None) or ""
    if state[:2] in {"08", "53", "57", "58"}:
        return True
    from sqlalchemy.exc import OperationalError

    return isinstance(exc, OperationalError)
