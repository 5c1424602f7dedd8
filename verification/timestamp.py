"""A time-stamp token over a signature (PAdES B-T's signature-time-stamp, GB/T 38540's timeStamp)
checked: it is a TSTInfo token whose imprint is the hash of this signature value, its signed
digest matches the TSTInfo, the TSA's SM2 signature verifies, the TSA certificate is for
time-stamping only (critical id-kp-timeStamping, RFC 3161 §2.3) and chains to the trusted branch
CA and root at the token's time, and the CRL does not show it revoked by then.

A valid token gives the time the signature is proven to have existed by (genTime): the time
`sealed_file` checks the signer's certificate at, instead of the signer's own claim."""

from __future__ import annotations

from keys.errors import KeysError
from seals.errors import SealInputError
from seals.timestamp import TimeStampToken, parse_token
from verification.report import Check, shown_time
from verification.trust import TrustAnchors, issuer_of

__all__ = ["TIME_STAMPING", "check_timestamp"]

TIME_STAMPING = "1.3.6.1.5.5.7.3.8"  # id-kp-timeStamping


def check_timestamp(
    token_der: bytes, signature_value: bytes, anchors: TrustAnchors
) -> tuple[Check, TimeStampToken | None]:
    """The check, and the token when it can be relied on (VALID); None otherwise."""
    try:
        token = parse_token(token_der)
    except SealInputError as exc:
        return Check.invalid("timestamp", "malformed_timestamp", str(exc)), None
    if not token.imprint_matches(signature_value):
        return Check.invalid("timestamp", "timestamp_mismatch", "时间戳不是对本签章签名值签发的（摘要不符）"), None
    if not token.content_digest_matches():
        return Check.invalid("timestamp", "bad_timestamp", "时间戳内容已被改动：与时间戳签名的摘要不符"), None
    tsa = token.signer
    if tsa is None:
        return Check.unknown("timestamp", "no_tsa_certificate", "时间戳中没有时间戳服务证书，无法校验"), None
    if not token.signature_valid():
        return Check.invalid("timestamp", "bad_timestamp_signature", "时间戳的 SM2 签名无效"), None
    if tsa.extended_key_usage != ({TIME_STAMPING}, True):
        return Check.invalid(
            "timestamp", "not_a_tsa", f"时间戳签发者（{tsa.common_name}）的证书不是时间戳服务证书（RFC 3161 §2.3）"
        ), None
    when = token.gen_time
    branch = issuer_of(tsa, anchors)
    root = issuer_of(branch, anchors) if branch is not None and branch not in anchors.roots else None
    if branch is None or root is None or root not in anchors.roots:
        return Check.unknown(
            "timestamp", "untrusted_tsa", f"时间戳服务（{tsa.common_name}）不是本机构信任的CA签发的"
        ), None
    try:
        tsa.check_issued_by(branch, when)
        branch.check_issued_by(root, when)
    except KeysError as exc:
        return Check.invalid("timestamp", "bad_tsa_chain", f"时间戳服务证书链校验失败：{exc}"), None
    crl = next((c for c in anchors.crls if c.issuer.dump() == branch.subject.dump()), None)
    entry = crl.entry(tsa.serial) if crl is not None and crl.signature_valid(branch.public_key) else None
    if entry is not None and entry.revoked_at <= when:
        return Check.invalid(
            "timestamp", "tsa_revoked", f"时间戳服务证书在 {shown_time(entry.revoked_at)} 已被吊销，时间戳不可信"
        ), None
    return Check.ok(
        "timestamp", f"可信时间戳：{shown_time(when)}（{tsa.common_name}，序列号 {token.serial:X}）"
    ), token
