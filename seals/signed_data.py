"""CMS SignedData (RFC 5652) with SM2 and SM3, as PDF signatures (/adbe.pkcs7.detached, ISO 32000-1
§12.8.3.3) and the authority's trust bundle carry it: the one encoder of it in the project.

    ContentInfo { signedData SignedData {
        version 1, digestAlgorithms { sm3 }, encapContentInfo { data } (detached: no content),
        certificates [0] IMPLICIT the signer's chain (seal certificate, branch CA, root; DER order),
        signerInfos { SignerInfo {
            version 1, sid issuerAndSerialNumber, digestAlgorithm sm3,
            signedAttrs [0] IMPLICIT { contentType data, signingTime, CMSAlgorithmProtection (RFC 6211),
                                       signingCertificateV2 (RFC 5035), messageDigest },
            signatureAlgorithm sm2-with-sm3 (GM/T 0010), signature (DER SM2 over DER(signedAttrs)) } } } }

The attributes are those pyHanko writes for an /adbe.pkcs7.detached signature, and the SignedData is
byte for byte what pyHanko's CMS builder makes of them (tests/seals/test_signed_data.py).

asn1crypto encodes all of it; issuance signs a PDF per licence, so the encodings are kept per
shape (`seals.der_shapes`): per signer and signing-time kind for the attributes, per chain and
attribute and signature length for the SignedData.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import lru_cache

from asn1crypto import algos, cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes

from keys.oids import SM2_WITH_SM3_NAME, SM3_NAME
from keys.sm2 import SIGNATURE_MAX_DER
from keys.x509 import Certificate
from seals.der_shapes import SHAPES

__all__ = ["signed_attributes", "signed_data", "timestamp_token", "tst_signed_attributes"]

TST_INFO = "1.2.840.113549.1.9.16.1.4"  # id-ct-TSTInfo (RFC 3161 §2.4.2)
# id-aa-signatureTimeStampToken (RFC 3161 App. A; an OID, not a secret)
SIGNATURE_TIME_STAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"  # noqa: S105

# Margin on top of the longest possible SignedData when reserving room for it in a file.
RESERVE_MARGIN = 16


def signed_attributes(document_digest: bytes, signing_time: dt.datetime, leaf_der: bytes) -> bytes:
    """DER SET OF the signed attributes (RFC 5652 §5.3, §5.4): what the signer's SM2 key signs.

    `document_digest` is the SM3 digest of what is signed (a PDF's /ByteRange); `leaf_der` the
    signer's certificate."""
    when = signing_time.astimezone(dt.timezone.utc)
    # RFC 5652 §11.3: UTCTime for 1950–2049, GeneralizedTime otherwise.
    time = cms.Time({"utc_time": when} if 1950 <= when.year < 2050 else {"generalized_time": when})
    digest = bytes(document_digest)
    key = ("attributes", leaf_der, len(digest), time.name)
    return SHAPES.encode(key, (digest, time.dump()), lambda: _build_signed_attributes(digest, time, leaf_der))


def signed_data(
    chain: Sequence[Certificate], attributes: bytes, signature: bytes, timestamp: bytes | None = None
) -> bytes:
    """DER ContentInfo holding the detached SignedData: the chain (signer's certificate first), one
    SignerInfo with `attributes` (the DER SET OF that was signed, from `signed_attributes`) and the
    DER SM2 `signature` over them; with `timestamp` (a DER time-stamp token over the signature
    value), the unsigned attribute id-aa-signatureTimeStampToken as PAdES B-T has it."""
    return _signed_data(tuple(c.der for c in chain), bytes(attributes), bytes(signature), timestamp)


def _signed_data(
    chain_der: tuple[bytes, ...], attributes: bytes, signature: bytes, timestamp: bytes | None = None
) -> bytes:
    # RFC 5652 §5.4: the signature covers the attributes as a SET OF (tag 0x31); the SignerInfo
    # carries the same content as [0] IMPLICIT (tag 0xA0).
    tagged = b"\xa0" + attributes[1:]
    if timestamp is None:
        key: tuple[object, ...] = ("signed_data", chain_der, len(attributes), len(signature))
        return SHAPES.encode(key, (tagged, signature), lambda: _build_signed_data(chain_der, tagged, signature))
    key = ("signed_data_ts", chain_der, len(attributes), len(signature), len(timestamp))
    return SHAPES.encode(
        key, (tagged, signature, timestamp), lambda: _build_signed_data(chain_der, tagged, signature, timestamp)
    )


@lru_cache(maxsize=16)
def reserved_length(chain_der: tuple[bytes, ...], timestamp_room: int = 0) -> int:
    """Bytes to reserve for the DER SignedData of this chain: as long as it can get (the longest DER
    SM2 signature, a GeneralizedTime signing time), plus a margin, plus `timestamp_room` for a
    time-stamp token and its attribute. The attributes' length does not depend on their values
    otherwise (the digest is 32 bytes)."""
    attributes = signed_attributes(bytes(32), dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc), chain_der[0])
    length = len(_signed_data(chain_der, attributes, bytes(SIGNATURE_MAX_DER))) + RESERVE_MARGIN
    return length + (timestamp_room + 16 if timestamp_room else 0)  # the attribute's own headers


def tst_signed_attributes(tst_info_digest: bytes, leaf_der: bytes) -> bytes:
    """DER SET OF the signed attributes of a time-stamp token (RFC 3161 §2.4.2, RFC 5816):
    contentType id-ct-TSTInfo, CMSAlgorithmProtection, signingCertificateV2, messageDigest (the
    SM3 of the DER TSTInfo)."""
    digest = bytes(tst_info_digest)
    key = ("tst_attributes", leaf_der, len(digest))
    return SHAPES.encode(key, (digest,), lambda: _build_signed_attributes(digest, None, leaf_der, TST_INFO))


def timestamp_token(
    certificates: Sequence[Certificate], signer: Certificate, tst_info: bytes, attributes: bytes, signature: bytes
) -> bytes:
    """DER ContentInfo of the SignedData whose eContent is the DER `tst_info` (RFC 3161 §2.4.2),
    signed by `signer` with `attributes` (from `tst_signed_attributes`) and `signature`;
    `certificates` go in the certificates field (the TSA's own when the request asked for it)."""
    tagged = b"\xa0" + attributes[1:]
    chain_der = tuple(c.der for c in certificates)
    key = ("tst_token", chain_der, signer.der, len(tst_info), len(attributes), len(signature))
    return SHAPES.encode(
        key,
        (tst_info, tagged, signature),
        lambda: _build_signed_data(chain_der, tagged, signature, None, (TST_INFO, tst_info), signer.der),
    )


# --- asn1crypto ----------------------------------------------------------------------------------


def _build_signed_attributes(
    digest: bytes, time: cms.Time | None, leaf_der: bytes, content_type: str = "data"
) -> bytes:
    leaf = asn1_x509.Certificate.load(leaf_der)
    # RFC 3161 §2.4.2: a token's signing time is its TSTInfo's genTime, so it carries no signingTime.
    when = [cms.CMSAttribute({"type": "signing_time", "values": [time]})] if time is not None else []
    attributes = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": [content_type]}),
            *when,
            # RFC 6211: binds the digest and signature algorithms into what is signed.
            cms.CMSAttribute(
                {
                    "type": "cms_algorithm_protection",
                    "values": [
                        {
                            "digest_algorithm": {"algorithm": SM3_NAME},
                            "signature_algorithm": {"algorithm": SM2_WITH_SM3_NAME},
                        }
                    ],
                }
            ),
            # RFC 5035: binds the signer's certificate (SHA-256 of it, issuer and serial).
            cms.CMSAttribute({"type": "signing_certificate_v2", "values": [_signing_certificate_v2(leaf)]}),
            cms.CMSAttribute({"type": "message_digest", "values": [digest]}),
        ]
    )
    # A SET OF: asn1crypto writes the attributes sorted by their encodings (X.690 §11.6).
    return bytes(attributes.dump())


def _signing_certificate_v2(cert: asn1_x509.Certificate) -> tsp.SigningCertificateV2:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(cert.dump())
    return tsp.SigningCertificateV2(
        {
            "certs": [
                {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "cert_hash": digest.finalize(),
                    "issuer_serial": {
                        "issuer": [asn1_x509.GeneralName({"directory_name": cert.issuer})],
                        "serial_number": cert.serial_number,
                    },
                }
            ]
        }
    )


def _build_signed_data(
    chain_der: tuple[bytes, ...],
    tagged_attributes: bytes,
    signature: bytes,
    timestamp: bytes | None = None,
    content: tuple[str, bytes] | None = None,
    signer_der: bytes | None = None,
) -> bytes:
    leaf = asn1_x509.Certificate.load(signer_der or chain_der[0])
    sm3 = algos.DigestAlgorithm({"algorithm": SM3_NAME})  # no parameters, as pyHanko writes it
    unsigned = {}
    if timestamp is not None:
        token = cms.ContentInfo.load(timestamp)
        unsigned["unsigned_attrs"] = [{"type": SIGNATURE_TIME_STAMP_TOKEN, "values": [token]}]
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": {"issuer_and_serial_number": {"issuer": leaf.issuer, "serial_number": leaf.serial_number}},
            "digest_algorithm": sm3,
            "signed_attrs": cms.CMSAttributes.load(tagged_attributes, implicit=0),
            "signature_algorithm": {"algorithm": SM2_WITH_SM3_NAME},
            "signature": signature,
            **unsigned,
        }
    )
    if content is None:
        encapsulated: dict[str, object] = {"content_type": "data"}
    else:  # RFC 5652 §5.3: version 3 when the content is not id-data
        encapsulated = {"content_type": content[0], "content": cms.ParsableOctetString(content[1])}
    fields: dict[str, object] = {
        "version": "v1" if content is None else "v3",
        "digest_algorithms": [sm3],
        "encap_content_info": encapsulated,
        "signer_infos": [signer_info],
    }
    if chain_der:
        # A SET OF: asn1crypto writes the certificates in DER order (X.690 §11.6), as pyHanko does.
        fields["certificates"] = [cms.CertificateChoices.load(der) for der in chain_der]
    signed = cms.SignedData(fields)
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump())
