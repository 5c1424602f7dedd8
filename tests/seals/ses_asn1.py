"""GB/T 38540-2020 v4 structures written a second time, with pyasn1, from the standard's ASN.1
(../shared/SPEC.md): an independent reading of what seals/ses.py writes with asn1crypto."""

from __future__ import annotations

from pyasn1.codec.der import decoder, encoder
from pyasn1.type import char, namedtype, tag, univ, useful


def _explicit0(value: univ.Asn1Item) -> univ.Asn1Item:
    return value.subtype(explicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, 0))


class SESHeader(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("ID", char.IA5String()),
        namedtype.NamedType("version", univ.Integer()),
        namedtype.NamedType("Vid", char.IA5String()),
    )


class CertInfoList(univ.SequenceOf):
    componentType = univ.OctetString()


class CertDigestObj(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("type", char.PrintableString()),
        namedtype.NamedType("value", univ.OctetString()),
    )


class CertDigestList(univ.SequenceOf):
    componentType = CertDigestObj()


class SESESPropertyInfo(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("type", univ.Integer()),
        namedtype.NamedType("name", char.UTF8String()),
        namedtype.NamedType("certListType", univ.Integer()),
        # CHOICE { CertInfoList, CertDigestList }: both untagged SEQUENCE OF, told apart by certListType
        namedtype.NamedType("certList", univ.Any()),
        namedtype.NamedType("createDate", useful.GeneralizedTime()),
        namedtype.NamedType("validStart", useful.GeneralizedTime()),
        namedtype.NamedType("validEnd", useful.GeneralizedTime()),
    )


class SESESPictrueInfo(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("type", char.IA5String()),
        namedtype.NamedType("data", univ.OctetString()),
        namedtype.NamedType("width", univ.Integer()),
        namedtype.NamedType("height", univ.Integer()),
    )


class ExtData(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("extnID", univ.ObjectIdentifier()),
        namedtype.DefaultedNamedType("critical", univ.Boolean(False)),
        namedtype.NamedType("extnValue", univ.OctetString()),
    )


class ExtensionDatas(univ.SequenceOf):
    componentType = ExtData()


_SEAL_INFO_FIELDS = (
    namedtype.NamedType("header", SESHeader()),
    namedtype.NamedType("esID", char.IA5String()),
    namedtype.NamedType("property", SESESPropertyInfo()),
    namedtype.NamedType("picture", SESESPictrueInfo()),
)


class SESSealInfo(univ.Sequence):
    componentType = namedtype.NamedTypes(*_SEAL_INFO_FIELDS, namedtype.OptionalNamedType("extDatas", ExtensionDatas()))


class SESSealInfoTagged(univ.Sequence):
    """extDatas tagged [0] EXPLICIT: a form some producers write."""

    componentType = namedtype.NamedTypes(
        *_SEAL_INFO_FIELDS, namedtype.OptionalNamedType("extDatas", _explicit0(ExtensionDatas()))
    )


class SESeal(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("eSealInfo", SESSealInfo()),
        namedtype.NamedType("cert", univ.OctetString()),
        namedtype.NamedType("signAlgID", univ.ObjectIdentifier()),
        namedtype.NamedType("signedValue", univ.BitString()),
    )


class SESealAnyInfo(univ.Sequence):
    """SESeal with its SealInfo kept as raw DER, to wrap a SealInfo of either form."""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("eSealInfo", univ.Any()),
        namedtype.NamedType("cert", univ.OctetString()),
        namedtype.NamedType("signAlgID", univ.ObjectIdentifier()),
        namedtype.NamedType("signedValue", univ.BitString()),
    )


def _tbs_fields() -> tuple[namedtype.NamedType, ...]:
    return (
        namedtype.NamedType("version", univ.Integer()),
        namedtype.NamedType("eseal", univ.Any()),
        namedtype.NamedType("timeInfo", useful.GeneralizedTime()),
        namedtype.NamedType("dataHash", univ.BitString()),
        namedtype.NamedType("propertyInfo", char.IA5String()),
    )


class TBSSign(univ.Sequence):
    componentType = namedtype.NamedTypes(
        *_tbs_fields(), namedtype.OptionalNamedType("extDatas", _explicit0(ExtensionDatas()))
    )


class TBSSignUntagged(univ.Sequence):
    componentType = namedtype.NamedTypes(*_tbs_fields(), namedtype.OptionalNamedType("extDatas", ExtensionDatas()))


def _signature_fields() -> tuple[namedtype.NamedType, ...]:
    return (
        namedtype.NamedType("toSign", univ.Any()),
        namedtype.NamedType("cert", univ.OctetString()),
        namedtype.NamedType("signatureAlgID", univ.ObjectIdentifier()),
        namedtype.NamedType("signature", univ.BitString()),
    )


class SESSignature(univ.Sequence):
    componentType = namedtype.NamedTypes(
        *_signature_fields(), namedtype.OptionalNamedType("timeStamp", _explicit0(univ.BitString()))
    )


class SESSignatureUntagged(univ.Sequence):
    componentType = namedtype.NamedTypes(
        *_signature_fields(), namedtype.OptionalNamedType("timeStamp", univ.BitString())
    )


def decode(data: bytes, spec: univ.Asn1Item) -> univ.Asn1Item:
    value, rest = decoder.decode(data, asn1Spec=spec)
    assert rest == b"", "trailing bytes after the DER value"
    return value


def encode(value: univ.Asn1Item) -> bytes:
    return bytes(encoder.encode(value))


def bits(value: univ.BitString) -> bytes:
    return value.asOctets()
