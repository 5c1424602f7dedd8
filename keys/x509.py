"""X.509 v3 certificates and PKCS#10 requests with SM2 keys, signed with SM2-with-SM3 (GM/T 0015).

asn1crypto builds and parses the structures (`cryptography` cannot sign with SM2); every
signature goes through a `Signer`, so the CA's keys may live in the software store or an HSM.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TypeVar, cast

from asn1crypto import core, csr, pem, x509

from keys.armor import der_from
from keys.errors import ASN1_DECODE_ERRORS, InvalidCertificateError, InvalidCodeError, InvalidKeyError
from keys.oids import GMT0015_ORG_CODE, SM2_WITH_SM3, SM2_WITH_SM3_NAME
from keys.signer import Signer
from keys.sm2 import DEFAULT_ID, SM2PublicKey, sm3
from keys.uscc import validate_uscc

__all__ = ["Certificate", "CertificationRequest", "make_name"]

SIGNATURE_ALGORITHM = {"algorithm": SM2_WITH_SM3_NAME}
T = TypeVar("T", bound=core.Asn1Value)


def utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC datetime truncated to whole seconds (as X.509 encodes it)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC)")
    return value.astimezone(dt.timezone.utc).replace(microsecond=0)


def x509_time(value: dt.datetime) -> x509.Time:
    # RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
    value = utc(value)
    return x509.Time(name="utc_time" if value.year < 2050 else "general_time", value=value)


def make_name(
    common_name: str,
    *,
    organization: str | None = None,
    organizational_unit: str | None = None,
    province: str | None = None,
    locality: str | None = None,
    serial_number: str | None = None,
) -> x509.Name:
    """A subject/issuer name, C=CN first; UTF8String for Chinese text (RFC 5280 §4.1.2.4)."""
    attributes: dict[str, str] = {"country_name": "CN"}
    for key, value in (
        ("state_or_province_name", province),
        ("locality_name", locality),
        ("organization_name", organization),
        ("organizational_unit_name", organizational_unit),
        ("common_name", common_name),
        ("serial_number", serial_number),
    ):
        if value:
            attributes[key] = value
    return x509.Name.build(attributes)


def load_der(data: bytes, labels: tuple[str, ...], what: str) -> bytes:
    return der_from(data, labels, InvalidCertificateError, what)


CACHED_DER_MAX = 8192  # bytes; ours are under 1 KB


def parse_strict(spec: type[T], der: bytes, what: str) -> T:
    """DER → asn1crypto value, every part decoded now so malformed input fails here, not later."""
    try:
        parsed = cast(T, spec.load(der, strict=True))  # asn1crypto is untyped
        parsed.native  # noqa: B018
    except ASN1_DECODE_ERRORS as exc:
        raise InvalidCertificateError(f"malformed {what}: {exc}") from exc
    return parsed


def octet_aligned(bits: core.BitString | core.OctetBitString) -> bool:
    """True when a signature BIT STRING declares no unused bits.

    asn1crypto's `.native` ignores the unused-bits octet, so without this check a BIT STRING
    claiming 1..7 unused bits would carry the same signature bytes: a malleable encoding.
    """
    return cast(bytes, bits.contents)[:1] == b"\x00"  # asn1crypto is untyped


@dataclass(frozen=True, eq=False)
class Certificate:
    """A parsed SM2 certificate. Build with `Certificate.load(pem_or_der)`."""

    der: bytes
    asn1: x509.Certificate

    @classmethod
    def load(cls, data: bytes) -> Certificate:
        der = load_der(data, ("CERTIFICATE",), "certificate")
        return _parsed_certificate(der) if len(der) <= CACHED_DER_MAX else _parse_certificate(der)

    @classmethod
    def load_all(cls, data: bytes) -> list[Certificate]:
        """Every certificate in a PEM bundle (or one DER certificate)."""
        if not pem.detect(data):
            return [cls.load(data)]
        try:
            blocks = [der for _l, _h, der in pem.unarmor(data, multiple=True)]
        except ValueError as exc:
            raise InvalidCertificateError(f"malformed PEM certificate bundle: {exc}") from exc
        return [cls.load(der) for der in blocks]

    @property
    def pem(self) -> bytes:
        return cast(bytes, pem.armor("CERTIFICATE", self.der))  # asn1crypto is untyped

    @property
    def tbs(self) -> x509.TbsCertificate:
        return self.asn1["tbs_certificate"]

    @property
    def serial(self) -> int:
        return int(self.tbs["serial_number"].native)

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "X")

    @property
    def subject(self) -> x509.Name:
        return self.tbs["subject"]

    @property
    def issuer(self) -> x509.Name:
        return self.tbs["issuer"]

    @property
    def subject_text(self) -> str:
        return cast(str, self.subject.human_friendly)  # asn1crypto is untyped

    @property
    def common_name(self) -> str:
        return str(self.subject.native.get("common_name", ""))

    @property
    def not_before(self) -> dt.datetime:
        return utc(self.tbs["validity"]["not_before"].native)

    @property
    def not_after(self) -> dt.datetime:
        return utc(self.tbs["validity"]["not_after"].native)

    @cached_property
    def public_key(self) -> SM2PublicKey:
        try:
            return SM2PublicKey.from_der(self.tbs["subject_public_key_info"].dump())
        except InvalidKeyError as exc:
            raise InvalidCertificateError(f"certificate key: {exc}") from exc

    @property
    def is_ca(self) -> bool:
        constraints = self.asn1.basic_constraints_value
        return bool(constraints and constraints["ca"].native)

    @property
    def key_usage(self) -> set[str]:
        value = self.asn1.key_usage_value
        return set(value.native) if value else set()

    @property
    def extended_key_usage(self) -> tuple[set[str], bool]:
        """The purposes named by extendedKeyUsage (dotted OIDs; empty without one) and whether it
        is critical."""
        for ext in self.tbs["extensions"]:
            if ext["extn_id"].native == "extended_key_usage":
                return {p.dotted for p in ext["extn_value"].parsed}, bool(ext["critical"].native)
        return set(), False

    @property
    def key_identifier(self) -> bytes | None:
        value = self.asn1.key_identifier_value
        return value.native if value else None

    @property
    def authority_key_identifier(self) -> bytes | None:
        value = self.asn1.authority_key_identifier_value
        return value["key_identifier"].native if value else None

    @property
    def uscc(self) -> str | None:
        """The holder organisation's USCC, from the GM/T 0015 extension or the subject."""
        for ext in self.tbs["extensions"]:
            if ext["extn_id"].dotted == GMT0015_ORG_CODE:
                try:
                    return str(core.PrintableString.load(ext["extn_value"].native).native)
                except ValueError as exc:
                    raise InvalidCertificateError(f"malformed GM/T 0015 identity extension: {exc}") from exc
        serial = self.subject.native.get("serial_number")
        return str(serial) if serial else None

    @property
    def crl_urls(self) -> list[str]:
        return [point.url for point in self.asn1.crl_distribution_points if point.url]

    @property
    def ocsp_urls(self) -> list[str]:
        return list(self.asn1.ocsp_urls)

    @property
    def sm3_fingerprint(self) -> str:
        return sm3(self.der).hex()

    def signature_valid(self, issuer_key: SM2PublicKey, signer_id: bytes = DEFAULT_ID) -> bool:
        """True when the certificate's SM2-with-SM3 signature verifies under `issuer_key`."""
        if self.asn1["signature_algorithm"]["algorithm"].dotted != SM2_WITH_SM3:
            return False
        # RFC 5280 §4.1.1.2: the outer algorithm must equal the signed one.
        if self.tbs["signature"].dump() != self.asn1["signature_algorithm"].dump():
            return False
        if not octet_aligned(self.asn1["signature_value"]):
            return False
        return issuer_key.verify(self.asn1["signature_value"].native, self.tbs.dump(), signer_id)

    def check_valid_at(self, when: dt.datetime) -> None:
        when = utc(when)
        if when < self.not_before:
            raise InvalidCertificateError(
                f"certificate {self.serial_hex} ({self.common_name}) is not valid before "
                f"{self.not_before.isoformat()}"
            )
        if when > self.not_after:
            raise InvalidCertificateError(
                f"certificate {self.serial_hex} ({self.common_name}) expired on "
                f"{self.not_after.isoformat()}"
            )

    def check_issued_by(self, issuer: Certificate, when: dt.datetime) -> None:
        """Raise InvalidCertificateError unless `issuer` issued this and both are valid at `when`."""
        if self.issuer.dump() != issuer.subject.dump():
            raise InvalidCertificateError(
                f"certificate issuer {self.issuer.human_friendly!r} is not "
                f"{issuer.subject.human_friendly!r}"
            )
        if not issuer.is_ca or "key_cert_sign" not in issuer.key_usage:
            raise InvalidCertificateError(f"{issuer.common_name} is not a CA certificate")
        if not self.signature_valid(issuer.public_key):
            raise InvalidCertificateError(
                f"signature on certificate {self.serial_hex} does not verify with "
                f"{issuer.common_name}'s key"
            )
        self.check_valid_at(when)
        issuer.check_valid_at(when)


def _extension(extn_id: str, value: object, critical: bool = False) -> dict[str, object]:
    return {"extn_id": extn_id, "critical": critical, "extn_value": value}


def _uri(url: str) -> x509.GeneralName:
    return x509.GeneralName(name="uniform_resource_identifier", value=url)


def sign_tbs(tbs: x509.TbsCertificate, signer: Signer) -> Certificate:
    signature = signer.sign(tbs.dump())
    cert = x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": SIGNATURE_ALGORITHM,
            "signature_value": signature,
        }
    )
    return Certificate.load(cert.dump())


def build_certificate(
    *,
    subject: x509.Name,
    public_key: SM2PublicKey,
    serial: int,
    not_before: dt.datetime,
    not_after: dt.datetime,
    issuer_signer: Signer,
    issuer: Certificate | None,
    ca: bool,
    key_usage: Iterable[str],
    path_length: int | None = None,
    crl_url: str | None = None,
    ocsp_url: str | None = None,
    ca_issuers_url: str | None = None,
    uscc: str | None = None,
    extended_key_usage: Iterable[str] = (),
) -> Certificate:
    """Build and sign an X.509 v3 certificate. `issuer=None` makes a self-signed root.
    `extended_key_usage` (asn1crypto purpose names) is written critical: a certificate that names
    its purposes is for those only (RFC 3161 §2.3 requires it so for a TSA)."""
    if serial <= 0 or serial.bit_length() > 159:
        raise ValueError("RFC 5280 §4.1.2.2: serial must be positive and at most 20 octets")
    if utc(not_after) <= utc(not_before):
        raise ValueError("not_after must be later than not_before")
    if issuer is None and issuer_signer.public_key != public_key:
        raise ValueError("a self-signed certificate must be signed by its own key")
    if issuer is not None and issuer.public_key != issuer_signer.public_key:
        raise ValueError("issuer certificate does not match the issuer's signing key")
    issuer_name = subject if issuer is None else issuer.subject
    issuer_key_id = public_key.key_identifier if issuer is None else issuer.public_key.key_identifier

    extensions: list[dict[str, object]] = [
        _extension(
            "basic_constraints", {"ca": ca, "path_len_constraint": path_length}, critical=True
        ),
        _extension("key_usage", set(key_usage), critical=True),
        _extension("key_identifier", public_key.key_identifier),
        _extension("authority_key_identifier", {"key_identifier": issuer_key_id}),
    ]
    if extended_key_usage:
        extensions.append(_extension("extended_key_usage", list(extended_key_usage), critical=True))
    if crl_url:
        extensions.append(
            _extension(
                "crl_distribution_points",
                [{"distribution_point": ("full_name", [_uri(crl_url)])}],
            )
        )
    access = []
    if ocsp_url:
        access.append({"access_method": "ocsp", "access_location": _uri(ocsp_url)})
    if ca_issuers_url:
        access.append({"access_method": "ca_issuers", "access_location": _uri(ca_issuers_url)})
    if access:
        extensions.append(_extension("authority_information_access", access))
    if uscc is not None:
        try:
            validate_uscc(uscc)
        except InvalidCodeError as exc:
            raise ValueError(str(exc)) from exc
        extensions.append(
            {
                "extn_id": GMT0015_ORG_CODE,
                "critical": False,
                "extn_value": core.ParsableOctetString(core.PrintableString(uscc).dump()),
            }
        )

    tbs = x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial,
            "signature": SIGNATURE_ALGORITHM,
            "issuer": issuer_name,
            "validity": {"not_before": x509_time(not_before), "not_after": x509_time(not_after)},
            "subject": subject,
            "subject_public_key_info": _spki(public_key),
            "extensions": extensions,
        }
    )
    return sign_tbs(tbs, issuer_signer)


def _spki(public_key: SM2PublicKey) -> object:
    from asn1crypto import keys as asn1_keys

    return asn1_keys.PublicKeyInfo.load(public_key.to_der())


@dataclass(frozen=True, eq=False)
class CertificationRequest:
    """A PKCS#10 request with an SM2 key (the branch CA's request to a provincial root)."""

    der: bytes
    asn1: csr.CertificationRequest

    @classmethod
    def build(cls, subject: x509.Name, signer: Signer) -> CertificationRequest:
        info = csr.CertificationRequestInfo(
            {
                "version": "v1",
                "subject": subject,
                "subject_pk_info": _spki(signer.public_key),
                "attributes": [],
            }
        )
        request = csr.CertificationRequest(
            {
                "certification_request_info": info,
                "signature_algorithm": SIGNATURE_ALGORITHM,
                "signature": signer.sign(info.dump()),
            }
        )
        return cls(der=request.dump(), asn1=request)

    @classmethod
    def load(cls, data: bytes) -> CertificationRequest:
        der = load_der(data, ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"), "request")
        request = cls(der=der, asn1=parse_strict(csr.CertificationRequest, der, "certificate request"))
        if not request.signature_valid():
            raise InvalidCertificateError("certificate request signature does not verify")
        return request

    @property
    def pem(self) -> bytes:
        return cast(bytes, pem.armor("CERTIFICATE REQUEST", self.der))  # asn1crypto is untyped

    @property
    def subject(self) -> x509.Name:
        return self.asn1["certification_request_info"]["subject"]

    @cached_property
    def public_key(self) -> SM2PublicKey:
        info = self.asn1["certification_request_info"]["subject_pk_info"]
        try:
            return SM2PublicKey.from_der(info.dump())
        except InvalidKeyError as exc:
            raise InvalidCertificateError(f"request key: {exc}") from exc

    def signature_valid(self) -> bool:
        if self.asn1["signature_algorithm"]["algorithm"].dotted != SM2_WITH_SM3:
            return False
        if not octet_aligned(self.asn1["signature"]):
            return False
        info = self.asn1["certification_request_info"].dump()
        return self.public_key.verify(self.asn1["signature"].native, info)


def _parse_certificate(der: bytes) -> Certificate:
    cert = Certificate(der=der, asn1=parse_strict(x509.Certificate, der, "certificate"))
    cert.public_key  # noqa: B018  (rejects non-SM2 keys with a clear message)
    return cert


# Parsed once per process: the same few certificates (the CAs', each department's seal) come with
# every file checked, and a strict parse cost a quarter of a verification's CPU. Only successes are
# kept (a malformed certificate raises each time), only certificates of ordinary size (memory stays
# bounded whatever a hostile file carries), and a Certificate is never changed after loading.
_parsed_certificate = lru_cache(maxsize=256)(_parse_certificate)
