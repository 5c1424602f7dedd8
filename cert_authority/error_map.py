"""One table from error kinds to HTTP status and machine-readable code.
Internal detail stays in the logs; users get the message, never a stack trace."""

from __future__ import annotations

from cert_authority.errors import (
    AlreadyInitialisedError,
    ConfigError,
    DatabaseUnavailableError,
    NotFoundError,
    NotInitialisedError,
)
from keys.errors import (
    CAError,
    InvalidCertificateError,
    InvalidCodeError,
    InvalidKeyError,
    KeyExistsError,
    KeyNotFoundError,
    WrongPassphraseError,
)

# (error class, HTTP status, machine-readable code); first match wins.
ERROR_TABLE: list[tuple[type[BaseException], int, str]] = [
    (NotFoundError, 404, "not_found"),
    (KeyNotFoundError, 404, "key_not_found"),
    (AlreadyInitialisedError, 409, "already_initialised"),
    (KeyExistsError, 409, "key_exists"),
    (NotInitialisedError, 409, "not_initialised"),
    (CAError, 409, "ca_refused"),
    (InvalidCodeError, 422, "invalid_code"),
    (InvalidCertificateError, 422, "invalid_certificate"),
    (InvalidKeyError, 422, "invalid_key"),
    (ValueError, 422, "invalid_value"),
    (WrongPassphraseError, 500, "key_store_locked"),
    (ConfigError, 500, "misconfigured"),
    (DatabaseUnavailableError, 503, "database_unavailable"),
]


def classify(error: BaseException) -> tuple[int, str] | None:
    for kind, status, code in ERROR_TABLE:
        if isinstance(error, kind):
            return status, code
    return None
