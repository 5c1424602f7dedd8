"""Seal registration (电子印章备案): a department's e-seal, made by the branch CA.

Registering a seal: the picture is checked (an uploaded PNG) or drawn (the round red seal), the
branch CA issues the seal certificate for the department, then signs, as seal maker (制章者), the
GB/T 38540 SES_Seal that lists that certificate. The SES_Seal and the picture go to the file store,
then the seal row and its audit event are written in one transaction.

Revoking a seal revokes its certificate first (CRL re-issued, OCSP answers revoked at once), then
marks the seal revoked. A department issues licences with its newest seal that is active, inside
its validity, and whose certificate is neither revoked nor expired.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import sql, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select

from cert_authority.actors import Actor, ensure_may_read_for, ensure_may_write_for, readable_department
from cert_authority.errors import ConflictError, InvalidRequestError, NoActiveSealError, NotFoundError
from cert_authority.eseals.schemas import SealCreate, SealPublic
from cert_authority.pki.service import PkiService, revocation_reason
from cert_authority.store.audit import audit_row
from cert_authority.store.counters import next_values, seal_counter
from cert_authority.store.filestore import FileStore
from cert_authority.store.models import DepartmentRow, IssuedCertificateRow, SealRow
from cert_authority.timeutil import BEIJING, aware, utc_now
from keys.ca import years_later
from keys.errors import CAError
from keys.signer import Signer
from keys.sm2 import sm3
from seals.box import SealBox
from seals.ofd_seal import seal_ofd
from seals.pdf_seal import seal_pdf
from seals.picture import generate_round_seal, load_seal_picture
from seals.ses import make_seal
from templates.fonts import FontSet

log = logging.getLogger("ecas.seals")

_SEALS = SealRow.__table__  # type: ignore[attr-defined]
_DEPARTMENTS = DepartmentRow.__table__  # type: ignore[attr-defined]
_CERTIFICATES = IssuedCertificateRow.__table__  # type: ignore[attr-defined]
_NOW: sql.elements.BindParameter[dt.datetime] = sql.bindparam("now")
# The seal a department issues with: its newest that is active and in date, with a live certificate.
_ACTIVE_SEAL = (
    sql.select(_SEALS.c.id)
    .join(_DEPARTMENTS, _SEALS.c.department_id == _DEPARTMENTS.c.id)
    .join(_CERTIFICATES, _SEALS.c.cert_serial == _CERTIFICATES.c.serial)
    .where(_DEPARTMENTS.c.uscc == sql.bindparam("uscc"))
    .where(_SEALS.c.status == "active")
    .where(_SEALS.c.valid_start <= _NOW, _SEALS.c.valid_end >= _NOW)
    .where(_CERTIFICATES.c.revoked_at.is_(None))
    .where(_CERTIFICATES.c.not_before <= _NOW, _CERTIFICATES.c.not_after >= _NOW)
    .order_by(_SEALS.c.created_at.desc(), _SEALS.c.id.desc())
    .limit(1)
)


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


def _status(row: SealRow, now: dt.datetime) -> str:
    if row.status == "active" and aware(row.valid_end) < now:
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
        cert_serial=row.cert_serial,
        seal_sm3=row.seal_sm3,
        picture_sm3=row.picture_sm3,
        width_mm=row.width_mm,
        height_mm=row.height_mm,
        valid_start=aware(row.valid_start),
        valid_end=aware(row.valid_end),
        status=_status(row, now),
        revoked_at=aware(row.revoked_at) if row.revoked_at else None,
        revocation_reason=row.revocation_reason,
        revocation_note=row.revocation_note,
        created_at=aware(row.created_at),
        created_by=row.created_by,
    )


class SealService:
    def __init__(
        self,
        engine: Engine,
        filestore: FileStore,
        pki: PkiService,
        fonts: Callable[[], FontSet],
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.filestore = filestore
        self.pki = pki
        self._fonts = fonts
        self.clock = clock
        # Opening a key from the key store costs a PBKDF2 run (hundreds of ms): keep each seal's
        # signer once opened. Which seal is active is read from the database on every use.
        self._material: dict[int, SealMaterial] = {}
        self._lock = threading.Lock()

    # --- registration --------------------------------------------------------------------------
    def register(
        self, actor: Actor, data: SealCreate, picture: bytes | None = None, now: dt.datetime | None = None
    ) -> SealPublic:
        """Register a seal for `data.department_uscc`: certificate, SES_Seal, files, row, audit."""
        ensure_may_write_for(actor, data.department_uscc, "印章")
        now = _utc(now or self.clock()).replace(microsecond=0)
        department = self._department(data.department_uscc)
        if "issuer" not in department.roles.split(","):
            raise InvalidRequestError(
                f"部门 {department.name}（{department.uscc}）没有颁证（issuer）角色，不能备案电子证照印章"
            )
        if picture is not None:
            png, width_px, height_px = load_seal_picture(picture)
            width_mm = round(data.diameter_mm)
            height_mm = max(1, round(data.diameter_mm * height_px / width_px))
        else:
            png = generate_round_seal(department.name, data.purpose, data.diameter_mm, fonts=self._fonts())
            width_mm = height_mm = round(data.diameter_mm)
        valid_start, valid_end = self._validity(data, now)

        # Everything is checked: from here on values are taken and a certificate is issued.
        assert department.id is not None
        (number,) = next_values(self.engine, [seal_counter(department.area_code)])
        es_id = f"{department.area_code}{number:010d}"
        certificate = self.pki.issue_seal_certificate(name=department.name, uscc=department.uscc, now=now)
        try:
            # Never before the certificate: the seal could not be used earlier anyway.
            start = _utc(max(valid_start or certificate.not_before, certificate.not_before))
            end = _utc(valid_end or certificate.not_after)
            seal_der = make_seal(
                self.pki.branch_ca.signer,
                es_id=es_id,
                name=data.name,
                seal_type=data.seal_type,
                signer_certificates=[certificate.der],
                picture_png=png,
                width_mm=width_mm,
                height_mm=height_mm,
                valid_start=start,
                valid_end=end,
                created=now,
            )
            # Files before the row: an unreferenced file is harmless, a row without its file is not.
            seal_sm3 = self.filestore.put(seal_der)
            picture_sm3 = self.filestore.put(png)
            row = SealRow(
                department_id=department.id,
                es_id=es_id,
                name=data.name,
                seal_type=data.seal_type,
                purpose=data.purpose,
                cert_serial=certificate.serial_hex,
                seal_sm3=seal_sm3,
                picture_sm3=picture_sm3,
                width_mm=width_mm,
                height_mm=height_mm,
                valid_start=start.replace(microsecond=0),
                valid_end=end.replace(microsecond=0),
                status="active",
                created_at=now,
                created_by=actor.label,
            )
            with Session(self.engine) as session:
                session.add(row)
                session.flush()
                session.add(
                    audit_row(
                        actor,
                        "seal_register",
                        f"seal:{row.id}",
                        now,
                        detail={"es_id": es_id, "name": data.name, "cert_serial": certificate.serial_hex},
                    )
                )
                session.commit()
                session.refresh(row)
        except BaseException:
            # No seal will ever list this certificate: withdraw it, so no unused valid seal
            # certificate is left behind (a crash right here leaves one, bound to no seal).
            try:
                self.pki.revoke(certificate.serial, "cessationOfOperation", now)
            except Exception:  # the original error matters more
                log.exception("could not revoke unused seal certificate %s", certificate.serial_hex)
            raise
        log.info("seal %s registered for %s (certificate %s)", es_id, department.uscc, certificate.serial_hex)
        return _public(row, department, now)

    def _validity(self, data: SealCreate, now: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
        """Given dates as instants (start and end of the day in Beijing), checked against the
        certificate the branch will issue: a seal must not outlive its certificate."""
        # Stored in UTC: SQLite keeps a datetime's fields without its offset.
        start = _utc(dt.datetime.combine(data.valid_start, dt.time(0), BEIJING)) if data.valid_start else None
        end = _utc(dt.datetime.combine(data.valid_end, dt.time(23, 59, 59), BEIJING)) if data.valid_end else None
        today = now.astimezone(BEIJING).date()
        certificate_end = min(
            years_later(now, self.pki.settings.seal_certificate_years), self.pki.branch_certificate().not_after
        )
        if data.valid_start and data.valid_start < today:
            raise InvalidRequestError(f"valid_start：印章有效期起始日期 {data.valid_start} 早于今天（{today}）")
        if end is not None and end > certificate_end:
            raise InvalidRequestError(
                f"valid_end：印章有效期截止日期 {data.valid_end} 晚于印章证书的截止时间"
                f"（{certificate_end.astimezone(BEIJING):%Y-%m-%d}）"
            )
        if start is not None and start >= (end or certificate_end):
            raise InvalidRequestError("valid_end：印章有效期截止须晚于起始")
        return start, end

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
            raise ConflictError(f"印章 {seal_id}（{seal.name}）已于 {aware(seal.revoked_at):%Y-%m-%d %H:%M} 吊销")  # type: ignore[arg-type]
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
                .where(col(SealRow.status) == "active")
                .values(status="revoked", revoked_at=now, revocation_reason=reason, revocation_note=note)
            )
            if result.rowcount != 1:
                session.rollback()
                raise ConflictError(f"印章 {seal_id}（{seal.name}）已吊销")
            detail = {"reason": reason, "note": note}
            session.add(audit_row(actor, "seal_revoke", f"seal:{seal_id}", now, detail=detail))
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
        if seal.status != "active" or not aware(seal.valid_start) <= now <= aware(seal.valid_end):
            raise ConflictError(f"印章 {seal_id}（{seal.name}）已吊销或不在有效期内，不能用于签章")
        if self.pki.certificate(int(seal.cert_serial, 16)).revoked_at is not None:
            raise ConflictError(f"印章 {seal_id}（{seal.name}）的印章证书已吊销，不能用于签章")
        material = self.material(seal)
        side = size_mm or seal.width_mm
        box = SealBox(x=x_mm, y=y_mm, w=side, h=side * seal.height_mm / seal.width_mm)
        if document[:5] == b"%PDF-":
            fmt = "pdf"
            sealed = seal_pdf(document, material.signer, material.picture_png, page, box, reason="电子签章", now=now)
        elif document[:4] == b"PK\x03\x04":
            fmt = "ofd"
            sealed = seal_ofd(document, material.signer, material.seal_der, page, box, now)
        else:
            raise InvalidRequestError("只能对 PDF 或 OFD 文件签章")
        detail = {"format": fmt, "page": page, "input_sm3": sm3(document).hex(), "output_sm3": sm3(sealed).hex()}
        with Session(self.engine) as session:
            session.add(audit_row(actor, "seal_document", f"seal:{seal_id}", now, detail=detail))
            session.commit()
        log.info("seal %s applied to a %s document for %s", seal.es_id, fmt, department.uscc)
        return sealed

    def active_seal(self, department_uscc: str, now: dt.datetime, connection: Connection | None = None) -> SealMaterial:
        """The newest seal of the department usable at `now`, or NoActiveSealError (409); read on the
        caller's `connection` when given (issuing reads everything on one)."""
        if connection is None:
            with self.engine.connect() as own:
                return self.active_seal(department_uscc, now, own)
        seal_id = connection.execute(_ACTIVE_SEAL, {"uscc": department_uscc, "now": now}).scalar()
        if seal_id is None:
            raise NoActiveSealError(
                f"部门 {department_uscc} 没有有效的电子印章，不能颁证：请先备案印章"
                "（ecas seals register 或 POST /api/v1/seals）"
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
        assert row.id is not None
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
