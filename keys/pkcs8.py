"""Encrypted PKCS#8 (RFC 5958 EncryptedPrivateKeyInfo, PBES2 per RFC 8018): how private keys
rest on disk.

Written: PBKDF2 with hmacWithSHA256 as its PRF, then SM4-CBC (GB/T 32907; OID 1.2.156.10197.1.104.2),
the format `openssl pkcs8 -topk8 -v2 sm4-cbc` writes, so an operator opens a key with standard tools
(`openssl pkey -in KEY -passin ...`) given the passphrase.

Why the PRF is HMAC-SHA256 and not HMAC-SM3: OpenSSL 3.0, the libcrypto of the distributions we
run on, has no hmacWithSM3 PRF OID (`openssl pkcs8 -v2prf hmacWithSM3` answers "Unknown PRF
algorithm"), so a PBES2 file naming it could not be opened by anyone but us. The PRF only stretches
the passphrase into the SM4 key; the confidentiality of the key is SM4's (docs/crypto-assessment.md).

Read: that, and the AES-256-CBC files ECAS wrote before (`ecas keys rewrap` converts them).
"""

from __future__ import annotations

import os
from typing import cast

from asn1crypto import core, keys, pem
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
SM4_CBC = "1.2.156.10197.1.104.2"  # GM/T 0006
AES256_CBC = "2.16.840.1.101.3.4.1.42"
# The ciphers we read, by OID: (name, key length). We write SM4-CBC only.
CIPHERS = {SM4_CBC: ("sm4-cbc", 16), AES256_CBC: ("aes-256-cbc", 32)}


def _kdf(passphrase: bytes, salt: bytes, iterations: int, length: int) -> bytes:
    return PBKDF2HMAC(hashes.SHA256(), length, salt, iterations).derive(passphrase)


def _cipher(oid: str, key: bytes, iv: bytes) -> Cipher[modes.CBC]:
    algorithm = algorithms.SM4(key) if oid == SM4_CBC else algorithms.AES(key)
    return Cipher(algorithm, modes.CBC(iv))


def encrypt_private_key(
    key: SM2PrivateKey, passphrase: bytes, *, iterations: int = DEFAULT_ITERATIONS
) -> bytes:
    """PEM 'ENCRYPTED PRIVATE KEY' of `key` under `passphrase` (PBES2, PBKDF2-HMAC-SHA256, SM4-CBC)."""
    if not passphrase:
        raise ValueError("an empty passphrase cannot protect a private key")
    salt, iv = os.urandom(16), os.urandom(16)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(key.pkcs8_der()) + padder.finalize()
    encryptor = _cipher(SM4_CBC, _kdf(passphrase, salt, iterations, 16), iv).encryptor()
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
                    # asn1crypto does not know SM4: its parameters (the IV) go in as a plain value.
                    "encryption_scheme": {"algorithm": SM4_CBC, "parameters": core.OctetString(iv)},
                },
            },
            "encrypted_data": encrypted,
        }
    )
    return cast(bytes, pem.armor(PEM_LABEL, info.dump()))  # asn1crypto is untyped


def key_file_cipher(data: bytes) -> str:
    """The cipher an encrypted key file uses ("sm4-cbc" or "aes-256-cbc"), without decrypting it."""
    return CIPHERS[_read(data)[3]][0]


def _read(data: bytes) -> tuple[bytes, int, bytes, str, bytes]:
    """(salt, iterations, iv, cipher OID, ciphertext) of a PBES2 file we can open."""
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
        cipher = scheme["algorithm"].dotted
        if cipher not in CIPHERS:
            raise InvalidKeyError(f"unsupported key cipher {scheme['algorithm'].native}")
        salt = kdf["parameters"]["salt"].native
        iterations = kdf["parameters"]["iteration_count"].native
        # SM4's parameters are unknown to asn1crypto (an Any): parse them as the OCTET STRING they must be.
        iv_value = scheme["parameters"]
        iv = iv_value.native if cipher == AES256_CBC else iv_value.parse(core.OctetString).native
        encrypted = info["encrypted_data"].native
    except ASN1_DECODE_ERRORS as exc:
        raise InvalidKeyError(f"malformed encrypted private key: {exc}") from exc
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise InvalidKeyError(f"refusing PBKDF2 iteration count {iterations}")
    if not isinstance(salt, bytes) or not isinstance(iv, bytes):
        raise InvalidKeyError("malformed encrypted private key: salt or IV is not an OCTET STRING")
    if len(iv) != 16 or not encrypted or len(encrypted) % 16:
        raise InvalidKeyError("malformed encrypted private key: bad IV or ciphertext length")
    return salt, iterations, iv, cipher, encrypted


def decrypt_private_key(data: bytes, passphrase: bytes) -> SM2PrivateKey:
    """Open an encrypted PKCS#8 key (PEM or DER) written by us or by OpenSSL."""
    salt, iterations, iv, cipher, encrypted = _read(data)
    key_length = CIPHERS[cipher][1]
    decryptor = _cipher(cipher, _kdf(passphrase, salt, iterations, key_length), iv).decryptor()
    padded = decryptor.update(encrypted) + decryptor.finalize()
    try:
        unpadder = padding.PKCS7(128).unpadder()
        plain = unpadder.update(padded) + unpadder.finalize()
        return SM2PrivateKey.from_pkcs8_der(plain)
    except (ValueError, InvalidKeyError) as exc:
        # A wrong passphrase yields garbage: bad padding or a non-key. Do not say which.
        raise WrongPassphraseError("wrong passphrase, or the key file is corrupt") from exc
