"""Personal data at rest (issue 25, item 2): holder codes, names, face data and contact details
are kept in the database only as SM4-GCM values, and found by equality through a keyed blind
index (HMAC-SM3) instead of the code itself.

A sealed value is text, `<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`, of a JSON object. Its
associated data names the table and the row's identity (the licence identifier, the account's or
case's id), so a value copied into another row, or another table, does not open there. The key id
travels with every value, so values sealed under an older data key still open after a rotation.

Data keys come from a `DataKeys` provider: `RingDataKeys` takes them from the key hierarchy (a KEK
wrapping rotatable data keys, `personal_data_for`)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, Protocol

from cert_authority.errors import SealedDataError
from cert_authority.settings import Settings
from cert_authority.store.data_keys import data_key_ring
from keys.aead import SM4_KEY_BYTES, hmac_sm3, sm4_gcm_open, sm4_gcm_seal
from keys.errors import KeysError, SealedValueError

INDEX_KEY_BYTES = 32


class DataKeys(Protocol):
    """Where data keys come from: the one new values are sealed with, and any by its id."""

    def current(self) -> tuple[str, bytes]:
        """(key id, 16-byte SM4 key) to seal new values with."""
        ...

    def key(self, key_id: str) -> bytes | None:
        """The SM4 key with this id; None when this provider does not have it."""
        ...

    def index_key(self) -> bytes:
        """The HMAC-SM3 key of the blind index (not rotated with the data keys: a new index key
        means recomputing every index, as `ecas data encrypt` does for rows it seals)."""
        ...


class RingKey(Protocol):
    """One version of a data key in a key hierarchy (keys.datakeys.DataKey on branch mipin)."""

    @property
    def version(self) -> int: ...

    def subkey(self, label: str, length: int = 32) -> bytes: ...


class KeyRing(Protocol):
    """Versioned data keys under a KEK (keys.datakeys.DataKeyRing on branch mipin)."""

    def current(self, purpose: str) -> RingKey: ...

    def get(self, purpose: str, version: int) -> RingKey: ...


class RingDataKeys:
    """Data keys from a key hierarchy, purpose "pii": version N seals as key id "vN" with its
    subkey "sm4-gcm"; `ecas keys rotate pii` adds a version for new values while the old ones
    keep opening. The index key is version 1's subkey "blind-index", the same after every
    rotation (indexes are not versioned). A change of KEK re-wraps the versions: nothing here
    changes.

    Subkeys are derived once per version and kept (a version's key never changes; a rotation adds
    a version, which `current` picks up from the ring): each derivation is an HMAC-SM3, and the
    show-token check, the busiest path, would otherwise derive two per check."""

    PURPOSE = "pii"

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self._subkeys: dict[int, bytes] = {}
        self._index_key: bytes | None = None

    def _subkey(self, key: RingKey) -> bytes:
        subkey = self._subkeys.get(key.version)
        if subkey is None:
            subkey = self._subkeys[key.version] = key.subkey("sm4-gcm", SM4_KEY_BYTES)
        return subkey

    def current(self) -> tuple[str, bytes]:
        key = self.ring.current(self.PURPOSE)
        return f"v{key.version}", self._subkey(key)

    def key(self, key_id: str) -> bytes | None:
        if not (key_id.startswith("v") and key_id[1:].isdigit()):
            return None
        subkey = self._subkeys.get(int(key_id[1:]))
        if subkey is not None:
            return subkey
        try:
            return self._subkey(self.ring.get(self.PURPOSE, int(key_id[1:])))
        except KeysError:  # keys.errors.KeyNotFoundError: a version this ring does not have
            return None

    def index_key(self) -> bytes:
        if self._index_key is None:
            self.ring.current(self.PURPOSE)  # version 1 exists from the first use on
            self._index_key = self.ring.get(self.PURPOSE, 1).subkey("blind-index", INDEX_KEY_BYTES)
        return self._index_key


class PersonalData:
    """Seals and opens personal data for a row, and computes blind indexes of holder codes."""

    def __init__(self, keys: DataKeys) -> None:
        self.keys = keys

    def seal(self, values: Mapping[str, Any], *, table: str, row: str) -> str:
        key_id, key = self.keys.current()
        plaintext = json.dumps(values, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
        sealed = sm4_gcm_seal(key, plaintext, _associated(table, row, key_id))
        return f"{key_id}.{base64.urlsafe_b64encode(sealed).decode()}"

    def open(self, sealed: str | None, *, table: str, row: str) -> dict[str, Any]:
        """The values sealed for this row; SealedDataError if they were sealed elsewhere, edited,
        or are missing (a row from before `ecas data encrypt`)."""
        if sealed is None:
            raise SealedDataError(f"{table} {row}：个人信息尚未加密，请先运行 ecas data encrypt")
        key_id, _, body = sealed.partition(".")
        key = self.keys.key(key_id)
        if key is None:
            raise SealedDataError(f"{table} {row}：个人信息的数据密钥 {key_id!r} 不可用")
        try:
            plaintext = sm4_gcm_open(key, base64.urlsafe_b64decode(body.encode()), _associated(table, row, key_id))
        except (SealedValueError, ValueError):
            raise SealedDataError(f"{table} {row}：加密的个人信息无法解密，记录可能被篡改或移动") from None
        values: dict[str, Any] = json.loads(plaintext)
        return values

    def index(self, holder_code: str) -> str:
        """The blind index of a holder code (ID number or USCC), as written: callers normalise.
        Equal codes give equal indexes; without the index key it tells nothing about the code."""
        return hmac_sm3(self.keys.index_key(), b"holder_code\0" + holder_code.encode()).hex()

    def record_salt(self, identifier: str) -> bytes:
        """The 32-byte salt of a licence's record commitment in the transparency log (leaf format
        2, verification.transparency.record_commitment): derived, not stored, from the index key
        (never rotated, so a leaf's salt never changes) and the identifier. Disclosed per licence
        with its proof; without it a public leaf tells nothing about the holder's code."""
        return hmac_sm3(self.keys.index_key(), b"log_record_salt\0" + identifier.encode())


def _associated(table: str, row: str, key_id: str) -> bytes:
    return f"ecas/personal/{table}/{row}/{key_id}".encode()


def personal_data_for(settings: Settings) -> PersonalData:
    """The codec of personal data at rest: data keys of purpose "pii" in the key hierarchy under
    ECAS_KEK (store/data_keys.py), so `ecas keys rotate pii` and a KEK change work without
    re-encrypting anything."""
    return PersonalData(RingDataKeys(data_key_ring(settings)))
