"""SM4-GCM (GB/T 32907 in NIST SP 800-38D's mode, as RFC 8998 uses it) and HMAC-SM3, for values
kept encrypted at rest: a fresh 96-bit nonce per value, associated data that names where the value
belongs, and a 128-bit tag, so a value edited or moved elsewhere does not open.

OpenSSL's libcrypto does the work (through `cryptography`, whose OpenSSL has SM4-GCM)."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from keys.errors import InvalidKeyError, SealedValueError

__all__ = ["NONCE_BYTES", "SM4_KEY_BYTES", "TAG_BYTES", "hmac_sm3", "sm4_gcm_open", "sm4_gcm_seal"]

SM4_KEY_BYTES = 16
NONCE_BYTES = 12  # the GCM nonce length that needs no GHASH of the nonce (SP 800-38D §8.2.1)
TAG_BYTES = 16


def sm4_gcm_seal(key: bytes, plaintext: bytes, associated_data: bytes, nonce: bytes | None = None) -> bytes:
    """nonce ‖ ciphertext ‖ tag. `nonce` is for known-answer tests only: a value sealed twice
    under one key with one nonce gives both away, so callers leave it to os.urandom."""
    _check_key(key)
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(associated_data)
    ciphertext = encryptor.update(plaintext) + encryptor.finalize()
    return nonce + ciphertext + encryptor.tag


def sm4_gcm_open(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    """The plaintext of `sm4_gcm_seal`'s output; SealedValueError when the key, the associated
    data or any byte differs."""
    _check_key(key)
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise SealedValueError("sealed value too short")
    nonce, ciphertext, tag = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:-TAG_BYTES], sealed[-TAG_BYTES:]
    decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(associated_data)
    try:
        return decryptor.update(ciphertext) + decryptor.finalize()
    except InvalidTag:
        raise SealedValueError("sealed value does not open: wrong key, wrong place or altered") from None


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    """HMAC (RFC 2104) with SM3: 32 bytes."""
    mac = hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    return mac.finalize()


def _check_key(key: bytes) -> None:
    if len(key) != SM4_KEY_BYTES:
        raise InvalidKeyError(f"an SM4 key has {SM4_KEY_BYTES} bytes, not {len(key)}")
