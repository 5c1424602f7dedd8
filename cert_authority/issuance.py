"""Issuing a licence (颁证) and changing one (变更): check, number, render, seal, store.

    permission ─► face data, holder code, photo, validity (all problems at once, 422)
    ─► Idempotency-Key already used? the same licence again (or 409 for a different request)
    ─► the department's active seal (409 without one) ─► a trial layout (a value that does not fit is
       422 before any number is taken)
    ─► serial and licence number from the counters, committed on their own
    ─► layout ─► `make_licence_files`: PDF, OFD, PNG, the PDF and OFD sealed ─► files into the store
    ─► ONE transaction: licence row, status event, audit event, idempotency record

Atomic in the only order that can be: files are written before the record, because a file without
a record is harmless (content-addressed, unreferenced) while a record without its files is a broken
licence. A failure or a crash anywhere leaves either the complete licence or no record at all; the
serial it took stays a gap and is never handed out again, so no identifier is ever reused.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from cert_authority.actors import Actor, ensure_may_write_for, issuing_department
from cert_authority.audit import audit_row
from cert_authority.counters import next_values, number_counter, serial_counter
from cert_authority.errors import (
    IdempotencyConflictError,
    IllegalTransitionError,
    InvalidRequestError,
    LicenceDataError,
    PermissionDeniedError,
)
from cert_authority.face_data import CheckedFace, check_face
from cert_authority.filestore import FileStore
from cert_authority.licence_dates import Validity, local_date, validity_for
from cert_authority.licence_files import LicenceFiles, make_licence_files
from cert_authority.licence_records import find_licence, licence_public
from cert_authority.licence_schemas import LicencePublic
from cert_authority.lifecycle import check_transition, status_event
from cert_authority.models import IdempotencyRow, LicenceRow
from cert_authority.registry import RegistryService
from cert_authority.schemas import DepartmentPublic
from cert_authority.seals_service import SealMaterial, SealService
from cert_authority.timeutil import utc_now
from keys.sm2 import sm3
from templates.errors import FontError, LayoutError
from templates.identifier import LicenceIdentifier, mask_holder_code
from templates.images import Picture
from templates.layout import LicenceFace, PageLayout, build_layout
from templates.layout_spec import TemplateSpec
from templates.spec import LicenceTypeSpec, chinese_date

log = logging.getLogger("ecas.licences")

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, as HTTP headers carry it
SERIAL_DIGITS = 10  # identifier serial: the per-(type, issuer) counter, zero-padded
NUMBER_DIGITS = 8  # licence number: area code + department + the per-issuer counter


@dataclass(frozen=True)
class IssueResult:
    licence: LicencePublic
    replayed: bool  # True: an earlier request with the same Idempotency-Key made this licence


@dataclass(frozen=True)
class _Context:
    spec: LicenceTypeSpec
    department: DepartmentPublic
    template_version: int
    template: TemplateSpec
    background: Picture


@dataclass(frozen=True)
class _StoredFiles:
    """SM3 names of a licence's files in the file store."""

    pdf: str
    ofd: str
    png: str
    photo: str | None


def licence_number(department: DepartmentPublic, number: int) -> str:
    """证照编号: readable digits: the issuer's area code, the department's number in this
    authority (several departments share an area code) and its running number. The counter never
    restarts, so no number is printed on two licences."""
    return f"{department.area_code}{department.id:03d}{number:0{NUMBER_DIGITS}d}"


def identifier_serial(value: int) -> str:
    return f"{value:0{SERIAL_DIGITS}d}"


class IssuanceService:
    def __init__(
        self,
        engine: Engine,
        filestore: FileStore,
        registry: RegistryService,
        seals: SealService,
        base_url: str,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.filestore = filestore
        self.registry = registry
        self.seals = seals
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self._backgrounds: dict[str, Picture] = {}
        self._lock = threading.Lock()

    # --- issue ---------------------------------------------------------------------------------
    def issue_licence(
        self,
        actor: Actor,
        type_code: str,
        data: Mapping[str, Any],
        photo: bytes | None = None,
        idempotency_key: str | None = None,
        valid_from: dt.date | None = None,
        valid_until: dt.date | None = None,
        issuer_uscc: str | None = None,
        now: dt.datetime | None = None,
    ) -> IssueResult:
        """Issue a sealed licence of `type_code` for the actor's department (or, for an admin, the
        department `issuer_uscc`). The same `idempotency_key` returns the same licence."""
        started = time.perf_counter()
        now = (now or self.clock()).astimezone(dt.timezone.utc).replace(microsecond=0)
        today = local_date(now)
        issuer = issuing_department(actor, issuer_uscc)
        if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise InvalidRequestError("Idempotency-Key 应为 1–200 个可打印 ASCII 字符（不含空格）")
        context = self._context(type_code, issuer)
        face, validity = self._checked(context.spec, data, photo, today, valid_from, valid_until)
        fingerprint = _fingerprint(type_code, issuer, face, photo, valid_from, valid_until)
        if idempotency_key is not None:
            replay = self._replay(issuer, idempotency_key, fingerprint, today)
            if replay is not None:
                return replay
        seal = self.seals.active_seal(issuer, now)
        # A trial layout with placeholders of the same length: a value that does not fit its box,
        # or a character no font has, is refused before a serial is taken.
        placeholder = LicenceIdentifier(type_code, issuer, identifier_serial(0), 1)
        self._layout(context, face, validity, placeholder, licence_number(context.department, 0), today)

        serial, number = next_values(self.engine, [serial_counter(type_code, issuer), number_counter(issuer)])
        identifier = LicenceIdentifier(type_code, issuer, identifier_serial(serial), 1)
        printed_number = licence_number(context.department, number)
        layout = self._layout(context, face, validity, identifier, printed_number, today)
        files = self._produce(context, layout, identifier, printed_number, seal, now)
        stored = self._store_files(files, face.photo)
        row = self._row(context, face, validity, identifier, printed_number, seal, stored, now, today, actor)
        recorded = self._record_issue(row, actor, face, now, issuer, idempotency_key, fingerprint)
        if isinstance(recorded, IssueResult):  # a concurrent request with the same key won
            return recorded
        log.info(
            "licence %s issued by %s (type %s, holder %s) in %.0f ms",
            recorded.identifier,
            issuer,
            type_code,
            mask_holder_code(face.holder_code),
            (time.perf_counter() - started) * 1000,
        )
        return IssueResult(licence_public(recorded, today), replayed=False)

    def _record_issue(
        self,
        row: LicenceRow,
        actor: Actor,
        face: CheckedFace,
        now: dt.datetime,
        issuer: str,
        key: str | None,
        fingerprint: str,
    ) -> LicenceRow | IssueResult:
        """The licence, its first status event, the audit event and the idempotency record: one
        transaction. A concurrent request with the same key meets the primary key here."""
        with Session(self.engine) as session:
            session.add(row)
            session.flush()
            assert row.id is not None
            session.add(status_event(row, None, "issue", None, now, actor))
            session.add(
                audit_row(
                    actor,
                    "issue",
                    row.identifier,
                    now,
                    holder_code=face.holder_code,
                    detail={"type_code": row.type_code, "licence_number": row.licence_number},
                )
            )
            if key is not None:
                session.add(
                    IdempotencyRow(scope=issuer, key=key, request_sm3=fingerprint, licence_id=row.id, created_at=now)
                )
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                replay = self._replay(issuer, key, fingerprint, local_date(now)) if key is not None else None
                if replay is None:
                    raise
                log.info("licence %s not recorded: Idempotency-Key already used meanwhile", row.identifier)
                return replay
            session.refresh(row)
            return row

    def _replay(self, scope: str, key: str, fingerprint: str, today: dt.date) -> IssueResult | None:
        with Session(self.engine) as session:
            record = session.get(IdempotencyRow, (scope, key))
            if record is None:
                return None
            row = session.get(LicenceRow, record.licence_id)
            assert row is not None
            if record.request_sm3 != fingerprint:
                raise IdempotencyConflictError(
                    f"Idempotency-Key {key!r} 已用于另一份内容不同的颁证请求（证照 {row.identifier}）："
                    "同一个键只能重放完全相同的请求，新的请求请换一个键"
                )
            return IssueResult(licence_public(row, today), replayed=True)

    # --- change --------------------------------------------------------------------------------
    def change_licence(
        self,
        actor: Actor,
        identifier: str,
        data: Mapping[str, Any],
        photo: bytes | None = None,
        valid_from: dt.date | None = None,
        valid_until: dt.date | None = None,
        reason: str | None = None,
        now: dt.datetime | None = None,
    ) -> LicencePublic:
        """变更: merge `data` into the face data (None removes an optional field), issue version + 1
        with the same serial and number, sealed anew; the old version becomes superseded."""
        now = (now or self.clock()).astimezone(dt.timezone.utc).replace(microsecond=0)
        today = local_date(now)
        with Session(self.engine) as session:
            old = find_licence(session, identifier)
        ensure_may_write_for(actor, old.issuer_code, f"证照 {identifier} ")
        check_transition(old, "change", today)
        if not isinstance(data, Mapping):
            raise LicenceDataError(["data：变更内容应为 JSON 对象（字段 key → 新值）"])
        context = self._context(old.type_code, old.issuer_code, permission_checked=True)
        merged = json.loads(old.face_json)
        for key, value in data.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        photo_input: bytes | Picture | None = photo
        if photo is None and old.photo_sm3 is not None:
            photo_input = Picture.from_jpeg(self.filestore.get(old.photo_sm3))
        face, problems = check_face(context.spec, merged, photo_input)
        if face is not None and face.holder_code != old.holder_code:
            problems.append(
                f"{context.spec.holder.code_field}：持证主体代码不能变更（原为 {mask_holder_code(old.holder_code)}）；"
                "持证主体不同的，应注销原证后重新颁发"
            )
        validity: Validity | None = Validity(old.valid_from, old.valid_until)
        if valid_from is not None or valid_until is not None:
            # Only types whose validity is given at issue take new dates; validity_for says so.
            validity, more = validity_for(
                context.spec.validity, old.issue_date, valid_from or old.valid_from, valid_until or old.valid_until
            )
            problems += more
        if problems:
            raise LicenceDataError(problems)
        assert face is not None and validity is not None
        new_identifier = LicenceIdentifier.parse(old.identifier).next_version()
        seal = self.seals.active_seal(old.issuer_code, now)
        layout = self._layout(context, face, validity, new_identifier, old.licence_number, today)
        files = self._produce(context, layout, new_identifier, old.licence_number, seal, now)
        stored = self._store_files(files, face.photo)
        row = self._row(context, face, validity, new_identifier, old.licence_number, seal, stored, now, today, actor)
        before = json.loads(old.face_json)
        changed = sorted(k for k in set(before) | set(face.values) if before.get(k) != face.values.get(k))
        row = self._record_change(old, row, actor, reason, now, today, changed)
        log.info(
            "licence %s changed to %s (holder %s)", old.identifier, row.identifier, mask_holder_code(row.holder_code)
        )
        return licence_public(row, today)

    def _record_change(
        self,
        old: LicenceRow,
        row: LicenceRow,
        actor: Actor,
        reason: str | None,
        now: dt.datetime,
        today: dt.date,
        changed: list[str],
    ) -> LicenceRow:
        with Session(self.engine) as session:
            result = session.exec(
                update(LicenceRow)
                .where(col(LicenceRow.id) == old.id)
                .where(col(LicenceRow.status) == "issued")
                .where(or_(col(LicenceRow.valid_until).is_(None), col(LicenceRow.valid_until) >= today))
                .values(
                    status="superseded",
                    superseded_by=row.identifier,
                    status_reason=reason or "变更",
                    status_changed_at=now,
                )
            )
            if result.rowcount != 1:
                session.rollback()
                current = find_licence(session, old.identifier)
                check_transition(current, "change", today)
                raise IllegalTransitionError(f"证照 {old.identifier} 正在被同时办理，请稍后重试")
            session.add(row)
            try:
                session.flush()
            except IntegrityError:  # the same next version, made by a concurrent change
                session.rollback()
                raise IllegalTransitionError(f"证照 {old.identifier} 已被同时变更，请查看最新版本") from None
            superseded = find_licence(session, old.identifier)
            session.add(status_event(superseded, "issued", "change", reason, now, actor))
            session.add(status_event(row, None, "change", reason, now, actor))
            session.add(
                audit_row(
                    actor,
                    "change",
                    row.identifier,
                    now,
                    holder_code=row.holder_code,
                    detail={"supersedes": old.identifier, "reason": reason, "changed_fields": changed},
                )
            )
            session.commit()
            session.refresh(row)
            return row

    # --- the shared pipeline -------------------------------------------------------------------
    def _context(self, type_code: str, issuer: str, permission_checked: bool = False) -> _Context:
        spec = self.registry.type_spec(type_code)
        if issuer not in spec.issuers and not permission_checked:
            raise PermissionDeniedError(
                f"权限不足：部门 {issuer} 不是证照类型 {type_code}（{spec.name}）的颁发部门"
            )
        department = self.registry.get_department_by_uscc(issuer)
        stored = self.registry.get_template(type_code)
        return _Context(spec, department, stored.version, stored.template, self._background(stored.background_sm3))

    def _checked(
        self,
        spec: LicenceTypeSpec,
        data: Mapping[str, Any],
        photo: bytes | None,
        today: dt.date,
        valid_from: dt.date | None,
        valid_until: dt.date | None,
    ) -> tuple[CheckedFace, Validity]:
        face, problems = check_face(spec, data, photo)
        validity, more = validity_for(spec.validity, today, valid_from, valid_until)
        problems += more
        if problems:
            raise LicenceDataError(problems)
        assert face is not None and validity is not None
        return face, validity

    def _background(self, digest: str) -> Picture:
        with self._lock:
            cached = self._backgrounds.get(digest)
        if cached is None:
            cached = Picture.from_jpeg(self.filestore.get(digest))
            with self._lock:
                self._backgrounds[digest] = cached
        return cached

    def _layout(
        self,
        context: _Context,
        face: CheckedFace,
        validity: Validity,
        identifier: LicenceIdentifier,
        number: str,
        today: dt.date,
    ) -> PageLayout:
        meta = {
            "licence_number": number,
            "identifier": str(identifier),
            "issuer_name": context.department.name,
            "issue_date": chinese_date(today),
            **validity.printed(),
        }
        licence_face = LicenceFace(
            values=face.values, meta=meta, qr_url=f"{self.base_url}/v/{identifier}", photo=face.photo
        )
        try:
            return build_layout(context.spec, context.template, context.background, licence_face, self.registry.fonts)
        except (FontError, LayoutError) as exc:
            # A value with a character no font has, or too long for its box even at the smallest
            # size: the caller's data, so 422 (never clipped, never a blank box).
            raise LicenceDataError([str(exc)]) from None

    def _produce(
        self,
        context: _Context,
        layout: PageLayout,
        identifier: LicenceIdentifier,
        number: str,
        seal: SealMaterial,
        now: dt.datetime,
    ) -> LicenceFiles:
        title = f"{context.spec.name} {number}"
        doc_id = sm3(str(identifier).encode()).hex()[:32]
        return make_licence_files(layout, self.registry.fonts, seal, now, title=title, doc_id=doc_id)

    def _store_files(self, files: LicenceFiles, photo: Picture | None) -> _StoredFiles:
        # Files before the record (see the module docstring): an orphan file is harmless.
        return _StoredFiles(
            pdf=self.filestore.put(files.pdf),
            ofd=self.filestore.put(files.ofd),
            png=self.filestore.put(files.png),
            photo=self.filestore.put(photo.data) if photo is not None else None,
        )

    @staticmethod
    def _row(
        context: _Context,
        face: CheckedFace,
        validity: Validity,
        identifier: LicenceIdentifier,
        number: str,
        seal: SealMaterial,
        stored: _StoredFiles,
        now: dt.datetime,
        today: dt.date,
        actor: Actor,
    ) -> LicenceRow:
        department = context.department
        return LicenceRow(
            identifier=str(identifier),
            type_code=identifier.type_code,
            serial=identifier.serial,
            version=identifier.version,
            name=context.spec.name,
            licence_number=number,
            issuer_name=department.name,
            issuer_code=department.uscc,
            issuer_level=department.level,
            department_id=department.id,
            issue_date=today,
            holder_name=face.holder_name,
            holder_code=face.holder_code,
            holder_code_type=face.holder_code_type,
            valid_from=validity.valid_from,
            valid_until=validity.valid_until,
            seal_id=seal.seal_id,
            seal_name=seal.name,
            sealed_by=seal.signer_name,
            sealed_at=now,
            template_version=context.template_version,
            face_json=json.dumps(face.values, ensure_ascii=False, sort_keys=True),
            photo_sm3=stored.photo,
            pdf_sm3=stored.pdf,
            ofd_sm3=stored.ofd,
            png_sm3=stored.png,
            status="issued",
            status_changed_at=now,
            created_at=now,
            created_by=actor.label,
        )


def _fingerprint(
    type_code: str,
    issuer: str,
    face: CheckedFace,
    photo: bytes | None,
    valid_from: dt.date | None,
    valid_until: dt.date | None,
) -> str:
    """SM3 of the request as checked (canonical values), so a retry that differs only in spacing
    or key order is the same request, and any real difference is another one."""
    request = {
        "type_code": type_code,
        "issuer": issuer,
        "data": face.values,
        "photo": sm3(photo).hex() if photo is not None else None,
        "valid_from": valid_from.isoformat() if valid_from else None,
        "valid_until": valid_until.isoformat() if valid_until else None,
    }
    return sm3(json.dumps(request, ensure_ascii=False, sort_keys=True).encode()).hex()
