"""The exceptions of `keys`. Foreign errors (asn1crypto, OpenSSL, OS) are translated at the
boundary so callers handle one tree:

    KeysError
    ├── InvalidKeyError        malformed key, wrong algorithm or curve (e.g. P-256 where SM2 is required)
    ├── WrongPassphraseError   an encrypted key that does not open with the given passphrase
    ├── KeyNotFoundError       no key under that label in the key store
    ├── KeyExistsError         a key with that label already exists (never overwritten)
    ├── InvalidCertificateError  malformed certificate/CSR/CRL, or one that fails a check
    ├── InvalidCodeError       a USCC with a wrong length, alphabet or check character
    │   └── CheckCharacterError    … only the check character is wrong
    ├── CAError                the CA cannot do what was asked (not initialised, unknown serial, ...)
    └── SealedValueError       an encrypted value (SM4-GCM) that does not open: altered, moved or wrong key
"""

from __future__ import annotations

__all__ = [
    "ASN1_DECODE_ERRORS",
    "CAError",
    "CheckCharacterError",
    "InvalidCertificateError",
    "InvalidCodeError",
    "InvalidKeyError",
    "KeyExistsError",
    "KeyNotFoundError",
    "KeysError",
    "SealedValueError",
    "WrongPassphraseError",
]

# What asn1crypto raises on hostile input, beyond ValueError: TypeError/KeyError from bad choices,
# OverflowError from huge lengths, AttributeError for universal types without .native
# (ObjectDescriptor, Real), IndexError for an empty BIT STRING (it reads the unused-bits octet).
ASN1_DECODE_ERRORS = (ValueError, TypeError, KeyError, OverflowError, AttributeError, IndexError)


class KeysError(Exception):
    """Base class of every error raised by `keys`."""


class InvalidKeyError(KeysError):
    pass


class WrongPassphraseError(KeysError):
    pass


class KeyNotFoundError(KeysError):
    pass


class KeyExistsError(KeysError):
    pass


class InvalidCertificateError(KeysError):
    pass


class InvalidCodeError(KeysError):
    pass


class CheckCharacterError(InvalidCodeError):
    """A well-formed code whose check character does not match the rest."""


class CAError(KeysError):
    pass


class SealedValueError(KeysError):
    """An SM4-GCM value whose tag does not match: altered, sealed for another place, or another key."""
