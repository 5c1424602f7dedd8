"""A verification report as the counter reads it: a big verdict, the reason in plain Chinese (library
text, field keys and standard numbers go to a details line), what was checked (licence, holder,
issuer, validity), the disclosed face data under their labels, and a checklist that agrees with the
verdict. Every time is in the service's time zone, in one format."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from cert_authority.errors import ServiceError
from cert_authority.issuing.schemas import STATUS_NAMES, LicencePublic
from cert_authority.registry.service import RegistryService
from cert_authority.timeutil import BEIJING
from cert_authority.web.common import local_time
from keys.errors import InvalidCodeError
from templates.identifier import LicenceIdentifier
from templates.spec import FieldType
from verification.report import Report

WORDS = {"VALID": "核验通过", "INVALID": "核验不通过", "INDETERMINATE": "无法确认"}
KINDS = {"show_token": "亮证码", "identifier": "证照标识", "file": "盖章文件"}
PASSED = {  # what a VALID result vouches for, per kind of check
    "show_token": "亮证码由本机构签发且在有效期内，证照当前有效，本单位首次核验",
    "identifier": "证照真实，电子印章与文件完整，证照当前有效",
    "file": "电子印章有效、文件未被改动，是本机构登记的证照且当前有效",
}
# The main line for a clerk, by the deciding check's reason (the library's own text goes to details).
PLAIN = {
    "digest_mismatch": "文件内容在盖章后被改动过，不能作为有效证照",
    "modified_after_signing": "文件在盖章后又被追加修改，不能作为有效证照",
    "unprotected_parts": "文件中有不受电子印章保护的内容，不能作为有效证照",
    "missing_part": "文件不完整，缺少盖章时的内容，不能作为有效证照",
    "malformed_file": "文件已损坏或不完整，无法核验，请让持证人重新提供原文件",
    "unknown_format": "这不是 PDF 或 OFD 格式的证照文件",
    "no_signature": "文件上没有电子印章",
    "malformed_signature": "电子印章数据已损坏，无法核验",
    "bad_signature": "电子印章的签名不正确，文件可能是伪造的",
    "unsupported_algorithm": "文件使用了本系统不支持的签章方式，无法确认",
    "no_signer_certificate": "电子印章缺少签章人证书，无法核验",
    "no_signing_time": "电子印章缺少签章时间，无法核验",
    "untrusted_signer": "签章单位的证书不是本系统认可的机构签发的",
    "certificate_revoked": "签章单位的证书在盖章前已被吊销",
    "revoked_after_signing": "签章单位的证书在盖章后被吊销，请向颁证部门确认",
    "crl_expired": "暂时无法确认签章单位的证书是否被吊销，请稍后再试",
    "crl_invalid": "暂时无法确认签章单位的证书是否被吊销，请稍后再试",
    "revocation_unknown": "暂时无法确认签章单位的证书是否被吊销，请稍后再试",
    "bad_seal_signature": "电子印章本身无效（制章签名不正确）",
    "malformed_seal": "电子印章数据已损坏，无法核验",
    "seal_mismatch": "电子印章与签章单位的证书不对应",
    "seal_not_valid": "电子印章不在有效期内",
    "signer_not_in_seal": "签章单位的证书不属于这枚电子印章",
    "bad_maker_chain": "电子印章的制作单位不被认可",
    "untrusted_maker": "电子印章的制作单位不被认可",
    "record_mismatch": "证照库中的记录与文件不一致，请联系颁证部门",
    "stored_file_damaged": "证照库中的文件已损坏，请联系颁证部门",
    "malformed_identifier": "无法识别：不是亮证码、证照二维码、证照标识或用证码",
    "bad_check_character": "证照标识的校验位不对，可能输错或扫错了一位，请重新扫描",
    "not_found": "本机构没有这份证照",
    "malformed_token": "无法识别的亮证码，请重新扫描",
    "unknown_key": "亮证码不是本机构签发的，可能是伪造的",
    "expired": "亮证码已过期，请持证人在手机上刷新后重新出示",
    "not_yet_valid": "亮证码尚未生效（手机时间可能不准），请持证人刷新后重新出示",
}
PLAIN_BY_CHECK = {("token", "bad_signature"): "亮证码的签名不正确，可能是伪造或改动过的亮证码"}
SEAL_CHECKS = ("signature", "seal", "chain", "revocation", "maker_chain")
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
# A UTC time in a library message ("2026-12-05 18:44Z", "15:03:01Z"): shown in local time instead.
UTC_TIME = re.compile(r"(?:(\d{4}-\d{2}-\d{2}) )?(\d{2}:\d{2}(?::\d{2})?)Z")
TECHNICAL = re.compile(r"（[^）]*[A-Za-z][^）]*）")  # a parenthesis holding library or standard text


@dataclass(frozen=True)
class Verdict:
    result: str  # VALID, INVALID, INDETERMINATE: also the card's colour
    word: str
    message: str  # plain Chinese for the clerk
    details: str  # the technical text behind it (library messages, standard numbers), may be empty
    kind: str
    facts: list[tuple[str, str]]
    face: list[tuple[str, str]]
    signers: list[str]
    checks: list[dict[str, str]]  # mark (✓ ✗ ? –), tone (ok bad warn moot) and message, failures first
    checked_at: str
    photo: str = ""  # SM3 of the holder's photo, for a personal licence whose show code was accepted


def with_licence(found: Verdict, licence: LicencePublic | None) -> Verdict:
    """A show code's verdict completed from the licence record: its status and issuer, and, when the
    code was accepted, the holder's photo (the show screen shows it too: the clerk compares faces)."""
    if licence is None:
        return found
    facts = [fact for fact in found.facts if fact[0] not in ("证照状态", "颁证部门")]
    at = next((i + 1 for i, (label, _) in enumerate(facts) if label == "持证人"), len(facts))
    facts[at:at] = [("颁证部门", licence.issuer.name), ("证照状态", STATUS_NAMES.get(licence.status, licence.status))]
    photo = (licence.photo_sm3 or "") if found.result == "VALID" else ""
    return dataclasses.replace(found, facts=facts, photo=photo)


def verdict(report: Report, registry: RegistryService, zone: dt.tzinfo = BEIJING) -> Verdict:
    data = report.to_dict()
    subject: dict[str, Any] = data["subject"]
    now = report.checked_at or dt.datetime.now(dt.UTC)
    facts = [(label, _shown(key, subject[key], zone)) for key, label in SUBJECT_LABELS if subject.get(key)]
    signers = [
        f"{s.get('seal_name') or s.get('signer') or '未知印章'}（{local_time(s['signing_time'], zone)}）"
        if s.get("signing_time")
        else str(s.get("seal_name") or s.get("signer") or "未知印章")
        for s in subject.get("signatures", [])
    ]
    message, details = _plain(report, subject, zone, now)
    return Verdict(
        result=data["result"],
        word=WORDS[data["result"]],
        message=message,
        details=details,
        kind=KINDS.get(subject.get("kind", ""), ""),
        facts=facts,
        face=_labelled_face(data["face_data"] or {}, subject.get("identifier"), registry),
        signers=signers,
        checks=_checklist(report, zone, now),
        checked_at=local_time(report.checked_at, zone),
    )


def _plain(report: Report, subject: dict[str, Any], zone: dt.tzinfo, now: dt.datetime) -> tuple[str, str]:
    """(main line, details line) for the clerk."""
    deciding = report.deciding
    if deciding is None:
        return PASSED.get(subject.get("kind", ""), localise(report.message, zone, now)), ""
    technical = localise(deciding.message, zone, now)
    plain = PLAIN_BY_CHECK.get((deciding.name, deciding.reason)) or PLAIN.get(deciding.reason)
    if plain is None:  # our own plain text already (a licence's status, a replay): keep it, minus library text
        plain = TECHNICAL.sub("", technical).strip() or technical
    if deciding.reason == "expired" and subject.get("expires_at"):
        technical = f"亮证码有效至 {local_time(subject['expires_at'], zone)}"
    return plain, "" if technical == plain else technical


def _checklist(report: Report, zone: dt.tzinfo, now: dt.datetime) -> list[dict[str, str]]:
    """The checks, failures first. A check that passed under a verdict that did not is not ticked:
    it did not make the licence valid (a good SM2 signature over content changed afterwards proves
    nothing about this file)."""
    valid = report.deciding is None
    changed = any(c.name in ("integrity", "file") and c.status.value == "INVALID" for c in report.checks)
    rows = []
    for check in report.checks:
        message = localise(check.message, zone, now)
        if check.status.value == "INVALID":
            mark, tone = "✗", "bad"
        elif check.status.value == "INDETERMINATE":
            mark, tone = "?", "warn"
        elif valid:
            mark, tone = "✓", "ok"
        else:
            mark, tone = "–", "moot"
            if changed and check.name in SEAL_CHECKS:
                message += "；但文件内容已被改动，此项不能证明这份文件"
        rows.append({"mark": mark, "tone": tone, "message": message, "status": check.status.value})
    order = {"bad": 0, "warn": 1, "ok": 2, "moot": 2}
    return sorted(rows, key=lambda row: order[row["tone"]])


def localise(text: str, zone: dt.tzinfo, now: dt.datetime) -> str:
    """Library text states UTC times ("…Z"); a person reads them in the service's time zone. A time
    without a date is taken on the UTC day that puts it nearest to `now`."""

    def local(found: re.Match[str]) -> str:
        day, clock = found.group(1), found.group(2)
        if len(clock) == 5:
            clock += ":00"
        if day:
            moment = dt.datetime.fromisoformat(f"{day}T{clock}+00:00")
        else:
            base = now.astimezone(dt.UTC).date()
            candidates = [
                dt.datetime.fromisoformat(f"{base + dt.timedelta(days=shift)}T{clock}+00:00") for shift in (-1, 0, 1)
            ]
            moment = min(candidates, key=lambda c: abs(c - now))
        return local_time(moment, zone)

    return UTC_TIME.sub(local, text)


def _shown(key: str, value: Any, zone: dt.tzinfo) -> str:
    if key == "status":
        return STATUS_NAMES.get(value, str(value))
    if key == "expires_at":
        return local_time(value, zone)
    return str(value)


def _labelled_face(face: dict[str, str], identifier: str | None, registry: RegistryService) -> list[tuple[str, str]]:
    """Face data under the type's labels, in the type's order (keys as they are if the type is unknown)."""
    labels: dict[str, str] = {}
    photos: set[str] = set()  # a photo field's value is its file's digest: the picture is shown instead
    try:
        if identifier:
            spec = registry.type_spec(LicenceIdentifier.parse(identifier).type_code)
            labels = {f.key: f.label for f in spec.fields}
            photos = {f.key for f in spec.fields if f.type is FieldType.PHOTO}
    except (InvalidCodeError, ServiceError):
        pass
    ordered = [key for key in labels if key in face and key not in photos]
    ordered += [key for key in face if key not in labels]
    return [(labels.get(key, key), str(face[key])) for key in ordered]
