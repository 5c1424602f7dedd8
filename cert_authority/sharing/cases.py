"""Cases at the counter (办件): material reuse instead of paper copies (减材料).

    open(matter, applicant) ─► checklist: per required material, the applicant's licences of that
        type valid now (and as long as the matter asks), each with the basis this department has:
        duty_rule (a duty rule for the type, for any use or this matter), consent (the holder's
        standing authorisation for this department and matter), or null (ask for a use code)
    reuse(identifier[, use code | show token]) ─► a use as in `service` (face data, annotated copy,
        audited with the matter and case number, so the holder sees it), and the material marked as
        met; a show token (亮证码) the holder shows at the counter is their consent for the licence
        it shows, accepted once wherever it is checked first (`consent`)
    close ─► the sealed receipt (材料复用清单), kept in the file store; closing again returns it

A use and the material it meets are written in one transaction, which also checks that the case is
still open (an UPDATE of the case row: a close running at the same time waits for it, or it for the
close). A material is claimed by an UPDATE … WHERE identifier IS NULL: one licence per material.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from sqlalchemy import bindparam, func, literal_column, update
from sqlalchemy import select as core_select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select

from cert_authority.actors import Actor, ensure_role
from cert_authority.errors import (
    ConflictError,
    IllegalTransitionError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    SealedDataError,
)
from cert_authority.holders.service import checked_holder_code
from cert_authority.issuing.personal import open_licence
from cert_authority.issuing.records import StatusFields, effective_status
from cert_authority.pki.service import PkiService
from cert_authority.registry.service import RegistryService
from cert_authority.sharing import consent
from cert_authority.sharing.case_writes import (
    claim_for_close,
    close_at_once,
    next_case_id,
    open_at_once,
    reuse_at_once,
)
from cert_authority.sharing.matters import MaterialSpec, MatterService, MatterSpec
from cert_authority.sharing.receipts import ReceiptContent, ReceiptLine, render_receipt
from cert_authority.sharing.rules import Authorisations, DutyRules, standing_bases
from cert_authority.sharing.service import LicenceUse, SharingService
from cert_authority.store.audit import audit_row
from cert_authority.store.filestore import FileStore
from cert_authority.store.models import (
    AuditEventRow,
    CaseMaterialRow,
    CaseRow,
    DepartmentRow,
    LicenceRow,
    PackedFileRow,
)
from cert_authority.store.packing import NOT_READ, NotRead
from cert_authority.store.personal import PersonalData
from cert_authority.store.reading import reader
from cert_authority.timeutil import aware, local_date, utc_now
from keys.errors import InvalidCodeError
from keys.signer import Signer
from keys.uscc import validate_uscc
from seals.picture import generate_round_seal
from templates.identifier import LicenceIdentifier, mask_holder_code

log = logging.getLogger("ecas.cases")

CASE_TABLE = "service_case"
_LICENCES = LicenceRow.__table__  # type: ignore[attr-defined]
# The applicant's issued licences of the matter's types, newest first: what the checklist shows.
_CANDIDATES = (
    core_select(*(_LICENCES.c[name] for name in ("identifier", "name", "type_code", "status", "valid_until")))
    .where(
        _LICENCES.c.holder_code_index == bindparam("holder"),
        _LICENCES.c.type_code.in_(bindparam("types", expanding=True)),
        _LICENCES.c.status == literal_column("'issued'"),
    )
    .order_by(_LICENCES.c.created_at.desc(), _LICENCES.c.id.desc())
)
MAX_CASE_NUMBER = 60
MAX_LISTED = 200
# How a basis is named to the counter: duty_rule or consent (by a use code or a standing
# authorisation); the case and the audit keep which one.
BasisName = Literal["duty_rule", "consent"]
ConsentKind = Literal["use_code", "show_token", "authorisation"]
CONSENT_KINDS: tuple[ConsentKind, ...] = ("use_code", "show_token", "authorisation")


def split_basis(basis: str) -> tuple[BasisName, ConsentKind | None]:
    for kind in CONSENT_KINDS:
        if basis == kind:
            return "consent", kind
    assert basis == "duty_rule", basis
    return "duty_rule", None


@dataclass(frozen=True)
class Candidate:
    identifier: str
    name: str
    valid_until: dt.date | None
    basis: BasisName | None  # None: the applicant's consent is needed (a use code)


@dataclass(frozen=True)
class Reused:
    identifier: str
    version: int
    licence_sm3: str
    basis: str  # duty_rule, use_code, authorisation
    at: dt.datetime
    fields: tuple[str, ...] | None = None  # the face fields a show token disclosed; None: another basis, every one


@dataclass(frozen=True)
class CaseMaterial:
    position: int
    name: str
    licence_type: str | None
    candidates: tuple[Candidate, ...]
    reused: Reused | None


@dataclass(frozen=True)
class Case:
    id: int
    matter_code: str
    matter_name: str
    department_uscc: str
    applicant: str  # masked
    case_number: str | None
    status: str  # open, closed
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    receipt_sm3: str | None
    materials: tuple[CaseMaterial, ...]


@dataclass(frozen=True)
class CaseSummary:
    """A case in a department's list: what it is and how far the materials are."""

    id: int
    matter_code: str
    matter_name: str
    department_uscc: str
    applicant: str  # masked
    case_number: str | None
    status: str
    opened_at: dt.datetime
    required: int
    reused: int


@dataclass(frozen=True)
class CaseReuse:
    case_id: int
    material: str
    basis: BasisName
    consent: ConsentKind | None
    use: LicenceUse


@dataclass(frozen=True)
class Receipt:
    case_id: int
    sm3: str
    pdf: bytes


class CaseService:
    def __init__(
        self,
        engine: Engine,
        filestore: FileStore,
        pki: PkiService,
        registry: RegistryService,
        sharing: SharingService,
        matters: MatterService,
        duty_rules: DutyRules,
        authorisations: Authorisations,
        personal: PersonalData,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.personal = personal
        self.filestore = filestore
        self.pki = pki
        self.registry = registry
        self.sharing = sharing
        self.matters = matters
        self.duty_rules = duty_rules
        self.authorisations = authorisations
        self.clock = clock
        self._postgresql = engine.dialect.name == "postgresql"  # writes in one statement (case_writes)

    # --- open and look ------------------------------------------------------------------------
    def open(
        self,
        actor: Actor,
        matter_code: str,
        applicant_code: str,
        department_uscc: str | None = None,
        case_number: str | None = None,
    ) -> Case:
        """Open a case for a department handling the matter: its user keys and staff, or an
        administrator naming the department."""
        department = _acting_department(actor, department_uscc)
        matter = self.matters.spec(matter_code)  # 404 for an unknown matter
        if department not in matter.departments:
            if actor.is_admin:
                raise InvalidRequestError(f"部门 {department} 不办理事项「{matter.name}」")
            raise PermissionDeniedError(f"本部门（{department}）不办理事项「{matter.name}」")
        applicant = checked_holder_code(applicant_code)  # 422 naming the failed check
        number = _checked_case_number(case_number)
        now = self.clock()
        row = CaseRow(
            matter_code=matter.code,
            department_uscc=department,
            applicant_index=self.personal.index(applicant),
            case_number=number,
            status="open",
            opened_at=now,
            opened_by=actor.label,
        )
        detail = {"matter": matter.code, "department": department, "case_number": number}

        def filled(case_id: int) -> tuple[list[CaseMaterialRow], AuditEventRow]:
            """With its id known: the applicant sealed to the row, the materials, the audit row."""
            row.applicant_sealed = self.personal.seal({"applicant_code": applicant}, table=CASE_TABLE, row=str(case_id))
            materials = [
                CaseMaterialRow(case_id=case_id, position=position, name=material.name, type_code=material.licence_type)
                for position, material in enumerate(matter.materials)
            ]
            audit = audit_row(actor, "case_open", f"case:{case_id}", now, holder_code=applicant, detail=detail)
            return materials, audit

        if self._postgresql:  # the id first, then the rows in one statement (case_writes)
            with reader(self.engine).connect() as connection:
                row.id = next_case_id(connection)
                materials, audit = filled(row.id)
                open_at_once(connection, row, materials, audit)
        else:
            with Session(self.engine, expire_on_commit=False) as session:
                session.add(row)
                session.flush()
                assert row.id is not None
                materials, audit = filled(row.id)
                session.add_all(materials)
                session.add(audit)
                session.commit()
        assert row.id is not None
        log.info("case %s opened: %s by %s for %s", row.id, matter.code, department, mask_holder_code(applicant))
        # The checklist from the rows just written (not read back): the same answer `get` gives.
        return self._checklist(row, materials, matter, applicant, now)

    def get(self, actor: Actor, case_id: int) -> Case:
        """The case and its checklist (candidates are listed while it is open)."""
        row, materials = self._case(case_id)
        _ensure_may_see(actor, row)
        return self._checklist(row, materials, self.matters.spec(row.matter_code), self._applicant(row), self.clock())

    def _checklist(
        self, row: CaseRow, materials: list[CaseMaterialRow], matter: MatterSpec, applicant: str, now: dt.datetime
    ) -> Case:
        candidates = self._candidates(row, applicant, matter, now) if row.status == "open" else {}
        assert row.id is not None
        return Case(
            id=row.id,
            matter_code=row.matter_code,
            matter_name=matter.name,
            department_uscc=row.department_uscc,
            applicant=mask_holder_code(applicant),
            case_number=row.case_number,
            status=row.status,
            opened_at=aware(row.opened_at),
            closed_at=aware(row.closed_at) if row.closed_at else None,
            receipt_sm3=row.receipt_sm3,
            materials=tuple(
                CaseMaterial(
                    position=m.position,
                    name=m.name,
                    licence_type=m.type_code,
                    candidates=candidates.get(m.position, ()),
                    reused=_reused(m),
                )
                for m in materials
            ),
        )

    def list_cases(
        self, actor: Actor, department_uscc: str | None = None, status: str = "open", limit: int = MAX_LISTED
    ) -> list[CaseSummary]:
        """A department's cases (open ones by default), newest first, with the count of materials
        required and reused (counted by the database): a using department's own; administrators and
        auditors any department's, or all."""
        ensure_role(actor, "user", "admin", "auditor")
        if actor.role == "user":
            if department_uscc and department_uscc != actor.department_uscc:
                raise PermissionDeniedError(f"权限不足：只能查看本部门（{actor.department_uscc}）的办件")
            department_uscc = actor.department_uscc
        if status not in ("open", "closed"):
            raise InvalidRequestError("办件状态应为 open（办理中）或 closed（已办结）")
        if not 1 <= limit <= MAX_LISTED:
            raise InvalidRequestError(f"每次至多列出 {MAX_LISTED} 件")
        materials = (
            select(
                col(CaseMaterialRow.case_id),
                func.count().label("required"),
                func.count(col(CaseMaterialRow.identifier)).label("reused"),
            )
            .group_by(col(CaseMaterialRow.case_id))
            .subquery()
        )
        query = (
            select(CaseRow, materials.c.required, materials.c.reused)
            .join(materials, materials.c.case_id == col(CaseRow.id), isouter=True)
            .where(col(CaseRow.status) == status)
            .order_by(col(CaseRow.opened_at).desc(), col(CaseRow.id).desc())
            .limit(limit)
        )
        if department_uscc:
            query = query.where(col(CaseRow.department_uscc) == department_uscc)
        with Session(self.engine) as session:
            found = session.exec(query).all()
        summaries = []
        for row, required, reused in found:
            assert row.id is not None
            summaries.append(
                CaseSummary(
                    row.id,
                    row.matter_code,
                    self.matters.spec(row.matter_code).name,
                    row.department_uscc,
                    mask_holder_code(self._applicant(row)),
                    row.case_number,
                    row.status,
                    aware(row.opened_at),
                    required or 0,
                    reused or 0,
                )
            )
        return summaries

    def _candidates(
        self, row: CaseRow, applicant: str, matter: MatterSpec, now: dt.datetime
    ) -> dict[int, tuple[Candidate, ...]]:
        """Per licence material: the applicant's licences of its type usable now, with the basis."""
        types = matter.licence_types
        if not types:
            return {}
        today = local_date(now)
        parameters = {"holder": self.personal.index(applicant), "types": list(types)}
        with reader(self.engine).connect() as connection:  # the columns a candidate needs, no ORM objects
            licences = connection.execute(_CANDIDATES, parameters).all()
        basis = {code: _public(basis) for code, basis in self._standing_bases(row, applicant, types, now).items()}
        found: dict[int, tuple[Candidate, ...]] = {}
        for position, material in enumerate(matter.materials):
            if material.licence_type is None:
                continue
            found[position] = tuple(
                Candidate(licence.identifier, licence.name, licence.valid_until, basis[material.licence_type])
                for licence in licences
                if licence.type_code == material.licence_type and _meets(licence, material, today)
            )
        return found

    def _standing_basis(self, row: CaseRow, applicant: str, type_code: str, now: dt.datetime) -> str | None:
        """The basis the department has without a use code in hand: a duty rule, else the holder's
        standing authorisation, else none."""
        return self._standing_bases(row, applicant, (type_code,), now)[type_code]

    def _standing_bases(
        self, row: CaseRow, applicant: str, type_codes: Sequence[str], now: dt.datetime
    ) -> dict[str, str | None]:
        """`_standing_basis` for several types: the duty rules and the holder's authorisation (for
        the department and matter, whatever the type) in one query (`rules.standing_bases`)."""
        duty, authorised = standing_bases(
            self.duty_rules, self.authorisations, row.department_uscc, type_codes, row.matter_code, applicant, now
        )
        return {code: "duty_rule" if code in duty else "authorisation" if authorised else None for code in type_codes}

    def licence_presented(
        self, actor: Actor, *, show_token: str | None = None, use_code: str | None = None
    ) -> tuple[str, str]:
        """The holder and licence a show token, or a use code given to `actor`'s department, presents
        at the counter: (holder code, identifier), so a case can be opened for that holder. Nothing
        is spent here (`reuse` spends it); an invalid one is a 403."""
        ensure_role(actor, "user", "admin")
        now = self.clock()
        identifier = (
            consent.read_show_token(self.pki, show_token, now).identifier
            if show_token
            else self.sharing.use_code_licence(actor, use_code or "")
        )
        if identifier is None:
            raise PermissionDeniedError("用证码无效：不存在、不是给本部门的、已撤回、已过期或次数已用完")
        licence = self.sharing.find_licence(identifier)
        if licence is None:
            raise NotFoundError(f"没有证照标识为 {identifier} 的证照")
        return licence.holder_code, licence.identifier

    # --- reuse --------------------------------------------------------------------------------
    def reuse(
        self,
        actor: Actor,
        case_id: int,
        identifier: str | None,
        use_code: str | None = None,
        show_token: str | None = None,
    ) -> CaseReuse:
        """Use one of the applicant's licences for the case: on the use code or the show token
        given (the identifier may then be left out: the token names its licence), else a duty rule,
        else the holder's standing authorisation; with none of them, 403 and nothing recorded."""
        ensure_role(actor, "user", "admin")
        if use_code and show_token:
            raise InvalidRequestError("用证码和亮证码只需提供一个")
        named = identifier.strip() if identifier and not show_token else None
        if named:
            try:
                LicenceIdentifier.parse(named)
            except InvalidCodeError as exc:  # say so, rather than that the applicant holds no such licence
                raise InvalidRequestError(f"证照标识有误：{exc}") from None
        manifest: str | NotRead | None = NOT_READ
        if named:  # the licence is known already: read with the case (and its OFD's manifest name)
            case, materials, stored, manifest = self._case_and_licence(case_id, named)
        else:
            (case, materials), stored = self._case(case_id), None
        _ensure_may_act(actor, case)
        if case.status != "open":
            raise IllegalTransitionError(f"办件 {case_id} 已办结，不能再复用证照")
        now = self.clock()
        applicant = self._applicant(case)
        shown = consent.read_show_token(self.pki, show_token, now) if show_token else None
        if shown is not None:
            identifier = consent.shown_licence(shown, identifier)
        if not identifier or not identifier.strip():
            raise InvalidRequestError("请提供证照标识（或持证人出示的亮证码）")
        if named:
            licence = open_licence(self.personal, stored) if stored is not None else None
        else:
            licence = self.sharing.find_licence(identifier.strip())
        if shown is not None and (licence is None or licence.holder_code != applicant):
            raise PermissionDeniedError("亮证码出示的不是申请人的证照：须由申请人本人出示其证照的亮证码")
        if licence is None or licence.holder_code != applicant:
            raise NotFoundError(f"申请人名下没有证照 {identifier.strip()}")
        matter = self.matters.spec(case.matter_code)
        position = _material_for(licence, materials, matter)
        material = matter.materials[position]
        self.sharing.ensure_current(licence, now, manifest)  # 409 unless valid now
        if not _meets(licence, material, local_date(now)):
            days = material.conditions.valid_for_days if material.conditions else 0
            raise IllegalTransitionError(
                f"证照 {licence.identifier} 不满足材料「{material.name}」的要求：须在申请日后至少 {days} 天内有效"
            )
        acting = Actor(actor.label, actor.role, case.department_uscc)  # an admin acts for the case's department
        refund: Callable[[], None] | None = None
        if use_code:
            basis = self.sharing.spend_use_code(acting, licence, use_code, now)
        elif shown is not None:
            basis, refund = consent.accept_show_token(self.engine, acting, shown)
        else:
            standing = self._standing_basis(case, applicant, licence.type_code, now)
            if standing is None:
                raise PermissionDeniedError(
                    f"没有用证依据：本部门没有适用于事项「{matter.name}」的证照类型「{licence.name}」依职责用证规则，"
                    "持证人也未授权本部门办理此事项时用证；请向申请人索取用证码（持证人同意）"
                )
            basis = standing
        cause = f"{matter.name}（办件号 {case.case_number or case_id}）"
        # A show token gives what the holder chose to show on it, no more (its fields).
        disclosed = sorted(shown.fields) if shown is not None else None
        disclosed_json = None if disclosed is None else json.dumps(disclosed, ensure_ascii=False)
        detail = {
            "matter": matter.code,
            "matter_name": matter.name,
            "case": case_id,
            "case_number": case.case_number,
            "material": material.name,
        }

        def record(session: Session) -> None:
            still_open = session.exec(
                update(CaseRow)
                .where(col(CaseRow.id) == case_id)
                .where(col(CaseRow.status) == "open")
                .values(status="open")
                .execution_options(synchronize_session=False)  # nothing of it is loaded in this session
            )
            if still_open.rowcount != 1:
                raise IllegalTransitionError(f"办件 {case_id} 已办结，不能再复用证照")
            claimed = session.exec(
                update(CaseMaterialRow)
                .where(col(CaseMaterialRow.case_id) == case_id)
                .where(col(CaseMaterialRow.position) == position)
                .where(col(CaseMaterialRow.identifier).is_(None))
                .values(
                    identifier=licence.identifier,
                    licence_version=licence.version,
                    licence_sm3=licence.pdf_sm3,
                    basis=basis,
                    reused_at=now,
                    reused_by=actor.label,
                    disclosed_fields=disclosed_json,
                )
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:
                current = session.get(CaseMaterialRow, (case_id, position))
                if current is None or current.identifier != licence.identifier:
                    raise ConflictError(f"材料「{material.name}」已复用其他证照")

        def write(connection: Connection, shared: dict[str, Any], audit: dict[str, Any]) -> bool:
            """PostgreSQL: the same in one statement when the material is still free; when it is
            not (claimed by this licence before, or by another), `record` settles it as above."""
            claim = {
                "identifier": licence.identifier,
                "licence_version": licence.version,
                "licence_sm3": licence.pdf_sm3,
                "basis": basis,
                "reused_at": now,
                "reused_by": actor.label,
                "disclosed_fields": disclosed_json,
            }
            still_open, claimed = reuse_at_once(connection, case_id, position, claim, shared, audit)
            if not still_open:
                raise IllegalTransitionError(f"办件 {case_id} 已办结，不能再复用证照")
            return claimed

        use = self.sharing.hand_over(
            acting,
            licence,
            cause,
            basis,
            now,
            use_code=use_code,
            detail=detail,
            record=record,
            refund=refund,
            write=write if self._postgresql else None,
            fields=disclosed,
        )
        return CaseReuse(case_id, material.name, *split_basis(basis), use)

    # --- close --------------------------------------------------------------------------------
    def close(self, actor: Actor, case_id: int) -> Receipt:
        """Close the case with its sealed receipt; a closed case gives the receipt it was closed with."""
        ensure_role(actor, "user", "admin")
        now = self.clock()
        # Made before the claim: the service key's certificate is written on first use, which on
        # SQLite would wait for the write lock the claim holds (the same process: a deadlock).
        signer, picture = self.pki.service_signer(now), self._seal_picture
        timestamps = self.sharing.timestamps  # its certificate and serials likewise, before the claim
        stamper = timestamps.document_stamper() if timestamps is not None else None
        with Session(self.engine) as session:
            # The claim: of two closing at once, one renders; the other waits here, then reads it.
            # A using department claims only its own cases: another's is left to the 403 below.
            department = None if actor.is_admin else actor.department_uscc or ""  # of none: claims nothing
            if claim_for_close(session.connection(), case_id, now, actor.label, department):
                row, materials, names, department_name = _closing(session, case_id)
                applicant = self._applicant(row)
                pdf = self._render(row, applicant, materials, names, department_name, now, signer, picture, stamper)
                digest = self.filestore.put_new(pdf, within=session.connection())  # one commit for both
                reused = sum(1 for m in materials if m.identifier is not None)
                detail = {
                    "matter": row.matter_code,
                    "receipt_sm3": digest,
                    "required": len(materials),
                    "reused": reused,
                }
                audit = audit_row(actor, "case_close", f"case:{case_id}", now, holder_code=applicant, detail=detail)
                if self._postgresql:  # the audit row and the receipt's digest in one statement
                    close_at_once(session.connection(), case_id, digest, audit)
                else:
                    row.receipt_sm3 = digest
                    session.add(row)
                    session.add(audit)
                session.commit()
                log.info("case %s closed: %s of %s materials reused", case_id, reused, len(materials))
                return Receipt(case_id, digest, pdf)
            session.rollback()
        case, _ = self._case(case_id)  # not claimed: unknown (404), another department's (403), or closed
        _ensure_may_act(actor, case)
        return self.receipt(actor, case_id)

    def receipt(self, actor: Actor, case_id: int) -> Receipt:
        """The sealed receipt of a closed case."""
        case, _ = self._case(case_id)
        _ensure_may_see(actor, case)
        if case.receipt_sm3 is None:
            raise IllegalTransitionError(f"办件 {case_id} 尚未办结，还没有材料复用清单")
        return Receipt(case_id, case.receipt_sm3, self.filestore.get(case.receipt_sm3))

    def _render(
        self,
        row: CaseRow,
        applicant: str,
        materials: list[CaseMaterialRow],
        names: dict[str, str],
        department_name: str,
        now: dt.datetime,
        signer: Signer,
        picture: bytes,
        stamper: tuple[Callable[[bytes], bytes | None], int] | None,
    ) -> bytes:
        assert row.id is not None
        matter = self.matters.spec(row.matter_code)
        lines = tuple(
            ReceiptLine(
                name=m.name,
                licence_name=names.get(m.identifier) if m.identifier else None,
                identifier=m.identifier,
                version=m.licence_version,
                licence_sm3=m.licence_sm3,
                basis=m.basis,
                reused_at=aware(m.reused_at) if m.reused_at else None,
            )
            for m in materials
        )
        content = ReceiptContent(
            case_id=row.id,
            matter_code=matter.code,
            matter_name=matter.name,
            department_name=department_name,
            department_uscc=row.department_uscc,
            applicant=mask_holder_code(applicant),
            case_number=row.case_number,
            opened_at=aware(row.opened_at),
            closed_at=now,
            lines=lines,
            authority_name=self.pki.settings.authority_name,
            url=f"{self.pki.settings.base_url}/api/v1/cases/{row.id}/receipt",
        )
        return render_receipt(content, self.registry.fonts, signer, picture, now, stamper)

    def warm_up(self) -> None:
        """What a fresh worker's first case would otherwise wait for, on every thread that takes
        one at once: the seal pictures of copies and receipts (some 270 ms each; the fonts for
        reading packed files are warmed with the pictures). No database access; run in the
        background as the server starts."""
        self._seal_picture  # noqa: B018 (made and kept)
        self.sharing.seal_picture  # noqa: B018

    @cached_property
    def _seal_picture(self) -> bytes:
        return generate_round_seal(self.pki.settings.authority_name, "办件专用", fonts=self.registry.fonts)

    # --- inside ---------------------------------------------------------------------------------
    def _applicant(self, row: CaseRow) -> str:
        """The case's applicant code, opened; SealedDataError if it was edited or moved from
        another case, or its index (what the case's licences are found by) is not the code's."""
        assert row.id is not None
        code: str = self.personal.open(row.applicant_sealed, table=CASE_TABLE, row=str(row.id))["applicant_code"]
        if self.personal.index(code) != row.applicant_index:
            raise SealedDataError(f"{CASE_TABLE} {row.id}：申请人代码的索引与加密记录不符，记录可能被篡改")
        return code

    def _case(self, case_id: int) -> tuple[CaseRow, list[CaseMaterialRow]]:
        """The case and its materials, in one query."""
        with Session(reader(self.engine)) as session:
            found = session.exec(
                select(CaseRow, CaseMaterialRow)
                .join(CaseMaterialRow, col(CaseMaterialRow.case_id) == col(CaseRow.id), isouter=True)
                .where(col(CaseRow.id) == case_id)
                .order_by(col(CaseMaterialRow.position))
            ).all()
        if not found:
            raise NotFoundError(f"没有编号为 {case_id} 的办件")
        return found[0][0], [material for _, material in found if material is not None]

    def _case_and_licence(
        self, case_id: int, identifier: str
    ) -> tuple[CaseRow, list[CaseMaterialRow], LicenceRow | None, str | None]:
        """The case, its materials, the licence `identifier` as stored (personal data sealed) and
        the name of its OFD's manifest if the OFD is stored packed: one query (`_case`,
        `SharingService.find_licence` and `PackedFiles.check_intact`'s first read)."""
        with Session(reader(self.engine)) as session:
            found = session.exec(_CASE_AND_LICENCE, params={"case_id": case_id, "identifier": identifier}).all()
        if not found:
            raise NotFoundError(f"没有编号为 {case_id} 的办件")
        case, _, licence, manifest = found[0]
        return case, [material for _, material, _, _ in found if material is not None], licence, manifest


# The statements of a reuse and a close, built once with bound parameters: built per call, each
# paid for its expressions and for walking it to find its cache key.
_CASE_AND_LICENCE = (
    select(CaseRow, CaseMaterialRow, LicenceRow, PackedFileRow.manifest_sm3)
    .join(CaseMaterialRow, col(CaseMaterialRow.case_id) == col(CaseRow.id), isouter=True)
    .join(LicenceRow, col(LicenceRow.identifier) == bindparam("identifier"), isouter=True)
    .join(PackedFileRow, col(PackedFileRow.sm3) == col(LicenceRow.ofd_sm3), isouter=True)
    .where(col(CaseRow.id) == bindparam("case_id"))
    .order_by(col(CaseMaterialRow.position))
)
_CLOSING = (
    select(CaseRow, CaseMaterialRow, LicenceRow.name, DepartmentRow.name)
    .join(CaseMaterialRow, col(CaseMaterialRow.case_id) == col(CaseRow.id), isouter=True)
    .join(LicenceRow, col(LicenceRow.identifier) == col(CaseMaterialRow.identifier), isouter=True)
    .join(DepartmentRow, col(DepartmentRow.uscc) == col(CaseRow.department_uscc), isouter=True)
    .where(col(CaseRow.id) == bindparam("case_id"))
    .order_by(col(CaseMaterialRow.position))
)


def _closing(session: Session, case_id: int) -> tuple[CaseRow, list[CaseMaterialRow], dict[str, str], str]:
    """The case being closed, its materials, the names of the licences reused and the name of the
    case's department: one query."""
    found = session.exec(_CLOSING, params={"case_id": case_id}).all()
    case, department = found[0][0], found[0][3]
    if department is None:
        raise NotFoundError(f"统一社会信用代码为 {case.department_uscc} 的部门尚未登记")
    materials = [material for _, material, _, _ in found if material is not None]
    names = {m.identifier: name for _, m, name, _ in found if m and m.identifier and name}
    return case, materials, names, department


def _public(basis: str | None) -> BasisName | None:
    return None if basis is None else split_basis(basis)[0]


def _reused(row: CaseMaterialRow) -> Reused | None:
    if row.identifier is None:
        return None
    assert row.licence_version is not None and row.licence_sm3 and row.basis and row.reused_at
    fields = None if row.disclosed_fields is None else tuple(json.loads(row.disclosed_fields))
    return Reused(row.identifier, row.licence_version, row.licence_sm3, row.basis, aware(row.reused_at), fields)


def _meets(licence: StatusFields, material: MaterialSpec, today: dt.date) -> bool:
    """Valid today and, if the matter asks, for so many days after the application date."""
    if effective_status(licence, today) != "issued":
        return False
    days = material.conditions.valid_for_days if material.conditions else 0
    return licence.valid_until is None or licence.valid_until >= today + dt.timedelta(days=days)


def _material_for(licence: LicenceRow, materials: list[CaseMaterialRow], matter: MatterSpec) -> int:
    """The material this licence meets: the one it met already, else the first of its type still open."""
    of_type = [m for m in materials if m.type_code == licence.type_code]
    if not of_type:
        raise InvalidRequestError(f"事项「{matter.name}」不需要证照类型「{licence.name}」（{licence.type_code}）")
    same = next((m for m in of_type if m.identifier == licence.identifier), None)
    free = next((m for m in of_type if m.identifier is None), None)
    chosen = same or free
    if chosen is None:
        names = "、".join(m.name for m in of_type)
        raise ConflictError(f"材料「{names}」已复用其他证照")
    return chosen.position


def _acting_department(actor: Actor, requested: str | None) -> str:
    ensure_role(actor, "user", "admin")
    if actor.is_admin:
        if not requested:
            raise InvalidRequestError("管理员代为办件须指明办理部门（department_uscc / --department）")
        try:
            return validate_uscc(requested.strip().upper())
        except InvalidCodeError as exc:  # say what is wrong with it, not that it handles no matter
            raise InvalidRequestError(f"办理部门的统一社会信用代码有误：{exc}") from None
    assert actor.department_uscc is not None
    if requested and requested != actor.department_uscc:
        raise PermissionDeniedError(
            f"权限不足：只能以本部门（{actor.department_uscc}）名义办件，不能代 {requested} 办理"
        )
    return actor.department_uscc


def _ensure_may_act(actor: Actor, case: CaseRow) -> None:
    ensure_role(actor, "user", "admin")
    if not actor.is_admin and actor.department_uscc != case.department_uscc:
        raise PermissionDeniedError(f"权限不足：办件 {case.id} 属于部门 {case.department_uscc}")


def _ensure_may_see(actor: Actor, case: CaseRow) -> None:
    if actor.role in ("admin", "auditor"):
        return
    ensure_role(actor, "admin", "auditor", "user")
    if actor.department_uscc != case.department_uscc:
        raise PermissionDeniedError(f"权限不足：办件 {case.id} 属于部门 {case.department_uscc}")


def _checked_case_number(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    number = text.strip()
    if len(number) > MAX_CASE_NUMBER or any(ord(c) < 32 for c in number):
        raise InvalidRequestError(f"办件号应为不含控制字符的文字，至多 {MAX_CASE_NUMBER} 个字符")
    return number
