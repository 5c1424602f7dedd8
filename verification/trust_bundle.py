"""Reading a trust bundle offline: everything in it is checked against what the verifier pinned out
of band, the root certificate and the authority's code (USCC): the branch certificate against the
root, the service certificate and the CRL against the branch, the service certificate's code against
the pinned one (a department's seal certificate comes from the same branch and must not pass as the
service that signs show tokens), and the bundle's CMS signature against the service certificate.
It yields the TrustAnchors for `verify_sealed_file` and the service certificate for show tokens."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from asn1crypto import cms

from keys.crl import Crl
from keys.errors import KeysError
from keys.sm2 import sm3
from keys.x509 import Certificate
from verification.trust import TrustAnchors

__all__ = ["BUNDLE_FORMAT", "TrustBundleError", "canonical", "load_trust_bundle"]

BUNDLE_FORMAT = "ecas-trust-bundle/1"
_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_SIGNED_FIELDS = ("format", "issued_at", "base_url", "root", "branch", "service", "crl", "crl_next_update")


class TrustBundleError(ValueError):
    """The bundle is malformed, not from the pinned root, or its signature does not verify."""


@dataclass(frozen=True)
class TrustBundle:
    anchors: TrustAnchors
    service: Certificate  # signs show tokens
    issued_at: dt.datetime
    base_url: str


def canonical(body: dict[str, Any]) -> bytes:
    """What the bundle signature covers: the signed fields as compact, key-sorted UTF-8 JSON."""
    return json.dumps(
        {k: body.get(k) for k in _SIGNED_FIELDS}, ensure_ascii=False, sort_keys=True, separators=(",", ":")
    ).encode()


def load_trust_bundle(data: bytes, pinned_root: Certificate, authority_uscc: str, now: dt.datetime) -> TrustBundle:
    try:
        body = json.loads(data)
        if not isinstance(body, dict) or body.get("format") != BUNDLE_FORMAT:
            raise TrustBundleError(f"不是 {BUNDLE_FORMAT} 格式的信任包")
        root = Certificate.load(body["root"].encode())
        branch = Certificate.load(body["branch"].encode())
        service = Certificate.load(body["service"].encode())
        crl = Crl.load(base64.b64decode(body["crl"], validate=True))
        signature = base64.b64decode(body["signature"], validate=True)
        issued_at = dt.datetime.fromisoformat(body["issued_at"])
    except (KeyError, TypeError, AttributeError, ValueError, binascii.Error, KeysError) as exc:
        if isinstance(exc, TrustBundleError):
            raise
        raise TrustBundleError(f"信任包格式错误：{exc}") from None
    if root.der != pinned_root.der:
        raise TrustBundleError("信任包中的根证书不是预置的根证书")
    try:
        branch.check_issued_by(root, now)
        service.check_issued_by(branch, now)
    except KeysError as exc:
        raise TrustBundleError(f"信任包中的证书链无效：{exc}") from None
    if service.uscc != authority_uscc:
        raise TrustBundleError(f"信任包的签名证书不属于预置的机构（{authority_uscc}）")
    if not crl.signature_valid(branch.public_key):
        raise TrustBundleError("信任包中的 CRL 签名无效")
    _check_signature(signature, canonical(body), service)
    return TrustBundle(TrustAnchors((root,), (branch,), (crl,)), service, issued_at, str(body.get("base_url")))


def _check_signature(signature_der: bytes, content: bytes, service: Certificate) -> None:
    try:
        signed = cms.ContentInfo.load(signature_der)["content"]
        [signer_info] = signed["signer_infos"]
        attributes = signer_info["signed_attrs"]
        digest = next(a["values"][0].native for a in attributes if a["type"].dotted == _MESSAGE_DIGEST)
        value = bytes(signer_info["signature"].native)
        der = b"\x31" + attributes.dump()[1:]  # RFC 5652 §5.4: signed as a SET OF
    except (ValueError, KeyError, TypeError, StopIteration) as exc:
        raise TrustBundleError(f"信任包签名无法解析：{type(exc).__name__}") from None
    if digest != sm3(content):
        raise TrustBundleError("信任包内容已被改动：与签名的摘要不符")
    if not service.public_key.verify(value, der):
        raise TrustBundleError("信任包签名无效")
