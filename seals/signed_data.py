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

__all__ = ["signed_attributes", "signed_data"]

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


def signed_data(chain: Sequence[Certificate], attributes: bytes, signature: bytes) -> bytes:
    """DER ContentInfo holding the detached SignedData: the chain (signer's certificate first), one
    SignerInfo with `attributes` (the DER SET OF that was signed, from `signed_attributes`) and the
    DER SM2 `signature` over them."""
    return _signed_data(tuple(c.der for c in chain), bytes(attributes), bytes(signature))


def _signed_data(chain_der: tuple[bytes, ...], attributes: bytes, signature: bytes) -> bytes:
    # RFC 5652 §5.4: the signature covers the attributes as a SET OF (tag 0x31); the SignerInfo
    # carries the same content as [0] IMPLICIT (tag 0xA0).
    tagged = b"\xa0" + attributes[1:]
    key = ("signed_data", chain_der, len(attributes), len(signature))
    return SHAPES.encode(key, (tagged, signature), lambda: _build_signed_data(chain_der, tagged, signature))


@lru_cache(maxsize=16)
def reserved_length(chain_der: tuple[bytes, ...]) -> int:
    """Bytes to reserve for the DER SignedData of this chain: as long as it can get (the longest DER
    SM2 signature, a GeneralizedTime signing time), plus a margin. The attributes' length does not
    depend on their values otherwise (the digest is 32 bytes)."""
    attributes = signed_attributes(bytes(32), dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc), chain_der[0])
    return len(_signed_data(chain_der, attributes, bytes(SIGNATURE_MAX_DER))) + RESERVE_MARGIN


# --- asn1crypto ----------------------------------------------------------------------------------


def _build_signed_attributes(digest: bytes, time: cms.Time, leaf_der: bytes) -> bytes:
    leaf = asn1_x509.Certificate.load(leaf_der)
    attributes = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
            cms.CMSAttribute({"type": "signing_time", "values": [time]}),
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


def _build_signed_data(chain_der: tuple[bytes, ...], tagged_attributes: bytes, signature: bytes) -> bytes:
    leaf = asn1_x509.Certificate.load(chain_der[0])
    sm3 = algos.DigestAlgorithm({"algorithm": SM3_NAME})  # no parameters, as pyHanko writes it
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": {"issuer_and_serial_number": {"issuer": leaf.issuer, "serial_number": leaf.serial_number}},
            "digest_algorithm": sm3,
            "signed_attrs": cms.CMSAttributes.load(tagged_attributes, implicit=0),
            "signature_algorithm": {"algorithm": SM2_WITH_SM3_NAME},
            "signature": signature,
        }
    )
    content = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [sm3],
            "encap_content_info": {"content_type": "data"},
            # A SET OF: asn1crypto writes the certificates in DER order (X.690 §11.6), as pyHanko does.
            "certificates": [cms.CertificateChoices.load(der) for der in chain_der],
            "signer_infos": [signer_info],
        }
    )
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": content}).dump())
