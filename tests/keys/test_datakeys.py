"""The key hierarchy (keys.datakeys): DEKs wrapped under the KEK, rotated without losing old
versions, bound to their place in the ring; SM4-GCM and HMAC-SM3 checked against gmssl."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from gmssl import sm3 as gm_sm3
from gmssl import sm4 as gm_sm4

from keys.aead import hmac_sm3
from keys.aead import sm4_gcm_open as sm4_gcm_decrypt
from keys.aead import sm4_gcm_seal as sm4_gcm_encrypt
from keys.datakeys import DataKeyRing
from keys.errors import InvalidKeyError, KeyNotFoundError, SealedValueError, WrongPassphraseError

PASS = b"test-kek-0123456789"
FAST = 1000


def _ring(path: Path, passphrase: bytes = PASS) -> DataKeyRing:
    return DataKeyRing(path, passphrase, iterations=FAST)


def test_current_creates_then_rotation_keeps_old_versions(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "data-keys.json"
    ring = _ring(path)
    first = ring.current("pii")
    assert (first.purpose, first.version) == ("pii", 1)
    assert ring.current("pii") == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = ring.rotate("pii")
    assert second.version == 2 and second.secret != first.secret
    assert ring.current("pii") == second
    # Another process (a fresh ring on the same file) reads both; versions are per purpose.
    other = _ring(path)
    assert other.get("pii", 1) == first and other.get("pii", 2) == second
    assert other.current("records").version == 1
    with pytest.raises(KeyNotFoundError):
        other.get("pii", 3)
    assert "secret" not in repr(first) and first.secret.hex() not in repr(first)


def test_a_worker_learns_of_a_rotation_made_elsewhere(tmp_path: Path) -> None:
    path = tmp_path / "data-keys.json"
    worker, operator = _ring(path), _ring(path)
    worker.current("pii")
    rotated = operator.rotate("pii")
    assert worker.get("pii", 2) == rotated  # an unknown version makes it reread the file


def test_the_file_holds_no_key_in_clear_and_needs_the_kek(tmp_path: Path) -> None:
    path = tmp_path / "data-keys.json"
    key = _ring(path).current("pii")
    raw = path.read_bytes()
    assert key.secret not in raw and base64.b64encode(key.secret) not in raw and key.secret.hex().encode() not in raw
    with pytest.raises(WrongPassphraseError):
        _ring(path, b"another passphrase")


def test_a_wrapped_key_moved_to_another_version_does_not_open(tmp_path: Path) -> None:
    path = tmp_path / "data-keys.json"
    ring = _ring(path)
    ring.current("pii")
    ring.rotate("pii")
    document = json.loads(path.read_bytes())
    document["keys"][0]["wrapped"], document["keys"][1]["wrapped"] = (
        document["keys"][1]["wrapped"],
        document["keys"][0]["wrapped"],
    )
    path.write_text(json.dumps(document))
    with pytest.raises(InvalidKeyError):
        _ring(path)


def test_kek_change_rewraps_the_same_keys(tmp_path: Path) -> None:
    path = tmp_path / "data-keys.json"
    ring = _ring(path)
    key = ring.current("records")
    ring.rewrap(b"new passphrase")
    with pytest.raises(WrongPassphraseError):
        _ring(path)
    assert _ring(path, b"new passphrase").get("records", 1) == key


def test_subkeys_differ_by_label_and_purpose(tmp_path: Path) -> None:
    ring = _ring(tmp_path / "data-keys.json")
    pii = ring.current("pii")
    assert len(pii.subkey("sm4-gcm", 16)) == 16
    assert pii.subkey("sm4-gcm", 16) != pii.subkey("blind-index", 16)
    assert pii.subkey("x") != ring.current("records").subkey("x")


def test_sm4_gcm_round_trip_and_tamper() -> None:
    key = os.urandom(16)
    sealed = sm4_gcm_encrypt(key, b"350102199005170121", b"holder:1")
    assert sm4_gcm_encrypt(key, b"same", b"") != sm4_gcm_encrypt(key, b"same", b"")  # fresh nonce
    assert sm4_gcm_decrypt(key, sealed, b"holder:1") == b"350102199005170121"
    with pytest.raises(SealedValueError):
        sm4_gcm_decrypt(key, sealed, b"holder:2")  # moved to another row
    flipped = bytearray(sealed)
    flipped[14] ^= 1
    with pytest.raises(SealedValueError):
        sm4_gcm_decrypt(key, bytes(flipped), b"holder:1")
    with pytest.raises(SealedValueError):
        sm4_gcm_decrypt(key, sealed[:20], b"holder:1")


def test_sm4_and_hmac_sm3_agree_with_gmssl() -> None:
    """The SM4 block cipher (GCM is CTR over it: the first keystream block is SM4(J0+1)) and
    HMAC-SM3 (RFC 2104 over gmssl's SM3) computed by an implementation we did not write."""
    key, message = os.urandom(16), os.urandom(16)
    sealed = sm4_gcm_encrypt(key, message, b"")
    nonce, body = sealed[:12], sealed[12:28]
    counter_block = nonce + (2).to_bytes(4, "big")
    crypt = gm_sm4.CryptSM4()
    crypt.set_key(key, gm_sm4.SM4_ENCRYPT)
    keystream = crypt.crypt_ecb(counter_block)[:16]  # gmssl pads: the first block is the one we want
    assert bytes(a ^ b for a, b in zip(keystream, message, strict=True)) == body

    mac_key = os.urandom(32)
    padded = mac_key.ljust(64, b"\0")
    inner = bytes.fromhex(gm_sm3.sm3_hash(list(bytes(b ^ 0x36 for b in padded) + message)))
    outer = gm_sm3.sm3_hash(list(bytes(b ^ 0x5C for b in padded) + inner))
    assert hmac_sm3(mac_key, message).hex() == outer


def test_a_process_with_another_default_count_keeps_the_files_count(tmp_path: Path) -> None:
    """A ring opened with another default PBKDF2 count (a spawned worker, a newer release) that
    adds a key must write the file's own count beside the KEK derived with it, or the next reader
    derives another KEK and every data key is lost (found by the batch workers' first pii key)."""
    path = tmp_path / "data-keys.json"
    records = _ring(path).current("records")
    other = DataKeyRing(path, PASS, iterations=FAST * 2)
    pii = other.current("pii")
    reopened = _ring(path)
    assert reopened.get("records", 1) == records and reopened.get("pii", 1) == pii
    assert json.loads(path.read_bytes())["kdf"]["iterations"] == FAST
