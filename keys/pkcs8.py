"""Encrypted PKCS#8 (RFC 5958 EncryptedPrivateKeyInfo, PBES2 per RFC 8018): how private keys
rest on disk. PBKDF2-HMAC-SHA256 + AES-256-CBC is the format `openssl pkcs8 -topk8 -v2 aes-256-cbc`
writes, so an operator can open a key with standard tools given the passphrase."""

from __future__ import annotations

import os
from typing import cast

from asn1crypto import keys, pem
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from keys.armor import der_from
from keys.errors import ASN1_DECODE_ERRORS, InvalidKeyError, WrongPassphraseError
from keys.sm2 import SM2PrivateKey

# OWASP (2023) recommendation for PBKDF2-HMAC-SHA256.
DEFAULT_ITERATIONS = 600_000
MAX_ITERATIONS = 10_000_000  # refuse files that would make us spin for minutes
PEM_LABEL = "ENCRYPTED PRIVATE KEY"


def _kdf(passphrase: bytes, salt: bytes, iterations: int) -> bytes:
    return PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(passphrase)


def encrypt_private_key(
    key: SM2PrivateKey, passphrase: bytes, *, iterations: int = DEFAULT_ITERATIONS
) -> bytes:
    """PEM 'ENCRYPTED PRIVATE KEY' of `key` under `passphrase`."""
    if not passphrase:
        raise ValueError("an empty passphrase cannot protect a private key")
    salt, iv = os.urandom(16), os.urandom(16)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(key.pkcs8_der()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(_kdf(passphrase, salt, iterations)), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(plain) + encryptor.finalize()
    info = keys.EncryptedPrivateKeyInfo(
        {
            "encryption_algorithm": {
                "algorithm": "pbes2",
                "parameters": {
                    "key_derivation_func": {
                        "algorithm": "pbkdf2",
                        "parameters": {
                            "salt": ("specified", salt),
                            "iteration_count": iterations,
                            "prf": {"algorithm": "sha256"},
                        },
                    },
                    "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": iv},
                },
            },
            "encrypted_data": encrypted,
        }
    )
    return cast(bytes, pem.armor(PEM_LABEL, info.dump()))  # asn1crypto is untyped


def decrypt_private_key(data: bytes, passphrase: bytes) -> SM2PrivateKey:
    """Open an encrypted PKCS#8 key (PEM or DER) written by us or by OpenSSL."""
    der = der_from(data, (PEM_LABEL,), InvalidKeyError)
    try:
        info = keys.EncryptedPrivateKeyInfo.load(der, strict=True)
        algorithm = info["encryption_algorithm"]
        if algorithm["algorithm"].native != "pbes2":
            raise InvalidKeyError(f"unsupported key encryption {algorithm['algorithm'].native}")
        params = algorithm["parameters"]
        kdf, scheme = params["key_derivation_func"], params["encryption_scheme"]
        if kdf["algorithm"].native != "pbkdf2" or kdf["parameters"]["prf"]["algorithm"].native != "sha256":
            raise InvalidKeyError("unsupported key derivation (expected PBKDF2-HMAC-SHA256)")
        if scheme["algorithm"].native != "aes256_cbc":
            raise InvalidKeyError(f"unsupported key cipher {scheme['algorithm'].native}")
        salt = kdf["parameters"]["salt"].native
        iterations = kdf["parameters"]["iteration_count"].native
        iv = scheme["parameters"].native
        encrypted = info["encrypted_data"].native
    except ASN1_DECODE_ERRORS as exc:
        raise InvalidKeyError(f"malformed encrypted private key: {exc}") from exc
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise InvalidKeyError(f"refusing PBKDF2 iteration count {iterations}")
    if not isinstance(salt, bytes) or not isinstance(iv, bytes):
        raise InvalidKeyError("malformed encrypted private key: salt or IV is not an OCTET STRING")
    if len(iv) != 16 or not encrypted or len(encrypted) % 16:
        raise InvalidKeyError("malformed encrypted private key: bad IV or ciphertext length")
    decryptor = Cipher(algorithms.AES(_kdf(passphrase, salt, iterations)), modes.CBC(iv)).decryptor()
    padded = decryptor.update(encrypted) + decryptor.finalize()
    try:
        unpadder = padding.PKCS7(128).unpadder()
        plain = unpadder.update(padded) + unpadder.finalize()
        return SM2PrivateKey.from_pkcs8_der(plain)
    except (ValueError, InvalidKeyError) as exc:
        # A wrong passphrase yields garbage: bad padding or a non-key. Do not say which.
        raise WrongPassphraseError("wrong passphrase, or the key file is corrupt") from exc
