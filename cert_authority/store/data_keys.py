"""The installation's data-encryption keys (keys.datakeys), opened once per process from the
settings: the audit chain and personal data at rest take their keys from here.

Purposes in use: `RECORDS` (the HMAC-SM3 chain of audit rows, use records and status changes) and
`PII` (personal data at rest: SM4-GCM values and blind indexes), `FILES` (the file store's
SM4-GCM-sealed files, store/filestore.py). A caller protects new data with
`ring.current(PURPOSE)`, stores `key.version` beside it and reads it back with
`ring.get(PURPOSE, version)`; `ecas keys rotate PURPOSE` adds a version without touching old data.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Table, create_engine, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool

from cert_authority.settings import Settings
from cert_authority.store.models import DataKeyRingRow
from cert_authority.timeutil import utc_now
from keys.datakeys import DataKeyRing, RingStorage

__all__ = ["FILES", "PII", "RECORDS", "DatabaseRingStorage", "data_key_ring", "open_keys_early", "ring_storage"]

RECORDS = "records"
PII = "pii"
FILES = "files"

_rings: dict[str, DataKeyRing] = {}
_storages: dict[str, DatabaseRingStorage] = {}
_RING_TABLE: Table = DataKeyRingRow.__table__  # type: ignore[attr-defined]
_lock = threading.Lock()


def ring_storage(settings: Settings) -> Path | RingStorage:
    """Where these settings keep the ring: `<data dir>/keys/data-keys.json` on SQLite (one host),
    the database's `data_key_ring` row on PostgreSQL, which every host shares (a host that made
    its own ring would seal what the others cannot open). A host's data-keys.json from before is
    imported into an empty row on first use."""
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        return settings.data_keys_path.resolve()
    with _lock:
        storage = _storages.get(url)
        if storage is None:
            storage = _storages[url] = DatabaseRingStorage(url, settings.data_keys_path)
        return storage


def data_key_ring(settings: Settings) -> DataKeyRing:
    """The ring of these settings, one per process and place (deriving the KEK costs a fraction
    of a second)."""
    storage = ring_storage(settings)
    key = str(storage) if isinstance(storage, Path) else storage.where
    with _lock:
        ring = _rings.get(key)
    if ring is None:
        opened = DataKeyRing(storage, settings.require_kek())
        with _lock:
            ring = _rings.setdefault(key, opened)
    return ring


class DatabaseRingStorage:
    """The ring's document (wrapped keys only) in row `data-keys` of table data_key_ring, changed
    under a row lock (SELECT … FOR UPDATE) so that rotations on two hosts at once do not lose one.
    Its own engine, unpooled: the ring is read once per process and after a rotation, rarely."""

    NAME = "data-keys"

    def __init__(self, url: str, legacy: Path) -> None:
        self.url = url
        self.legacy = legacy
        self._engine: Engine | None = None
        self._held = threading.local()
        self._make = threading.Lock()

    @property
    def where(self) -> str:
        return f"database table data_key_ring ({make_url(normalise(self.url)).render_as_string(hide_password=True)})"

    def engine(self) -> Engine:
        with self._make:
            if self._engine is None:
                # No pool: a connection only for the moment the ring is read or rotated.
                url = normalise(self.url)
                self._engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
            return self._engine

    def read(self) -> bytes | None:
        held: Connection | None = getattr(self._held, "connection", None)
        if held is not None:
            return self._select(held)
        with self.engine().connect() as connection:
            found = self._select(connection)
        if found is None and self.legacy.is_file():
            with self.locked():  # import the host's file once, unless another host was first
                found = self._select(self._held.connection)
                if found is None:
                    found = self.legacy.read_bytes()
                    self.write(found)
        return found

    def write(self, data: bytes) -> None:
        connection: Connection | None = getattr(self._held, "connection", None)
        if connection is None:
            raise RuntimeError("the data-key ring is written only under its lock")
        table = _RING_TABLE
        connection.execute(
            update(table).where(table.c.name == self.NAME).values(document=data.decode(), updated_at=utc_now())
        )

    @contextmanager
    def locked(self) -> Iterator[None]:
        if getattr(self._held, "connection", None) is not None:  # already ours (the import above)
            yield
            return
        table = _RING_TABLE
        with self.engine().begin() as connection:
            connection.execute(
                pg_insert(table).values(name=self.NAME, document=None, updated_at=utc_now()).on_conflict_do_nothing()
            )
            connection.execute(select(table.c.name).where(table.c.name == self.NAME).with_for_update())
            self._held.connection = connection
            try:
                yield
            finally:
                self._held.connection = None

    def _select(self, connection: Connection) -> bytes | None:
        table = _RING_TABLE
        document = connection.execute(select(table.c.document).where(table.c.name == self.NAME)).scalar()
        return None if document is None else str(document).encode()


def normalise(url: str) -> str:
    # As store.db.normalise_url (which imports this module): psycopg 3 for postgresql:// URLs.
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def open_keys_early(settings: Settings) -> None:
    """Derive the KEK and open the ring now (PBKDF2: a fraction of a second, seconds on a loaded
    host) rather than in the first request that writes an audit row. Without a KEK nothing is
    opened: the first chained write then says what is missing."""
    if settings.kek is not None or settings.demo_kek_path.exists():
        data_key_ring(settings).current(RECORDS)
