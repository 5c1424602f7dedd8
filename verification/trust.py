"""Trust in a signer certificate: a chain to the configured anchors (seal certificate → branch CA
→ root) valid at signing time, and its revocation status from the branch CA's CRL. A revoked seal
certificate is never VALID: revoked before signing is INVALID; revoked after signing is
INDETERMINATE (without a trusted timestamp the signing time is only the signer's claim); with
one (`verification.timestamp`), revoked after the timestamp's time is VALID, with a note."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from keys.crl import Crl, reason_text
from keys.errors import KeysError
from keys.ocsp import parse_ocsp_response
from keys.oids import SM2_SIGN, SM2_WITH_SM3
from keys.x509 import Certificate
from verification.report import Check, shown_time

__all__ = ["TrustAnchors"]

_SM2_SIGNATURES = {SM2_WITH_SM3, SM2_SIGN}


@dataclass(frozen=True)
class TrustAnchors:
    roots: tuple[Certificate, ...]
    intermediates: tuple[Certificate, ...]  # branch CAs, each checked against a root
    crls: tuple[Crl, ...] = ()  # current CRLs of the intermediates


def issuer_of(certificate: Certificate, anchors: TrustAnchors) -> Certificate | None:
    """The anchor named as the certificate's issuer, with the key it names (another authority
    may well use the same names)."""
    wanted = certificate.authority_key_identifier
    for candidate in (*anchors.intermediates, *anchors.roots):
        if candidate.subject.dump() != certificate.issuer.dump():
            continue
        if wanted is None or candidate.key_identifier is None or wanted == candidate.key_identifier:
            return candidate
    return None


def check_chain(signer: Certificate, anchors: TrustAnchors, when: dt.datetime) -> Check:
    """signer → intermediate → root, each signature and validity period at `when`."""
    issuer = issuer_of(signer, anchors)
    if issuer is None or issuer in anchors.roots:  # seal certificates come from a branch CA
        return Check.invalid(
            "chain", "untrusted_signer", f"签章人证书（{signer.common_name}）不是本机构信任的分中心CA签发的"
        )
    root = issuer_of(issuer, anchors)
    if root is None or root not in anchors.roots:
        return Check.invalid("chain", "untrusted_signer", f"分中心CA（{issuer.common_name}）不在信任的根CA之下")
    try:
        signer.check_issued_by(issuer, when)
        issuer.check_issued_by(root, when)
    except KeysError as exc:
        expired = signer.not_after < when or signer.not_before > when
        reason = "certificate_expired" if expired else "bad_chain"
        return Check.invalid("chain", reason, f"证书链校验失败：{exc}")
    return Check.ok("chain", f"证书链有效：{signer.common_name} → {issuer.common_name} → {root.common_name}")


def check_revocation(
    signer: Certificate,
    anchors: TrustAnchors,
    signing_time: dt.datetime,
    now: dt.datetime,
    *,
    timestamped: bool = False,
) -> Check:
    """The signer's status in the issuer's CRL at `signing_time`. With `timestamped` (the time is
    a trusted timestamp's, not the signer's claim) a revocation after it leaves the seal valid."""
    issuer = issuer_of(signer, anchors)
    crl = next((c for c in anchors.crls if issuer is not None and c.issuer.dump() == issuer.subject.dump()), None)
    if issuer is None or crl is None:
        return Check.unknown("revocation", "revocation_unknown", "没有签章人证书签发者的CRL，无法确认证书未被吊销")
    if not crl.signature_valid(issuer.public_key):
        return Check.unknown("revocation", "crl_invalid", "CRL 的签名无效，无法确认吊销状态")
    if crl.next_update is not None and crl.next_update < now:
        return Check.unknown("revocation", "crl_expired", "CRL 已过期，无法确认吊销状态")
    entry = crl.entry(signer.serial)
    if entry is None:
        return Check.ok("revocation", f"签章人证书未被吊销（CRL {shown_time(crl.this_update, seconds=False)}）")
    when = f"{shown_time(entry.revoked_at)}（{reason_text(entry.reason)}）"
    if entry.revoked_at <= signing_time:
        before = "时间戳时间" if timestamped else "签章"
        return Check.invalid("revocation", "certificate_revoked", f"签章人证书在{before}前已被吊销：{when}")
    if timestamped:
        return Check.ok("revocation", f"签章人证书在时间戳之后被吊销：{when}；可信时间戳证明签章在吊销前完成，签章有效")
    return Check.unknown("revocation", "revoked_after_signing", f"签章人证书在签章后被吊销：{when}")


# How long before the trusted time the embedded status may have been taken: issuance asks its CA
# once per chunk of licences, just before sealing them (seconds before the timestamp).
EVIDENCE_WINDOW = dt.timedelta(minutes=10)


def check_embedded_revocation(
    signer: Certificate, anchors: TrustAnchors, when: dt.datetime, responses: tuple[bytes, ...]
) -> Check | None:
    """The signer's status at `when` (a trusted timestamp's time) from OCSP responses kept in the
    file: signed by the signer's CA (by its own key, as our branch answers), about this serial, taken
    at most EVIDENCE_WINDOW before `when` and not after it. None when none of them says."""
    issuer = issuer_of(signer, anchors)
    if issuer is None:
        return None
    for der in responses:
        try:
            result = parse_ocsp_response(der)
        except KeysError:
            continue
        status = result.statuses.get(signer.serial)
        if (
            result.status != "successful"
            or status is None
            or result.signature_algorithm not in _SM2_SIGNATURES
            or result.signature is None
            or result.tbs_response_data is None
            or result.this_update is None
            or not issuer.public_key.verify(result.signature, result.tbs_response_data)
        ):
            continue
        taken = shown_time(result.this_update)
        if status.state == "revoked" and status.revoked_at is not None and status.revoked_at <= when:
            return Check.invalid(
                "revocation", "certificate_revoked", f"文件内嵌的 OCSP 应答（{taken}）表明证书在签章前已被吊销"
            )
        if status.state == "good" and when - EVIDENCE_WINDOW <= result.this_update <= when:
            return Check.ok(
                "revocation", f"文件内嵌的签章时吊销状态（{issuer.common_name} 的 OCSP 应答，{taken}）：证书未被吊销"
            )
    return None
