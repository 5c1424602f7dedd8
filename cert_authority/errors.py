"""Service-level errors and their public meaning. Domain code raises these (or `keys` errors);
the HTTP layer and the CLI translate them in one place (`cert_authority.error_map`)."""

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
