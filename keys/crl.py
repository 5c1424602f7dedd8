"""X.509 v2 certificate revocation lists (RFC 5280 §5) signed with SM2-with-SM3.

asn1crypto builds and parses the structures; the signature comes from a `Signer`, so the CA key
may live in the software store or an HSM. OpenSSL 3.0 prints these CRLs but cannot check their
SM2 signature (SPEC.md), so `Crl.signature_valid` is the check we rely on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import cast

from asn1crypto import crl, pem, x509

from keys.errors import CAError, InvalidCertificateError
from keys.oids import SM2_WITH_SM3
from keys.signer import Signer
from keys.sm2 import DEFAULT_ID, SM2PublicKey
from keys.x509 import SIGNATURE_ALGORITHM, Certificate, load_der, octet_aligned, parse_strict, utc, x509_time

__all__ = ["REASONS", "Crl", "RevokedEntry", "build_crl", "parse_reason", "reason_text"]

# RFC 5280 §5.3.1 CRLReason, as spelled in the RFC (and on our CLI) → asn1crypto's names.
# Value 7 is unused in the RFC.
_REASON_NAMES: dict[str, str] = {
    "unspecified": "unspecified",
    "keyCompromise": "key_compromise",
    "cACompromise": "ca_compromise",
    "affiliationChanged": "affiliation_changed",
    "superseded": "superseded",
    "cessationOfOperation": "cessation_of_operation",
    "certificateHold": "certificate_hold",
    "removeFromCRL": "remove_from_crl",
    "privilegeWithdrawn": "privilege_withdrawn",
    "aACompromise": "aa_compromise",
}
REASONS: tuple[str, ...] = tuple(_REASON_NAMES)
ASN1_REASONS: frozenset[str] = frozenset(_REASON_NAMES.values())
_RFC_NAMES: dict[str, str] = {v: k for k, v in _REASON_NAMES.items()}


def parse_reason(text: str) -> str:
    """RFC 5280 camelCase reason (e.g. 'keyCompromise') → asn1crypto name ('key_compromise')."""
    try:
        return _REASON_NAMES[text]
    except KeyError:
        raise ValueError(f"unknown revocation reason {text!r}; valid reasons: {', '.join(REASONS)}") from None


def reason_text(asn1_name: str) -> str:
    """asn1crypto reason name → RFC 5280 camelCase spelling (for display and the CLI)."""
    return _RFC_NAMES[asn1_name]


@dataclass(frozen=True)
class RevokedEntry:
    """One revoked certificate. `reason` is an asn1crypto CRLReason name ('key_compromise')."""

    serial: int
    revoked_at: dt.datetime
    reason: str = "unspecified"

    def __post_init__(self) -> None:
        if self.reason not in ASN1_REASONS:
            raise ValueError(f"unknown revocation reason {self.reason!r}")
        object.__setattr__(self, "revoked_at", utc(self.revoked_at))


def _extension(extn_id: str, value: object) -> dict[str, object]:
    # RFC 5280 §5.2.1, §5.2.3, §5.3.1: all the extensions we write are non-critical.
    return {"extn_id": extn_id, "critical": False, "extn_value": value}


def _revoked_certificate(entry: RevokedEntry) -> dict[str, object]:
    revoked: dict[str, object] = {
        "user_certificate": entry.serial,
        "revocation_date": x509_time(entry.revoked_at),
    }
    # RFC 5280 §5.3.1: "the reason code CRL entry extension SHOULD be absent instead of using
    # the unspecified (0) reasonCode value" — so 'unspecified' is written as no extension.
    if entry.reason != "unspecified":
        revoked["crl_entry_extensions"] = [_extension("crl_reason", entry.reason)]
    return revoked


def build_crl(
    *,
    issuer_signer: Signer,
    issuer: Certificate,
    entries: Iterable[RevokedEntry],
    crl_number: int,
    this_update: dt.datetime,
    next_update: dt.datetime,
) -> bytes:
    """Build and sign a v2 CRL (DER). Entries are written in serial order."""
    this_update, next_update = utc(this_update), utc(next_update)
    if next_update <= this_update:
        raise ValueError("next_update must be later than this_update")
    # RFC 5280 §5.2.3: a non-negative integer of at most 20 octets.
    if crl_number < 0 or crl_number.bit_length() > 159:
        raise ValueError("RFC 5280 §5.2.3: the CRL number is non-negative and at most 20 octets")
    if issuer.public_key != issuer_signer.public_key:
        raise ValueError("issuer certificate does not match the issuer's signing key")
    # RFC 5280 §4.2.1.3: a key that signs CRLs must have cRLSign in its key usage.
    if "crl_sign" not in issuer.key_usage:
        raise CAError(f"{issuer.common_name} is not allowed to sign CRLs (no cRLSign key usage)")
    revoked = sorted(entries, key=lambda e: e.serial)
    serials = [e.serial for e in revoked]
    # Checked here, not in RevokedEntry, so foreign CRLs with odd serials still load.
    if any(s <= 0 or s.bit_length() > 159 for s in serials):
        raise ValueError("RFC 5280 §4.1.2.2: serials are positive and at most 20 octets")
    if len(set(serials)) != len(serials):
        raise ValueError("a serial number appears more than once in the CRL entries")

    tbs: dict[str, object] = {
        "version": "v2",  # RFC 5280 §5.1.2.1: v2 because extensions are present
        "signature": SIGNATURE_ALGORITHM,
        "issuer": issuer.subject,
        "this_update": x509_time(this_update),
        "next_update": x509_time(next_update),
        "crl_extensions": [
            _extension("crl_number", crl_number),
            _extension(
                "authority_key_identifier",
                {"key_identifier": issuer.public_key.key_identifier},
            ),
        ],
    }
    # RFC 5280 §5.1.2.6: with no revoked certificates the list MUST be absent, not empty.
    if revoked:
        tbs["revoked_certificates"] = [_revoked_certificate(e) for e in revoked]
    tbs_cert_list = crl.TbsCertList(tbs)
    certificate_list = crl.CertificateList(
        {
            "tbs_cert_list": tbs_cert_list,
            "signature_algorithm": SIGNATURE_ALGORITHM,
            "signature": issuer_signer.sign(tbs_cert_list.dump()),
        }
    )
    return cast(bytes, certificate_list.dump())  # asn1crypto is untyped


@dataclass(frozen=True, eq=False)
class Crl:
    """A parsed CRL. Build with `Crl.load(pem_or_der)`; check with `signature_valid`."""

    der: bytes
    asn1: crl.CertificateList

    @classmethod
    def load(cls, data: bytes) -> Crl:
        return _parsed_crl(load_der(data, ("X509 CRL",), "CRL"))

    @property
    def pem(self) -> bytes:
        return cast(bytes, pem.armor("X509 CRL", self.der))  # asn1crypto is untyped

    @property
    def tbs(self) -> crl.TbsCertList:
        return self.asn1["tbs_cert_list"]

    @property
    def issuer(self) -> x509.Name:
        return self.tbs["issuer"]

    @property
    def this_update(self) -> dt.datetime:
        return utc(self.tbs["this_update"].native)

    @property
    def next_update(self) -> dt.datetime | None:
        """None only for foreign CRLs that omit it, against RFC 5280 §5.1.2.5."""
        value = self.tbs["next_update"].native
        return utc(value) if value is not None else None

    @property
    def crl_number(self) -> int | None:
        value = self.asn1.crl_number_value
        return int(value.native) if value is not None else None

    @property
    def authority_key_identifier(self) -> bytes | None:
        value = self.asn1.authority_key_identifier_value
        return value["key_identifier"].native if value is not None else None

    @cached_property
    def _by_serial(self) -> dict[int, RevokedEntry]:
        result: dict[int, RevokedEntry] = {}
        for revoked in self.tbs["revoked_certificates"]:
            reason = revoked.crl_reason_value
            entry = RevokedEntry(
                serial=int(revoked["user_certificate"].native),
                revoked_at=utc(revoked["revocation_date"].native),
                # RFC 5280 §5.3.1: an absent reason code means unspecified.
                reason=reason.native if reason is not None else "unspecified",
            )
            result[entry.serial] = entry
        return result

    @property
    def entries(self) -> list[RevokedEntry]:
        return list(self._by_serial.values())

    def entry(self, serial: int) -> RevokedEntry | None:
        return self._by_serial.get(serial)

    def signature_valid(self, issuer_key: SM2PublicKey, signer_id: bytes = DEFAULT_ID) -> bool:
        """True when the SM2-with-SM3 signature verifies under `issuer_key`."""
        # RFC 5280 §5.1.1.2: the outer algorithm must equal the one inside the signed part.
        if self.asn1["signature_algorithm"]["algorithm"].dotted != SM2_WITH_SM3:
            return False
        if self.tbs["signature"].dump() != self.asn1["signature_algorithm"].dump():
            return False
        if not octet_aligned(self.asn1["signature"]):
            return False
        return issuer_key.verify(self.asn1["signature"].native, self.tbs.dump(), signer_id)


@lru_cache(maxsize=8)
def _parsed_crl(der: bytes) -> Crl:
    """Parsed once per process while current (every check reads the branch's CRL); only successes
    are kept, and only the last few CRLs."""
    loaded = Crl(der=der, asn1=parse_strict(crl.CertificateList, der, "CRL"))
    try:
        loaded.entries  # noqa: B018  (reasons and serials are checked here)
    except ValueError as exc:
        raise InvalidCertificateError(f"malformed CRL entry: {exc}") from exc
    return loaded
