"""The bases on which a department may use a holder's licence without a use code in hand:

- duty rules (依职责用证): an administrator lets a department read licences of a type for its duties,
  for any use or only in cases of some matters, until an end date (inclusive, China's calendar),
  or until withdrawn. Withdrawn and expired rules are kept and listed: who granted what, when;
- standing authorisations (授权用证): a holder lets one department use their licences in cases of
  one matter, until an expiry or until they withdraw it.

The third basis, a use code (用证码) the holder hands over for one licence, lives in `service`.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Column, CompoundSelect, Table, bindparam, cast, literal_column, null, union_all
from sqlalchemy import select as core_select
from sqlalchemy.engine import Engine, Row
from sqlmodel import Session, col, select

from cert_authority.actors import Actor, ensure_role
from cert_authority.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from cert_authority.holders.service import Holder
from cert_authority.registry.service import RegistryService
from cert_authority.sharing.matters import MatterService
from cert_authority.store.audit import audit_row
from cert_authority.store.models import DutyRuleRow, StandingAuthorisationRow
from cert_authority.store.personal import PersonalData
from cert_authority.store.reading import reader
from cert_authority.timeutil import aware, local_date, utc_now

MAX_AUTHORISATION_DAYS = 366


@dataclass(frozen=True)
class DutyRule:
    id: int
    department_uscc: str
    type_code: str
    matters: tuple[str, ...] | None  # None: any use
    valid_until: dt.date | None
    created_at: dt.datetime
    created_by: str
    withdrawn_at: dt.datetime | None
    withdrawn_by: str | None

    def in_force(self, today: dt.date) -> bool:
        return self.withdrawn_at is None and (self.valid_until is None or today <= self.valid_until)

    def serves(self, matter: str | None, today: dt.date) -> bool:
        """In force, and for any use or (in a case) for this matter."""
        return self.in_force(today) and (self.matters is None or (matter is not None and matter in self.matters))

    def state(self, today: dt.date) -> Literal["active", "expired", "withdrawn"]:
        if self.withdrawn_at is not None:
            return "withdrawn"
        return "active" if self.in_force(today) else "expired"


class DutyRules:
    def __init__(
        self,
        engine: Engine,
        registry: RegistryService,
        matters: MatterService,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.matters = matters
        self.clock = clock

    def add(
        self,
        actor: Actor,
        department_uscc: str,
        type_code: str,
        matters: Sequence[str] | None = None,
        valid_until: dt.date | None = None,
    ) -> DutyRule:
        """Grant a rule (administrators). The same rule in force already is returned, not doubled."""
        ensure_role(actor, "admin")
        self.registry.get_department_by_uscc(department_uscc)
        self.registry.type_spec(type_code)
        chosen = tuple(sorted(set(matters))) if matters else None
        for code in chosen or ():
            if not self.matters.exists(code):
                raise InvalidRequestError(f"事项 {code} 尚未登记")
            # A rule that could never apply is an administrator's slip: say so instead of granting it.
            matter = self.matters.spec(code)
            if department_uscc not in matter.departments:
                raise InvalidRequestError(f"部门 {department_uscc} 不办理事项「{matter.name}」（{code}）：规则不会生效")
            if type_code not in {m.licence_type for m in matter.materials}:
                raise InvalidRequestError(f"事项「{matter.name}」（{code}）不需要证照类型 {type_code}，此规则不会生效")
        now = self.clock()
        if valid_until is not None and valid_until < local_date(now):
            raise InvalidRequestError(f"截止日期 {valid_until} 已过")
        for rule in self.list(actor, department_uscc, type_code):
            same = (rule.type_code, rule.matters, rule.valid_until) == (type_code, chosen, valid_until)
            if same and rule.withdrawn_at is None:
                return rule
        row = DutyRuleRow(
            department_uscc=department_uscc,
            type_code=type_code,
            matters_json=json.dumps(list(chosen)) if chosen else None,
            valid_until=valid_until,
            created_at=now,
            created_by=actor.label,
        )
        with Session(self.engine, expire_on_commit=False) as session:
            session.add(row)
            session.flush()
            detail = {"matters": list(chosen) if chosen else None, "valid_until": str(valid_until or "")}
            session.add(audit_row(actor, "duty_rule", f"duty_rule:{row.id}", now, detail=detail))
            session.commit()
        return _rule(row)

    def list(self, actor: Actor, department_uscc: str | None = None, type_code: str | None = None) -> list[DutyRule]:
        """Admins and auditors see every department's rules; others their own department's."""
        if actor.role not in ("admin", "auditor"):
            if actor.department_uscc is None or department_uscc not in (None, actor.department_uscc):
                raise PermissionDeniedError(
                    f"权限不足：本部门（{actor.department_uscc}）只能查看本部门的依职责用证规则"
                )
            department_uscc = actor.department_uscc
        query = select(DutyRuleRow).order_by(col(DutyRuleRow.id))
        if department_uscc is not None:
            query = query.where(col(DutyRuleRow.department_uscc) == department_uscc)
        if type_code is not None:
            query = query.where(col(DutyRuleRow.type_code) == type_code)
        with Session(self.engine) as session:
            return [_rule(r) for r in session.exec(query).all()]

    def withdraw(self, actor: Actor, rule_id: int) -> DutyRule:
        ensure_role(actor, "admin")
        now = self.clock()
        with Session(self.engine, expire_on_commit=False) as session:
            row = self._row(session, rule_id)
            if row.withdrawn_at is None:
                row.withdrawn_at, row.withdrawn_by = now, actor.label
                session.add(row)
                session.add(audit_row(actor, "duty_rule_withdraw", f"duty_rule:{rule_id}", now))
                session.commit()
        return _rule(row)

    def expire(self, actor: Actor, rule_id: int, valid_until: dt.date) -> DutyRule:
        """Set (or move) the last day a rule is in force."""
        ensure_role(actor, "admin")
        now = self.clock()
        with Session(self.engine, expire_on_commit=False) as session:
            row = self._row(session, rule_id)
            if row.withdrawn_at is not None:
                raise InvalidRequestError(f"依职责用证规则 {rule_id} 已撤销")
            row.valid_until = valid_until
            session.add(row)
            detail = {"valid_until": valid_until.isoformat()}
            session.add(audit_row(actor, "duty_rule_expire", f"duty_rule:{rule_id}", now, detail=detail))
            session.commit()
        return _rule(row)

    def find(self, department_uscc: str, type_code: str, matter: str | None, today: dt.date) -> DutyRule | None:
        """A rule in force that lets the department use licences of the type (in a case of `matter`)."""
        with Session(reader(self.engine)) as session:
            rows = session.exec(
                select(DutyRuleRow)
                .where(col(DutyRuleRow.department_uscc) == department_uscc)
                .where(col(DutyRuleRow.type_code) == type_code)
                .where(col(DutyRuleRow.withdrawn_at).is_(None))
            ).all()
        return next((r for r in map(_rule, rows) if r.serves(matter, today)), None)

    def types_served(
        self, department_uscc: str, type_codes: Sequence[str], matter: str | None, today: dt.date
    ) -> set[str]:
        """Of `type_codes`, those a rule in force lets the department use (in a case of `matter`):
        `find` for several types in one query."""
        if not type_codes:
            return set()
        with Session(reader(self.engine)) as session:
            rows = session.exec(
                select(DutyRuleRow)
                .where(col(DutyRuleRow.department_uscc) == department_uscc)
                .where(col(DutyRuleRow.type_code).in_(list(type_codes)))
                .where(col(DutyRuleRow.withdrawn_at).is_(None))
            ).all()
        return {r.type_code for r in map(_rule, rows) if r.serves(matter, today)}

    @staticmethod
    def _row(session: Session, rule_id: int) -> DutyRuleRow:
        row = session.get(DutyRuleRow, rule_id)
        if row is None:
            raise NotFoundError(f"没有编号为 {rule_id} 的依职责用证规则")
        return row


def _rule(row: DutyRuleRow | Row[Any]) -> DutyRule:
    assert row.id is not None
    return DutyRule(
        id=row.id,
        department_uscc=row.department_uscc,
        type_code=row.type_code,
        matters=tuple(json.loads(row.matters_json)) if row.matters_json else None,
        valid_until=row.valid_until,
        created_at=aware(row.created_at),
        created_by=row.created_by,
        withdrawn_at=aware(row.withdrawn_at) if row.withdrawn_at else None,
        withdrawn_by=row.withdrawn_by,
    )


# --- standing authorisations (授权用证) ---------------------------------------------------------
@dataclass(frozen=True)
class Authorisation:
    id: int
    department_uscc: str
    matter_code: str
    expires_at: dt.datetime
    created_at: dt.datetime
    withdrawn: bool

    def in_force(self, now: dt.datetime) -> bool:
        return not self.withdrawn and now <= self.expires_at


class Authorisations:
    def __init__(
        self,
        engine: Engine,
        registry: RegistryService,
        matters: MatterService,
        personal: PersonalData,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.matters = matters
        self.personal = personal
        self.clock = clock

    def grant(self, holder: Holder, department_uscc: str, matter_code: str, days: int = 90) -> Authorisation:
        """The holder lets `department_uscc` use their licences in cases of `matter_code` for `days`."""
        if not 1 <= days <= MAX_AUTHORISATION_DAYS:
            raise InvalidRequestError(f"授权有效天数应为 1–{MAX_AUTHORISATION_DAYS}")
        department = self.registry.get_department_by_uscc(department_uscc)
        matter = self.matters.spec(matter_code)
        if department_uscc not in matter.departments:
            raise InvalidRequestError(f"{department.name}不办理事项「{matter.name}」，不能就此事项授权")
        now = self.clock()
        row = StandingAuthorisationRow(
            holder_id=holder.id,
            holder_code_index=self.personal.index(holder.holder_code),  # the code itself is not kept
            department_uscc=department_uscc,
            matter_code=matter_code,
            expires_at=now + dt.timedelta(days=days),
            created_at=now,
        )
        with Session(self.engine, expire_on_commit=False) as session:
            session.add(row)
            session.flush()
            detail = {"department": department_uscc, "matter": matter_code, "days": days}
            session.add(
                audit_row(
                    holder.actor(),
                    "authorise",
                    f"authorisation:{row.id}",
                    now,
                    holder_code=holder.holder_code,
                    detail=detail,
                )
            )
            session.commit()
        return _authorisation(row)

    def list(self, holder: Holder) -> list[Authorisation]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(StandingAuthorisationRow)
                .where(col(StandingAuthorisationRow.holder_id) == holder.id)
                .order_by(col(StandingAuthorisationRow.id).desc())
            ).all()
        return [_authorisation(r) for r in rows]

    def withdraw(self, holder: Holder, authorisation_id: int) -> Authorisation:
        now = self.clock()
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(StandingAuthorisationRow, authorisation_id)
            if row is None or row.holder_id != holder.id:
                raise NotFoundError(f"没有编号为 {authorisation_id} 的授权")
            if row.withdrawn_at is None:
                row.withdrawn_at = now
                session.add(row)
                session.add(
                    audit_row(
                        holder.actor(),
                        "authorise_withdraw",
                        f"authorisation:{authorisation_id}",
                        now,
                        holder_code=holder.holder_code,
                    )
                )
                session.commit()
        return _authorisation(row)

    def find(self, holder_code: str, department_uscc: str, matter_code: str, now: dt.datetime) -> Authorisation | None:
        with Session(reader(self.engine)) as session:
            rows = session.exec(
                select(StandingAuthorisationRow)
                .where(col(StandingAuthorisationRow.holder_code_index) == self.personal.index(holder_code))
                .where(col(StandingAuthorisationRow.department_uscc) == department_uscc)
                .where(col(StandingAuthorisationRow.matter_code) == matter_code)
                .where(col(StandingAuthorisationRow.withdrawn_at).is_(None))
            ).all()
        return next((a for a in map(_authorisation, rows) if a.in_force(now)), None)


def _authorisation(row: StandingAuthorisationRow | Row[Any]) -> Authorisation:
    assert row.id is not None
    return Authorisation(
        id=row.id,
        department_uscc=row.department_uscc,
        matter_code=row.matter_code,
        expires_at=aware(row.expires_at),
        created_at=aware(row.created_at),
        withdrawn=row.withdrawn_at is not None,
    )


# --- both at once: what a case at the counter asks -------------------------------------------
_DUTY: Table = DutyRuleRow.__table__  # type: ignore[attr-defined]
_STANDING: Table = StandingAuthorisationRow.__table__  # type: ignore[attr-defined]


def standing_bases(
    duty_rules: DutyRules,
    authorisations: Authorisations,
    department_uscc: str,
    type_codes: Sequence[str],
    matter_code: str,
    holder_code: str,
    now: dt.datetime,
) -> tuple[set[str], bool]:
    """`DutyRules.types_served` for the matter and whether `Authorisations.find` finds one, in
    one query (UNION ALL of the rules and the authorisations not withdrawn), judged as they judge:
    (the types a rule in force serves, whether the holder's authorisation is in force)."""
    if not type_codes:
        return set(), False
    index = authorisations.personal.index(holder_code)
    parameters = {"department": department_uscc, "types": list(type_codes), "matter": matter_code, "holder": index}
    with reader(duty_rules.engine).connect() as connection:
        rows = connection.execute(_bases_statement(), parameters).all()
    today = local_date(now)
    served = {
        rule.type_code for rule in (_rule(r) for r in rows if r.kind == "duty") if rule.serves(matter_code, today)
    }
    authorised = any(_authorisation(r).in_force(now) for r in rows if r.kind == "authorisation")
    return served, authorised


@functools.cache
def _bases_statement() -> CompoundSelect:
    """The columns `_rule` and `_authorisation` read, a row's kind first; NULL where a row has none."""

    def none(column: Column[Any]) -> Any:
        return cast(null(), column.type).label(column.name)

    duty = core_select(
        literal_column("'duty'").label("kind"),
        *(_DUTY.c[name] for name in ("id", "department_uscc", "type_code", "matters_json", "valid_until")),
        *(_DUTY.c[name] for name in ("created_at", "created_by", "withdrawn_at", "withdrawn_by")),
        none(_STANDING.c.matter_code),
        none(_STANDING.c.expires_at),
    ).where(
        _DUTY.c.department_uscc == bindparam("department"),
        _DUTY.c.type_code.in_(bindparam("types", expanding=True)),
        _DUTY.c.withdrawn_at.is_(None),
    )
    standing = core_select(
        literal_column("'authorisation'"),
        _STANDING.c.id,
        _STANDING.c.department_uscc,
        none(_DUTY.c.type_code),
        none(_DUTY.c.matters_json),
        none(_DUTY.c.valid_until),
        _STANDING.c.created_at,
        none(_DUTY.c.created_by),
        _STANDING.c.withdrawn_at,
        none(_DUTY.c.withdrawn_by),
        _STANDING.c.matter_code,
        _STANDING.c.expires_at,
    ).where(
        _STANDING.c.holder_code_index == bindparam("holder"),
        _STANDING.c.department_uscc == bindparam("department"),
        _STANDING.c.matter_code == bindparam("matter"),
        _STANDING.c.withdrawn_at.is_(None),
    )
    return union_all(duty, standing)
