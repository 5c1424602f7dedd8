"""Sharing (用证): using departments read licence data with a stated cause (用证事由) and either the
holder's use code (用证码) or a duty rule (依职责, `rules`) for their department and the licence type;
in a case at the counter (`cases`) also on the holder's standing authorisation.

    holder ─► use code for (licence, department, purpose), N uses, expiry; can withdraw it
    department ─► use(identifier, cause, use code) ─► face data + an annotated copy (加注件): the
                  licence re-laid out from its record with "for <department>, <cause>, <time>" across
                  the top, sealed by the authority's service key, behind a 10-minute link
    first download of the link ─► the copy is rendered, sealed and stored then (most uses never
                  fetch it: rendering and sealing it at every use was most of a use's time), and
                  every later download is that same file
    every use ─► audit event on the licence (who, when, why, what was returned); holders list them

A use code is 8 characters (Crockford base32, 40 bits), bound to one department and one licence,
stored only as its SHA-256, and spent atomically (UPDATE … WHERE uses < max_uses), so two workers
cannot both spend its last use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select

from cert_authority.actors import Actor, ensure_role
from cert_authority.errors import (
    IllegalTransitionError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from cert_authority.holders.service import Holder
from cert_authority.issuing.binding import RecordBinding
from cert_authority.issuing.layouts import LicenceLayouts
from cert_authority.issuing.personal import open_licence
from cert_authority.issuing.records import effective_status
from cert_authority.pki.service import PkiService
from cert_authority.registry.service import RegistryService
from cert_authority.sharing.rules import DutyRules
from cert_authority.store.audit import audit_row
from cert_authority.store.filestore import FileStore
from cert_authority.store.models import AuditEventRow, LicenceRow, SharedFileRow, UseCodeRow
from cert_authority.store.packing import NOT_READ, NotRead
from cert_authority.store.personal import PersonalData
from cert_authority.store.reading import reader
from cert_authority.timestamping.authority import TimeStampAuthority
from cert_authority.timeutil import BEIJING, aware, local_date, utc_now
from seals.box import SealBox
from seals.licence_files import seal_page_pdf
from seals.picture import generate_round_seal
from templates.identifier import mask_holder_code
from templates.layout import annotate

log = logging.getLogger("ecas.sharing")

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
CODE_LENGTH = 8
LINK_MINUTES = 10
MAX_CODE_DAYS = 30
USE_ACTIONS = ("use", "show_verify")


@dataclass(frozen=True)
class UseCode:
    id: int
    identifier: str
    department_uscc: str
    purpose: str
    max_uses: int
    uses: int
    expires_at: dt.datetime
    withdrawn: bool


@dataclass(frozen=True)
class LicenceUse:
    identifier: str
    name: str
    face_data: dict[str, str]
    copy_token: str | None  # the annotated copy: GET /api/v1/shared/{copy_token}; None: face data limited
    copy_expires_at: dt.datetime | None
    basis: str  # "use_code" or "duty"


@dataclass(frozen=True)
class UseRecord:
    identifier: str
    at: dt.datetime
    action: str  # use, show_verify
    department: str | None
    cause: str | None
    matter: str | None = None  # in a case at the counter: the matter's code, name and case number
    matter_name: str | None = None
    case_number: str | None = None
    result: str | None = None  # a show-token check's verdict (VALID, INVALID…) and why: a refused replay
    reason: str | None = None


class SharingService:
    def __init__(
        self,
        engine: Engine,
        filestore: FileStore,
        pki: PkiService,
        registry: RegistryService,
        layouts: LicenceLayouts,
        duty_rules: DutyRules,
        personal: PersonalData,
        clock: Callable[[], dt.datetime] = utc_now,
        timestamps: TimeStampAuthority | None = None,
    ) -> None:
        self.engine = engine
        self.personal = personal
        self.timestamps = timestamps  # a timestamp over the seal of annotated copies and receipts
        self.filestore = filestore
        self.pki = pki
        self.registry = registry
        self.layouts = layouts
        self.binding = RecordBinding(filestore, layouts)
        self.duty_rules = duty_rules
        self.clock = clock

    # --- holders: use codes and the record of uses ----------------------------------------------
    def create_use_code(
        self, holder: Holder, identifier: str, department_uscc: str, purpose: str, max_uses: int = 1, days: int = 7
    ) -> tuple[str, UseCode]:
        if not purpose.strip() or len(purpose) > 200:
            raise InvalidRequestError("请填写用证事项（1–200 字）")
        if not 1 <= max_uses <= 100 or not 1 <= days <= MAX_CODE_DAYS:
            raise InvalidRequestError(f"可用次数应为 1–100，有效天数应为 1–{MAX_CODE_DAYS}")
        self._own_licence(holder, identifier)
        self.registry.get_department_by_uscc(department_uscc)  # 404 for an unknown department
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        now = self.clock()
        row = UseCodeRow(
            code_sha256=_sha256(code),
            holder_id=holder.id,
            identifier=identifier,
            department_uscc=department_uscc,
            purpose=purpose.strip(),
            max_uses=max_uses,
            expires_at=now + dt.timedelta(days=days),
            created_at=now,
        )
        with Session(self.engine, expire_on_commit=False) as session:
            session.add(row)
            session.add(
                audit_row(
                    holder.actor(),
                    "use_code",
                    identifier,
                    now,
                    holder_code=holder.holder_code,
                    detail={"department": department_uscc, "purpose": row.purpose, "max_uses": max_uses},
                )
            )
            session.commit()
        return code, _use_code(row)

    def use_codes(self, holder: Holder) -> list[UseCode]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(UseCodeRow).where(col(UseCodeRow.holder_id) == holder.id).order_by(col(UseCodeRow.id).desc())
            ).all()
        return [_use_code(r) for r in rows]

    def withdraw_use_code(self, holder: Holder, code_id: int) -> UseCode:
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(UseCodeRow, code_id)
            if row is None or row.holder_id != holder.id:
                raise NotFoundError(f"没有编号为 {code_id} 的用证码")
            if row.withdrawn_at is None:
                row.withdrawn_at = self.clock()
                session.add(row)
                session.commit()
        return _use_code(row)

    def uses(self, holder: Holder) -> list[UseRecord]:
        """Who used the holder's licences, when and why (uses and show-token checks), newest first."""
        with Session(self.engine) as session:
            identifiers = session.exec(
                select(LicenceRow.identifier).where(
                    col(LicenceRow.holder_code_index) == self.personal.index(holder.holder_code)
                )
            ).all()
            events = session.exec(
                select(AuditEventRow)
                .where(col(AuditEventRow.target).in_(list(identifiers)))
                .where(col(AuditEventRow.action).in_(USE_ACTIONS))
                .order_by(col(AuditEventRow.at).desc(), col(AuditEventRow.id).desc())
            ).all()
        records = []
        for event in events:
            detail = json.loads(event.detail_json) if event.detail_json else {}
            records.append(
                UseRecord(
                    event.target,
                    aware(event.at),
                    event.action,
                    event.actor_department,
                    detail.get("cause"),
                    detail.get("matter"),
                    detail.get("matter_name"),
                    detail.get("case_number"),
                    detail.get("result"),
                    detail.get("reason"),
                )
            )
        return records

    # --- the counter page: a use code typed into the scan field -------------------------------
    def use_code_licence(self, actor: Actor, code: str) -> str | None:
        """The licence a holder's live use code was given for, if it was given to `actor`'s
        department (nothing is spent: `use_licence` spends it)."""
        if actor.department_uscc is None:
            return None
        with Session(self.engine) as session:
            row = session.exec(
                select(UseCodeRow)
                .where(col(UseCodeRow.code_sha256) == _sha256(_normalised(code)))
                .where(col(UseCodeRow.department_uscc) == actor.department_uscc)
                .where(col(UseCodeRow.withdrawn_at).is_(None))
                .where(col(UseCodeRow.expires_at) >= self.clock())
                .where(col(UseCodeRow.uses) < col(UseCodeRow.max_uses))
            ).first()
        return row.identifier if row is not None else None

    def recent_use(self, actor: Actor, identifier: str) -> tuple[LicenceRow, dict[str, str], str | None] | None:
        """The licence, the face data that use gave and its cause, if `actor` itself used it in the
        last LINK_MINUTES minutes (what the counter page shows after a use, on the GET that follows):
        the fields the use recorded, no more (a show token may have disclosed only some)."""
        since = self.clock() - dt.timedelta(minutes=LINK_MINUTES)
        with Session(self.engine) as session:
            event = session.exec(
                select(AuditEventRow)
                .where(col(AuditEventRow.target) == identifier)
                .where(col(AuditEventRow.action) == "use")
                .where(col(AuditEventRow.actor) == actor.label)
                .where(col(AuditEventRow.at) >= since)
                .order_by(col(AuditEventRow.at).desc(), col(AuditEventRow.id).desc())
            ).first()
        row = self.find_licence(identifier) if event is not None else None
        if event is None or row is None:
            return None
        detail = json.loads(event.detail_json) if event.detail_json else {}
        given = set(detail.get("fields") or ())
        face: dict[str, str] = {key: value for key, value in json.loads(row.face_json).items() if key in given}
        return row, face, detail.get("cause")

    # --- departments: rules and uses -----------------------------------------------------------
    def allow_duty(self, actor: Actor, department_uscc: str, type_code: str) -> None:
        """A duty rule for any use, without an end date (see `rules.DutyRules.add` for the rest)."""
        self.duty_rules.add(actor, department_uscc, type_code)

    def use_licence(self, actor: Actor, identifier: str, cause: str, use_code: str | None = None) -> LicenceUse:
        """Face data and an annotated copy for `actor`'s department, on the holder's use code or a
        duty rule; the cause is required and recorded. A holder's use code is spent only by a using
        department (role user): an auditor or an issuer that got hold of one may not; a duty rule
        serves the department it names, acting as user or issuer, never as auditor."""
        ensure_role(actor, "user") if use_code else ensure_role(actor, "user", "issuer")
        if actor.department_uscc is None:
            raise PermissionDeniedError("用证须以部门身份进行（使用部门的 API 密钥）")
        cause = checked_cause(cause)
        now = self.clock()
        row = self.current_licence(identifier, now)
        basis = self.spend_use_code(actor, row, use_code, now) if use_code else self._duty(actor, row, now)
        return self.hand_over(actor, row, cause, basis, now, use_code=use_code)

    def find_licence(self, identifier: str) -> LicenceRow | None:
        """The licence with its personal data opened (SealedDataError, a 409, if it does not open)."""
        with Session(reader(self.engine)) as session:
            row = session.exec(select(LicenceRow).where(col(LicenceRow.identifier) == identifier)).first()
        return open_licence(self.personal, row) if row is not None else None

    def current_licence(self, identifier: str, now: dt.datetime) -> LicenceRow:
        """The licence, if it may be used now: 404 if unknown, 409 unless it is valid and its record
        is the one its sealed file binds (`issuing.binding`)."""
        row = self.find_licence(identifier)
        if row is None:
            raise NotFoundError(f"没有证照标识为 {identifier} 的证照")
        self.ensure_current(row, now)
        return row

    def ensure_current(self, row: LicenceRow, now: dt.datetime, manifest: str | NotRead | None = NOT_READ) -> None:
        """409 unless the licence read as `row` is valid now and its record is the one sealed
        (`manifest`: its OFD's manifest name, if read with it: `binding.RecordBinding.check`)."""
        ensure_usable(row, now)
        self.binding.ensure(row, manifest)

    def hand_over(
        self,
        actor: Actor,
        row: LicenceRow,
        cause: str,
        basis: str,
        now: dt.datetime,
        *,
        use_code: str | None = None,
        detail: dict[str, Any] | None = None,
        record: Callable[[Session], None] | None = None,
        refund: Callable[[], None] | None = None,
        write: Callable[[Connection, dict[str, Any], dict[str, Any]], bool] | None = None,
        fields: Collection[str] | None = None,
    ) -> LicenceUse:
        """Give `actor`'s department the face data and the link to an annotated copy of `row`, and
        record the use (with `detail`, and whatever `record` writes, in the same transaction). If
        anything fails, a use code spent for it is given back (or `refund` runs): nothing was
        handed over.

        `write`, if given, is tried first: it writes the link's row and the audit row (given as
        column values) with whatever `record` would, in one statement of its own on an autocommit
        connection, and says whether it did; if not, the transaction above runs as usual.

        `fields`: the face fields the holder disclosed (a show token), if not every one: only those
        are given, and no annotated copy (it shows them all)."""
        face: dict[str, str] = json.loads(row.face_json)
        limited = fields is not None and not set(face) <= set(fields)
        if limited:
            face = {key: value for key, value in face.items() if key in set(fields or ())}
        try:
            token, expires, shared = (None, None, None) if limited else self._annotated_copy(actor, row, cause, now)
            recorded = {"cause": cause, "basis": basis, "fields": sorted(face), "copy": not limited, **(detail or {})}
            audit = audit_row(actor, "use", row.identifier, now, holder_code=row.holder_code, detail=recorded)
            written = False
            if write is not None and shared is not None:
                with reader(self.engine).connect() as connection:
                    written = write(connection, shared.model_dump(), audit.model_dump(exclude={"id"}))
            if not written:
                with Session(self.engine) as session:
                    if record is not None:
                        record(session)
                    if shared is not None:
                        session.add(shared)  # the copy's link, committed with the use it belongs to
                    session.add(audit)
                    session.commit()
        except BaseException:
            if use_code:
                self._refund_code(use_code)
            if refund is not None:
                refund()
            raise
        log.info(
            "licence %s (holder %s) used by %s: %s",
            row.identifier,
            mask_holder_code(row.holder_code),
            actor.department_uscc,
            basis,
        )
        return LicenceUse(row.identifier, row.name, face, token, expires, basis)

    def shared_file(self, token: str) -> bytes:
        """The annotated copy behind a live link: made, sealed and stored on the first download,
        the same file on every download after (of two first downloads at once, one stores its
        copy and both return that one)."""
        with Session(self.engine) as session:
            found = session.get(SharedFileRow, _sha256(token))
        now = self.clock()
        if found is None or aware(found.expires_at) < now:
            raise NotFoundError("链接不存在或已过期（加注件链接 10 分钟内有效）")
        if found.file_sm3 is not None:
            return self.filestore.get(found.file_sm3)
        sealed = self._render_copy(found, now)
        digest = self.filestore.put(sealed)
        with Session(self.engine) as session:
            claimed = session.exec(
                update(SharedFileRow)
                .where(col(SharedFileRow.token_sha256) == found.token_sha256)
                .where(col(SharedFileRow.file_sm3).is_(None))
                .values(file_sm3=digest)
            )
            session.commit()
            if claimed.rowcount == 1:
                return sealed
            kept = session.get(SharedFileRow, found.token_sha256)
        assert kept is not None and kept.file_sm3 is not None
        return self.filestore.get(kept.file_sm3)

    # --- inside ---------------------------------------------------------------------------------
    def _own_licence(self, holder: Holder, identifier: str) -> LicenceRow:
        with Session(self.engine) as session:
            row = session.exec(select(LicenceRow).where(col(LicenceRow.identifier) == identifier)).first()
        if row is None or row.holder_code_index != self.personal.index(holder.holder_code):
            raise NotFoundError(f"您名下没有证照 {identifier}")
        return open_licence(self.personal, row)

    def spend_use_code(self, actor: Actor, row: LicenceRow, code: str, now: dt.datetime) -> str:
        """Spend one use of the holder's code for this licence and `actor`'s department, atomically:
        of two spending its last use at once, one gets it and the other a 403."""
        with Session(self.engine) as session:
            spent = session.exec(
                update(UseCodeRow)
                .where(col(UseCodeRow.code_sha256) == _sha256(_normalised(code)))
                .where(col(UseCodeRow.identifier) == row.identifier)
                .where(col(UseCodeRow.department_uscc) == actor.department_uscc)
                .where(col(UseCodeRow.withdrawn_at).is_(None))
                .where(col(UseCodeRow.expires_at) >= now)
                .where(col(UseCodeRow.uses) < col(UseCodeRow.max_uses))
                .values(uses=col(UseCodeRow.uses) + 1)
            )
            session.commit()
        if spent.rowcount != 1:
            raise PermissionDeniedError("用证码无效：不存在、不是给本部门和此证照的、已撤回、已过期或次数已用完")
        return "use_code"

    def _refund_code(self, code: str) -> None:
        with Session(self.engine) as session:
            session.exec(
                update(UseCodeRow)
                .where(col(UseCodeRow.code_sha256) == _sha256(_normalised(code)))
                .where(col(UseCodeRow.uses) > 0)
                .values(uses=col(UseCodeRow.uses) - 1)
            )
            session.commit()

    def _duty(self, actor: Actor, row: LicenceRow, now: dt.datetime) -> str:
        rule = self.duty_rules.find(actor.department_uscc or "", row.type_code, None, local_date(now))
        if rule is None:
            raise PermissionDeniedError(
                f"无权读取证照 {row.identifier}：需要持证人的用证码，"
                f"或本部门对证照类型 {row.type_code} 的依职责用证规则"
            )
        return "duty"

    def _annotated_copy(
        self, actor: Actor, row: LicenceRow, cause: str, now: dt.datetime
    ) -> tuple[str, dt.datetime, SharedFileRow]:
        """The link to the copy: its token and expiry, and its row (for the caller to commit with
        the use), holding what the copy will say; the copy itself is made on the first download."""
        expires = now + dt.timedelta(minutes=LINK_MINUTES)
        token = secrets.token_urlsafe(24)
        shared = SharedFileRow(
            token_sha256=_sha256(token),
            identifier=row.identifier,
            expires_at=expires,
            department_uscc=actor.department_uscc,
            cause=cause,
            used_at=now,
            licence_sm3=row.pdf_sm3,
        )
        return token, expires, shared

    def _render_copy(self, shared: SharedFileRow, now: dt.datetime) -> bytes:
        """The sealed copy a link recorded: the licence's record as it was used (409 if its sealed
        PDF is no longer the one used, or the record is not the one sealed), noted with the
        department, the cause and the time of the use; sealed now, timestamped now."""
        row = self.find_licence(shared.identifier)
        if row is None or shared.used_at is None or row.pdf_sm3 != shared.licence_sm3:
            raise IllegalTransitionError("证照已变更，不能再出具这次用证的加注件，请重新用证")
        self.binding.ensure(row)
        department = self.registry.get_department_by_uscc(shared.department_uscc or "")
        cause = shared.cause or ""
        local = aware(shared.used_at).astimezone(BEIJING)
        note = f"本件仅供{department.name}用于「{cause}」，{local:%Y-%m-%d %H:%M} 由电子证照共享服务出具，复制无效"
        fonts = self.registry.fonts
        layout = annotate(self.layouts.of_record(row), note, fonts)
        box = SealBox(x=layout.width - 48, y=layout.height - 48, w=38, h=38)
        signer = self.pki.service_signer(now)
        # Written sealed in one pass, as licences are: no render, then re-parse to seal.
        picture = self.seal_picture
        stamper = self.timestamps.document_stamper() if self.timestamps is not None else None
        timestamper, room = stamper if stamper is not None else (None, 0)
        sealed = seal_page_pdf(
            layout,
            fonts,
            signer,
            picture,
            box,
            now,
            title=f"{row.name} 加注件",
            reason=f"加注件：{cause}",
            timestamper=timestamper,
            timestamp_room=room,
        )
        return sealed

    @cached_property
    def seal_picture(self) -> bytes:
        """The seal picture on annotated copies (made once per process)."""
        return generate_round_seal(self.pki.settings.authority_name, "加注专用", fonts=self.registry.fonts)


def checked_cause(cause: str) -> str:
    cause = cause.strip()
    if not cause or len(cause) > 200:
        raise InvalidRequestError("请填写用证事由（1–200 字）")
    return cause


def ensure_usable(row: LicenceRow, now: dt.datetime) -> None:
    """Only a licence valid today (not superseded, revoked, cancelled or expired) is used."""
    status = effective_status(row, local_date(now))
    if status != "issued":
        raise IllegalTransitionError(f"证照状态为 {status}，不能用证")


def _use_code(row: UseCodeRow) -> UseCode:
    assert row.id is not None
    return UseCode(
        row.id,
        row.identifier,
        row.department_uscc,
        row.purpose,
        row.max_uses,
        row.uses,
        aware(row.expires_at),
        row.withdrawn_at is not None,
    )


def _normalised(code: str) -> str:
    """As people type it: any case, with or without the dash some write in the middle."""
    return code.strip().upper().replace("-", "")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
