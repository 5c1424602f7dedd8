"""Private keys in the database, for several hosts (issue 25): table `stored_key`, one row per
key label, the encrypted key file as `keys.keystore.SoftwareKeyStore` writes it (PKCS#8 PBES2,
SM4-CBC under ECAS_KEK). Chosen with the database file store (`ECAS_FILE_STORE=database`, the
default on PostgreSQL): a seal key made on one host then seals on every host, as the files and the
data keys already do, and a new host needs the KEK, not a copy of another host's keys/ folder.

What the database holds is what the keys/ folder held: ciphertext under the KEK, which is not in
the database. Someone who reads the table (a dump, a replica) still needs ECAS_KEK to use a key,
exactly as with a copied folder. Why a table and not the file store: the file store names values
by their content's SM3 and never forgets one; keys are found by label, must never be overwritten
by another key under the same label, are deleted when their certificate was never issued, and are
replaced in place by `ecas keys rewrap`.

Keys made before (files in this host's keys/ folder) keep working: they are read from the folder
when the table does not have them, and `ecas keys to-database` copies them in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from cert_authority.errors import StorageUnavailableError
from cert_authority.store.models import StoredKeyRow
from cert_authority.timeutil import utc_now
from keys.errors import KeyExistsError
from keys.keystore import KeyDirectory, SoftwareKeyStore

if TYPE_CHECKING:
    from cert_authority.settings import Settings

TABLE: Table = StoredKeyRow.__table__  # type: ignore[attr-defined]


class DatabaseKeyFiles:
    """Encrypted key files in table `stored_key`; a host's older key folder (`legacy`) read as a
    fallback, and changed only for keys that are there alone."""

    def __init__(self, engine: Engine, legacy: KeyDirectory | None = None) -> None:
        self.engine = engine
        self.legacy = legacy

    def __repr__(self) -> str:
        return "DatabaseKeyFiles(stored_key)"

    def where(self, label: str) -> str:
        return f"数据库表 stored_key，label={label}" + (f"，或 {self.legacy.where(label)}" if self.legacy else "")

    def stored(self, label: str) -> bytes | None:
        """The table's value only (not the legacy folder's)."""
        with self._connection() as connection:
            value = connection.execute(select(TABLE.c.content).where(TABLE.c.label == label)).scalar()
        return None if value is None else bytes(value)

    def read(self, label: str) -> bytes | None:
        value = self.stored(label)
        if value is None and self.legacy is not None:
            return self.legacy.read(label)
        return value

    def labels(self) -> list[str]:
        with self._connection() as connection:
            labels = set(connection.execute(select(TABLE.c.label)).scalars())
        if self.legacy is not None:
            labels.update(self.legacy.labels())
        return sorted(labels)

    def create(self, label: str, data: bytes) -> None:
        """A new row, committed (durable) before this returns; KeyExistsError if the label is
        taken, in the table or in the legacy folder."""
        if self.legacy is not None and self.legacy.read(label) is not None:
            raise KeyExistsError(f"a key labelled {label!r} already exists ({self.legacy.where(label)})")
        try:
            with self._connection(begin=True) as connection:
                connection.execute(insert(TABLE).values(label=label, content=data, stored_at=utc_now()))
        except IntegrityError as exc:
            raise KeyExistsError(f"a key labelled {label!r} already exists (stored_key)") from exc

    def copy_in(self, label: str, data: bytes) -> bool:
        """Store a legacy file's value under its label unless the table has it; True if stored."""
        try:
            with self._connection(begin=True) as connection:
                connection.execute(insert(TABLE).values(label=label, content=data, stored_at=utc_now()))
        except IntegrityError:
            return False
        return True

    def replace(self, label: str, data: bytes) -> None:
        """One UPDATE (atomic: the old value or the new one); a key only in the legacy folder is
        replaced there."""
        with self._connection(begin=True) as connection:
            changed = connection.execute(update(TABLE).where(TABLE.c.label == label).values(content=data)).rowcount
        if changed == 0 and self.legacy is not None:
            self.legacy.replace(label, data)

    def remove(self, label: str) -> None:
        with self._connection(begin=True) as connection:
            connection.execute(delete(TABLE).where(TABLE.c.label == label))
        if self.legacy is not None:
            self.legacy.remove(label)

    @contextmanager
    def _connection(self, begin: bool = False) -> Iterator[Connection]:
        try:
            with self.engine.begin() if begin else self.engine.connect() as connection:
                yield connection
        except DBAPIError as exc:
            if isinstance(exc, IntegrityError) or not exc.connection_invalidated:
                raise
            raise StorageUnavailableError("密钥库（数据库）暂不可用，请稍后重试") from exc


def key_store_for(settings: Settings, engine: Engine, *, iterations: int | None = None) -> SoftwareKeyStore:
    """The private-key store these settings name: in the database with the database file store
    (several hosts), the host's keys/ folder otherwise. `iterations`: PBKDF2 rounds for keys it
    writes (tests write with few; every key file carries its own count for reading)."""
    folder = KeyDirectory(settings.key_dir)
    files = DatabaseKeyFiles(engine, folder) if settings.effective_file_store == "database" else folder
    if iterations is None:
        return SoftwareKeyStore(files, settings.require_kek())
    return SoftwareKeyStore(files, settings.require_kek(), iterations=iterations)
