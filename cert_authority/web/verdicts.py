"""A verification report as the counter reads it: a big verdict, the reason in plain Chinese, what
was checked (licence, holder, issuer, validity) and the disclosed face data under their labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cert_authority.errors import ServiceError
from cert_authority.issuing.schemas import STATUS_NAMES
from cert_authority.registry.service import RegistryService
from cert_authority.web.common import local_time
from keys.errors import InvalidCodeError
from templates.identifier import LicenceIdentifier
from verification.report import Report

WORDS = {"VALID": "核验通过", "INVALID": "核验不通过", "INDETERMINATE": "无法确认"}
KINDS = {"show_token": "亮证码", "identifier": "证照标识", "file": "盖章文件"}
PASSED = {  # what a VALID result vouches for, per kind of check
    "show_token": "亮证码由本机构签发且在有效期内，证照当前有效，本单位首次核验",
    "identifier": "证照真实，电子印章与文件完整，证照当前有效",
    "file": "电子印章有效、文件未被改动，是本机构登记的证照且当前有效",
}
SUBJECT_LABELS = (
    ("name", "证照名称"),
    ("holder_name", "持证人"),
    ("licence_number", "证照编号"),
    ("issuer_name", "颁证部门"),
    ("original_issuer_name", "原颁证单位"),
    ("issue_date", "颁发日期"),
    ("valid_until", "有效期至"),
    ("status", "证照状态"),
    ("format", "文件格式"),
    ("expires_at", "亮证码有效至"),
    ("identifier", "证照标识"),
)


@dataclass(frozen=True)
class Verdict:
    result: str  # VALID, INVALID, INDETERMINATE: also the card's colour
    word: str
    message: str
    kind: str
    facts: list[tuple[str, str]]
    face: list[tuple[str, str]]
    signers: list[str]
    checks: list[dict[str, str]]
    checked_at: str


def verdict(report: Report, registry: RegistryService) -> Verdict:
    data = report.to_dict()
    subject: dict[str, Any] = data["subject"]
    facts = [(label, _shown(key, subject[key])) for key, label in SUBJECT_LABELS if subject.get(key)]
    signers = [
        f"{s.get('seal_name') or s.get('signer') or '未知印章'}（{local_time(s['signing_time'])}）"
        if s.get("signing_time")
        else str(s.get("seal_name") or s.get("signer") or "未知印章")
        for s in subject.get("signatures", [])
    ]
    return Verdict(
        result=data["result"],
        word=WORDS[data["result"]],
        message=PASSED.get(subject.get("kind", ""), data["message"]) if data["result"] == "VALID" else data["message"],
        kind=KINDS.get(subject.get("kind", ""), ""),
        facts=facts,
        face=_labelled_face(data["face_data"] or {}, subject.get("identifier"), registry),
        signers=signers,
        checks=data["checks"],
        checked_at=local_time(report.checked_at),
    )


def _shown(key: str, value: Any) -> str:
    if key == "status":
        return STATUS_NAMES.get(value, str(value))
    if key == "expires_at":
        return local_time(value)
    return str(value)


def _labelled_face(face: dict[str, str], identifier: str | None, registry: RegistryService) -> list[tuple[str, str]]:
    """Face data under the type's labels, in the type's order (keys as they are if the type is unknown)."""
    labels: dict[str, str] = {}
    try:
        if identifier:
            spec = registry.type_spec(LicenceIdentifier.parse(identifier).type_code)
            labels = {f.key: f.label for f in spec.fields}
    except (InvalidCodeError, ServiceError):
        pass
    ordered = [key for key in labels if key in face] + [key for key in face if key not in labels]
    return [(labels.get(key, key), str(face[key])) for key in ordered]
