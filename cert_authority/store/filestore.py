"""Content-addressed file store: each file is named by the SM3 digest (hex) of its content, so
storing the same bytes twice is a no-op, a name can never point at other content, and damage is
detectable (every read is checked against the name).

    FileStore (put, put_many, get, exists: the one interface callers see)
      ├── seals each file with SM4-GCM on the way in, opens it on the way out (FileSealer)
      └── a FileBackend keeps the stored bytes by name:
            LocalDirectory  <data dir>/files/<2 hex>/<digest>, 0600  (the embedded default)
            DatabaseFiles   table stored_file (bytea), store/filestore_db.py  (several hosts)
            (an S3-compatible bucket would be a third: see docs/deployment.md, "File store")

Which backend: `ECAS_FILE_STORE` (`local` or `database`; default `local` on SQLite and `database`
on PostgreSQL, docs/deployment.md says why), built by `file_store_for(settings, engine)`.

Encryption at rest (issue 25, item 2; docs/personal-data.md). Licence files, photos and batch
uploads show holders' names, ID numbers and faces, so a file is stored as

    MAGIC ‖ len(key id) ‖ key id ‖ nonce ‖ SM4-GCM ciphertext ‖ tag

under the data key of purpose "files" (keys.datakeys, `ecas keys rotate files`), a fresh nonce per
file, and the digest (SM3 of the plaintext, which stays the name) and key id as associated data:
a sealed file copied under another name does not open, and dedup still works (same plaintext,
same name; the ciphertexts of two puts differ, either one opens). Files written before this
(plain) keep reading: a stored value is plain when its own SM3 is its name, sealed when it starts
with MAGIC and opens to content whose SM3 is its name, damaged otherwise. `ecas data
encrypt-files` converts plain files (`convert_plain_files`).

Durability. A file is written (and made durable) before the database row that names it, so a
crash leaves at worst an unreferenced file (harmless), never a record without its file. Nothing
is half-written: a name holds a whole value or nothing. A full or unreachable store is
StorageUnavailableError (503), with nothing stored.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cert_authority.errors import StorageUnavailableError, StoredFileError
from keys.aead import SM4_KEY_BYTES, sm4_gcm_open, sm4_gcm_seal
from keys.errors import KeysError, SealedValueError
from keys.sm2 import sm3

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from cert_authority.settings import Settings
    from keys.datakeys import DataKeyRing

__all__ = [
    "MAGIC",
    "DatabaseFilesFactory",
    "FileBackend",
    "FileKeys",
    "FileSealer",
    "FileStore",
    "LocalDirectory",
    "RingFileKeys",
    "all_names",
    "convert_plain_files",
    "file_store_for",
]

DIGEST = re.compile(r"^[0-9a-f]{64}$")
# Starts every sealed file. Not a prefix any stored format has (PDF, OFD/zip, PNG, JPEG, DER, CSV,
# JSON Lines); an uploaded file that begins with it anyway is still told apart by its SM3 (above).
MAGIC = b"\x00ECAS-SM4GCM\x01"
FILES_PURPOSE = "files"  # store.data_keys.FILES


# --- where the bytes live ------------------------------------------------------------------------
class FileBackend(Protocol):
    """Stored values by name (a 64-hex digest). A backend knows nothing of sealing or digests:
    FileStore checks every value it reads."""

    def read(self, name: str) -> bytes | None:
        """The stored value, or None when there is none."""
        ...

    def read_many(self, names: Sequence[str]) -> dict[str, bytes]:
        """The stored values of those names that have one."""
        ...

    def read_and_find(self, names: Sequence[str], find: Sequence[str]) -> tuple[dict[str, bytes], set[str]]:
        """`read_many(names)`, and which of `find` have a value (not read), in one go."""
        ...

    def contains(self, name: str) -> bool: ...

    def write(self, items: Sequence[tuple[str, bytes]], *, replace: bool = False) -> None:
        """Store every (name, value), durable when this returns. A name that has a value keeps it
        unless `replace` (a damaged value repaired, a plain one sealed). All or nothing per value:
        a name never holds part of one. StorageUnavailableError when the store is full or gone."""
        ...

    def names(self, after: str = "", limit: int = 1000) -> list[str]:
        """Up to `limit` names greater than `after`, in order (to walk the whole store)."""
        ...

    def where(self, name: str) -> str:
        """Where a name's value lives, for messages to operators."""
        ...


class LocalDirectory:
    """Files under `root/<first 2 hex>/<digest>`, owner-only (0600 in 0700 folders), written to a
    temporary file and renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / name[:2] / name

    def where(self, name: str) -> str:
        return str(self.path(name))

    def read(self, name: str) -> bytes | None:
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError:
            return None

    def read_many(self, names: Sequence[str]) -> dict[str, bytes]:
        return {name: data for name in names if (data := self.read(name)) is not None}

    def read_and_find(self, names: Sequence[str], find: Sequence[str]) -> tuple[dict[str, bytes], set[str]]:
        return self.read_many(names), {name for name in find if self.contains(name)}

    def head(self, name: str, size: int = 64) -> bytes | None:
        """The first `size` bytes of a stored value (to tell sealed from plain cheaply)."""
        try:
            with self.path(name).open("rb") as handle:
                return handle.read(size)
        except FileNotFoundError:
            return None

    def contains(self, name: str) -> bool:
        return self.path(name).is_file()

    def names(self, after: str = "", limit: int = 1000) -> list[str]:
        if not self.root.is_dir():
            return []
        found: list[str] = []
        for folder in sorted(p for p in self.root.iterdir() if len(p.name) == 2 and p.is_dir()):
            if folder.name < after[:2]:
                continue
            found += sorted(p.name for p in folder.iterdir() if DIGEST.fullmatch(p.name) and p.name > after)
            if len(found) >= limit:
                break
        return sorted(found)[:limit]

    def write(self, items: Sequence[tuple[str, bytes]], *, replace: bool = False) -> None:
        """One file: fsync it and its directory. Several: rename each into place, then one
        syncfs(2) of the store's file system, where fsyncing each file and its directory cost
        about 1 ms apiece (a batch of licences writes two files per licence)."""
        todo = [(name, data) for name, data in items if replace or not self.contains(name)]
        if not todo:
            return
        one_by_one = len(todo) == 1 or _syncfs is None
        for name, data in todo:
            path = self.path(name)
            self._write(path, name, data, sync=one_by_one)
            if one_by_one:
                try:
                    _sync_directory(path.parent)
                except OSError as exc:
                    raise _unavailable(exc) from exc
        if not one_by_one:
            self._syncfs()

    def _syncfs(self) -> None:
        assert _syncfs is not None
        try:
            fd = os.open(self.root, os.O_RDONLY)
        except OSError as exc:
            raise _unavailable(exc) from exc
        try:
            if _syncfs(fd) != 0:
                error = ctypes.get_errno()
                raise _unavailable(OSError(error, f"syncfs: {os.strerror(error)}", str(self.root)))
        finally:
            os.close(fd)

    @staticmethod
    def _write(path: Path, name: str, data: bytes, sync: bool) -> None:
        """Write to a temporary file beside `path`, then rename: the name only ever holds a whole
        file. A full or read-only disk is StorageUnavailableError, and leaves nothing behind."""
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name[:8]}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:  # mkstemp creates the file 0600
                handle.write(data)
                if sync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):  # a read-only disk cannot take the unlink either
                    Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _unavailable(exc) from exc
            raise


# --- sealing -------------------------------------------------------------------------------------
class FileKeys(Protocol):
    """The SM4 keys files are sealed with: the current one, and any by its id."""

    def current(self) -> tuple[str, bytes]: ...

    def key(self, key_id: str) -> bytes | None: ...


class RingFileKeys:
    """Keys of purpose "files" in the key hierarchy (keys.datakeys): version N seals as key id
    "vN" with its subkey "sm4-gcm". The ring is opened on first use, so a store that only reads
    plain files never needs ECAS_KEK."""

    def __init__(self, ring: Callable[[], DataKeyRing]) -> None:
        self._open_ring = ring
        self._opened: DataKeyRing | None = None
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def _ring(self) -> DataKeyRing:
        if self._opened is None:
            self._opened = self._open_ring()
        return self._opened

    def current(self) -> tuple[str, bytes]:
        key = self._ring().current(FILES_PURPOSE)
        key_id = f"v{key.version}"
        with self._lock:
            if key_id not in self._keys:
                self._keys[key_id] = key.subkey("sm4-gcm", SM4_KEY_BYTES)
            return key_id, self._keys[key_id]

    def key(self, key_id: str) -> bytes | None:
        with self._lock:
            if key_id in self._keys:
                return self._keys[key_id]
        if not (key_id.startswith("v") and key_id[1:].isdigit() and len(key_id) < 12):
            return None
        try:
            subkey = self._ring().get(FILES_PURPOSE, int(key_id[1:])).subkey("sm4-gcm", SM4_KEY_BYTES)
        except KeysError:  # a version this ring does not have
            return None
        with self._lock:
            self._keys[key_id] = subkey
        return subkey


class FileSealer:
    """SM4-GCM for stored files, bound to their name (the SM3 of the plaintext)."""

    def __init__(self, keys: FileKeys) -> None:
        self.keys = keys

    def seal(self, name: str, data: bytes) -> bytes:
        key_id, key = self.keys.current()
        label = key_id.encode()
        return MAGIC + bytes([len(label)]) + label + sm4_gcm_seal(key, data, _associated(name, label))

    def open(self, name: str, stored: bytes) -> bytes | None:
        """The plaintext of a sealed value, or None when `stored` does not open as one stored
        under this name (another name's, altered, or not sealed at all)."""
        if not stored.startswith(MAGIC) or len(stored) <= len(MAGIC):
            return None
        start = len(MAGIC) + 1
        label = stored[start : start + stored[len(MAGIC)]]
        key = self.keys.key(label.decode("ascii", "replace"))
        if key is None:
            return None
        try:
            return sm4_gcm_open(key, stored[start + len(label) :], _associated(name, label))
        except SealedValueError:
            return None


def _associated(name: str, label: bytes) -> bytes:
    return b"ecas/file/" + name.encode() + b"/" + label


def is_sealed(stored: bytes) -> bool:
    return stored.startswith(MAGIC)


# --- the store -----------------------------------------------------------------------------------
class FileStore:
    """put / put_many / get / exists over a backend, sealing each file when a sealer is given.

    `fallback`: a second backend read (never written) when the first has no value: the local
    directory of a host whose store moved to the database, until `ecas data encrypt-files` has
    copied its files over."""

    def __init__(
        self,
        backend: FileBackend | Path,
        sealer: FileSealer | None = None,
        *,
        fallback: FileBackend | None = None,
    ) -> None:
        self.backend: FileBackend = LocalDirectory(backend) if isinstance(backend, Path) else backend
        self.sealer = sealer
        self.fallback = fallback

    @property
    def root(self) -> Path:
        """The directory of a local store."""
        if not isinstance(self.backend, LocalDirectory):
            raise AttributeError("this file store is not a local directory")
        return self.backend.root

    def path(self, digest: str) -> Path:
        """Where a local store keeps a name (the name checked first)."""
        _check(digest)
        if not isinstance(self.backend, LocalDirectory):
            raise AttributeError("this file store is not a local directory")
        return self.backend.path(digest)

    def put(self, data: bytes) -> str:
        """Store `data` (atomically, durably) and return its SM3 digest in hex."""
        return self.put_many([(data, None)])[0]

    def put_new(self, data: bytes, within: Connection | None = None) -> str:
        """Store a file just made, that no one can have stored before (a freshly sealed PDF: its
        signature is new), without reading first whether it is there: one write instead of a read
        and a write. Were the name there after all, the stored file is left as it is.

        `within`: the caller's transaction; a store in that same database writes the file in it
        (committed with what the file belongs to, one commit instead of two), others on their own."""
        return self.put_new_many([(data, None)], within)[0]

    def put_new_many(self, items: Sequence[tuple[bytes, bytes | None]], within: Connection | None = None) -> list[str]:
        """`put_new` of several files (each with its SM3 if the caller has it), durable together."""
        digests = [(known or sm3(data)).hex() for data, known in items]
        pending = {digest: data for digest, (data, _) in zip(digests, items, strict=True)}
        sealed = [(digest, self._seal(digest, data)) for digest, data in pending.items()]
        write_within = getattr(self.backend, "write_within", None)
        if sealed and (within is None or write_within is None or not write_within(within, sealed)):
            self.backend.write(sealed)
        return digests

    def put_many(self, items: Sequence[tuple[bytes, bytes | None]]) -> list[str]:
        """Store several files, each given with its SM3 digest when the caller has it already (a
        licence PDF's comes from the cached state of its constant start; `get` checks every read),
        and make them durable together. A name already stored intact is not written again."""
        digests: list[str] = []
        pending: dict[str, bytes] = {}
        for data, known in items:
            digest = (known or sm3(data)).hex()
            digests.append(digest)
            pending.setdefault(digest, data)
        if not pending:
            return digests
        stored = self.backend.read_many(list(pending))
        fresh = [(name, data) for name, data in pending.items() if name not in stored]
        repair = [
            (name, data) for name, data in pending.items() if name in stored and self._open(name, stored[name]) is None
        ]
        if fresh:
            self.backend.write([(name, self._seal(name, data)) for name, data in fresh])
        if repair:
            self.backend.write([(name, self._seal(name, data)) for name, data in repair], replace=True)
        return digests

    def get(self, digest: str) -> bytes:
        """The stored file, opened and checked against its digest (StoredFileError if missing or
        damaged)."""
        return self.get_many([digest])[digest]

    def get_many(self, digests: Sequence[str], *, present: Sequence[str] = ()) -> dict[str, bytes]:
        """`get` of several files, read in one go (one query on a database backend); with the
        names in `present` checked to be there too, in the same read (StoredFileError if not)."""
        for digest in (*digests, *present):
            _check(digest)
        if present:
            stored, there = self.backend.read_and_find(list(digests), list(present))
            self._check_found(present, there)
        else:
            stored = self.backend.read_many(list(digests))
        found: dict[str, bytes] = {}
        for digest in digests:
            value, backend = stored.get(digest), self.backend
            if value is None and self.fallback is not None:
                value, backend = self.fallback.read(digest), self.fallback
            if value is None:
                raise StoredFileError(f"文件库缺少文件 {digest}（{self.backend.where(digest)}）")
            data = self._open(digest, value)
            if data is None:
                raise StoredFileError(f"文件库中的文件 {digest} 已损坏：内容与 SM3 摘要不符（{backend.where(digest)}）")
            found[digest] = data
        return found

    def check_present(self, digests: Sequence[str]) -> None:
        """StoredFileError unless every one of these names is stored (none is read)."""
        for digest in digests:
            _check(digest)
        self._check_found(digests, self.backend.read_and_find([], list(digests))[1])

    def _check_found(self, names: Sequence[str], found: set[str]) -> None:
        for name in names:
            if name not in found and not (self.fallback is not None and self.fallback.contains(name)):
                raise StoredFileError(f"文件库缺少文件 {name}（{self.backend.where(name)}）")

    def exists(self, digest: str) -> bool:
        _check(digest)
        if self.backend.contains(digest):
            return True
        return self.fallback is not None and self.fallback.contains(digest)

    # ---------------------------------------------------------------------------------------
    def _seal(self, name: str, data: bytes) -> bytes:
        return data if self.sealer is None else self.sealer.seal(name, data)

    def _open(self, digest: str, stored: bytes) -> bytes | None:
        """The content of a stored value if its SM3 is `digest`: a sealed value opened, a plain
        one (written before encryption) as it is."""
        if self.sealer is not None and is_sealed(stored):
            data = self.sealer.open(digest, stored)
            if data is not None and sm3(data).hex() == digest:
                return data
        return stored if sm3(stored).hex() == digest else None


def _check(digest: str) -> None:
    if not DIGEST.fullmatch(digest):
        raise StoredFileError(f"文件摘要应为 64 位小写十六进制 SM3 值，收到 {digest[:80]!r}")


# --- converting a store written before encryption ------------------------------------------------
Progress = Callable[[int, int], None]  # files looked at so far, files sealed so far


def convert_plain_files(
    store: FileStore, *, batch_size: int = 200, progress: Progress | None = None
) -> tuple[int, int]:
    """Seal every plain file of the store (and copy over the fallback's, sealed), in name order,
    `batch_size` a step; each step durable before the next. Resumable: a value already sealed is
    left alone, so an interrupted run is simply run again. Returns (files looked at, sealed)."""
    if store.sealer is None:
        raise StoredFileError("文件库未配置加密，无法转换")
    seen = sealed = 0
    for backend in [store.backend] + ([store.fallback] if store.fallback is not None else []):
        after = ""
        while names := backend.names(after, batch_size):
            after = names[-1]
            batch: list[tuple[str, bytes]] = []
            for name in names:
                seen += 1
                if backend is store.fallback and store.backend.contains(name):
                    continue
                stored = backend.read(name)
                if stored is None or (is_sealed(stored) and store.sealer.open(name, stored) is not None):
                    continue
                data = store._open(name, stored)
                if data is None:
                    raise StoredFileError(f"文件库中的文件 {name} 已损坏：内容与 SM3 摘要不符（{backend.where(name)}）")
                batch.append((name, store.sealer.seal(name, data)))
            if batch:
                store.backend.write(batch, replace=True)
                sealed += len(batch)
            if progress is not None:
                progress(seen, sealed)
    return seen, sealed


def plain_file_count(store: FileStore, batch_size: int = 1000) -> tuple[int, int]:
    """(files in the store, files still plain or only in the fallback)."""
    total = plain = 0
    for backend in [store.backend] + ([store.fallback] if store.fallback is not None else []):
        for name in all_names(backend, batch_size):
            if backend is store.fallback and store.backend.contains(name):
                continue
            total += 1
            if backend is store.fallback:
                plain += 1
                continue
            # Only the start of a local file is read; a database value comes whole.
            start = backend.head(name) if isinstance(backend, LocalDirectory) else backend.read(name)
            if start is not None and not is_sealed(start):
                plain += 1
    return total, plain


def all_names(backend: FileBackend, batch_size: int = 1000) -> Iterator[str]:
    """Every name a backend holds, in order."""
    after = ""
    while names := backend.names(after, batch_size):
        yield from names
        after = names[-1]


# --- from the settings ---------------------------------------------------------------------------
class DatabaseFilesFactory(Protocol):
    def __call__(self, engine: Engine) -> FileBackend: ...


def file_store_for(settings: Settings, engine: Engine | None = None) -> FileStore:
    """The file store these settings name: the backend `ECAS_FILE_STORE` chooses (the database
    one needs `engine`), files sealed under the data keys of purpose "files"."""
    from cert_authority.store.data_keys import data_key_ring

    sealer = FileSealer(RingFileKeys(lambda: data_key_ring(settings)))
    if settings.effective_file_store == "database":
        if engine is None:
            raise ValueError("the database file store needs the engine")
        from cert_authority.store.filestore_db import DatabaseFiles

        # The local directory of a host that kept its files there before: read until converted.
        legacy = LocalDirectory(settings.files_dir) if settings.files_dir.is_dir() else None
        return FileStore(DatabaseFiles(engine), sealer, fallback=legacy)
    return FileStore(LocalDirectory(settings.files_dir), sealer)


# --- helpers -------------------------------------------------------------------------------------
def _sync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_syncfs() -> Callable[[int], int] | None:
    """syncfs(2) from the C library (Linux); None elsewhere, where files are fsynced one by one."""
    name = ctypes.util.find_library("c")
    try:
        function = ctypes.CDLL(name, use_errno=True).syncfs if name else None
    except (OSError, AttributeError):
        return None
    if function is not None:
        function.argtypes = [ctypes.c_int]
        function.restype = ctypes.c_int
    return function


_syncfs = _load_syncfs()


def _unavailable(exc: OSError) -> StorageUnavailableError:
    """A write that failed, as callers should hear of it (no paths: the chained OSError, in the
    log, has them)."""
    return StorageUnavailableError(f"文件存储暂不可写（{exc.strerror or exc}），本次未保存任何内容，请联系管理员")
