"""Service-level errors and their public meaning. Domain code raises these (or `keys` errors);
the HTTP layer and the CLI translate them in one place (`cert_authority.boundary`)."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of the errors the service reports to its users."""


class ConfigError(ServiceError):
    """The service is not configured to do this (missing ECAS_KEK, bad URL...)."""


class NotInitialisedError(ServiceError):
    """The PKI has not been set up yet (`ecas pki init` or `ecas pki install-branch`)."""


class AlreadyInitialisedError(ServiceError):
    """Refusing to replace an existing CA."""


class NotFoundError(ServiceError):
    pass


class DatabaseUnavailableError(ServiceError):
    pass


class InvalidRequestError(ServiceError):
    """The request is well-formed but cannot be done as asked (unknown issuer department...)."""


class ConflictError(ServiceError):
    """The thing already exists (a licence-type code, a department's USCC...)."""


class AuthenticationError(ServiceError):
    """No API key, or one that is unknown or revoked."""


class PermissionDeniedError(ServiceError):
    """The caller is known but its role or department may not do this."""


class TooManyAttemptsError(ServiceError):
    """Too many failed attempts in a short time (e.g. holder logins): try again later."""


class PayloadTooLargeError(ServiceError):
    """A request body or uploaded file is over the limit."""


class UnsupportedMediaTypeError(ServiceError):
    """The request body is in a format this endpoint does not take."""


class StoredFileError(ServiceError):
    """A file in the content-addressed store is missing or does not match its SM3 digest."""


class StorageUnavailableError(ServiceError):
    """The file store cannot be written (disk full, read-only, no permission): nothing was stored."""


class LicenceDataError(InvalidRequestError):
    """The face data, holder code, photo or validity given for a licence is wrong. Every problem is
    named (field key and label) in `problems`, so one answer lists all that needs fixing."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("证照数据有误：" + "；".join(problems))


class NoActiveSealError(ConflictError):
    """The issuing department has no valid registered e-seal, so nothing can be sealed."""


class IdempotencyConflictError(ConflictError):
    """An Idempotency-Key reused with a different request."""


class RecordMismatchError(ConflictError):
    """A licence's record no longer matches what its sealed file binds (edited in the database):
    it is neither shown nor given out until the issuer has looked at it."""


class IllegalTransitionError(ConflictError):
    """A lifecycle step the licence's status does not allow (e.g. revoking a cancelled licence)."""


class SealNameError(InvalidRequestError):
    """A seal name that is not the applicant department's registered name plus a purpose, or that
    names another department."""


class SealImportError(InvalidRequestError):
    """A seal made elsewhere that cannot be filed here: its maker's signature or certificate chain
    does not hold, or the certificates it lists are not this department's."""


class SealPictureConflictError(ConflictError):
    """A seal picture that resembles a seal picture another department filed (or applied for)."""


class SealStatusError(ConflictError):
    """A seal step its status does not allow (approving a filed seal, resuming an active one...)."""


class TimeNotAvailableError(ServiceError):
    """The time-stamping authority's clock is not known to be right: it refuses rather than stamp a wrong time."""


class CityNotRegisteredError(PermissionDeniedError):
    """Province mode: a batch or request from a city authority not registered here (403)."""


class BatchSignatureError(InvalidRequestError):
    """Province mode: a batch or request whose signature is missing or not the city's (422)."""


class SequenceGapError(ConflictError):
    """Province mode: a batch that does not follow on from what the province acknowledged (409)."""

    def __init__(self, message: str, acked: int) -> None:
        super().__init__(message)
        self.acked = acked


class SealedDataError(RecordMismatchError):
    """Personal data kept encrypted in a row does not open: the value was edited, moved from
    another row, or sealed under a key this service does not have; or the row is from before
    `ecas data encrypt` and has no sealed value yet."""
