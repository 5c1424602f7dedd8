"""What the outer rooms (http/, web/, cli/) share: one table from error kinds to HTTP status and
machine-readable code, the public error body, and the row-id path parameter. Internal detail stays
in the logs; users get the message, never a stack trace."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from cert_authority.errors import (
    AlreadyInitialisedError,
    AuthenticationError,
    BatchSignatureError,
    CityNotRegisteredError,
    ConfigError,
    ConflictError,
    DatabaseUnavailableError,
    IdempotencyConflictError,
    IllegalTransitionError,
    InvalidRequestError,
    LicenceDataError,
    NoActiveSealError,
    NotFoundError,
    NotInitialisedError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RecordMismatchError,
    SealImportError,
    SealNameError,
    SealPictureConflictError,
    SealStatusError,
    SequenceGapError,
    StorageUnavailableError,
    StoredFileError,
    TimeNotAvailableError,
    TooManyAttemptsError,
    UnsupportedMediaTypeError,
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
from seals.errors import PictureError, SealInputError, SealSigningError
from templates.errors import FontError, ImageError, LayoutError, MissingGlyphError, SpecError

# (error class, HTTP status, machine-readable code); first match wins.
ERROR_TABLE: list[tuple[type[BaseException], int, str]] = [
    (AuthenticationError, 401, "unauthenticated"),
    (CityNotRegisteredError, 403, "city_not_registered"),
    (PermissionDeniedError, 403, "forbidden"),
    (NotFoundError, 404, "not_found"),
    (KeyNotFoundError, 404, "key_not_found"),
    (AlreadyInitialisedError, 409, "already_initialised"),
    (KeyExistsError, 409, "key_exists"),
    (NotInitialisedError, 409, "not_initialised"),
    (CAError, 409, "ca_refused"),
    (NoActiveSealError, 409, "no_active_seal"),
    (IdempotencyConflictError, 409, "idempotency_conflict"),
    (IllegalTransitionError, 409, "illegal_transition"),
    (RecordMismatchError, 409, "record_mismatch"),
    (SealPictureConflictError, 409, "seal_picture_resembles"),
    (SealStatusError, 409, "seal_status_conflict"),
    (SequenceGapError, 409, "sequence_gap"),
    (ConflictError, 409, "conflict"),
    (PayloadTooLargeError, 413, "payload_too_large"),
    (TooManyAttemptsError, 429, "too_many_attempts"),
    (UnsupportedMediaTypeError, 415, "unsupported_media_type"),
    (LicenceDataError, 422, "invalid_licence_data"),
    (SealNameError, 422, "invalid_seal_name"),
    (SealImportError, 422, "invalid_seal_import"),
    (BatchSignatureError, 422, "bad_signature"),
    (InvalidRequestError, 422, "invalid_request"),
    (SpecError, 422, "invalid_spec"),
    (LayoutError, 422, "layout_overflow"),
    (ImageError, 422, "invalid_image"),
    (PictureError, 422, "invalid_seal_picture"),
    (SealInputError, 422, "invalid_seal_input"),
    # A signing device that returned a wrong signature: nothing was sealed; operators must look.
    (SealSigningError, 500, "seal_signing_failed"),
    # Before FontError: a missing font is the operator's problem, while a character no font has
    # is in the caller's text.
    (MissingGlyphError, 422, "unsupported_character"),
    (FontError, 500, "font_missing"),
    (InvalidCodeError, 422, "invalid_code"),
    (InvalidCertificateError, 422, "invalid_certificate"),
    (InvalidKeyError, 422, "invalid_key"),
    (WrongPassphraseError, 500, "key_store_locked"),
    (ConfigError, 500, "misconfigured"),
    (StoredFileError, 500, "stored_file_damaged"),
    (StorageUnavailableError, 503, "storage_unavailable"),
    (DatabaseUnavailableError, 503, "database_unavailable"),
    (TimeNotAvailableError, 503, "time_not_available"),
]


def classify(error: BaseException) -> tuple[int, str] | None:
    for kind, status, code in ERROR_TABLE:
        if isinstance(error, kind):
            return status, code
    return None


class ErrorPublic(BaseModel):
    """Every API error: a machine-readable code and a message for people (zh-CN)."""

    error: Annotated[str, Field(description="错误代码，如 invalid_spec、forbidden")]
    message: Annotated[str, Field(description="错误说明")]


# A database row id in a path: bounded, so that a huge number is a 422, not an overflow in the
# database driver (SQLite's and PostgreSQL's INTEGER).
RowId = Annotated[int, PathParam(ge=1, le=2**31 - 1, description="编号")]
