"""`verify_sealed_file`: a sealed PDF or OFD, checked by itself (integrity, signature, e-seal) and
against the trust anchors (chain at signing time, revocation). What the registry knows about the
licence is added by the caller that has the registry (cert_authority)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from verification.evidence import FileInspection, SignatureEvidence
from verification.ofd_file import inspect_ofd
from verification.pdf_file import inspect_pdf
from verification.report import Check, Report, Status
from verification.timestamp import check_timestamp
from verification.trust import TrustAnchors, check_chain, check_embedded_revocation, check_revocation

__all__ = ["verify_sealed_file"]


def file_format(data: bytes) -> str | None:
    if data[:5] == b"%PDF-":
        return "pdf"
    if data[:4] == b"PK\x03\x04":
        return "ofd"
    return None


def inspect_file(data: bytes) -> FileInspection | None:
    fmt = file_format(data)
    if fmt is None:
        return None
    return inspect_pdf(data) if fmt == "pdf" else inspect_ofd(data)


def verify_sealed_file(data: bytes, anchors: TrustAnchors, now: dt.datetime) -> tuple[Report, FileInspection | None]:
    inspection = inspect_file(data)
    if inspection is None:
        unknown = Check.invalid("file", "unknown_format", "不是 PDF 或 OFD 文件")
        return Report((unknown,), {"kind": "file"}, checked_at=now), None
    checks = list(inspection.checks)
    subject: dict[str, Any] = {"kind": "file", "format": inspection.format, "signatures": []}
    for evidence in inspection.signatures:
        checks += evidence.checks
        checks += _trust(evidence, anchors, now)
        subject["signatures"].append(_describe(evidence))
    return Report(tuple(checks), subject, checked_at=now), inspection


def _trust(evidence: SignatureEvidence, anchors: TrustAnchors, now: dt.datetime) -> list[Check]:
    if evidence.signer is None:
        return []
    if evidence.timestamp is not None and evidence.signature_value is not None:
        stamped, token = check_timestamp(evidence.timestamp, evidence.signature_value, anchors)
        if token is not None:  # the certificate as it stood at the proven time
            revocation = check_revocation(evidence.signer, anchors, token.gen_time, now, timestamped=True)
            if revocation.status is Status.INDETERMINATE:  # no usable CRL at hand (offline, expired)
                embedded = check_embedded_revocation(evidence.signer, anchors, token.gen_time, evidence.embedded_ocsp)
                revocation = embedded or revocation
            return [stamped, check_chain(evidence.signer, anchors, token.gen_time), revocation]
        return [stamped, *_claimed(evidence, anchors, now)]
    return _claimed(evidence, anchors, now)


def _claimed(evidence: SignatureEvidence, anchors: TrustAnchors, now: dt.datetime) -> list[Check]:
    """Without a trusted timestamp: the chain and revocation at the signer's own signing time."""
    assert evidence.signer is not None
    when = evidence.signing_time or now
    if evidence.signing_time is None:
        missing = Check.unknown("signature", "no_signing_time", "签章没有签章时间，按当前时间校验证书")
        return [
            missing,
            check_chain(evidence.signer, anchors, when),
            check_revocation(evidence.signer, anchors, when, now),
        ]
    return [check_chain(evidence.signer, anchors, when), check_revocation(evidence.signer, anchors, when, now)]


def _describe(evidence: SignatureEvidence) -> dict[str, Any]:
    signer = evidence.signer
    seal = evidence.seal
    return {
        "signer": signer.common_name if signer else None,
        "signer_uscc": signer.uscc if signer else None,
        "certificate_serial": signer.serial_hex if signer else None,
        "signing_time": evidence.signing_time.isoformat() if evidence.signing_time else None,
        "seal_name": seal.name if seal else None,
        "seal_code": seal.es_id if seal else None,
        "covers_whole_file": evidence.covers_whole_file,
        "later_changes": evidence.later_changes,
        "certified": evidence.certified,
        "timestamped": evidence.timestamp is not None,
    }
