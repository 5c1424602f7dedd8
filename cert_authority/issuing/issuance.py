"""Issuing licences (颁证), one or a batch, and changing one (变更): check, number, render, seal, store.

    permission ─► per request: face data, holder code, photo, validity (all problems at once, 422),
       every printed character in its font (so a value cannot fail the layout after numbering)
    ─► Idempotency-Key already used? the same licence again (or 409 for a different request)
    ─► the department's active seal (409 without one)
    ─► a block of serials and licence numbers from the counters, committed on its own
    ─► per licence: layout ─► `make_licence_files`: the sealed PDF and OFD ─► files into the store
    ─► ONE transaction: for every licence its row, status event, audit event, transparency-log leaf,
       idempotency record

A batch (`issue_many`) is the same pipeline with one counter step and one transaction for all its
licences; a single issue is a batch of one.

Atomic in the only order that can be: files are written before the record, because a file without
a record is harmless (content-addressed, unreferenced) while a record without its files is a broken
licence. A failure or a crash anywhere leaves either the complete licence or no record at all; the
serial it took stays a gap and is never handed out again, so no identifier is ever reused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, sql, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from cert_authority.actors import Actor, ensure_may_write_for, issuing_department
from cert_authority.errors import (
    ConflictError,
    IdempotencyConflictError,
    IllegalTransitionError,
    InvalidRequestError,
    LicenceDataError,
    NotFoundError,
    PermissionDeniedError,
    ServiceError,
)
from cert_authority.eseals.service import SealMaterial, SealService
from cert_authority.issuing.binding import sealed_custom_data
from cert_authority.issuing.dates import Validity, validity_for
from cert_authority.issuing.face_data import CheckedFace, check_face
from cert_authority.issuing.feed_payload import licence_outbox_event
from cert_authority.issuing.files import make_licence_files, shared_parts
from cert_authority.issuing.layouts import LayoutContext, LicenceLayouts
from cert_authority.issuing.lifecycle import check_transition, status_event
from cert_authority.issuing.log_leaves import log_licence_events
from cert_authority.issuing.origin import (
    ORIGIN_FIELDS,
    STOCK_HINT,
    OriginalLicence,
    Provenance,
    check_printed_meta,
    check_provenance,
    numbers_taken,
)
from cert_authority.issuing.personal import open_licence, sealed_columns, stored_licence
from cert_authority.issuing.record_writes import NewIssue, insert_issue_at_once, insert_issues
from cert_authority.issuing.records import find_licence, licence_public
from cert_authority.issuing.schemas import LicencePublic
from cert_authority.registry.schemas import DepartmentPublic
from cert_authority.registry.service import RegistryService
from cert_authority.store.audit import audit_row
from cert_authority.store.counters import next_values, number_counter, serial_counter
from cert_authority.store.filestore import FileStore
from cert_authority.store.models import IdempotencyRow, LicenceRow
from cert_authority.store.packing import PackedFiles, Part
from cert_authority.store.personal import PersonalData
from cert_authority.timestamping.authority import TimeStampAuthority
from cert_authority.timeutil import local_date, utc_now
from keys.ocsp import ocsp_request
from keys.sm2 import sm3
from seals.licence_files import SealedLicence
from templates.errors import FontError
from templates.identifier import LicenceIdentifier, mask_holder_code
from templates.images import Picture
from templates.layout import PageLayout, check_glyphs
from templates.spec import LicenceTypeSpec

log = logging.getLogger("ecas.licences")

_IDEMPOTENCY = IdempotencyRow.__table__  # type: ignore[attr-defined]
_USED_KEYS = sql.select(_IDEMPOTENCY.c.key).where(
    _IDEMPOTENCY.c.scope == sql.bindparam("scope"), _IDEMPOTENCY.c.key.in_(sql.bindparam("keys", expanding=True))
)
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, as HTTP headers carry it
SERIAL_DIGITS = 10  # identifier serial: the per-(type, issuer) counter, zero-padded
NUMBER_DIGITS = 8  # licence number: area code + department + the per-issuer counter
# How long one OCSP response about a seal certificate is put into the licences sealed with it:
# well inside the verifier's window (verification.trust.EVIDENCE_WINDOW, 10 minutes).
EVIDENCE_REUSE = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class IssueResult:
    licence: LicencePublic
    replayed: bool  # True: an earlier request with the same Idempotency-Key made this licence


@dataclass(frozen=True)
class IssueRequest:
    """One licence to issue: face data, the photo upload, dates where the type takes them."""

    data: Mapping[str, Any]
    photo: bytes | None = None
    idempotency_key: str | None = None
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    original: OriginalLicence | None = None  # a stock or paper-twin licence (`issuing.origin`)


@dataclass(frozen=True)
class IssueOutcome:
    """What became of one request of a batch: the licence, or the client error that stopped it."""

    result: IssueResult | None = None
    error: ServiceError | None = None


@dataclass(frozen=True)
class _Context:
    layout: LayoutContext
    department: DepartmentPublic

    @property
    def spec(self) -> LicenceTypeSpec:
        return self.layout.spec


@dataclass(frozen=True)
class _Checked:
    """A request that passed every check, waiting for its number."""

    index: int
    key: str | None
    face: CheckedFace
    provenance: Provenance  # origin, number when given, issue date and validity
    fingerprint: str


@dataclass(frozen=True)
class _StoredFiles:
    """SM3 names of a licence's files in the file store."""

    pdf: str
    ofd: str
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
        layouts: LicenceLayouts,
        personal: PersonalData,
        clock: Callable[[], dt.datetime] = utc_now,
        timestamps: TimeStampAuthority | None = None,
    ) -> None:
        self.engine = engine
        self.filestore = filestore
        self.packed = PackedFiles(filestore, engine)
        self.registry = registry
        self.seals = seals
        self.layouts = layouts
        self.personal = personal
        self.clock = clock
        self.timestamps = timestamps  # every seal carries a timestamp from it (when its clock is right)
        self._evidence: dict[int, tuple[dt.datetime, bytes]] = {}  # seal certificate → (taken, OCSP)
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._postgresql = engine.dialect.name == "postgresql"

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
        original: OriginalLicence | None = None,
    ) -> IssueResult:
        """Issue a sealed licence of `type_code` for the actor's department (or, for an admin, the
        department `issuer_uscc`). The same `idempotency_key` returns the same licence. `original`:
        the paper licence behind a stock or paper-twin licence (`issuing.origin`)."""
        request = IssueRequest(data, photo, idempotency_key, valid_from, valid_until, original)
        (outcome,) = self.issue_many(actor, type_code, [request], issuer_uscc, now)
        if outcome.error is not None:
            raise outcome.error
        assert outcome.result is not None
        return outcome.result

    def issue_many(
        self,
        actor: Actor,
        type_code: str,
        requests: Sequence[IssueRequest],
        issuer_uscc: str | None = None,
        now: dt.datetime | None = None,
    ) -> list[IssueOutcome]:
        """Issue one licence per request, in order, with one block of serials and one transaction
        for all the records. A request with bad data (or a reused key with other content) gets its
        error in its outcome and costs the others nothing; permission and seal problems concern
        the whole batch and are raised."""
        started = time.perf_counter()
        now = (now or self.clock()).astimezone(dt.timezone.utc).replace(microsecond=0)
        today = local_date(now)
        issuer = issuing_department(actor, issuer_uscc)
        outcomes: list[IssueOutcome | None] = [None] * len(requests)
        checked: list[_Checked] = []
        # Every read and the block of numbers on one connection, each statement committed on its own.
        with self._autocommit.connect() as connection:
            context = self._context(connection, type_code, issuer)
            for index, request in enumerate(requests):
                try:
                    checked.append(self._check(context, issuer, index, request, today))
                except (InvalidRequestError, LicenceDataError) as exc:
                    outcomes[index] = IssueOutcome(error=exc)
            fresh, repeats = self._split_replays(connection, checked, issuer, today, outcomes)
            fresh = self._refuse_numbers_taken(connection, type_code, issuer, fresh, outcomes)
            if fresh:
                seal = self.seals.active_seal(issuer, now, connection)
                serial, number = self._numbers(connection, type_code, issuer, fresh)
        if fresh:
            made = self._make(context, fresh, serial, number, seal, now, actor)
            for item, outcome in self._record_issues(made, actor, now, issuer):
                outcomes[item.index] = outcome
        for item, first in repeats:  # a key used twice in this batch: the second is a replay
            outcomes[item.index] = _repeat_of(outcomes[first.index], item, first)
        log.info(
            "%d of %d licences of type %s issued by %s in %.0f ms",
            sum(1 for o in outcomes if o is not None and o.result is not None and not o.result.replayed),
            len(requests),
            type_code,
            issuer,
            (time.perf_counter() - started) * 1000,
        )
        return [o if o is not None else IssueOutcome(error=InvalidRequestError("未处理")) for o in outcomes]

    def _check(self, context: _Context, issuer: str, index: int, request: IssueRequest, today: dt.date) -> _Checked:
        key = request.idempotency_key
        if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
            raise InvalidRequestError("Idempotency-Key 应为 1–200 个可打印 ASCII 字符（不含空格）")
        face, provenance = self._checked(context, request, today)
        try:
            # The one way a checked value can still fail the layout (lengths were proved at
            # registration): refused here, before a serial is taken.
            check_glyphs(context.spec, context.layout.template, face.values, self.registry.fonts)
            check_printed_meta(context.layout.template, provenance, self.registry.fonts)
        except FontError as exc:
            raise LicenceDataError([str(exc)]) from None
        fingerprint = _fingerprint(context.spec.code, issuer, face, request)
        return _Checked(index, key, face, provenance, fingerprint)

    @staticmethod
    def _numbers(connection: Connection, type_code: str, issuer: str, fresh: list[_Checked]) -> tuple[int, int]:
        """The first of a block of serials, one per licence, and of licence numbers, one per licence
        that does not bring its own (stock and paper-twin licences do)."""
        to_number = sum(1 for item in fresh if item.provenance.licence_number is None)
        if to_number == len(fresh):  # both in one statement
            serial, number = next_values(
                connection, [serial_counter(type_code, issuer), number_counter(issuer)], count=len(fresh)
            )
            return serial, number
        (serial,) = next_values(connection, [serial_counter(type_code, issuer)], count=len(fresh))
        number = next_values(connection, [number_counter(issuer)], count=to_number)[0] if to_number else 0
        return serial, number

    @staticmethod
    def _refuse_numbers_taken(
        connection: Connection, type_code: str, issuer: str, fresh: list[_Checked], outcomes: list[IssueOutcome | None]
    ) -> list[_Checked]:
        """A licence number given twice (in the database or earlier in this batch) is refused: one
        number, one licence of a type and issuer (its versions share it). A check, not a
        constraint: two requests at the same moment with the same number and different content
        could both pass (the same row twice is caught by its idempotency key)."""
        given = [item.provenance.licence_number for item in fresh if item.provenance.licence_number is not None]
        if not given:
            return fresh
        taken = numbers_taken(connection, type_code, issuer, given)
        kept: list[_Checked] = []
        for item in fresh:
            number = item.provenance.licence_number
            if number is not None and number in taken:
                message = f"licence_number：证照编号 {number} 已被证照 {taken[number]} 使用，不能重复颁发"
                outcomes[item.index] = IssueOutcome(error=ConflictError(message))
                continue
            if number is not None:
                taken[number] = "（本批前面的一行）"
            kept.append(item)
        return kept

    def _split_replays(
        self,
        connection: Connection,
        checked: list[_Checked],
        issuer: str,
        today: dt.date,
        outcomes: list[IssueOutcome | None],
    ) -> tuple[list[_Checked], list[tuple[_Checked, _Checked]]]:
        """Requests whose key made a licence before get that licence (or a conflict) in `outcomes`;
        returns the rest to issue, and the repeats of a key within this batch."""
        fresh: list[_Checked] = []
        repeats: list[tuple[_Checked, _Checked]] = []
        first_with_key: dict[str, _Checked] = {}
        known = self._known_keys(connection, issuer, [c.key for c in checked if c.key is not None])
        for item in checked:
            if item.key is None:
                fresh.append(item)
            elif item.key in known:
                outcomes[item.index] = _replayed(known[item.key], item, today)
            elif item.key in first_with_key:
                repeats.append((item, first_with_key[item.key]))
            else:
                first_with_key[item.key] = item
                fresh.append(item)
        return fresh, repeats

    def _known_keys(
        self, connection: Connection, issuer: str, keys: list[str]
    ) -> dict[str, tuple[IdempotencyRow, LicenceRow]]:
        """The keys among `keys` that made a licence before, with that licence: usually none, found
        with one light query; the rows are loaded only for keys that are there."""
        found: dict[str, tuple[IdempotencyRow, LicenceRow]] = {}
        for start in range(0, len(keys), 500):  # bounded IN lists
            used = connection.execute(_USED_KEYS, {"scope": issuer, "keys": keys[start : start + 500]}).scalars().all()
            if not used:
                continue
            with Session(bind=connection) as session:
                rows = session.exec(
                    select(IdempotencyRow, LicenceRow)
                    .join(LicenceRow, col(LicenceRow.id) == col(IdempotencyRow.licence_id))
                    .where(col(IdempotencyRow.scope) == issuer)
                    .where(col(IdempotencyRow.key).in_(used))
                ).all()
            found.update({record.key: (record, open_licence(self.personal, licence)) for record, licence in rows})
        return found

    def _make(
        self,
        context: _Context,
        items: list[_Checked],
        serial: int,
        number: int,
        seal: SealMaterial,
        now: dt.datetime,
        actor: Actor,
    ) -> list[tuple[_Checked, LicenceRow | ServiceError]]:
        """Lay out, seal and store each licence, numbered from `serial` and `number` on: a block the
        counters committed before use, so a crash leaves a gap, never a number handed out twice."""
        type_code, issuer = context.spec.code, context.department.uscc
        made: list[tuple[_Checked, LicenceRow | ServiceError]] = []
        produced = []
        stamper = self._stamper()
        evidence = self._revocation_evidence(seal, now)
        numbers = iter(range(number, number + len(items)))
        for offset, item in enumerate(items):
            identifier = LicenceIdentifier(type_code, issuer, identifier_serial(serial + offset), 1)
            given = item.provenance.licence_number
            printed_number = given if given is not None else licence_number(context.department, next(numbers))
            row = self._row(context, item.face, item.provenance, identifier, printed_number, seal, now, actor)
            try:
                layout = self.layouts.of_row(context.layout, row, item.face.photo)
            except LicenceDataError as exc:  # did not fit after all: this serial stays a gap
                made.append((item, exc))
                continue
            files = self._produce(context, layout, row, seal, now, stamper, evidence)
            produced.append((item, row, files, self._shared(files, layout, seal, now, stamper, evidence)))
        stored = self._store_files([(files, item.face.photo, parts) for item, _, files, parts in produced])
        for (item, row, _, _), names in zip(produced, stored, strict=True):
            made.append((item, _with_files(row, names)))
        return made

    def _record_issues(
        self,
        made: list[tuple[_Checked, LicenceRow | ServiceError]],
        actor: Actor,
        now: dt.datetime,
        issuer: str,
    ) -> list[tuple[_Checked, IssueOutcome]]:
        """Record all the licences in one transaction; if a concurrent request took one of the keys
        meanwhile, record them one by one so only that one becomes a replay."""
        today = local_date(now)
        outcomes = [(item, IssueOutcome(error=row)) for item, row in made if not isinstance(row, LicenceRow)]
        rows = [(item, row) for item, row in made if isinstance(row, LicenceRow)]
        try:
            self._insert(rows, actor, now, issuer)
            outcomes += [
                (item, IssueOutcome(IssueResult(licence_public(row, today), replayed=False))) for item, row in rows
            ]
        except IntegrityError:
            if all(item.key is None for item, _ in rows):
                raise
            outcomes += [(item, self._record_issue(row, item, actor, now, issuer)) for item, row in rows]
        return outcomes

    def _record_issue(
        self, row: LicenceRow, item: _Checked, actor: Actor, now: dt.datetime, issuer: str
    ) -> IssueOutcome:
        """One licence in its own transaction; a concurrent request with the same key meets the
        primary key here, and this request becomes a replay of that one (its serial a gap)."""
        try:
            self._insert([(item, row)], actor, now, issuer)
        except IntegrityError:
            replay = self._replay(issuer, item, local_date(now)) if item.key else None
            if replay is None:
                raise
            log.info("licence %s not recorded: Idempotency-Key already used meanwhile", row.identifier)
            return replay
        return IssueOutcome(IssueResult(licence_public(row, local_date(now)), replayed=False))

    def _insert(self, rows: list[tuple[_Checked, LicenceRow]], actor: Actor, now: dt.datetime, issuer: str) -> None:
        """The licences' records, all or none: one statement for a single licence on PostgreSQL."""
        issues = [
            NewIssue(row, sealed_columns(self.personal, row), item.face.holder_code, item.key, item.fingerprint)
            for item, row in rows
        ]
        if self._postgresql and len(issues) == 1:
            with self._autocommit.connect() as connection:
                insert_issue_at_once(connection, issues[0], actor, now, self.personal)
        else:
            with self.engine.begin() as connection:
                insert_issues(connection, issues, actor, now, self.personal)
        for item, row in rows:
            log.info(
                "licence %s issued by %s (type %s, holder %s)",
                row.identifier,
                issuer,
                row.type_code,
                mask_holder_code(item.face.holder_code),
            )

    def _replay(self, scope: str, item: _Checked, today: dt.date) -> IssueOutcome | None:
        assert item.key is not None
        with Session(self.engine) as session:
            record = session.get(IdempotencyRow, (scope, item.key))
            if record is None:
                return None
            row = session.get(LicenceRow, record.licence_id)
            assert row is not None
            return _replayed((record, open_licence(self.personal, row)), item, today)

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
            old = open_licence(self.personal, find_licence(session, identifier))
        ensure_may_write_for(actor, old.issuer_code, f"证照 {identifier} ")
        check_transition(old, "change", today)
        if not isinstance(data, Mapping):
            raise LicenceDataError(["data：变更内容应为 JSON 对象（字段 key → 新值）"])
        with self._autocommit.connect() as connection:
            context = self._context(connection, old.type_code, old.issuer_code, permission_checked=True)
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
        if (
            dict(face.values) == json.loads(old.face_json)
            and photo is None
            and (validity.valid_from, validity.valid_until) == (old.valid_from, old.valid_until)
        ):  # a new version that says what the current one says would only supersede it
            raise LicenceDataError(["变更内容与现有照面信息、有效期相同：没有需要变更的内容，未生成新版本"])
        new_identifier = LicenceIdentifier.parse(old.identifier).next_version()
        seal = self.seals.active_seal(old.issuer_code, now)
        # A new version is issued today by the department (a converted licence keeps its origin).
        provenance = Provenance(old.origin, old.licence_number, today, validity, None)
        row = self._row(context, face, provenance, new_identifier, old.licence_number, seal, now, actor)
        layout = self.layouts.of_row(context.layout, row, face.photo)
        stamper, evidence = self._stamper(), self._revocation_evidence(seal, now)
        files = self._produce(context, layout, row, seal, now, stamper, evidence)
        (stored,) = self._store_files([(files, face.photo, self._shared(files, layout, seal, now, stamper, evidence))])
        row = _with_files(row, stored)
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
            stored = stored_licence(self.personal, row)
            session.add(stored)
            try:
                session.flush()
            except IntegrityError:  # the same next version, made by a concurrent change
                session.rollback()
                raise IllegalTransitionError(f"证照 {old.identifier} 已被同时变更，请查看最新版本") from None
            row.id = stored.id
            superseded = find_licence(session, old.identifier)
            session.add(status_event(superseded, "issued", "change", reason, now, actor))
            session.add(status_event(row, None, "change", reason, now, actor))
            log_licence_events(session.connection(), [(row, "change", now)], now, self.personal)
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
            opened_superseded = open_licence(self.personal, superseded)
            session.add(licence_outbox_event("licence.superseded", opened_superseded, now, self.personal))
            session.add(licence_outbox_event("licence.changed", row, now, self.personal))
            session.commit()
            return row

    # --- the shared pipeline -------------------------------------------------------------------
    def _context(
        self, connection: Connection, type_code: str, issuer: str, permission_checked: bool = False
    ) -> _Context:
        spec, template, department = self.registry.issuing_context(connection, type_code, issuer)
        if issuer not in spec.issuers and not permission_checked:
            raise PermissionDeniedError(f"权限不足：部门 {issuer} 不是证照类型 {type_code}（{spec.name}）的颁发部门")
        if department is None:
            raise NotFoundError(f"统一社会信用代码为 {issuer} 的部门尚未登记")
        return _Context(self.layouts.context(type_code, spec=spec, stored=template), department)

    @staticmethod
    def _checked(context: _Context, request: IssueRequest, today: dt.date) -> tuple[CheckedFace, Provenance]:
        """The face data and the provenance: a new licence's number, issue date and validity are the
        authority's to make; a stock or paper-twin licence brings some of them (`issuing.origin`)."""
        spec = context.spec
        face, problems = check_face(spec, request.data, request.photo)
        provenance: Provenance | None
        if request.original is None:
            validity, more = validity_for(spec.validity, today, request.valid_from, request.valid_until)
            provenance = Provenance("new", None, today, validity, None) if validity is not None else None
            if isinstance(request.data, Mapping) and any(key in request.data for key in ORIGIN_FIELDS):
                problems.append(STOCK_HINT)  # after "未知字段：licence_number、issue_date"
            elif more and spec.validity.kind != "given_at_issue":
                more.append(STOCK_HINT)
        else:
            provenance, more = check_provenance(
                spec.validity,
                request.original,
                request.valid_from,
                request.valid_until,
                today,
                context.department.name,
            )
        problems += more
        if problems:
            raise LicenceDataError(problems)
        assert face is not None and provenance is not None
        return face, provenance

    def _stamper(self) -> tuple[Callable[[Sequence[bytes]], Sequence[bytes] | None], int] | None:
        """The TSA's licence stamper for one chunk (its clock checked once), or None without one."""
        return self.timestamps.licence_stamper() if self.timestamps is not None else None

    def _revocation_evidence(self, seal: SealMaterial, now: dt.datetime) -> bytes | None:
        """The seal certificate's OCSP response from the branch CA, now: it goes into the files so
        they verify offline once the certificate has expired (long-term validation). Only with
        timestamps, which give the time it speaks for. One response serves this process for
        EVIDENCE_REUSE (a response cost 20 ms, 0.4 ms a licence in chunks of 50); a revoked seal
        certificate seals nothing, so a reused "good" never goes into a file sealed after it."""
        if self.timestamps is None:
            return None
        certificate, issuer = seal.signer.certificate_chain[0], seal.signer.certificate_chain[1]
        kept = self._evidence.get(certificate.serial)
        if kept is not None and dt.timedelta(0) <= now - kept[0] < EVIDENCE_REUSE:
            return kept[1]
        response = self.seals.pki.ocsp_response(ocsp_request(certificate, issuer), now)
        self._evidence = {certificate.serial: (now, response)}  # the seal of this batch only
        return response

    def _produce(
        self,
        context: _Context,
        layout: PageLayout,
        row: LicenceRow,
        seal: SealMaterial,
        now: dt.datetime,
        stamper: tuple[Callable[[Sequence[bytes]], Sequence[bytes] | None], int] | None,
        evidence: bytes | None,
    ) -> SealedLicence:
        """The sealed files of `row`, its record's digest sealed into the OFD (`issuing.binding`)."""
        title = f"{context.spec.name} {row.licence_number}"
        doc_id = sm3(row.identifier.encode()).hex()[:32]
        custom = sealed_custom_data(row)
        return make_licence_files(
            layout,
            self.registry.fonts,
            seal,
            now,
            title=title,
            doc_id=doc_id,
            custom=custom,
            stamper=stamper,
            revocation_evidence=evidence,
        )

    def _shared(
        self,
        files: SealedLicence,
        layout: PageLayout,
        seal: SealMaterial,
        now: dt.datetime,
        stamper: object | None,
        evidence: bytes | None,
    ) -> tuple[list[Part], list[Part]]:
        """What the licence's PDF and OFD share with other licences (`issuing.files.shared_parts`)."""
        tsa_chain = self.timestamps.signer(now).certificate_chain[:1] if stamper and self.timestamps else ()
        return shared_parts(
            files, layout, self.registry.fonts, seal, tsa_chain=tsa_chain, revocation_evidence=evidence
        )

    def _store_files(
        self, licences: list[tuple[SealedLicence, Picture | None, tuple[list[Part], list[Part]]]]
    ) -> list[_StoredFiles]:
        """Each licence's files into the store, durable together before any record is written (see
        the module docstring): an orphan file is harmless, a record without its file is not. The
        PDF and OFD are stored packed (`store.packing`): what they share with other licences once."""
        blobs: list[tuple[bytes, bytes | None, Sequence[Part]]] = []
        for files, photo, (pdf_parts, ofd_parts) in licences:
            blobs += [(files.pdf, files.pdf_sm3, pdf_parts), (files.ofd, None, ofd_parts)]
            if photo is not None:
                blobs.append((photo.data, None, ()))
        names = iter(self.packed.put_packed(blobs))
        stored = []
        for _, photo, _ in licences:
            pdf, ofd = next(names), next(names)
            stored.append(_StoredFiles(pdf=pdf, ofd=ofd, photo=next(names) if photo is not None else None))
        return stored

    @staticmethod
    def _row(
        context: _Context,
        face: CheckedFace,
        provenance: Provenance,
        identifier: LicenceIdentifier,
        number: str,
        seal: SealMaterial,
        now: dt.datetime,
        actor: Actor,
    ) -> LicenceRow:
        """The record, but for the names of its sealed files (`_with_files`, once they are stored)."""
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
            issue_date=provenance.issue_date,
            holder_name=face.holder_name,
            holder_code=face.holder_code,
            holder_code_type=face.holder_code_type,
            valid_from=provenance.validity.valid_from,
            valid_until=provenance.validity.valid_until,
            seal_id=seal.seal_id,
            seal_name=seal.name,
            sealed_by=seal.signer_name,
            sealed_at=now,
            template_version=context.layout.template_version,
            face_json=json.dumps(face.values, ensure_ascii=False, sort_keys=True),
            photo_sm3=sm3(face.photo.data).hex() if face.photo is not None else None,  # the store's name for it
            pdf_sm3="",
            ofd_sm3="",
            status="issued",
            status_changed_at=now,
            created_at=now,  # for a converted licence: when it was converted
            created_by=actor.label,
            origin=provenance.origin,
            original_issuer_name=provenance.original_issuer_name,
        )


def _with_files(row: LicenceRow, stored: _StoredFiles) -> LicenceRow:
    assert stored.photo == row.photo_sm3, "the photo was stored under another name than the record's"
    row.pdf_sm3, row.ofd_sm3 = stored.pdf, stored.ofd
    return row


def _replayed(known: tuple[IdempotencyRow, LicenceRow], item: _Checked, today: dt.date) -> IssueOutcome:
    record, row = known
    if record.request_sm3 != item.fingerprint:
        return IssueOutcome(
            error=IdempotencyConflictError(
                f"Idempotency-Key {item.key!r} 已用于另一份内容不同的颁证请求（证照 {row.identifier}）："
                "同一个键只能重放完全相同的请求，新的请求请换一个键"
            )
        )
    return IssueOutcome(IssueResult(licence_public(row, today), replayed=True))


def _repeat_of(first: IssueOutcome | None, item: _Checked, first_item: _Checked) -> IssueOutcome:
    """The outcome of a request whose key an earlier request of the same batch used."""
    if first is None or first.result is None:
        return first or IssueOutcome(error=InvalidRequestError("未处理"))
    if item.fingerprint != first_item.fingerprint:
        return IssueOutcome(
            error=IdempotencyConflictError(
                f"Idempotency-Key {item.key!r} 在同一批中已用于另一份内容不同的颁证请求"
                f"（证照 {first.result.licence.identifier}）"
            )
        )
    return IssueOutcome(IssueResult(first.result.licence, replayed=True))


def _fingerprint(type_code: str, issuer: str, face: CheckedFace, request: IssueRequest) -> str:
    """SM3 of the request as checked (canonical values), so a retry that differs only in spacing
    or key order is the same request, and any real difference is another one."""
    canonical: dict[str, Any] = {
        "type_code": type_code,
        "issuer": issuer,
        "data": face.values,
        "photo": sm3(request.photo).hex() if request.photo is not None else None,
        "valid_from": request.valid_from.isoformat() if request.valid_from else None,
        "valid_until": request.valid_until.isoformat() if request.valid_until else None,
    }
    if request.original is not None:  # absent for a new licence, so its fingerprint is as before
        canonical["original"] = dataclasses.asdict(request.original)
    return sm3(json.dumps(canonical, ensure_ascii=False, sort_keys=True, default=str).encode()).hex()
