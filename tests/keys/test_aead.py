"""SM4-GCM and HMAC-SM3 (keys.aead): RFC 8998's known answer, a GCM built here on gmssl's SM4
block cipher (an implementation we did not write), and every kind of tampering."""

from __future__ import annotations

import os

import pytest
from gmssl.sm4 import SM4_ENCRYPT, CryptSM4
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.aead import NONCE_BYTES, hmac_sm3, sm4_gcm_open, sm4_gcm_seal
from keys.errors import InvalidKeyError, SealedValueError

# RFC 8998, Appendix A.1 (SM4-GCM).
RFC8998_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
RFC8998_NONCE = bytes.fromhex("00001234567800000000ABCD")
RFC8998_AAD = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
RFC8998_PLAINTEXT = bytes.fromhex(
    "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
    "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
)
RFC8998_CIPHERTEXT = bytes.fromhex(
    "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
    "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
)
RFC8998_TAG = bytes.fromhex("83DE3541E4C2B58177E065A9BF7B62EC")


def test_rfc8998_known_answer() -> None:
    sealed = sm4_gcm_seal(RFC8998_KEY, RFC8998_PLAINTEXT, RFC8998_AAD, nonce=RFC8998_NONCE)
    assert sealed == RFC8998_NONCE + RFC8998_CIPHERTEXT + RFC8998_TAG
    assert sm4_gcm_open(RFC8998_KEY, sealed, RFC8998_AAD) == RFC8998_PLAINTEXT


def _gmssl_gcm(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """SP 800-38D GCM over gmssl's SM4 (ECB, one block at a time): ciphertext ‖ tag."""
    sm4 = CryptSM4()
    sm4.set_key(key, SM4_ENCRYPT)

    def block(data: bytes) -> bytes:
        return bytes(sm4.crypt_ecb(data))[:16]  # one block (gmssl pads a whole block on)

    h = int.from_bytes(block(bytes(16)), "big")

    def mult(x: int) -> int:  # x · H in GF(2^128), SP 800-38D §6.3
        z, v = 0, h
        for i in range(127, -1, -1):
            if (x >> i) & 1:
                z ^= v
            v = (v >> 1) ^ (0xE1 << 120) if v & 1 else v >> 1
        return z

    def ghash(data: bytes) -> int:
        y = 0
        for i in range(0, len(data), 16):
            y = mult(y ^ int.from_bytes(data[i : i + 16].ljust(16, b"\0"), "big"))
        return y

    j0 = nonce + b"\0\0\0\1"
    ciphertext = bytearray()
    for i in range(0, len(plaintext), 16):
        low = (int.from_bytes(j0[12:], "big") + 1 + i // 16) & 0xFFFFFFFF  # inc32 (SP 800-38D §6.2)
        counter = (int.from_bytes(j0, "big") & ~0xFFFFFFFF) | low
        stream = block(counter.to_bytes(16, "big"))
        chunk = plaintext[i : i + 16]
        ciphertext += bytes(a ^ b for a, b in zip(chunk, stream, strict=False))

    def padded(data: bytes) -> bytes:
        return data + bytes(-len(data) % 16)

    lengths = (len(aad) * 8).to_bytes(8, "big") + (len(ciphertext) * 8).to_bytes(8, "big")
    s = ghash(padded(aad) + padded(bytes(ciphertext)) + lengths)
    tag = int.from_bytes(block(j0), "big") ^ s
    return bytes(ciphertext) + tag.to_bytes(16, "big")


def test_the_reference_gcm_gives_rfc8998s_answer() -> None:
    assert _gmssl_gcm(RFC8998_KEY, RFC8998_NONCE, RFC8998_PLAINTEXT, RFC8998_AAD) == RFC8998_CIPHERTEXT + RFC8998_TAG


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=70), st.binary(max_size=40))
def test_agrees_with_gmssl_based_gcm(plaintext: bytes, aad: bytes) -> None:
    key = os.urandom(16)
    sealed = sm4_gcm_seal(key, plaintext, aad)
    assert sealed[NONCE_BYTES:] == _gmssl_gcm(key, sealed[:NONCE_BYTES], plaintext, aad)
    assert sm4_gcm_open(key, sealed, aad) == plaintext


def test_a_fresh_nonce_every_time() -> None:
    key = os.urandom(16)
    assert len({sm4_gcm_seal(key, b"350102199005170121", b"row 1")[:NONCE_BYTES] for _ in range(50)}) == 50


@pytest.mark.parametrize("where", ["nonce", "ciphertext", "tag"])
def test_any_flipped_bit_is_refused(where: str) -> None:
    key = os.urandom(16)
    sealed = bytearray(sm4_gcm_seal(key, b"350102199005170121", b"licence/1"))
    index = {"nonce": 0, "ciphertext": NONCE_BYTES + 3, "tag": len(sealed) - 1}[where]
    sealed[index] ^= 0x01
    with pytest.raises(SealedValueError):
        sm4_gcm_open(key, bytes(sealed), b"licence/1")


def test_another_place_or_key_is_refused() -> None:
    key = os.urandom(16)
    sealed = sm4_gcm_seal(key, b"350102199005170121", b"licence/1")
    with pytest.raises(SealedValueError):
        sm4_gcm_open(key, sealed, b"licence/2")
    with pytest.raises(SealedValueError):
        sm4_gcm_open(os.urandom(16), sealed, b"licence/1")
    with pytest.raises(SealedValueError):
        sm4_gcm_open(key, sealed[:20], b"licence/1")
    with pytest.raises(InvalidKeyError):
        sm4_gcm_seal(os.urandom(32), b"x", b"")


def test_hmac_sm3_against_gmssl() -> None:
    from gmssl import sm3 as gm

    key, data = os.urandom(32), b"holder_code\0350102199005170121"
    # HMAC by hand (RFC 2104, SM3's 64-byte block) with gmssl's SM3.
    def digest(b: bytes) -> bytes:
        return bytes.fromhex(gm.sm3_hash(list(b)))

    k = key.ljust(64, b"\0")
    inner = digest(bytes(x ^ 0x36 for x in k) + data)
    assert hmac_sm3(key, data) == digest(bytes(x ^ 0x5C for x in k) + inner)
