"""The key hierarchy below the key-encryption key (KEK): data-encryption keys (DEKs) by purpose and
version, wrapped under the KEK in one file, rotated without re-issuing anything.

    ECAS_KEK (passphrase) ──PBKDF2-HMAC-SM3──► KEK (SM4 key, in memory only)
        ├── SM2 private keys: encrypted PKCS#8 files (keys.pkcs8, SM4-CBC)
        └── DEKs: 32 random bytes each, SM4-GCM-wrapped in <key dir>/data-keys.json
                purpose "records" v1, v2…  (HMAC-SM3 chain of audit rows)
                purpose "pii" v1, v2…      (SM4-GCM of personal data, blind indexes)

A caller takes the purpose's current key to protect new data and records its version beside the
data; reading old data asks for that version, which stays in the ring after a rotation (a DEK is
never deleted: data protected with it would be lost). `rotate(purpose)` adds a version; the new
one protects new data at once in the process that rotated, and in other processes when they next
ask for a version they do not know or reopen the ring (`reload`). Re-encrypting old data under the
new version is the data owner's job, done at its own pace.

A DEK is one secret per (purpose, version); a caller needing several keys from it (an SM4 key and a
blind-index key) derives them with `DataKey.subkey(label)`, HMAC-SM3 of the label, so one rotation
renews them all. The document is replaced atomically under an exclusive lock (fcntl on the file;
a row lock when it is kept in the service's database, `RingStorage`, so that several hosts share one
ring), so two rotations at once do not lose one. An HSM would hold the KEK instead of a
passphrase: `wrap`/`unwrap` are the two operations it would do.
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import json
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from keys.aead import hmac_sm3, sm4_gcm_open, sm4_gcm_seal
from keys.errors import InvalidKeyError, KeyNotFoundError, SealedValueError, WrongPassphraseError

__all__ = ["DataKey", "DataKeyRing", "FileRingStorage", "RingStorage"]

FORMAT = "ecas-data-keys/1"
# PBKDF2-HMAC-SM3 (our own file, so no interoperability limit on the PRF). SM3 in libcrypto is about
# 7x slower than SHA-256 per iteration: 200,000 take about 0.2 s, once per process.
DEFAULT_ITERATIONS = 200_000
MAX_ITERATIONS = 10_000_000
PURPOSE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


@dataclass(frozen=True)
class DataKey:
    """One version of a purpose's data-encryption key. `secret` never appears in repr."""

    purpose: str
    version: int
    secret: bytes = field(repr=False)

    def subkey(self, label: str, length: int = 32) -> bytes:
        """A key for one use of this DEK (e.g. "sm4-gcm" → 16 bytes, "blind-index" → 32): HMAC-SM3
        of the purpose and label, so different uses never share key bytes."""
        if not 1 <= length <= 32:
            raise ValueError("a subkey is 1 to 32 bytes")
        return hmac_sm3(self.secret, f"ecas-subkey|{self.purpose}|{label}".encode())[:length]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise InvalidKeyError("malformed data-key file: expected base64 text")
    return base64.b64decode(text, validate=True)


def _check_purpose(purpose: str) -> str:
    if not purpose or len(purpose) > 40 or not set(purpose) <= PURPOSE_CHARS:
        raise ValueError(f"invalid data-key purpose {purpose!r}: use a-z, 0-9 and '-'")
    return purpose


def _wrap_aad(purpose: str, version: int) -> bytes:
    # Binds each wrapped key to its place in the ring: a DEK moved to another purpose or version
    # does not unwrap.
    return f"ecas-dek|{purpose}|{version}".encode()


class DataKeyRing:
    """The DEKs of one installation, in `path` (JSON, 0600), wrapped under a KEK derived from the
    passphrase. Thread-safe; several processes may share the file."""

    def __init__(self, path: Path | RingStorage, passphrase: bytes, *, iterations: int | None = None) -> None:
        if not passphrase:
            raise ValueError("the data-key ring needs the key-encryption passphrase (ECAS_KEK)")
        self.storage: RingStorage = path if isinstance(path, RingStorage) else FileRingStorage(Path(path))
        self.path = self.storage.where
        self._passphrase = passphrase
        self._iterations = iterations or DEFAULT_ITERATIONS  # for a new file; an existing one says its own
        self._kek: bytes | None = None
        self._salt: bytes | None = None
        self._keys: dict[tuple[str, int], DataKey] = {}
        self._created: dict[tuple[str, int], str] = {}
        self._lock = threading.RLock()
        self.reload()

    def __repr__(self) -> str:  # never show the passphrase or a key
        return f"DataKeyRing({str(self.path)!r})"

    # --- reading -------------------------------------------------------------------------
    def current(self, purpose: str) -> DataKey:
        """The purpose's newest key, created (version 1) when the purpose has none yet."""
        _check_purpose(purpose)
        with self._lock:
            versions = [version for (name, version) in self._keys if name == purpose]
            if versions:
                return self._keys[(purpose, max(versions))]
        return self.rotate(purpose, only_if_none=True)

    def get(self, purpose: str, version: int) -> DataKey:
        """A given version (to read data protected with it); rereads the file once when this
        process does not know it yet (another process rotated)."""
        with self._lock:
            key = self._keys.get((purpose, version))
            if key is None:
                self.reload()
                key = self._keys.get((purpose, version))
        if key is None:
            raise KeyNotFoundError(f"no data-encryption key {purpose!r} version {version} in {self.path}")
        return key

    def all_versions(self, purpose: str) -> list[DataKey]:
        """Every version of the purpose's key, newest first (to check data of any age)."""
        with self._lock:
            self.reload()
            return sorted((k for (name, _), k in self._keys.items() if name == purpose), key=lambda k: -k.version)

    def versions(self) -> list[tuple[str, int, str]]:
        """(purpose, version, created at) of every key, oldest first within a purpose."""
        with self._lock:
            return sorted((purpose, version, self._created[(purpose, version)]) for purpose, version in self._keys)

    def reload(self) -> None:
        """Read the file again (it may not exist yet: an empty ring)."""
        with self._lock:
            data = self.storage.read()
            if data is None:
                return
            try:
                document = json.loads(data)
            except ValueError as exc:
                raise InvalidKeyError(f"malformed data-key file {self.path}: {exc}") from exc
            self._load(document)

    # --- changing ------------------------------------------------------------------------
    def rotate(self, purpose: str, *, now: dt.datetime | None = None, only_if_none: bool = False) -> DataKey:
        """Add a new version of the purpose's key and make it current. Nothing protected with the
        older versions changes: they stay in the ring for reading."""
        _check_purpose(purpose)
        created = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
        with self._lock, self.storage.locked():
            self.reload()
            versions = [version for (name, version) in self._keys if name == purpose]
            if only_if_none and versions:
                return self._keys[(purpose, max(versions))]
            key = DataKey(purpose, max(versions, default=0) + 1, secrets.token_bytes(32))
            self._keys[(purpose, key.version)] = key
            self._created[(purpose, key.version)] = created
            self._save(self._passphrase)
            return key

    def rewrap(self, new_passphrase: bytes) -> None:
        """Wrap every DEK under a KEK from a new passphrase (a change of ECAS_KEK), atomically. The
        DEKs themselves, and so all data protected with them, do not change."""
        if not new_passphrase:
            raise ValueError("an empty passphrase cannot protect the data keys")
        with self._lock, self.storage.locked():
            self.reload()
            self._salt, self._kek = None, None
            self._save(new_passphrase)
            self._passphrase = new_passphrase

    # --- the file ------------------------------------------------------------------------
    def _derive(self, passphrase: bytes, salt: bytes, iterations: int) -> bytes:
        return PBKDF2HMAC(hashes.SM3(), 16, salt, iterations).derive(passphrase)

    def _load(self, document: Any) -> None:
        try:
            if document.get("format") != FORMAT:
                raise InvalidKeyError(f"unknown data-key file format {document.get('format')!r}")
            kdf = document["kdf"]
            salt, iterations = _unb64(kdf["salt"]), kdf["iterations"]
            if kdf.get("algorithm") != "pbkdf2-hmac-sm3" or not isinstance(iterations, int):
                raise InvalidKeyError("unsupported data-key derivation")
            if not 1 <= iterations <= MAX_ITERATIONS:
                raise InvalidKeyError(f"refusing PBKDF2 iteration count {iterations}")
            if self._kek is None or salt != self._salt or iterations != self._iterations:
                self._kek, self._salt = self._derive(self._passphrase, salt, iterations), salt
            self._iterations = iterations  # what _save writes beside the KEK derived with it
            check = _unb64(document["kek_check"])
            try:
                sm4_gcm_open(self._kek, check, b"ecas-kek-check")
            except SealedValueError as exc:
                raise WrongPassphraseError(f"ECAS_KEK does not open the data keys in {self.path}") from exc
            keys: dict[tuple[str, int], DataKey] = {}
            created: dict[tuple[str, int], str] = {}
            for entry in document["keys"]:
                purpose, version = _check_purpose(entry["purpose"]), entry["version"]
                if not isinstance(version, int) or version < 1:
                    raise InvalidKeyError("malformed data-key file: bad version")
                try:
                    secret = sm4_gcm_open(self._kek, _unb64(entry["wrapped"]), _wrap_aad(purpose, version))
                except SealedValueError as exc:  # altered, or moved to another purpose or version
                    raise InvalidKeyError(f"data key {purpose!r} version {version} does not open") from exc
                keys[(purpose, version)] = DataKey(purpose, version, secret)
                created[(purpose, version)] = str(entry["created_at"])
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            if isinstance(exc, InvalidKeyError):
                raise
            raise InvalidKeyError(f"malformed data-key file {self.path}: {exc!r}") from exc
        self._keys, self._created = keys, created

    def _save(self, passphrase: bytes) -> None:
        if self._kek is None or self._salt is None:
            self._salt = os.urandom(16)
            self._kek = self._derive(passphrase, self._salt, self._iterations)
        kek = self._kek
        document = {
            "format": FORMAT,
            "kdf": {"algorithm": "pbkdf2-hmac-sm3", "salt": _b64(self._salt), "iterations": self._iterations},
            "kek_check": _b64(sm4_gcm_seal(kek, b"", b"ecas-kek-check")),
            "keys": [
                {
                    "purpose": purpose,
                    "version": version,
                    "created_at": self._created[(purpose, version)],
                    "wrapped": _b64(sm4_gcm_seal(kek, key.secret, _wrap_aad(purpose, version))),
                }
                for (purpose, version), key in sorted(self._keys.items())
            ],
        }
        self.storage.write(json.dumps(document, indent=1).encode())


@runtime_checkable
class RingStorage(Protocol):
    """Where the ring's document (the wrapped keys, never a plain one) is kept: a file beside the
    key files (one host), or a row of the service's database that every host shares."""

    @property
    def where(self) -> str:
        """For messages."""
        ...

    def read(self) -> bytes | None:
        """The document, None when there is none yet."""
        ...

    def write(self, data: bytes) -> None:
        """Replace the document atomically (called only inside `locked`)."""
        ...

    def locked(self) -> AbstractContextManager[None]:
        """Exclusive against every other writer (other processes, other hosts) while the document
        is read, changed and written, so two rotations at once do not lose one."""
        ...


class FileRingStorage:
    """The document in a file (JSON, 0600), replaced atomically under an fcntl lock."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def where(self) -> str:
        return str(self.path)

    def read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def write(self, data: bytes) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}-{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(f".{self.path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
