"""OCSP responses (RFC 6960) signed with SM2-with-SM3.

`respond_ocsp` turns any request bytes into a DER OCSPResponse: a malformed or oversized request
gets `malformedRequest`, never an exception, because the bytes come straight from the network.
Exceptions from `status_of` or the signer do propagate: the caller may answer them with
`ocsp_error_response("internal_error")` or "try_later" (RFC 6960 §2.3).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, cast

from asn1crypto import core, ocsp

from keys.crl import ASN1_REASONS
from keys.errors import ASN1_DECODE_ERRORS, CAError, InvalidCertificateError
from keys.signer import Signer
from keys.sm2 import sm3
from keys.x509 import SIGNATURE_ALGORITHM, Certificate, octet_aligned, utc

__all__ = ["CertStatus", "OcspResult", "ocsp_error_response", "ocsp_request", "parse_ocsp_response"]

MAX_REQUEST_BYTES = 64 * 1024
MAX_CERT_IDS = 100
# RFC 8954 §2.1: responders must accept nonces of 16..32 octets and may leave out the nonce
# of other lengths. We echo 1..32 octets (older clients send short ones), nothing longer.
MAX_NONCE_OCTETS = 32

_HASHES: dict[str, Callable[[bytes], bytes]] = {
    "sha1": lambda data: hashlib.sha1(data).digest(),  # noqa: S324  (RFC 6960 CertID default)
    "sha256": lambda data: hashlib.sha256(data).digest(),
    "sm3": sm3,
}

State = Literal["good", "revoked", "unknown"]


@dataclass(frozen=True)
class CertStatus:
    """The status of one certificate; `reason` is an asn1crypto CRLReason name or None."""

    state: State
    revoked_at: dt.datetime | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.state not in ("good", "revoked", "unknown"):
            raise ValueError(f"unknown certificate state {self.state!r}")
        if (self.state == "revoked") != (self.revoked_at is not None):
            raise ValueError("revoked_at is required for, and only for, a revoked certificate")
        if self.reason is not None and (self.state != "revoked" or self.reason not in ASN1_REASONS):
            raise ValueError(f"invalid revocation reason {self.reason!r} for state {self.state}")
        if self.revoked_at is not None:
            object.__setattr__(self, "revoked_at", utc(self.revoked_at))


UNKNOWN = CertStatus("unknown")


def ocsp_error_response(status: str) -> bytes:
    """An unsigned error response: 'malformed_request', 'internal_error', 'try_later', ..."""
    if status == "successful":
        raise ValueError("a successful response carries a signed BasicOCSPResponse")
    return cast(bytes, ocsp.OCSPResponse({"response_status": status}).dump())  # asn1crypto is untyped


@dataclass(frozen=True)
class _CertQuery:
    """One CertID of a request, decoded to plain values."""

    der: bytes
    hash_algorithm: str
    name_hash: bytes
    key_hash: bytes
    serial: int


def _parse_request(request_der: bytes) -> tuple[list[_CertQuery], bytes | None] | None:
    """(CertIDs, nonce extnValue) of a request, or None when it is malformed or too big.

    Everything read from the untrusted bytes is decoded here, inside one guard: asn1crypto
    parses lazily, so a later access could otherwise raise on hostile input.
    """
    if len(request_der) > MAX_REQUEST_BYTES:
        return None
    try:
        tbs_request = ocsp.OCSPRequest.load(request_der, strict=True)["tbs_request"]
        requests = tbs_request["request_list"]
        if not 1 <= len(requests) <= MAX_CERT_IDS:
            return None
        # Decode each CertID fully: we echo it, so odd algorithm parameters must fail here.
        requests.native  # noqa: B018
        queries = [
            _CertQuery(
                der=single["req_cert"].dump(),
                hash_algorithm=single["req_cert"]["hash_algorithm"]["algorithm"].native,
                name_hash=single["req_cert"]["issuer_name_hash"].native,
                key_hash=single["req_cert"]["issuer_key_hash"].native,
                serial=int(single["req_cert"]["serial_number"].native),
            )
            for single in requests
        ]
        nonce = None
        for ext in tbs_request["request_extensions"]:
            if ext["extn_id"].native == "nonce":
                nonce = _echoable_nonce(ext["extn_value"].contents)
    except Exception:  # asn1crypto raises many types on hostile input; all mean "malformed"
        return None
    return queries, nonce


def _echoable_nonce(extn_value: bytes) -> bytes | None:
    """The nonce extnValue to echo verbatim (clients compare bytes, RFC 6960 §4.4.1), or None."""
    try:
        nonce = core.OctetString.load(extn_value, strict=True).native
    except ValueError:
        return None  # not an OCTET STRING: answer without a nonce (RFC 8954 §2.1 allows it)
    return extn_value if 1 <= len(nonce) <= MAX_NONCE_OCTETS else None


def _issuer_hashes(issuer: Certificate, algorithm: str) -> tuple[bytes, bytes] | None:
    """(issuerNameHash, issuerKeyHash) of RFC 6960 §4.1.1, or None for a hash we do not know."""
    digest = _HASHES.get(algorithm)
    if digest is None:
        return None
    # The key hash covers the BIT STRING value without tag, length and unused-bits octet.
    key_bits = issuer.tbs["subject_public_key_info"]["public_key"].contents[1:]
    return digest(issuer.subject.dump()), digest(key_bits)


def _status_for(query: _CertQuery, issuer: Certificate, status_of: Callable[[int], CertStatus]) -> CertStatus:
    expected = _issuer_hashes(issuer, query.hash_algorithm)
    if expected is None or expected != (query.name_hash, query.key_hash):
        return UNKNOWN  # not our issuer (or a hash we cannot compute): we cannot say
    return status_of(query.serial)


def _asn1_status(status: CertStatus) -> tuple[str, object]:
    if status.state == "revoked":
        info: dict[str, object] = {"revocation_time": status.revoked_at}
        if status.reason is not None:
            info["revocation_reason"] = status.reason
        return ("revoked", info)
    return (status.state, None)


def _check_responder(responder_signer: Signer, issuer: Certificate, now: dt.datetime) -> None:
    if responder_signer.public_key == issuer.public_key:
        return  # the CA signs its own responses (RFC 6960 §4.2.2.2)
    # Otherwise a delegated responder: issued by the CA with id-kp-OCSPSigning.
    chain = responder_signer.certificate_chain
    if not chain:
        raise CAError("the OCSP responder key is not the CA key and has no certificate")
    try:
        chain[0].check_issued_by(issuer, now)
    except InvalidCertificateError as exc:
        raise CAError(f"OCSP responder certificate: {exc}") from exc
    usage = chain[0].asn1.extended_key_usage_value
    if usage is None or "ocsp_signing" not in usage.native:
        raise CAError("the OCSP responder certificate lacks id-kp-OCSPSigning (RFC 6960 §4.2.2.2)")


def respond_ocsp(
    request_der: bytes,
    *,
    issuer: Certificate,
    responder_signer: Signer,
    status_of: Callable[[int], CertStatus],
    now: dt.datetime,
    validity: dt.timedelta = dt.timedelta(hours=1),
) -> bytes:
    """Answer one DER OCSPRequest for certificates issued by `issuer`; returns a DER OCSPResponse."""
    if validity <= dt.timedelta(0):
        raise ValueError("validity must be positive")
    now = utc(now)
    _check_responder(responder_signer, issuer, now)
    parsed = _parse_request(request_der)
    if parsed is None:
        return ocsp_error_response("malformed_request")
    queries, nonce = parsed

    responses = [
        {
            # RFC 6960 §4.2.1: the CertID is echoed as the client sent it.
            "cert_id": ocsp.CertId.load(query.der),
            "cert_status": _asn1_status(_status_for(query, issuer, status_of)),
            "this_update": now,
            "next_update": now + validity,
        }
        for query in queries
    ]
    tbs: dict[str, object] = {
        "version": "v1",
        # RFC 6960 §4.2.2.3: byKey is the SHA-1 of the responder's public key bit string.
        "responder_id": ("by_key", responder_signer.public_key.key_identifier),
        "produced_at": now,
        "responses": responses,
    }
    if nonce is not None:
        tbs["response_extensions"] = [
            {"extn_id": "nonce", "critical": False, "extn_value": core.ParsableOctetString(nonce)}
        ]
    response_data = ocsp.ResponseData(tbs)
    basic: dict[str, object] = {
        "tbs_response_data": response_data,
        "signature_algorithm": SIGNATURE_ALGORITHM,
        "signature": responder_signer.sign(response_data.dump()),
    }
    if responder_signer.certificate_chain:
        basic["certs"] = [cert.asn1 for cert in responder_signer.certificate_chain]
    response = ocsp.OCSPResponse(
        {
            "response_status": "successful",
            "response_bytes": {
                "response_type": "basic_ocsp_response",
                "response": ocsp.BasicOCSPResponse(basic),
            },
        }
    )
    return cast(bytes, response.dump())  # asn1crypto is untyped


@dataclass(frozen=True)
class OcspResult:
    """What a response says. Signature fields are None unless the status is 'successful'.

    `statuses` is keyed by serial; a verifier asking about several issuers at once must match
    CertIDs itself. this_update / next_update are the latest / earliest over the responses.
    """

    status: str  # asn1crypto OCSPResponseStatus name: 'successful', 'malformed_request', ...
    statuses: dict[int, CertStatus] = field(default_factory=dict)
    produced_at: dt.datetime | None = None
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None
    nonce: bytes | None = None
    signature_algorithm: str | None = None  # dotted OID
    tbs_response_data: bytes | None = None
    signature: bytes | None = None
    certificates: tuple[bytes, ...] = ()


def _cert_status(single: ocsp.SingleResponse) -> CertStatus:
    status = single["cert_status"]
    if status.name != "revoked":
        return CertStatus(status.name)
    reason = status.chosen["revocation_reason"].native
    return CertStatus("revoked", utc(status.chosen["revocation_time"].native), reason)


def parse_ocsp_response(der: bytes) -> OcspResult:
    """Parse a DER OCSPResponse (without checking its signature); malformed → InvalidCertificateError."""
    try:
        response = ocsp.OCSPResponse.load(der, strict=True)
        status = response["response_status"].native
        if status != "successful":
            return OcspResult(status=status)
        if response["response_bytes"]["response_type"].native != "basic_ocsp_response":
            raise ValueError("not a basic OCSP response")
        basic = response["response_bytes"]["response"].parsed
        basic.native  # noqa: B018  (decode everything now)
        if not octet_aligned(basic["signature"]):
            raise ValueError("the signature BIT STRING declares unused bits")
        data = basic["tbs_response_data"]
        singles = list(data["responses"])
        statuses = {int(s["cert_id"]["serial_number"].native): _cert_status(s) for s in singles}
        next_updates = [utc(s["next_update"].native) for s in singles if s["next_update"].native]
        nonce = response.nonce_value
        return OcspResult(
            status=status,
            statuses=statuses,
            produced_at=utc(data["produced_at"].native),
            this_update=max((utc(s["this_update"].native) for s in singles), default=None),
            next_update=min(next_updates, default=None),
            nonce=nonce.native if nonce is not None else None,
            signature_algorithm=basic["signature_algorithm"]["algorithm"].dotted,
            tbs_response_data=data.dump(),
            signature=basic["signature"].native,
            certificates=tuple(cert.dump() for cert in basic["certs"]),
        )
    except ASN1_DECODE_ERRORS as exc:
        raise InvalidCertificateError(f"malformed OCSP response: {exc}") from exc


def ocsp_request(certificate: Certificate, issuer: Certificate) -> bytes:
    """A DER OCSPRequest (RFC 6960 §4.1.1) for one certificate, its CertID by SHA-256 and no nonce:
    what a sealer asks its own CA at sealing time to keep the answer with the sealed file (LTV)."""
    hashes = _issuer_hashes(issuer, "sha256")
    assert hashes is not None
    cert_id = {
        "hash_algorithm": {"algorithm": "sha256"},
        "issuer_name_hash": hashes[0],
        "issuer_key_hash": hashes[1],
        "serial_number": certificate.serial,
    }
    request = ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": cert_id}]}})
    return cast(bytes, request.dump())  # asn1crypto is untyped
