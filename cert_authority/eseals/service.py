"""Seal governance (电子印章备案): a department's e-seals, from application to filing and beyond.

An issuer (for its own department) or an administrator applies for a seal: its name must be the
department's registered name plus a purpose, its picture (uploaded, or the round red seal drawn
from the department's name) must not resemble another department's seal (`rules`), and the
legal representative is recorded. The application is `applied`: nothing is signed yet.

An administrator approves it (the filing proper): the branch CA issues the seal certificate for the
department, then signs, as seal maker (制章者), the GB/T 38540 SES_Seal that lists that
certificate, and the seal is `active`. Or the administrator rejects it, with a reason. A seal made
by the provincial seal platform is submitted as its SES_Seal (`imported`), checked, and filed the
same way. Administrators suspend and resume filed seals; a suspended seal seals nothing.

Revoking a seal revokes its certificate first (CRL re-issued, OCSP answers revoked at once), then
marks the seal revoked. A department issues licences with the seal it filed last that is active, inside
its validity, and whose certificate is neither revoked nor expired. Every step is audited in the
transaction that makes it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import sql, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from cert_authority.actors import (
    Actor,
    ensure_may_read_for,
    ensure_may_write_for,
    ensure_role,
    readable_department,
)
from cert_authority.errors import (
    ConfigError,
    ConflictError,
    InvalidRequestError,
    NoActiveSealError,
    NotFoundError,
    SealStatusError,
    StoredFileError,
)
from cert_authority.eseals.imported import check_imported_seal, listed_signer_serial, read_seal
from cert_authority.eseals.rules import ensure_picture_is_own, seal_purpose
from cert_authority.eseals.schemas import (
    FilingCertificate,
    FilingSeal,
    SealCreate,
    SealFiling,
    SealImport,
    SealPublic,
)
from cert_authority.pki.service import PkiService, revocation_reason
from cert_authority.store.audit import audit_row
from cert_authority.store.counters import next_values, seal_counter
from cert_authority.store.filestore import FileStore
from cert_authority.store.models import DepartmentRow, ExchangeEventRow, IssuedCertificateRow, SealRow
from cert_authority.store.outbox import outbox_event
from cert_authority.timestamping.authority import TimeStampAuthority
from cert_authority.timeutil import BEIJING, aware, utc_now
from keys.ca import years_later
from keys.errors import CAError, KeysError
from keys.signer import Signer
from keys.sm2 import sm3
from keys.x509 import Certificate
from seals.box import SealBox
from seals.errors import PictureError
from seals.ofd_seal import seal_ofd
from seals.pdf_seal import seal_pdf
from seals.picture import PictureFingerprint, generate_round_seal, load_seal_picture, picture_fingerprint
from seals.ses import make_seal
from templates.fonts import FontSet
from verification.trust import TrustAnchors

log = logging.getLogger("ecas.seals")

_SEALS = SealRow.__table__  # type: ignore[attr-defined]
_DEPARTMENTS = DepartmentRow.__table__  # type: ignore[attr-defined]
_CERTIFICATES = IssuedCertificateRow.__table__  # type: ignore[attr-defined]
_NOW: sql.elements.BindParameter[dt.datetime] = sql.bindparam("now")
# The seal a department issues with: the one filed (approved) last among those active and in date,
# with a live certificate.
_ACTIVE_SEAL = (
    sql.select(_SEALS.c.id)
    .join(_DEPARTMENTS, _SEALS.c.department_id == _DEPARTMENTS.c.id)
    .join(_CERTIFICATES, _SEALS.c.cert_serial == _CERTIFICATES.c.serial)
    .where(_DEPARTMENTS.c.uscc == sql.bindparam("uscc"))
    .where(_SEALS.c.status == "active")
    .where(_SEALS.c.valid_start <= _NOW, _SEALS.c.valid_end >= _NOW)
    .where(_CERTIFICATES.c.revoked_at.is_(None))
    .where(_CERTIFICATES.c.not_before <= _NOW, _CERTIFICATES.c.not_after >= _NOW)
    .order_by(_SEALS.c.decided_at.desc(), _SEALS.c.id.desc())
    .limit(1)
)
# Seals whose pictures another department's may not resemble: on applying, every seal but a
# rejected application; on approving, filed seals only (an application must not block another).
_PICTURE_OWNERS_ON_APPLY = ("applied", "active", "suspended", "revoked")
_PICTURE_OWNERS_ON_APPROVE = ("active", "suspended", "revoked")
_ACTION_NAMES = {"seal_reject": "驳回", "seal_suspend": "暂停使用", "seal_resume": "恢复使用"}
STATUS_NAMES = {
    "applied": "待审批",
    "active": "有效",
    "suspended": "暂停使用",
    "rejected": "已驳回",
    "revoked": "已吊销",
    "expired": "已过期",
}


@dataclass(frozen=True)
class SealMaterial:
    """Everything sealing a document with one seal needs: the seal, its picture, the signer."""

    seal_id: int
    name: str
    es_id: str
    seal_der: bytes  # DER SESeal
    picture_png: bytes
    signer: Signer  # the seal certificate's key, with its chain (seal, branch, root)
    signer_name: str  # the seal certificate's subject (签章人)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc)


def _optional(value: dt.datetime | None) -> dt.datetime | None:
    return aware(value) if value is not None else None


def _status(row: SealRow, now: dt.datetime) -> str:
    if row.status == "active" and row.valid_end is not None and aware(row.valid_end) < now:
        return "expired"
    return row.status


def _public(row: SealRow, department: DepartmentRow, now: dt.datetime) -> SealPublic:
    assert row.id is not None
    return SealPublic(
        id=row.id,
        department_uscc=department.uscc,
        department_name=department.name,
        es_id=row.es_id,
        name=row.name,
        seal_type=row.seal_type,
        purpose=row.purpose,
        legal_representative=row.legal_representative,
        origin=row.origin,
        cert_serial=row.cert_serial,
        seal_sm3=row.seal_sm3,
        picture_sm3=row.picture_sm3,
        width_mm=row.width_mm,
        height_mm=row.height_mm,
        requested_start=row.requested_start,
        requested_end=row.requested_end,
        valid_start=_optional(row.valid_start),
        valid_end=_optional(row.valid_end),
        status=_status(row, now),  # type: ignore[arg-type]
        decided_at=_optional(row.decided_at),
        decided_by=row.decided_by,
        decision_note=row.decision_note,
        suspended_at=_optional(row.suspended_at),
        suspension_reason=row.suspension_reason,
        revoked_at=_optional(row.revoked_at),
        revocation_reason=row.revocation_reason,
        revocation_note=row.revocation_note,
        created_at=aware(row.created_at),
        created_by=row.created_by,
    )


def _describe(seal: SealRow) -> str:
    return f"印章 {seal.id}（{seal.name}）"


class SealService:
    def __init__(
        self,
        engine: Engine,
        filestore: FileStore,
        pki: PkiService,
        fonts: Callable[[], FontSet],
        clock: Callable[[], dt.datetime] = utc_now,
        timestamps: TimeStampAuthority | None = None,
    ) -> None:
        self.engine = engine
        self.filestore = filestore
        self.pki = pki
        self.timestamps = timestamps  # a timestamp over every document sealed (when its clock is right)
        self._fonts = fonts
        self.clock = clock
        # Opening a key from the key store costs a PBKDF2 run (hundreds of ms): keep each seal's
        # signer once opened. Which seal is active is read from the database on every use.
        self._material: dict[int, SealMaterial] = {}
        self._lock = threading.Lock()

    # --- applying -------------------------------------------------------------------------------
    def apply(
        self, actor: Actor, data: SealCreate, picture: bytes | None = None, now: dt.datetime | None = None
    ) -> SealPublic:
        """Apply to file a seal for `data.department_uscc` (an issuer for its own department, or an
        administrator): name, picture and dates checked, the picture stored, the application
        recorded as `applied` and audited. Nothing is signed until an administrator approves it."""
        ensure_may_write_for(actor, data.department_uscc, "印章")
        now = _utc(now or self.clock()).replace(microsecond=0)
        department = self._issuing_department(data.department_uscc)
        purpose = seal_purpose(data.name, data.purpose, department, self._departments())
        if picture is not None:
            png, width_px, height_px = load_seal_picture(picture)
            width_mm = round(data.diameter_mm)
            height_mm = max(1, round(data.diameter_mm * height_px / width_px))
        else:
            png = generate_round_seal(department.name, data.purpose, data.diameter_mm, fonts=self._fonts())
            width_mm = height_mm = round(data.diameter_mm)
        self._check_requested_dates(data.valid_start, data.valid_end, now)
        fingerprint = picture_fingerprint(png)
        assert department.id is not None
        self._ensure_picture_is_own(fingerprint, department.id, _PICTURE_OWNERS_ON_APPLY)

        picture_sm3 = self.filestore.put(png)  # before the row: a row without its file is worse
        row = SealRow(
            department_id=department.id,
            name=data.name,
            seal_type=data.seal_type,
            purpose=data.purpose or purpose,
            legal_representative=data.legal_representative,
            origin="made",
            picture_sm3=picture_sm3,
            picture_fingerprint=fingerprint.to_text(),
            width_mm=width_mm,
            height_mm=height_mm,
            requested_start=data.valid_start,
            requested_end=data.valid_end,
            status="applied",
            created_at=now,
            created_by=actor.label,
        )
        detail = {"name": data.name, "legal_representative": data.legal_representative, "picture_sm3": picture_sm3}
        row = self._insert(row, audit_row(actor, "seal_apply", "seal:", now, detail=detail))
        log.info("seal %s applied for by %s for %s", row.id, actor.label, department.uscc)
        return _public(row, department, now)

    def import_seal(self, actor: Actor, data: SealImport, now: dt.datetime | None = None) -> SealPublic:
        """Submit a seal the provincial seal platform made (a DER SES_Seal) for filing: its maker's
        signature and certificate chain, the certificates it lists (this department's, one of them
        issued here with its key kept here), its name and picture are checked; then it waits, as
        `applied`, for an administrator's approval."""
        ensure_may_write_for(actor, data.department_uscc, "印章")
        now = _utc(now or self.clock()).replace(microsecond=0)
        department = self._issuing_department(data.department_uscc)
        try:
            der = base64.b64decode(data.seal, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequestError("seal：不是有效的 base64 编码") from None
        chain = self._maker_chain(data.maker_chain)
        with Session(self.engine) as session:
            checked = check_imported_seal(session, der, department, self._anchors(chain), now)
            seal = checked.seal
            if session.exec(select(SealRow.id).where(col(SealRow.es_id) == seal.es_id)).first() is not None:
                raise ConflictError(f"印章编码 {seal.es_id} 已备案")
        purpose = seal_purpose(seal.name, None, department, self._departments())
        fingerprint = picture_fingerprint(seal.picture.data)
        assert department.id is not None
        self._ensure_picture_is_own(fingerprint, department.id, _PICTURE_OWNERS_ON_APPLY)

        seal_sm3 = self.filestore.put(der)
        picture_sm3 = self.filestore.put(seal.picture.data)
        row = SealRow(
            department_id=department.id,
            name=seal.name,
            seal_type=seal.seal_type,
            purpose=purpose,
            legal_representative=data.legal_representative,
            origin="imported",
            seal_sm3=seal_sm3,
            picture_sm3=picture_sm3,
            picture_fingerprint=fingerprint.to_text(),
            width_mm=seal.picture.width_mm,
            height_mm=seal.picture.height_mm,
            valid_start=seal.valid_start,
            valid_end=seal.valid_end,
            status="applied",
            created_at=now,
            created_by=actor.label,
        )
        detail = {
            "name": seal.name,
            "es_id": seal.es_id,
            "maker": checked.maker.subject_text,
            "signer_certificate": checked.signer_serial,
            "seal_sm3": seal_sm3,
            "legal_representative": data.legal_representative,
        }
        row = self._insert(row, audit_row(actor, "seal_import", "seal:", now, detail=detail))
        log.info("seal %s (%s) submitted by %s for %s", row.id, seal.es_id, actor.label, department.uscc)
        return _public(row, department, now)

    # --- deciding (administrators) ---------------------------------------------------------------
    def approve(self, actor: Actor, seal_id: int, now: dt.datetime | None = None) -> SealPublic:
        """File an applied seal (备案): for a seal made here, the branch CA issues its certificate and
        signs the SES_Seal; a seal made elsewhere is checked again. The seal becomes active."""
        ensure_role(actor, "admin")
        now = _utc(now or self.clock()).replace(microsecond=0)
        with Session(self.engine) as session:
            seal, department = self._row(session, seal_id)
        if seal.status != "applied":
            raise SealStatusError(
                f"{_describe(seal)}{STATUS_NAMES.get(_status(seal, now), seal.status)}，不是待审批的申请"
            )
        # The rules again: departments and filed seals may have changed since the application.
        department = self._issuing_department(department.uscc)
        seal_purpose(seal.name, None, department, self._departments())
        assert department.id is not None
        self._ensure_picture_is_own(self._fingerprint(seal), department.id, _PICTURE_OWNERS_ON_APPROVE)
        if seal.origin == "imported":
            return self._approve_imported(actor, seal, department, now)
        return self._approve_made(actor, seal, department, now)

    def _approve_made(self, actor: Actor, seal: SealRow, department: DepartmentRow, now: dt.datetime) -> SealPublic:
        assert seal.id is not None
        requested_start, requested_end = self._requested_window(seal, now)
        (number,) = next_values(self.engine, [seal_counter(department.area_code)])
        es_id = f"{department.area_code}{number:010d}"
        certificate = self.pki.issue_seal_certificate(name=department.name, uscc=department.uscc, now=now)
        try:
            # Never before the certificate: the seal could not be used earlier anyway.
            start = _utc(max(requested_start or certificate.not_before, certificate.not_before))
            end = _utc(requested_end or certificate.not_after)
            seal_der = make_seal(
                self.pki.branch_ca.signer,
                es_id=es_id,
                name=seal.name,
                seal_type=seal.seal_type,
                signer_certificates=[certificate.der],
                picture_png=self.filestore.get(seal.picture_sm3),
                width_mm=seal.width_mm,
                height_mm=seal.height_mm,
                valid_start=start,
                valid_end=end,
                created=now,
            )
            # Files before the row: an unreferenced file is harmless, a row without its file is not.
            seal_sm3 = self.filestore.put(seal_der)
            filed = {
                "es_id": es_id,
                "cert_serial": certificate.serial_hex,
                "seal_sm3": seal_sm3,
                "valid_start": start.replace(microsecond=0),
                "valid_end": end.replace(microsecond=0),
            }
            detail = {"es_id": es_id, "name": seal.name, "cert_serial": certificate.serial_hex}
            self._file(actor, seal, filed, now, detail)
        except BaseException:
            # No seal will ever list this certificate: withdraw it, so no unused valid seal
            # certificate is left behind (a crash right here leaves one, bound to no seal).
            try:
                self.pki.revoke(certificate.serial, "cessationOfOperation", now)
            except Exception:  # the original error matters more
                log.exception("could not revoke unused seal certificate %s", certificate.serial_hex)
            raise
        log.info("seal %s filed for %s (certificate %s)", es_id, department.uscc, certificate.serial_hex)
        return self.get(actor, seal.id)

    def _approve_imported(self, actor: Actor, seal: SealRow, department: DepartmentRow, now: dt.datetime) -> SealPublic:
        """The maker's chain was checked when the seal was submitted; what may have changed since
        is checked again: the maker's signature (on the stored copy), the signer's certificate
        (revoked, expired), the seal's validity, and whether its code or certificate was filed."""
        assert seal.id is not None and seal.seal_sm3 is not None
        parsed = read_seal(self.filestore.get(seal.seal_sm3))
        with Session(self.engine) as session:
            signer_serial = listed_signer_serial(session, parsed, department, now)
        if parsed.valid_end <= now:
            raise InvalidRequestError(f"印章已于 {parsed.valid_end:%Y-%m-%d} 过期，不能备案，请驳回")
        filed = {
            "es_id": parsed.es_id,
            "cert_serial": signer_serial,
            "valid_start": parsed.valid_start,
            "valid_end": parsed.valid_end,
        }
        detail = {"es_id": parsed.es_id, "name": seal.name, "cert_serial": signer_serial, "origin": "imported"}
        self._file(actor, seal, filed, now, detail)
        log.info("imported seal %s filed for %s (certificate %s)", parsed.es_id, department.uscc, signer_serial)
        return self.get(actor, seal.id)

    def _file(
        self, actor: Actor, seal: SealRow, values: dict[str, Any], now: dt.datetime, detail: dict[str, Any]
    ) -> None:
        """applied → active with `values`, audited; exactly once even if two administrators approve."""
        try:
            with Session(self.engine) as session:
                result = session.exec(
                    update(SealRow)
                    .where(col(SealRow.id) == seal.id)
                    .where(col(SealRow.status) == "applied")
                    .values(status="active", decided_at=now, decided_by=actor.label, **values)
                )
                if result.rowcount != 1:
                    session.rollback()
                    raise SealStatusError(f"{_describe(seal)}已由他人审批")
                session.add(audit_row(actor, "seal_approve", f"seal:{seal.id}", now, detail=detail))
                session.add(_feed_event("seal_approve", seal, "active", now, detail | values))
                session.commit()
        except IntegrityError:
            raise ConflictError(
                f"{_describe(seal)}的印章编码 {values.get('es_id')} 或印章证书 {values.get('cert_serial')} "
                "已用于另一枚印章"
            ) from None

    def reject(self, actor: Actor, seal_id: int, reason: str, now: dt.datetime | None = None) -> SealPublic:
        """Refuse an application, with the reason the applicant reads."""
        ensure_role(actor, "admin")
        now = _utc(now or self.clock()).replace(microsecond=0)
        seal = self._transition(
            actor,
            seal_id,
            "applied",
            "rejected",
            now,
            "seal_reject",
            {"reason": reason},
            decided_at=now,
            decided_by=actor.label,
            decision_note=reason,
        )
        return seal

    def register(
        self, actor: Actor, data: SealCreate, picture: bytes | None = None, now: dt.datetime | None = None
    ) -> SealPublic:
        """Apply and approve in one step: for the administrator at the command line and the demo,
        audited as both steps. An issuer's key never gets an active seal this way."""
        ensure_role(actor, "admin")
        applied = self.apply(actor, data, picture, now)
        return self.approve(actor, applied.id, now)

    # --- suspending and resuming (administrators) ------------------------------------------------
    def suspend(self, actor: Actor, seal_id: int, reason: str, now: dt.datetime | None = None) -> SealPublic:
        """Stop an active seal from sealing anything until it is resumed."""
        ensure_role(actor, "admin")
        now = _utc(now or self.clock()).replace(microsecond=0)
        return self._transition(
            actor,
            seal_id,
            "active",
            "suspended",
            now,
            "seal_suspend",
            {"reason": reason},
            suspended_at=now,
            suspension_reason=reason,
        )

    def resume(self, actor: Actor, seal_id: int, now: dt.datetime | None = None) -> SealPublic:
        """Let a suspended seal seal again."""
        ensure_role(actor, "admin")
        now = _utc(now or self.clock()).replace(microsecond=0)
        return self._transition(
            actor, seal_id, "suspended", "active", now, "seal_resume", None, suspended_at=None, suspension_reason=None
        )

    def _transition(
        self,
        actor: Actor,
        seal_id: int,
        before: str,
        after: str,
        now: dt.datetime,
        action: str,
        detail: dict[str, Any] | None,
        **values: Any,
    ) -> SealPublic:
        with Session(self.engine) as session:
            seal, _department = self._row(session, seal_id)
            result = session.exec(
                update(SealRow)
                .where(col(SealRow.id) == seal_id)
                .where(col(SealRow.status) == before)
                .values(status=after, **values)
            )
            if result.rowcount != 1:
                session.rollback()
                current = STATUS_NAMES.get(_status(seal, now), seal.status)
                raise SealStatusError(f"{_describe(seal)}当前为「{current}」，不能{_ACTION_NAMES[action]}")
            session.add(audit_row(actor, action, f"seal:{seal_id}", now, detail=detail))
            session.add(_feed_event(action, seal, after, now, detail))
            session.commit()
        with self._lock:
            self._material.pop(seal_id, None)
        log.info("seal %s: %s → %s by %s", seal_id, before, after, actor.label)
        return self.get(actor, seal_id)

    # --- the filing, for the province ---------------------------------------------------------
    def filing(self, actor: Actor, now: dt.datetime | None = None) -> tuple[SealFiling, dict[str, bytes]]:
        """Every active seal (in date) with its certificate, validity and the SM3 of its picture,
        and the files named in it (pictures and SES_Seals); audited."""
        ensure_role(actor, "admin", "auditor")
        now = _utc(now or self.clock()).replace(microsecond=0)
        with Session(self.engine) as session:
            rows = session.exec(
                select(SealRow, DepartmentRow, IssuedCertificateRow)
                .join(DepartmentRow, col(SealRow.department_id) == col(DepartmentRow.id))
                .join(IssuedCertificateRow, col(SealRow.cert_serial) == col(IssuedCertificateRow.serial))
                .where(col(SealRow.status) == "active")
                .order_by(col(DepartmentRow.uscc), col(SealRow.id))
            ).all()
        entries: list[FilingSeal] = []
        files: dict[str, bytes] = {}
        for seal, department, record in rows:
            if _status(seal, now) != "active":
                continue
            assert seal.es_id and seal.seal_sm3 and seal.valid_start and seal.valid_end
            certificate = Certificate.load(record.der)
            seal_der = self.filestore.get(seal.seal_sm3)
            maker = read_seal(seal_der).maker_certificate
            picture_file, seal_file = f"{seal.es_id}.png", f"{seal.es_id}.ses.der"
            files[picture_file] = self.filestore.get(seal.picture_sm3)
            files[seal_file] = seal_der
            entries.append(
                FilingSeal(
                    es_id=seal.es_id,
                    name=seal.name,
                    seal_type=seal.seal_type,
                    purpose=seal.purpose,
                    department_name=department.name,
                    department_uscc=department.uscc,
                    legal_representative=seal.legal_representative,
                    origin=seal.origin,
                    maker=Certificate.load(maker).subject_text,
                    certificate=FilingCertificate(
                        serial=certificate.serial_hex,
                        subject=certificate.subject_text,
                        issuer=certificate.issuer.human_friendly,
                        not_before=certificate.not_before,
                        not_after=certificate.not_after,
                        sm3=certificate.sm3_fingerprint,
                    ),
                    valid_start=aware(seal.valid_start),
                    valid_end=aware(seal.valid_end),
                    width_mm=seal.width_mm,
                    height_mm=seal.height_mm,
                    picture_sm3=seal.picture_sm3,
                    picture_file=picture_file,
                    seal_sm3=seal.seal_sm3,
                    seal_file=seal_file,
                    approved_at=_optional(seal.decided_at),
                    approved_by=seal.decided_by,
                )
            )
        settings = self.pki.settings
        filing = SealFiling(
            generated_at=now,
            authority_name=settings.authority_name,
            authority_uscc=settings.authority_uscc,
            seals=entries,
        )
        with Session(self.engine) as session:
            detail = {"seals": len(entries), "es_ids": [e.es_id for e in entries][:50]}
            session.add(audit_row(actor, "seal_filing_export", "seals", now, detail=detail))
            session.commit()
        return filing, files

    # --- the rules' inputs ----------------------------------------------------------------------
    def _issuing_department(self, uscc: str) -> DepartmentRow:
        department = self._department(uscc)
        if "issuer" not in department.roles.split(","):
            raise InvalidRequestError(
                f"部门 {department.name}（{department.uscc}）没有颁证（issuer）角色，不能备案电子证照印章"
            )
        return department

    def _departments(self) -> list[DepartmentRow]:
        with Session(self.engine) as session:
            return list(session.exec(select(DepartmentRow)).all())

    def _fingerprint(self, seal: SealRow) -> PictureFingerprint:
        """The stored fingerprint, or (seals filed before 0009, another version) one computed now."""
        stored = PictureFingerprint.from_text(seal.picture_fingerprint) if seal.picture_fingerprint else None
        if stored is not None:
            return stored
        fingerprint = picture_fingerprint(self.filestore.get(seal.picture_sm3))
        with Session(self.engine) as session:
            session.exec(
                update(SealRow).where(col(SealRow.id) == seal.id).values(picture_fingerprint=fingerprint.to_text())
            )
            session.commit()
        return fingerprint

    def _ensure_picture_is_own(
        self, fingerprint: PictureFingerprint, department_id: int, statuses: tuple[str, ...]
    ) -> None:
        with Session(self.engine) as session:
            rows = session.exec(
                select(SealRow, DepartmentRow)
                .join(DepartmentRow, col(SealRow.department_id) == col(DepartmentRow.id))
                .where(col(SealRow.department_id) != department_id)
                .where(col(SealRow.status).in_(statuses))
                .order_by(col(SealRow.id))
            ).all()
        candidates = []
        for seal, department in rows:
            try:
                candidates.append((seal, department, self._fingerprint(seal)))
            except (PictureError, StoredFileError):
                # An operator's problem (a damaged file), logged loudly; it must not stop every filing.
                log.error("seal %s: its picture %s cannot be compared", seal.id, seal.picture_sm3)
        ensure_picture_is_own(fingerprint, candidates)

    def _check_requested_dates(self, start: dt.date | None, end: dt.date | None, now: dt.datetime) -> None:
        """Dates asked for in an application, checked against the certificate the branch would
        issue today: a seal must not outlive its certificate."""
        today = now.astimezone(BEIJING).date()
        certificate_end = self._certificate_end(now)
        if start and start < today:
            raise InvalidRequestError(f"valid_start：印章有效期起始日期 {start} 早于今天（{today}）")
        end_at = _utc(dt.datetime.combine(end, dt.time(23, 59, 59), BEIJING)) if end else None
        if end_at is not None and end_at > certificate_end:
            raise InvalidRequestError(
                f"valid_end：印章有效期截止日期 {end} 晚于印章证书的截止时间"
                f"（{certificate_end.astimezone(BEIJING):%Y-%m-%d}）"
            )
        start_at = _utc(dt.datetime.combine(start, dt.time(0), BEIJING)) if start else None
        if start_at is not None and start_at >= (end_at or certificate_end):
            raise InvalidRequestError("valid_end：印章有效期截止须晚于起始")

    def _requested_window(self, seal: SealRow, now: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
        """The validity asked for, as instants (start and end of the day in Beijing), at approval:
        a start already past begins with the certificate; an end past or beyond it is refused."""
        start = seal.requested_start
        end = seal.requested_end
        start_at = _utc(dt.datetime.combine(start, dt.time(0), BEIJING)) if start else None
        end_at = _utc(dt.datetime.combine(end, dt.time(23, 59, 59), BEIJING)) if end else None
        if start_at is not None and start_at <= now:
            start_at = None
        if end_at is not None and end_at <= (start_at or now):
            raise InvalidRequestError(f"申请的印章有效期截止日期 {end} 已过：请驳回此申请，重新申请")
        if end_at is not None and end_at > self._certificate_end(now):
            raise InvalidRequestError(f"申请的印章有效期截止日期 {end} 晚于今天签发的印章证书的截止时间")
        return start_at, end_at

    def _certificate_end(self, now: dt.datetime) -> dt.datetime:
        return min(years_later(now, self.pki.settings.seal_certificate_years), self.pki.branch_certificate().not_after)

    @cached_property
    def _maker_roots(self) -> tuple[Certificate, ...]:
        """Roots trusted to certify seal makers besides ours (ECAS_SEAL_MAKER_ROOTS: the provincial
        seal platform's root CA certificates, PEM)."""
        path = self.pki.settings.seal_maker_roots
        if path is None:
            return ()
        try:
            return tuple(Certificate.load_all(path.read_bytes()))
        except (OSError, KeysError) as exc:
            raise ConfigError(f"ECAS_SEAL_MAKER_ROOTS（{path}）无法读取为 PEM 证书：{exc}") from exc

    def _anchors(self, chain: list[Certificate]) -> TrustAnchors:
        roots = (self.pki.root_certificate(), *self._maker_roots)
        return TrustAnchors(roots=roots, intermediates=(self.pki.branch_certificate(), *chain))

    @staticmethod
    def _maker_chain(pem: str | None) -> list[Certificate]:
        if not pem:
            return []
        try:
            return Certificate.load_all(pem.encode())
        except KeysError as exc:
            raise InvalidRequestError(f"maker_chain：不是 PEM 格式的证书（{exc}）") from None

    def _insert(self, row: SealRow, audit: Any) -> SealRow:
        """The row and its audit event (target seal:<id>) in one transaction."""
        with Session(self.engine) as session:
            session.add(row)
            session.flush()
            audit.target = f"seal:{row.id}"
            session.add(audit)
            session.commit()
            session.refresh(row)
        return row

    # --- reading -------------------------------------------------------------------------------
    def list(self, actor: Actor, department_uscc: str | None = None) -> list[SealPublic]:
        scope = readable_department(actor, department_uscc)
        now = self.clock()
        with Session(self.engine) as session:
            query = select(SealRow, DepartmentRow).join(
                DepartmentRow, col(SealRow.department_id) == col(DepartmentRow.id)
            )
            if scope is not None:
                query = query.where(col(DepartmentRow.uscc) == scope)
            rows = session.exec(query.order_by(col(SealRow.id))).all()
            return [_public(seal, department, now) for seal, department in rows]

    def get(self, actor: Actor, seal_id: int) -> SealPublic:
        with Session(self.engine) as session:
            seal, department = self._row(session, seal_id)
        ensure_may_read_for(actor, department.uscc, f"印章 {seal_id} ")
        return _public(seal, department, self.clock())

    def picture(self, actor: Actor, seal_id: int) -> bytes:
        """The seal picture (PNG)."""
        with Session(self.engine) as session:
            seal, department = self._row(session, seal_id)
        ensure_may_read_for(actor, department.uscc, f"印章 {seal_id} ")
        return self.filestore.get(seal.picture_sm3)

    # --- revocation ----------------------------------------------------------------------------
    def revoke(
        self,
        actor: Actor,
        seal_id: int,
        reason: str = "cessationOfOperation",
        note: str | None = None,
        now: dt.datetime | None = None,
    ) -> SealPublic:
        """Revoke the seal's certificate (CRL, OCSP), then the seal; audited."""
        revocation_reason(reason)  # checked before anything changes
        now = _utc(now or self.clock())
        with Session(self.engine) as session:
            seal, department = self._row(session, seal_id)
        ensure_may_write_for(actor, department.uscc, f"印章 {seal_id} ")
        if seal.status == "revoked":
            raise SealStatusError(f"印章 {seal_id}（{seal.name}）已于 {aware(seal.revoked_at):%Y-%m-%d %H:%M} 吊销")  # type: ignore[arg-type]
        if seal.status not in ("active", "suspended") or seal.cert_serial is None:
            current = STATUS_NAMES.get(seal.status, seal.status)
            raise SealStatusError(
                f"{_describe(seal)}当前为「{current}」，尚未备案，不能吊销（待审批的申请由管理员驳回）"
            )
        serial = int(seal.cert_serial, 16)
        if self.pki.certificate(serial).revoked_at is None:
            try:
                self.pki.revoke(serial, reason, now)
            except CAError:
                if self.pki.certificate(serial).revoked_at is None:  # not a concurrent revocation
                    raise
        with Session(self.engine) as session:
            result = session.exec(
                update(SealRow)
                .where(col(SealRow.id) == seal_id)
                .where(col(SealRow.status).in_(("active", "suspended")))
                .values(status="revoked", revoked_at=now, revocation_reason=reason, revocation_note=note)
            )
            if result.rowcount != 1:
                session.rollback()
                raise SealStatusError(f"印章 {seal_id}（{seal.name}）已吊销")
            detail = {"reason": reason, "note": note}
            session.add(audit_row(actor, "seal_revoke", f"seal:{seal_id}", now, detail=detail))
            session.add(_feed_event("seal_revoke", seal, "revoked", now, detail))
            session.commit()
        with self._lock:
            self._material.pop(seal_id, None)
        log.info("seal %s of %s revoked (%s)", seal.es_id, department.uscc, reason)
        return self.get(actor, seal_id)

    # --- sealing -------------------------------------------------------------------------------
    def seal_document(
        self,
        actor: Actor,
        seal_id: int,
        document: bytes,
        page: int,
        x_mm: float,
        y_mm: float,
        size_mm: float | None = None,
        now: dt.datetime | None = None,
    ) -> bytes:
        """Seal a department's own PDF or OFD with one of its seals, the picture's top-left corner
        at (x_mm, y_mm) from the page's top-left, `size_mm` wide (the seal's own size by default);
        audited with the SM3 of what came in and what went out."""
        now = _utc(now or self.clock()).replace(microsecond=0)
        with Session(self.engine) as session:
            seal, department = self._row(session, seal_id)
        ensure_may_write_for(actor, department.uscc, f"印章 {seal_id} ")
        if seal.status != "active" or seal.cert_serial is None:
            current = STATUS_NAMES.get(seal.status, seal.status)
            raise SealStatusError(f"{_describe(seal)}当前为「{current}」，只有有效（已备案）的印章能用于签章")
        assert seal.valid_start is not None and seal.valid_end is not None
        if not aware(seal.valid_start) <= now <= aware(seal.valid_end):
            raise ConflictError(f"印章 {seal_id}（{seal.name}）不在有效期内，不能用于签章")
        if self.pki.certificate(int(seal.cert_serial, 16)).revoked_at is not None:
            raise ConflictError(f"印章 {seal_id}（{seal.name}）的印章证书已吊销，不能用于签章")
        material = self.material(seal)
        side = size_mm or seal.width_mm
        box = SealBox(x=x_mm, y=y_mm, w=side, h=side * seal.height_mm / seal.width_mm)
        stamper = self.timestamps.document_stamper() if self.timestamps is not None else None
        timestamper, room = stamper if stamper is not None else (None, 0)
        if document[:5] == b"%PDF-":
            fmt = "pdf"
            sealed = seal_pdf(
                document,
                material.signer,
                material.picture_png,
                page,
                box,
                reason="电子签章",
                now=now,
                timestamper=timestamper,
                timestamp_room=room,
            )
        elif document[:4] == b"PK\x03\x04":
            fmt = "ofd"
            sealed = seal_ofd(document, material.signer, material.seal_der, page, box, now, timestamper)
        else:
            raise InvalidRequestError("只能对 PDF 或 OFD 文件签章")
        detail = {"format": fmt, "page": page, "input_sm3": sm3(document).hex(), "output_sm3": sm3(sealed).hex()}
        with Session(self.engine) as session:
            session.add(audit_row(actor, "seal_document", f"seal:{seal_id}", now, detail=detail))
            session.commit()
        log.info("seal %s applied to a %s document for %s", seal.es_id, fmt, department.uscc)
        return sealed

    def active_seal(self, department_uscc: str, now: dt.datetime, connection: Connection | None = None) -> SealMaterial:
        """The seal the department filed last that is usable at `now`, or NoActiveSealError (409); read on the
        caller's `connection` when given (issuing reads everything on one)."""
        if connection is None:
            with self.engine.connect() as own:
                return self.active_seal(department_uscc, now, own)
        seal_id = connection.execute(_ACTIVE_SEAL, {"uscc": department_uscc, "now": now}).scalar()
        if seal_id is None:
            raise NoActiveSealError(
                f"部门 {department_uscc} 没有有效的电子印章，不能颁证：请先申请备案印章并经管理员审批"
                "（POST /api/v1/seals 与 /api/v1/seals/{id}/approve，或 ecas seals apply 与 approve），"
                "或恢复暂停使用的印章"
            )
        with self._lock:
            cached = self._material.get(seal_id)
        if cached is not None:
            return cached
        with Session(bind=connection) as session:
            return self.material(session.get_one(SealRow, seal_id))

    def material(self, row: SealRow) -> SealMaterial:
        """What sealing with `row` needs, kept per process: a seal's key, certificate and SES_Seal
        never change. Loaded once under the lock: requests that arrive together on a fresh worker
        would otherwise each decrypt the key (PBKDF2, about 0.4 s apiece)."""
        assert row.id is not None and row.cert_serial and row.es_id and row.seal_sm3, "a filed seal"
        with self._lock:
            material = self._material.get(row.id)
            if material is None:
                signer = self.pki.seal_signer(int(row.cert_serial, 16))
                material = self._material[row.id] = SealMaterial(
                    seal_id=row.id,
                    name=row.name,
                    es_id=row.es_id,
                    seal_der=self.filestore.get(row.seal_sm3),
                    picture_png=self.filestore.get(row.picture_sm3),
                    signer=signer,
                    signer_name=signer.certificate_chain[0].common_name or row.name,
                )
        return material

    # --- helpers -------------------------------------------------------------------------------
    def _department(self, uscc: str) -> DepartmentRow:
        with Session(self.engine) as session:
            row = session.exec(select(DepartmentRow).where(col(DepartmentRow.uscc) == uscc)).first()
        if row is None:
            raise NotFoundError(f"统一社会信用代码为 {uscc} 的部门尚未登记")
        return row

    @staticmethod
    def _row(session: Session, seal_id: int) -> tuple[SealRow, DepartmentRow]:
        found = session.exec(
            select(SealRow, DepartmentRow)
            .join(DepartmentRow, col(SealRow.department_id) == col(DepartmentRow.id))
            .where(col(SealRow.id) == seal_id)
        ).first()
        if found is None:
            raise NotFoundError(f"没有编号为 {seal_id} 的印章")
        return found


def _feed_event(
    action: str, seal: SealRow, status: str, now: dt.datetime, detail: dict[str, Any] | None
) -> ExchangeEventRow:
    """The change feed's event for a seal decision (`store.outbox`), beside its audit row."""
    payload = {
        "seal_id": seal.id,
        "es_id": (detail or {}).get("es_id") or seal.es_id,
        "name": seal.name,
        "status": status,
        "cert_serial": (detail or {}).get("cert_serial") or seal.cert_serial,
        "detail": {k: v for k, v in (detail or {}).items() if isinstance(v, (str, int, type(None)))},
    }
    kind = "seal." + action.removeprefix("seal_")
    return outbox_event(kind, f"seal:{seal.id}", payload, now)
