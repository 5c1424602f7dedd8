"""Signed requests between a city and the province: the request body is signed as it travels, with
a detached CMS SignedData (RFC 5652; SM3, SM2-with-SM3, GM/T 0010) by the city authority's service
key, sent base64 in the `X-Ecas-Signature` header. The SignedData is the one the trust bundle uses
(`seals.signed_data`), so any CMS reader with SM2 can check it: the messageDigest attribute is the
SM3 of the body, the signature is SM2 over DER(signedAttrs) with the default ID."""

from __future__ import annotations

import base64
import binascii
import datetime as dt

from asn1crypto import cms

from keys.signer import Signer
from keys.sm2 import sm3
from keys.x509 import Certificate
from seals.signed_data import signed_attributes, signed_data

SIGNATURE_HEADER = "X-Ecas-Signature"
_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"


class SignatureInvalid(ValueError):
    """The signature is missing, malformed, over other bytes, or not by the expected key."""


def sign_body(signer: Signer, body: bytes, now: dt.datetime) -> str:
    """The header value: base64 of the DER ContentInfo over `body`."""
    (leaf, *_rest) = signer.certificate_chain
    attributes = signed_attributes(sm3(body), now, leaf.der)
    return base64.b64encode(signed_data(signer.certificate_chain, attributes, signer.sign(attributes))).decode()


def check_body_signature(header: str | None, body: bytes, certificate: Certificate) -> None:
    """SignatureInvalid unless `header` is a signature of `body` by `certificate`'s key."""
    if not header:
        raise SignatureInvalid(f"缺少签名（{SIGNATURE_HEADER} 请求头）")
    try:
        signed = cms.ContentInfo.load(base64.b64decode(header, validate=True))["content"]
        [signer_info] = signed["signer_infos"]
        attributes = signer_info["signed_attrs"]
        digest = next(a["values"][0].native for a in attributes if a["type"].dotted == _MESSAGE_DIGEST)
        value = bytes(signer_info["signature"].native)
        der = b"\x31" + attributes.dump()[1:]  # RFC 5652 §5.4: signed as a SET OF
    except (ValueError, KeyError, TypeError, StopIteration, binascii.Error) as exc:
        raise SignatureInvalid(f"签名无法解析：{type(exc).__name__}") from None
    if digest != sm3(body):
        raise SignatureInvalid("请求内容与签名的摘要不符（内容已被改动）")
    if not certificate.public_key.verify(value, der):
        raise SignatureInvalid("签名无效：不是该城市登记的服务证书所签")
