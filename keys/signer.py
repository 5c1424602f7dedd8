"""The `Signer` interface: what every package outside `keys` gets instead of a private key.

A software key store hands out `SoftwareSigner`s today; a PKCS#11 HSM store would hand out
signers that send `e` to the token, with the same callers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from keys.sm2 import DEFAULT_ID, SM2PrivateKey, SM2PublicKey

if TYPE_CHECKING:
    from keys.x509 import Certificate

__all__ = ["Signer"]


@runtime_checkable
class Signer(Protocol):
    """Signs with one SM2 key. Staged signing: `digest()` then `sign_digest()`."""

    @property
    def public_key(self) -> SM2PublicKey: ...

    @property
    def signer_id(self) -> bytes:
        """The SM2 distinguishing ID bound into Z (default 1234567812345678)."""
        ...

    @property
    def certificate_chain(self) -> tuple[Certificate, ...]:
        """Leaf first, then issuers; empty for a key without a certificate yet."""
        ...

    def digest(self, message: bytes) -> bytes:
        """e = SM3(Z || message) for this signer's key and ID."""
        ...

    def sign_digest(self, e: bytes) -> bytes:
        """DER SM2 signature of a precomputed e."""
        ...

    def sign(self, message: bytes) -> bytes:
        """DER SM2 signature of message (digest + sign_digest)."""
        ...

    def with_chain(self, certificate_chain: tuple[Certificate, ...]) -> Signer:
        """The same key, presented with these certificates (leaf first)."""
        ...


class SoftwareSigner:
    """A Signer over an in-memory private key opened from the software key store."""

    def __init__(
        self,
        key: SM2PrivateKey,
        certificate_chain: tuple[Certificate, ...] = (),
        signer_id: bytes = DEFAULT_ID,
    ) -> None:
        self._key = key
        self._chain = tuple(certificate_chain)
        self._id = signer_id
        if self._chain and self._chain[0].public_key != key.public_key:
            raise ValueError("the leaf certificate does not match the signing key")

    @property
    def public_key(self) -> SM2PublicKey:
        return self._key.public_key

    @property
    def signer_id(self) -> bytes:
        return self._id

    @property
    def certificate_chain(self) -> tuple[Certificate, ...]:
        return self._chain

    def with_chain(self, certificate_chain: tuple[Certificate, ...]) -> SoftwareSigner:
        return SoftwareSigner(self._key, certificate_chain, self._id)

    def digest(self, message: bytes) -> bytes:
        return self._key.public_key.digest(message, self._id)

    def sign_digest(self, e: bytes) -> bytes:
        return self._key.sign_digest(e)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign_digest(self.digest(message))

    def __repr__(self) -> str:
        return f"SoftwareSigner({self.public_key!r})"
