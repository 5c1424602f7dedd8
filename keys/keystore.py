"""Key stores: where private keys live. Callers ask for a `Signer` by label, never for key bytes.

`SoftwareKeyStore` keeps each key as encrypted PKCS#8 (`keys.pkcs8`, SM4-CBC) under a passphrase
(the key-encryption key, `ECAS_KEK`). Where the encrypted bytes live is a `KeyFiles` backend:
`KeyDirectory`, one file per key, mode 0600, in a 0700 directory (the default), or another place
that keeps bytes by label (the authority keeps them in its database when several hosts share it:
cert_authority/store/keys_db.py). The backend only ever sees the encrypted form. A PKCS#11 store
would implement the same `KeyStore` protocol with labels naming token objects.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from pathlib import Path
from typing import Protocol

from keys.errors import InvalidKeyError, KeyExistsError, KeyNotFoundError, WrongPassphraseError
from keys.pkcs8 import DEFAULT_ITERATIONS, decrypt_private_key, encrypt_private_key, key_file_cipher
from keys.signer import Signer, SoftwareSigner
from keys.sm2 import DEFAULT_ID, SM2PrivateKey, SM2PublicKey

__all__ = ["KeyDirectory", "KeyFiles", "KeyStore", "SoftwareKeyStore", "create_key_file", "open_key_file"]

LABEL_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")


class KeyStore(Protocol):
    def generate(self, label: str) -> SM2PublicKey:
        """Create a new SM2 key under `label` (never overwrites) and return its public key."""
        ...

    def signer(self, label: str, signer_id: bytes = DEFAULT_ID) -> Signer: ...

    def public_key(self, label: str) -> SM2PublicKey: ...

    def exists(self, label: str) -> bool: ...

    def delete(self, label: str) -> None: ...


def _check_label(label: str) -> str:
    if not LABEL_PATTERN.fullmatch(label):  # not match(): its "$" also matches before a final "\n"
        raise ValueError(f"invalid key label {label!r}: use a-z, 0-9, '.', '_', '-'")
    return label


class KeyFiles(Protocol):
    """Where encrypted key files are kept, by label (already checked against LABEL_PATTERN)."""

    def where(self, label: str) -> str:
        """Where the key is (or would be), for messages."""
        ...

    def read(self, label: str) -> bytes | None: ...

    def create(self, label: str, data: bytes) -> None:
        """Keep `data` under a new label, durably; KeyExistsError if the label is taken."""
        ...

    def replace(self, label: str, data: bytes) -> None:
        """Replace the value of an existing label atomically (old or new, never neither)."""
        ...

    def remove(self, label: str) -> None: ...

    def labels(self) -> list[str]: ...


class KeyDirectory:
    """One file per key, `<label>.key.pem`, 0600, in a 0700 directory; written to a temporary file,
    fsynced, then linked (new) or renamed (replaced), so a crash leaves a whole file or none."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"KeyDirectory({str(self.directory)!r})"

    def path(self, label: str) -> Path:
        return self.directory / f"{label}.key.pem"

    def where(self, label: str) -> str:
        return str(self.path(label))

    def read(self, label: str) -> bytes | None:
        try:
            return self.path(label).read_bytes()
        except FileNotFoundError:
            return None

    def labels(self) -> list[str]:
        return sorted(path.name.removesuffix(".key.pem") for path in self.directory.glob("*.key.pem"))

    def create(self, label: str, data: bytes) -> None:
        path = self.path(label)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self._write_temporary(path, data)
        try:
            # link() fails if the label was taken meanwhile: a key is never overwritten.
            os.link(tmp, path)
        except FileExistsError as exc:
            raise KeyExistsError(f"a key labelled {label!r} already exists") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def replace(self, label: str, data: bytes) -> None:
        path = self.path(label)
        tmp = self._write_temporary(path, data)
        try:
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        _sync_directory(self.directory)

    def remove(self, label: str) -> None:
        self.path(label).unlink(missing_ok=True)

    def _write_temporary(self, path: Path, data: bytes) -> Path:
        # Unique per call: threads of one process must not collide on the temporary name.
        tmp = path.with_suffix(f".tmp{os.getpid()}-{secrets.token_hex(8)}")
        # O_EXCL + 0600 from creation: the file is never readable by others, not even briefly.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp


class SoftwareKeyStore:
    """Encrypted-at-rest keys, in a directory (a path) or another `KeyFiles` backend. Opened keys
    are cached for the life of the store object."""

    def __init__(self, files: Path | KeyFiles, passphrase: bytes, *, iterations: int = DEFAULT_ITERATIONS):
        if not passphrase:
            raise ValueError("the key store needs a key-encryption passphrase (ECAS_KEK)")
        self.files: KeyFiles = KeyDirectory(files) if isinstance(files, Path | str) else files
        self._passphrase = passphrase
        self._iterations = iterations
        self._cache: dict[str, SM2PrivateKey] = {}
        self._lock = threading.Lock()
        self._opening = threading.Lock()  # held while a key is read and decrypted

    def __repr__(self) -> str:  # never show the passphrase
        return f"SoftwareKeyStore({self.files!r})"

    def _read(self, label: str) -> bytes:
        data = self.files.read(_check_label(label))
        if data is None:
            raise KeyNotFoundError(f"no key labelled {label!r} ({self.files.where(label)})")
        return data

    def labels(self) -> list[str]:
        """Every key's label, sorted."""
        return self.files.labels()

    def cipher(self, label: str) -> str:
        """The cipher of the key's file at rest ("sm4-cbc", or "aes-256-cbc" before `rewrap`)."""
        return key_file_cipher(self._read(label))

    def rewrap(self, label: str, *, old_passphrase: bytes | None = None) -> bool:
        """Write the key's file again in the current format (SM4-CBC) under the store's passphrase,
        in place and atomically: the new value is made, read back, and only then put in place of
        the old one (a directory: written beside it, synced, renamed over it), so an interruption
        leaves the old file or the new one, never neither. `old_passphrase`: the one the file may
        still be under (a change of ECAS_KEK); a file already under the store's passphrase opens
        with it first, so a run that was interrupted can simply be repeated. True if the file was
        rewritten."""
        data = self._read(label)
        try:
            key = decrypt_private_key(data, self._passphrase)
            current = True
        except WrongPassphraseError:
            if old_passphrase is None:
                raise
            key = decrypt_private_key(data, old_passphrase)
            current = False
        if current and key_file_cipher(data) == "sm4-cbc":
            return False
        new = encrypt_private_key(key, self._passphrase, iterations=self._iterations)
        if decrypt_private_key(new, self._passphrase).public_key != key.public_key:  # never replace blind
            raise InvalidKeyError(f"re-encrypting {label!r} did not give the same key back")
        self.files.replace(label, new)
        return True

    def exists(self, label: str) -> bool:
        return self.files.read(_check_label(label)) is not None

    def generate(self, label: str) -> SM2PublicKey:
        _check_label(label)
        key = SM2PrivateKey.generate()
        data = encrypt_private_key(key, self._passphrase, iterations=self._iterations)
        self.files.create(label, data)  # KeyExistsError if taken: a key is never overwritten
        with self._lock:
            self._cache[label] = key
        return key.public_key

    def _open(self, label: str) -> SM2PrivateKey:
        with self._lock:
            cached = self._cache.get(label)
        if cached is not None:
            return cached
        # One thread decrypts (PBKDF2, a fraction of a second) while the others wait for its result:
        # a burst of first requests on a new worker would otherwise each pay for it, all at once.
        with self._opening:
            with self._lock:
                cached = self._cache.get(label)
            if cached is not None:
                return cached
            key = decrypt_private_key(self._read(label), self._passphrase)
            with self._lock:
                self._cache[label] = key
            return key

    def signer(self, label: str, signer_id: bytes = DEFAULT_ID) -> SoftwareSigner:
        return SoftwareSigner(self._open(label), signer_id=signer_id)

    def public_key(self, label: str) -> SM2PublicKey:
        return self._open(label).public_key

    def delete(self, label: str) -> None:
        """Remove a key (used to roll back a key whose certificate was never issued)."""
        with self._lock:
            self._cache.pop(label, None)
        self.files.remove(_check_label(label))


def create_key_file(path: Path, passphrase: bytes, *, iterations: int = DEFAULT_ITERATIONS) -> SM2PublicKey:
    """A new SM2 key alone in an encrypted file (PKCS#8, SM4-CBC; 0600; never overwrites): a
    person's own key, such as a staff member's sign-in key, rather than one of the store's."""
    key = SM2PrivateKey.generate()
    data = encrypt_private_key(key, passphrase, iterations=iterations)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return key.public_key


def open_key_file(path: Path, passphrase: bytes, signer_id: bytes = DEFAULT_ID) -> Signer:
    """The signer of a key file `create_key_file` (or `openssl pkcs8 -topk8 -v2 sm4-cbc`) wrote."""
    return SoftwareSigner(decrypt_private_key(Path(path).read_bytes(), passphrase), signer_id=signer_id)


def _sync_directory(directory: Path) -> None:
    """fsync a directory, so a rename in it survives a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
