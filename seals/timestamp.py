"""RFC 3161 time-stamp protocol with SM2 and SM3: requests read, tokens made and read, replies.

    TimeStampReq  ::= SEQUENCE { version 1, messageImprint { hashAlgorithm, hashedMessage },
                                 reqPolicy OID OPTIONAL, nonce INTEGER OPTIONAL,
                                 certReq BOOLEAN DEFAULT FALSE, extensions [0] OPTIONAL }
    TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken ContentInfo OPTIONAL }
    token: CMS SignedData (`seals.signed_data`), eContentType id-ct-TSTInfo, eContent DER TSTInfo
           { version 1, policy, messageImprint (as asked), serialNumber, genTime, accuracy,
             nonce (as asked), tsa [0] directoryName of the TSA certificate }

GB/T 20520-2006 (PKI 时间戳规范) and GM/T 0033 use these structures unchanged; what differs is the
algorithms: the token's digest is SM3 (1.2.156.10197.1.401) and its signature SM2 with SM3
(1.2.156.10197.1.501, the default SM2 ID), and SM3 imprints are accepted beside SHA-2 ones. SHA-1
and MD5 imprints are refused (badAlg): a collision would let one token cover two documents.

The signer's certificate is named by an ESS signingCertificateV2 attribute (RFC 5816), which
`openssl ts -verify` requires.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, cast

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509

from keys.errors import ASN1_DECODE_ERRORS, KeysError
from keys.oids import SM2_SIGN, SM2_WITH_SM3, SM3
from keys.signer import Signer
from keys.sm2 import sm3
from keys.x509 import Certificate
from seals.errors import SealInputError
from seals.signed_data import TST_INFO, timestamp_token, tst_signed_attributes

__all__ = [
    "HASH_ALGORITHMS",
    "MAX_REQUEST_BYTES",
    "SHA256",
    "StampRequest",
    "TimeStampRequestError",
    "TimeStampToken",
    "granted_reply",
    "make_tokens",
    "parse_reply",
    "parse_request",
    "parse_token",
    "rejection_reply",
]

MAX_REQUEST_BYTES = 4096  # a request is ~60 bytes; extensions we do not accept anyway
SHA256 = "2.16.840.1.101.3.4.2.1"
# Imprint algorithms accepted (dotted OID → length and function).
HASH_ALGORITHMS: dict[str, tuple[int, Any]] = {
    SM3: (32, sm3),
    SHA256: (32, lambda data: hashlib.sha256(data).digest()),
    "2.16.840.1.101.3.4.2.2": (48, lambda data: hashlib.sha384(data).digest()),
    "2.16.840.1.101.3.4.2.3": (64, lambda data: hashlib.sha512(data).digest()),
}
MAX_NONCE_BITS = 256
_SIGNATURE_ALGORITHMS = {SM2_WITH_SM3, SM2_SIGN}


class TimeStampRequestError(SealInputError):
    """A request the TSA refuses: `failure` is the RFC 3161 PKIFailureInfo name to answer with."""

    def __init__(self, failure: str, message: str) -> None:
        super().__init__(message)
        self.failure = failure


@dataclass(frozen=True)
class StampRequest:
    """What a token is asked for: the imprint (algorithm as a dotted OID, the hash), a nonce to echo."""

    hash_algorithm: str
    hashed_message: bytes
    nonce: int | None = None
    policy: str | None = None
    cert_req: bool = True
    algorithm_der: bytes | None = None  # the AlgorithmIdentifier as the request wrote it (echoed exactly)

    @classmethod
    def sm3_of(cls, data: bytes) -> StampRequest:
        return cls(SM3, sm3(data))


@dataclass(frozen=True)
class TimeStampToken:
    """A token read back: its TSTInfo facts, the signer it names and what was signed."""

    der: bytes
    policy: str
    hash_algorithm: str
    hashed_message: bytes
    serial: int
    gen_time: dt.datetime
    accuracy: dt.timedelta | None
    nonce: int | None
    certificates: tuple[Certificate, ...]
    signer: Certificate | None  # the certificate the SignerInfo names, if the token carries it
    signer_serial: int
    digest_algorithm: str
    signature_algorithm: str
    tst_info_der: bytes
    message_digest: bytes  # the signed messageDigest attribute
    content_type: str  # the signed contentType attribute
    signed_attributes_der: bytes  # DER SET OF, as signed
    signature: bytes

    def imprint_matches(self, data: bytes) -> bool:
        """The token's imprint is the hash of `data` (under the token's own imprint algorithm)."""
        known = HASH_ALGORITHMS.get(self.hash_algorithm)
        return known is not None and bool(known[1](data) == self.hashed_message)

    def content_digest_matches(self) -> bool:
        """The signed attributes name a TSTInfo and carry the digest of this one."""
        known = HASH_ALGORITHMS.get(self.digest_algorithm)
        if known is None or self.content_type != TST_INFO:
            return False
        return bool(known[1](self.tst_info_der) == self.message_digest)

    def signature_valid(self) -> bool:
        if self.signer is None or self.signature_algorithm not in _SIGNATURE_ALGORITHMS:
            return False
        return self.signer.public_key.verify(self.signature, self.signed_attributes_der)


# --- requests ------------------------------------------------------------------------------------


def parse_request(der: bytes) -> StampRequest:
    """A DER TimeStampReq, checked; raises TimeStampRequestError with the failure to answer."""
    if not isinstance(der, bytes | bytearray) or not der or len(der) > MAX_REQUEST_BYTES:
        raise TimeStampRequestError("bad_data_format", "时间戳请求为空或过长")
    try:
        request = tsp.TimeStampReq.load(bytes(der), strict=True)
        request.native  # noqa: B018  (decode every part now)
    except ASN1_DECODE_ERRORS as exc:
        raise TimeStampRequestError("bad_data_format", f"时间戳请求无法解析（{type(exc).__name__}）") from None
    if request["version"].native != "v1":
        raise TimeStampRequestError("bad_request", "时间戳请求版本应为 1")
    if request["extensions"].native:
        raise TimeStampRequestError("unaccepted_extensions", "不支持时间戳请求扩展")
    imprint = request["message_imprint"]
    algorithm = imprint["hash_algorithm"]["algorithm"].dotted
    hashed = bytes(imprint["hashed_message"].native)
    known = HASH_ALGORITHMS.get(algorithm)
    if known is None:
        raise TimeStampRequestError("bad_alg", f"不支持的杂凑算法 {algorithm}（可用 SM3、SHA-256/384/512）")
    if len(hashed) != known[0]:
        raise TimeStampRequestError("bad_data_format", f"杂凑值长度应为 {known[0]} 字节")
    nonce = request["nonce"].native
    if nonce is not None and (nonce < 0 or nonce.bit_length() > MAX_NONCE_BITS):
        raise TimeStampRequestError("bad_request", f"随机数应为不超过 {MAX_NONCE_BITS} 位的非负整数")
    policy = request["req_policy"].dotted if request["req_policy"].native is not None else None
    # RFC 3161 §2.4.2: the token's messageImprint is the request's, byte for byte (NULL parameters or not).
    return StampRequest(
        algorithm, hashed, nonce, policy, bool(request["cert_req"].native), imprint["hash_algorithm"].dump()
    )


# --- tokens --------------------------------------------------------------------------------------


def make_tokens(
    signer: Signer,
    requests: Sequence[StampRequest],
    *,
    first_serial: int,
    gen_time: dt.datetime,
    policy: str,
    accuracy: dt.timedelta,
) -> list[bytes]:
    """One DER token (ContentInfo) per request, serials `first_serial` on, all at `gen_time`:
    the TSTInfo, its SM3 in the signed attributes, the signer's SM2 signature over them. The
    signer's certificate goes in when the request asks (certReq), the CAs never (verifiers hold them)."""
    if not signer.certificate_chain:
        raise SealInputError("时间戳服务的签名密钥没有证书")
    leaf = signer.certificate_chain[0]
    time = cast(bytes, core.GeneralizedTime(gen_time.astimezone(dt.timezone.utc)).dump())
    tokens = []
    for offset, request in enumerate(requests):
        info = _tst_info(request, first_serial + offset, time, policy, _accuracy_der(accuracy), leaf.der)
        attributes = tst_signed_attributes(sm3(info), leaf.der)
        signature = signer.sign(attributes)
        tokens.append(timestamp_token((leaf,) if request.cert_req else (), leaf, info, attributes, signature))
    return tokens


def _tst_info(request: StampRequest, serial: int, time: bytes, policy: str, accuracy: bytes, leaf_der: bytes) -> bytes:
    """DER TSTInfo (RFC 3161 §2.4.2), written field by field: issuance stamps two signatures a
    licence, and asn1crypto took longer to build one than the SM2 signature over it (0.5 ms);
    tests/seals/test_timestamp.py compares it with asn1crypto's encoding."""
    algorithm = request.algorithm_der or _algorithm_der(request.hash_algorithm)
    imprint = algorithm + _tlv(0x04, request.hashed_message)
    nonce = _integer(request.nonce) if request.nonce is not None else b""
    body = b"".join(
        (
            b"\x02\x01\x01",  # version v1
            _oid_der(policy),
            _tlv(0x30, imprint),
            _integer(serial),
            time,
            accuracy,
            nonce,
            _tsa_name(leaf_der),
        )
    )
    return _tlv(0x30, body)


def _tlv(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes((tag, length)) + content
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets + content


def _integer(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


@lru_cache(maxsize=64)
def _oid_der(dotted: str) -> bytes:
    return cast(bytes, core.ObjectIdentifier(dotted).dump())


@lru_cache(maxsize=16)
def _algorithm_der(dotted: str) -> bytes:
    return cast(bytes, algos.DigestAlgorithm({"algorithm": dotted}).dump())


@lru_cache(maxsize=16)
def _accuracy_der(accuracy: dt.timedelta) -> bytes:
    millis = max(int(accuracy / dt.timedelta(milliseconds=1)), 1)
    seconds, millis = divmod(millis, 1000)
    value = {"seconds": seconds} if seconds else {}
    if millis:
        value["millis"] = millis
    return cast(bytes, tsp.Accuracy(value).dump())


@lru_cache(maxsize=16)
def _tsa_name(leaf_der: bytes) -> bytes:
    """tsa [0] EXPLICIT GeneralName: the directoryName of the TSA's certificate subject."""
    subject = asn1_x509.Certificate.load(leaf_der).subject
    name = asn1_x509.GeneralName({"directory_name": subject})
    return _tlv(0xA0, cast(bytes, name.dump()))


def parse_token(der: bytes) -> TimeStampToken:
    """Read a DER time-stamp token (ContentInfo of SignedData over a TSTInfo); nothing is
    checked but its form. Raises SealInputError for anything else."""
    try:
        content = cms.ContentInfo.load(bytes(der), strict=True)
        if content["content_type"].native != "signed_data":
            raise ValueError("not SignedData")
        signed = content["content"]
        encap = signed["encap_content_info"]
        if encap["content_type"].dotted != TST_INFO:
            raise ValueError("not a TSTInfo")
        tst_der = bytes(encap["content"].contents)
        info = tsp.TSTInfo.load(tst_der, strict=True)
        info.native  # noqa: B018
        [signer_info] = signed["signer_infos"]
        attributes = {a["type"].dotted: a["values"] for a in signer_info["signed_attrs"]}
        certificates = tuple(Certificate.load(c.chosen.dump()) for c in signed["certificates"] or [])
        sid = signer_info["sid"]
        if sid.name != "issuer_and_serial_number":
            raise ValueError("the signer is not named by issuer and serial")
        signer_serial = int(sid.chosen["serial_number"].native)
        issuer = sid.chosen["issuer"].dump()
        signer = next((c for c in certificates if c.serial == signer_serial and c.issuer.dump() == issuer), None)
        accuracy = info["accuracy"]
        nonce = info["nonce"].native
        return TimeStampToken(
            der=bytes(der),
            policy=info["policy"].dotted,
            hash_algorithm=info["message_imprint"]["hash_algorithm"]["algorithm"].dotted,
            hashed_message=bytes(info["message_imprint"]["hashed_message"].native),
            serial=int(info["serial_number"].native),
            gen_time=info["gen_time"].native.astimezone(dt.timezone.utc),
            accuracy=_accuracy(accuracy.native) if accuracy.native is not None else None,
            nonce=int(nonce) if nonce is not None else None,
            certificates=certificates,
            signer=signer,
            signer_serial=signer_serial,
            digest_algorithm=signer_info["digest_algorithm"]["algorithm"].dotted,
            signature_algorithm=signer_info["signature_algorithm"]["algorithm"].dotted,
            tst_info_der=tst_der,
            message_digest=bytes(attributes["1.2.840.113549.1.9.4"][0].native),
            content_type=attributes["1.2.840.113549.1.9.3"][0].dotted,
            signed_attributes_der=b"\x31" + signer_info["signed_attrs"].dump()[1:],  # RFC 5652 §5.4
            signature=bytes(signer_info["signature"].native),
        )
    except (*ASN1_DECODE_ERRORS, KeyError, IndexError, KeysError, AttributeError) as exc:
        raise SealInputError(f"时间戳令牌无法解析（{type(exc).__name__}）") from None


def _accuracy(value: dict[str, int | None]) -> dt.timedelta:
    return dt.timedelta(
        seconds=value.get("seconds") or 0,
        milliseconds=value.get("millis") or 0,
        microseconds=value.get("micros") or 0,
    )


class _Reply(tsp.TimeStampResp):  # type: ignore[misc]  # asn1crypto is untyped
    """TimeStampResp with the token optional, as RFC 3161 §2.4.2 has it."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


# --- replies -------------------------------------------------------------------------------------


def granted_reply(token: bytes) -> bytes:
    """DER TimeStampResp: status granted, with the token."""
    reply = tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": cms.ContentInfo.load(token)})
    return cast(bytes, reply.dump())


def rejection_reply(failure: str, text: str) -> bytes:
    """DER TimeStampResp: status rejection, the PKIFailureInfo bit `failure`, and `text`."""
    status = tsp.PKIStatusInfo({"status": "rejection", "status_string": [text], "fail_info": {failure}})
    # asn1crypto's TimeStampResp makes the token mandatory: the SEQUENCE is written by hand.
    body = cast(bytes, status.dump())
    return b"\x30" + _der_length(len(body)) + body


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def parse_reply(der: bytes) -> tuple[str, bytes | None]:
    """(status name, DER token or None) of a TimeStampResp."""
    try:
        reply = _Reply.load(bytes(der), strict=True)
        status = str(reply["status"]["status"].native)
        token = reply["time_stamp_token"]
        return status, (token.dump() if token.native is not None else None)
    except ASN1_DECODE_ERRORS as exc:
        raise SealInputError(f"时间戳应答无法解析（{type(exc).__name__}）") from None
