"""An e-seal (GB/T 38540 SES_Seal) checked on its own: signed by the maker certificate it carries
(制章者), and that maker certified by a trusted root. Sealed OFD files check the first for the seal
inside every signature; filing a seal made elsewhere (the provincial seal platform) checks both.
Results are `Check` values, as everywhere in `verification`."""

from __future__ import annotations

import datetime as dt

from keys.errors import KeysError
from keys.x509 import Certificate
from seals.ses import Seal
from verification.report import Check
from verification.trust import TrustAnchors, issuer_of

__all__ = ["check_maker_chain", "check_seal_made", "seal_maker"]

MAX_MAKER_CHAIN = 4  # maker → up to three CAs → root


def seal_maker(seal: Seal) -> Certificate | None:
    """The maker's certificate the seal carries, or None when it does not parse."""
    try:
        return Certificate.load(seal.maker_certificate)
    except (KeysError, ValueError):
        return None


def check_seal_made(seal: Seal) -> Check:
    """The maker's SM2 signature over DER(SES_SealInfo) verifies with the certificate in the seal."""
    maker = seal_maker(seal)
    if maker is None:
        return Check.invalid("seal", "malformed_seal", "印章的制章者证书无法解析")
    if not maker.public_key.verify(seal.signature, seal.seal_info_der):
        return Check.invalid("seal", "bad_seal_signature", f"印章「{seal.name}」的制章签名无效")
    return Check.ok("seal", f"印章「{seal.name}」（{seal.es_id}）由制章者（{maker.common_name}）签名")


def check_maker_chain(maker: Certificate, anchors: TrustAnchors, when: dt.datetime) -> Check:
    """The maker's certificate → CA certificates (`anchors.intermediates`, each checked) → one of
    `anchors.roots`, every signature and validity period at `when`."""
    current = maker
    path = [maker.common_name]
    for _ in range(MAX_MAKER_CHAIN):
        if any(current.der == root.der for root in anchors.roots):
            return Check.ok("maker_chain", "制章者证书链有效：" + " → ".join(path))
        issuer = issuer_of(current, anchors)
        if issuer is None:
            return Check.invalid(
                "maker_chain",
                "untrusted_maker",
                f"制章者证书（{maker.common_name}）不能链接到信任的根CA：找不到“{current.common_name}”的签发者",
            )
        try:
            current.check_issued_by(issuer, when)
        except KeysError as exc:
            return Check.invalid("maker_chain", "bad_maker_chain", f"制章者证书链校验失败：{exc}")
        current = issuer
        path.append(current.common_name)
    if any(current.der == root.der for root in anchors.roots):
        return Check.ok("maker_chain", "制章者证书链有效：" + " → ".join(path))
    return Check.invalid("maker_chain", "untrusted_maker", f"制章者证书（{maker.common_name}）的证书链过长或不可信")
