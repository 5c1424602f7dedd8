"""GB/T 38540-2020 (安全电子签章密码技术规范) version 4 structures: the e-seal (SESeal) a seal maker
signs, and the signature (SES_Signature) a signer makes with it over a document.

    SESeal ::= SEQUENCE { eSealInfo SES_SealInfo, cert OCTET STRING (maker's certificate),
                          signAlgID OBJECT IDENTIFIER, signedValue BIT STRING }
    TBS_Sign ::= SEQUENCE { version INTEGER (4), eseal SESeal, timeInfo GeneralizedTime,
                            dataHash BIT STRING, propertyInfo IA5String, extDatas [0] EXPLICIT ... OPTIONAL }
    SES_Signature ::= SEQUENCE { toSign TBS_Sign, cert OCTET STRING (signer's certificate),
                                 signatureAlgID OBJECT IDENTIFIER, signature BIT STRING,
                                 timeStamp [0] EXPLICIT BIT STRING OPTIONAL }

(the full definitions are in ../shared/SPEC.md). The maker signs DER(SES_SealInfo); the signer signs
DER(TBS_Sign); both with SM2-with-SM3 (1.2.156.10197.1.501), e = SM3(Z || M) with the default ID.

We write the standard's tagging. Readers accept both forms of the trailing optional fields, since
some producers write TBS_Sign.extDatas and SES_Signature.timeStamp untagged, or tag
SES_SealInfo.extDatas, and return plain dataclasses holding the exact signed bytes.

Signing is staged like pyHanko's: `tbs_sign_bytes` → the caller's `signer.digest` / `sign_digest`
(a batch, an HSM) → `assemble_signature`; `sign_tbs` does the three in one call.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, cast

from asn1crypto import core

from keys.errors import ASN1_DECODE_ERRORS, KeysError
from keys.oids import SM2_WITH_SM3, SM3
from keys.signer import Signer
from keys.sm2 import sm3
from keys.x509 import Certificate
from seals.der_shapes import SHAPES
from seals.errors import MalformedSealError, SealInputError, SealSigningError
from seals.picture import PNG_SIGNATURE

__all__ = ["CERT_LIST_CERTIFICATES", "Seal", "SealSignature", "make_seal", "parse_seal", "parse_signature"]

T = TypeVar("T")

SES_ID = "ES"
SES_VERSION = 4
DEFAULT_VID = "ECAS"
SEAL_TYPE_ORGANISATION = 1
SEAL_TYPE_PERSON = 2
CERT_LIST_CERTIFICATES = 1
CERT_LIST_DIGESTS = 2
MAX_PICTURE_BYTES = 4 * 1024 * 1024
_Fields = list[tuple[Any, ...]]  # asn1crypto's field specs


# --- ASN.1 ---------------------------------------------------------------------------------------
# asn1crypto is untyped, so to mypy its classes are Any and subclassing them is an error
# (disallow_subclassing_any): a schema is declared by subclassing, hence the `type: ignore[misc]`s.


class SESHeader(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[_Fields] = [
        ("id", core.IA5String),
        ("version", core.Integer),
        ("vid", core.IA5String),
    ]


class CertDigestObj(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[_Fields] = [("type", core.PrintableString), ("value", core.OctetString)]


class CertDigestList(core.SequenceOf):  # type: ignore[misc]
    _child_spec = CertDigestObj


class CertInfoList(core.SequenceOf):  # type: ignore[misc]
    _child_spec = core.OctetString


class SESESPropertyInfo(core.Sequence):  # type: ignore[misc]
    # certList is a CHOICE of two untagged SEQUENCE OFs: only certListType tells them apart.
    _fields: ClassVar[_Fields] = [
        ("type", core.Integer),
        ("name", core.UTF8String),
        ("cert_list_type", core.Integer),
        ("cert_list", core.Any),
        ("create_date", core.GeneralizedTime),
        ("valid_start", core.GeneralizedTime),
        ("valid_end", core.GeneralizedTime),
    ]


class SESESPictrueInfo(core.Sequence):  # type: ignore[misc]  # "Pictrue" as the standard spells it
    _fields: ClassVar[_Fields] = [
        ("type", core.IA5String),
        ("data", core.OctetString),
        ("width", core.Integer),
        ("height", core.Integer),
    ]


class ExtData(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[_Fields] = [
        ("extn_id", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extn_value", core.OctetString),
    ]


class ExtensionDatas(core.SequenceOf):  # type: ignore[misc]
    _child_spec = ExtData


class SESSealInfo(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[_Fields] = [
        ("header", SESHeader),
        ("es_id", core.IA5String),
        ("property", SESESPropertyInfo),
        ("picture", SESESPictrueInfo),
        ("ext_datas", ExtensionDatas, {"optional": True}),
    ]


class _SESSealInfoTagged(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[_Fields] = [
        *SESSealInfo._fields[:4],
        ("ext_datas", ExtensionDatas, {"explicit": 0, "optional": True}),
    ]


class SESeal(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[_Fields] = [
        ("eseal_info", core.Any),
        ("cert", core.OctetString),
        ("sign_alg_id", core.ObjectIdentifier),
        ("signed_value", core.OctetBitString),
    ]


class TBSSign(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[_Fields] = [
        ("version", core.Integer),
        ("eseal", core.Any),
        ("time_info", core.GeneralizedTime),
        ("data_hash", core.OctetBitString),
        ("property_info", core.IA5String),
        ("ext_datas", ExtensionDatas, {"explicit": 0, "optional": True}),
    ]


class _TBSSignUntagged(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[_Fields] = [*TBSSign._fields[:5], ("ext_datas", ExtensionDatas, {"optional": True})]


class SESSignature(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[_Fields] = [
        ("to_sign", core.Any),
        ("cert", core.OctetString),
        ("signature_alg_id", core.ObjectIdentifier),
        ("signature", core.OctetBitString),
        ("time_stamp", core.OctetBitString, {"explicit": 0, "optional": True}),
    ]


class _SESSignatureUntagged(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[_Fields] = [
        *SESSignature._fields[:4],
        ("time_stamp", core.OctetBitString, {"optional": True}),
    ]


# --- parsed values -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertDigest:
    algorithm: str  # as written, e.g. "SM3" or an OID
    value: bytes


@dataclass(frozen=True)
class Extension:
    oid: str
    critical: bool
    value: bytes


@dataclass(frozen=True)
class SealPictureInfo:
    type: str  # "PNG", "GIF", "JPG", "OFD", ...
    data: bytes
    width_mm: int
    height_mm: int


@dataclass(frozen=True)
class Seal:
    """A decoded SESeal. `seal_info_der` is exactly what the maker signed."""

    der: bytes
    vid: str
    version: int
    es_id: str
    seal_type: int
    name: str
    cert_list_type: int
    certificates: tuple[bytes, ...]  # certListType 1: DER certificates allowed to use the seal
    cert_digests: tuple[CertDigest, ...]  # certListType 2
    created: dt.datetime
    valid_start: dt.datetime
    valid_end: dt.datetime
    picture: SealPictureInfo
    extensions: tuple[Extension, ...]
    seal_info_der: bytes
    maker_certificate: bytes
    signature_algorithm: str
    signature: bytes  # DER SM2 signature of seal_info_der

    def lists_certificate(self, certificate_der: bytes) -> bool:
        """True when the seal's certList names this (signer's) certificate."""
        if self.cert_list_type == CERT_LIST_CERTIFICATES:
            return certificate_der in self.certificates
        return any(_cert_digest(certificate_der, d.algorithm) == d.value for d in self.cert_digests)

    def valid_at(self, when: dt.datetime) -> bool:
        return self.valid_start <= _utc(when, "时间") <= self.valid_end


@dataclass(frozen=True)
class SealSignature:
    """A decoded SES_Signature. `tbs_der` is exactly what the signer signed."""

    der: bytes
    version: int
    seal: Seal
    time: dt.datetime
    data_hash: bytes
    property_info: str
    extensions: tuple[Extension, ...]
    tbs_der: bytes
    signer_certificate: bytes
    signature_algorithm: str
    signature: bytes  # DER SM2 signature of tbs_der
    timestamp: bytes | None


# --- reading -------------------------------------------------------------------------------------


def _load(spec: type[core.Asn1Value], alternative: type[core.Asn1Value] | None, der: bytes, what: str) -> Any:
    """Parse `der` strictly with `spec`; if its trailing optional field is in the other tagging,
    with `alternative`. asn1crypto keeps an element it cannot place as an extra child instead of
    failing, so extra children mean "not this form"."""
    last_error: Exception | None = None
    for cls in (spec, alternative) if alternative is not None else (spec,):
        try:
            value = cls.load(der, strict=True)
            _decode_all(value)
        except ASN1_DECODE_ERRORS as exc:
            last_error = exc
            continue
        if not isinstance(value, core.Sequence) or len(value.children) <= len(value._fields):
            return value
        last_error = ValueError("unexpected trailing element")
    raise MalformedSealError(f"{what}结构无法解析（{last_error}）")


def _decode_all(value: core.Asn1Value) -> None:
    """Decode every part now, so malformed input fails here and not later; Any fields are
    nested structures the caller parses with their own spec."""
    if isinstance(value, core.Sequence):
        for name, spec, *_ in value._fields:
            if spec is not core.Any:
                value[name].native  # noqa: B018
        value.children  # noqa: B018
    else:
        value.native  # noqa: B018


def _bits(value: core.OctetBitString, what: str) -> bytes:
    # A BIT STRING with unused bits would carry the same octets: a malleable encoding.
    if value.contents[:1] != b"\x00":
        raise MalformedSealError(f"{what}的 BIT STRING 含未用位")
    return bytes(value.native)


def _extensions(value: core.Asn1Value | None) -> tuple[Extension, ...]:
    if value is None or isinstance(value, core.Void):
        return ()
    return tuple(
        Extension(ext["extn_id"].dotted, bool(ext["critical"].native), bytes(ext["extn_value"].native)) for ext in value
    )


def _malformed_as(what: str) -> Callable[[Callable[[bytes], T]], Callable[[bytes], T]]:
    """asn1crypto parses Any fields lazily, when first read: a malformed one can raise from any
    line of a parser. Those errors become MalformedSealError too."""

    def wrap(parse: Callable[[bytes], T]) -> Callable[[bytes], T]:
        @functools.wraps(parse)
        def checked(der: bytes) -> T:
            try:
                return parse(der)
            except MalformedSealError:
                raise
            except ASN1_DECODE_ERRORS as exc:
                raise MalformedSealError(f"{what}结构无法解析（{exc}）") from None

        return checked

    return wrap


@_malformed_as("电子印章（SESeal）")
def parse_seal(der: bytes) -> Seal:
    """Decode a DER SESeal (GB/T 38540-2020 v4). Raises MalformedSealError."""
    if not isinstance(der, bytes | bytearray) or not der:
        raise MalformedSealError("电子印章数据为空")
    der = bytes(der)
    outer = _load(SESeal, None, der, "电子印章（SESeal）")
    info_der = outer["eseal_info"].dump()
    info = _load(SESSealInfo, _SESSealInfoTagged, info_der, "印章信息（SES_SealInfo）")
    header = info["header"]
    if header["id"].native != SES_ID or header["version"].native != SES_VERSION:
        raise MalformedSealError(
            f"不是 GB/T 38540-2020 第 4 版电子印章（头信息 ID={header['id'].native!r}，"
            f"版本={header['version'].native!r}）"
        )
    prop = info["property"]
    cert_list_type = prop["cert_list_type"].native
    cert_list_der = prop["cert_list"].dump()
    certificates: tuple[bytes, ...] = ()
    digests: tuple[CertDigest, ...] = ()
    if cert_list_type == CERT_LIST_CERTIFICATES:
        certs = _load(CertInfoList, None, cert_list_der, "印章证书列表")
        certificates = tuple(bytes(c.native) for c in certs)
    elif cert_list_type == CERT_LIST_DIGESTS:
        digest_list = _load(CertDigestList, None, cert_list_der, "印章证书摘要列表")
        digests = tuple(CertDigest(str(d["type"].native), bytes(d["value"].native)) for d in digest_list)
    else:
        raise MalformedSealError(f"未知的证书列表类型 certListType={cert_list_type!r}（应为 1 或 2）")
    picture = info["picture"]
    return Seal(
        der=der,
        vid=str(header["vid"].native),
        version=int(header["version"].native),
        es_id=str(info["es_id"].native),
        seal_type=int(prop["type"].native),
        name=str(prop["name"].native),
        cert_list_type=int(cert_list_type),
        certificates=certificates,
        cert_digests=digests,
        created=prop["create_date"].native,
        valid_start=prop["valid_start"].native,
        valid_end=prop["valid_end"].native,
        picture=SealPictureInfo(
            type=str(picture["type"].native),
            data=bytes(picture["data"].native),
            width_mm=int(picture["width"].native),
            height_mm=int(picture["height"].native),
        ),
        extensions=_extensions(info["ext_datas"]),
        seal_info_der=info_der,
        maker_certificate=bytes(outer["cert"].native),
        signature_algorithm=outer["sign_alg_id"].dotted,
        signature=_bits(outer["signed_value"], "印章签名值"),
    )


@_malformed_as("电子签章数据（SES_Signature）")
def parse_signature(der: bytes) -> SealSignature:
    """Decode a DER SES_Signature (GB/T 38540-2020 v4), e.g. an OFD's SignedValue.dat."""
    if not isinstance(der, bytes | bytearray) or not der:
        raise MalformedSealError("电子签章数据为空")
    der = bytes(der)
    outer = _load(SESSignature, _SESSignatureUntagged, der, "电子签章数据（SES_Signature）")
    tbs_der = outer["to_sign"].dump()
    tbs = _parse_tbs(tbs_der)
    stamp = outer["time_stamp"]
    return SealSignature(
        der=der,
        version=int(tbs["version"].native),
        seal=parse_seal(tbs["eseal"].dump()),
        time=tbs["time_info"].native,
        data_hash=_bits(tbs["data_hash"], "原文杂凑值"),
        property_info=str(tbs["property_info"].native),
        extensions=_extensions(tbs["ext_datas"]),
        tbs_der=tbs_der,
        signer_certificate=bytes(outer["cert"].native),
        signature_algorithm=outer["signature_alg_id"].dotted,
        signature=_bits(outer["signature"], "签章签名值"),
        timestamp=None if stamp is None or isinstance(stamp, core.Void) else _bits(stamp, "时间戳"),
    )


def _parse_tbs(tbs_der: bytes) -> core.Sequence:
    tbs = _load(TBSSign, _TBSSignUntagged, tbs_der, "签章信息（TBS_Sign）")
    if tbs["version"].native != SES_VERSION:
        raise MalformedSealError(f"不是 GB/T 38540-2020 第 4 版电子签章（TBS_Sign 版本 {tbs['version'].native!r}）")
    return tbs


# --- writing -------------------------------------------------------------------------------------


def _utc(value: dt.datetime, what: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise SealInputError(f"{what}必须是带时区的时间")
    return value.astimezone(dt.timezone.utc).replace(microsecond=0)


def _ia5(value: str, what: str, limit: int = 256) -> str:
    if not isinstance(value, str) or not value or len(value) > limit or not all(" " <= c <= "~" for c in value):
        raise SealInputError(f"{what}须为 1–{limit} 个可打印 ASCII 字符，收到 {value!r}")
    return value


def _certificate(der: bytes, what: str) -> Certificate:
    try:
        return Certificate.load(bytes(der))
    except (KeysError, TypeError, ValueError) as exc:
        raise SealInputError(f"{what}不是有效的 SM2 证书（{exc}）") from None


def _leaf(signer: Signer, who: str) -> Certificate:
    if not signer.certificate_chain:
        raise SealInputError(f"{who}的签名密钥没有证书")
    return signer.certificate_chain[0]


def _cert_digest(certificate_der: bytes, algorithm: str) -> bytes | None:
    if algorithm.strip().upper() in ("SM3", SM3):
        return sm3(certificate_der)
    return None


def _not_listed(cert: Certificate, seal: Seal) -> SealInputError:
    return SealInputError(
        f"签章人证书（{cert.common_name}，序列号 {cert.serial_hex}）不在印章「{seal.name}」的证书列表中"
    )


def make_seal(
    maker: Signer,
    *,
    es_id: str,
    name: str,
    seal_type: int,
    signer_certificates: Sequence[bytes],
    picture_png: bytes,
    width_mm: int,
    height_mm: int,
    valid_start: dt.datetime,
    valid_end: dt.datetime,
    created: dt.datetime,
    vid: str = DEFAULT_VID,
) -> bytes:
    """Make and sign an e-seal: DER SESeal whose signedValue is the maker's SM2 signature over
    DER(SES_SealInfo), with the maker's certificate in `cert` (GB/T 38540-2020 §7.1)."""
    es_id = _ia5(es_id, "印章编码 esID", 64)
    vid = _ia5(vid, "厂商标识 Vid", 64)
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise SealInputError("印章名称不能为空，且不超过 200 个字")
    if seal_type not in (SEAL_TYPE_ORGANISATION, SEAL_TYPE_PERSON):
        raise SealInputError(f"印章类型须为 1（单位印章）或 2（个人印章），收到 {seal_type!r}")
    if not signer_certificates:
        raise SealInputError("印章须至少列出一张签章人证书")
    certs = [_certificate(c, "签章人证书").der for c in signer_certificates]
    if not isinstance(picture_png, bytes) or not picture_png.startswith(PNG_SIGNATURE):
        raise SealInputError("印章图片须为 PNG")
    if len(picture_png) > MAX_PICTURE_BYTES:
        raise SealInputError(f"印章图片过大（{len(picture_png)} 字节）")
    sizes = []
    for what, value in (("宽度", width_mm), ("高度", height_mm)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= round(value) <= 1000:
            raise SealInputError(f"印章{what}须为 1–1000 毫米的整数，收到 {value!r}")
        sizes.append(round(value))  # GB/T 38540: INTEGER millimetres
    start, end, made = _utc(valid_start, "印章有效期起始"), _utc(valid_end, "印章有效期截止"), _utc(created, "制章时间")
    if end <= start:
        raise SealInputError("印章有效期截止须晚于起始")
    maker_cert = _leaf(maker, "制章者")

    info = SESSealInfo(
        {
            "header": {"id": SES_ID, "version": SES_VERSION, "vid": vid},
            "es_id": es_id,
            "property": {
                "type": seal_type,
                "name": name,
                "cert_list_type": CERT_LIST_CERTIFICATES,
                "cert_list": CertInfoList(certs),
                "create_date": made,
                "valid_start": start,
                "valid_end": end,
            },
            "picture": {"type": "PNG", "data": picture_png, "width": sizes[0], "height": sizes[1]},
        }
    )
    info_der = info.dump()
    signature = maker.sign(info_der)
    if not maker_cert.public_key.verify(signature, info_der):
        raise SealSigningError("制章者签名验证失败：签名设备返回的签名值与制章者证书不符")
    seal = SESeal(
        {
            "eseal_info": core.Any.load(info_der),
            "cert": maker_cert.der,
            "sign_alg_id": SM2_WITH_SM3,
            "signed_value": signature,
        }
    )
    return cast(bytes, seal.dump())  # asn1crypto is untyped


def tbs_sign_bytes(seal_der: bytes, data_hash: bytes, property_info: str, time: dt.datetime) -> bytes:
    """DER(TBS_Sign): what the signer signs. Staged signing: e = signer.digest(these bytes), then
    signer.sign_digest(e) (in a batch or on an HSM), then `assemble_signature`."""
    seal = parse_seal(seal_der)
    when = _utc(time, "签章时间")
    if not seal.valid_at(when):
        raise SealInputError(
            f"印章「{seal.name}」在签章时间 {when:%Y-%m-%d %H:%M:%S}Z 不在有效期内"
            f"（{seal.valid_start:%Y-%m-%d} 至 {seal.valid_end:%Y-%m-%d}）"
        )
    if not isinstance(data_hash, bytes) or len(data_hash) != 32:
        raise SealInputError("原文杂凑值须为 32 字节的 SM3 杂凑值")
    return encode_tbs_sign(seal.der, data_hash, _ia5(property_info, "原文属性 propertyInfo", 1024), when)


def encode_tbs_sign(seal_der: bytes, data_hash: bytes, property_info: str, time: dt.datetime) -> bytes:
    """DER(TBS_Sign) as it is, without `tbs_sign_bytes`' checks: for a caller that has made them
    (seals.licence_files checks a seal once for thousands of licences). `time` in UTC."""
    time_info = core.GeneralizedTime(time)
    key = ("tbs_sign", seal_der, len(data_hash), property_info)

    def build() -> bytes:
        tbs = TBSSign(
            {
                "version": SES_VERSION,
                "eseal": core.Any.load(seal_der),
                "time_info": time_info,
                "data_hash": data_hash,
                "property_info": property_info,
            }
        )
        return cast(bytes, tbs.dump())  # asn1crypto is untyped

    return SHAPES.encode(key, (time_info.dump(), data_hash), build)


def tbs_sign_constant_prefix(seal_der: bytes, data_hash_length: int, property_info: str) -> bytes | None:
    """What every DER(TBS_Sign) of this seal starts with (the SEQUENCE header, version and the
    seal, up to timeInfo), once `encode_tbs_sign` has encoded one: a signer can keep the SM3
    state after it. None before."""
    return SHAPES.constant_prefix(("tbs_sign", seal_der, data_hash_length, property_info))


def assemble_signature(
    tbs_der: bytes, signer_certificate: bytes, signature: bytes, timestamp: bytes | None = None
) -> bytes:
    """DER SES_Signature from DER(TBS_Sign), the signer's DER certificate and its DER SM2 signature.

    Checks before it packs: the certificate is one the seal lists, and the signature verifies over
    the TBS with that certificate's key, so a faulty signing device never yields a sealed file."""
    try:
        tbs = _parse_tbs(tbs_der)
        seal = parse_seal(tbs["eseal"].dump())
    except MalformedSealError as exc:
        raise SealInputError(f"待签数据不是 TBS_Sign：{exc}") from None
    cert = _certificate(signer_certificate, "签章人证书")
    if not seal.lists_certificate(cert.der):
        raise _not_listed(cert, seal)
    if not cert.public_key.verify(signature, tbs_der):
        raise SealSigningError("签章签名验证失败：签名设备返回的签名值与签章人证书不符")
    return encode_signature(tbs_der, cert.der, signature, timestamp)


def encode_signature(
    tbs_der: bytes, signer_certificate: bytes, signature: bytes, timestamp: bytes | None = None
) -> bytes:
    """DER SES_Signature as it is, without `assemble_signature`'s checks: for a caller that has
    made them (seals.licence_files verifies each signature it packs). `timestamp` is a DER RFC 3161
    token over the signature value (GB/T 38540 §7.2.3 timeStamp), written [0] EXPLICIT BIT STRING."""
    stamped = () if timestamp is None else (len(timestamp),)
    key = ("ses_signature", len(tbs_der), signer_certificate, len(signature), *stamped)

    def build() -> bytes:
        fields = {
            "to_sign": core.Any.load(tbs_der),
            "cert": signer_certificate,
            "signature_alg_id": SM2_WITH_SM3,
            "signature": signature,
        }
        if timestamp is not None:
            fields["time_stamp"] = timestamp
        return cast(bytes, SESSignature(fields).dump())  # asn1crypto is untyped

    values = (tbs_der, signature) if timestamp is None else (tbs_der, signature, timestamp)
    return SHAPES.encode(key, values, build)


def sign_tbs(signer: Signer, seal_der: bytes, data_hash: bytes, property_info: str, time: dt.datetime) -> bytes:
    """Sign with a seal in one call: build TBS_Sign (version 4), sign DER(TBS_Sign) with `signer`,
    and return the DER SES_Signature carrying the signer's certificate."""
    cert = _leaf(signer, "签章人")
    tbs = tbs_sign_bytes(seal_der, data_hash, property_info, time)
    seal = parse_seal(seal_der)
    if not seal.lists_certificate(cert.der):
        raise _not_listed(cert, seal)
    return assemble_signature(tbs, cert.der, signer.sign(tbs))
