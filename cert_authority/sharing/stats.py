"""Statistics for the plans' figures (减材料): per day, month or quarter (China's calendar), in total
or per department, licence type or matter — licences issued, uses by departments, show-token checks,
cases opened, materials those cases required and how many were met by reusing a licence.

Counted from the audit (issue, use, show_verify events, joined to the licence for its type and
issuer) and from the case tables; materials are counted on the day their case was opened, so the
reuse rate of a day compares like with like. Where a figure has no such key (a case per licence
type, an issuance per matter), its key is null.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from cert_authority.actors import Actor, ensure_role
from cert_authority.errors import InvalidRequestError
from cert_authority.store.models import AuditEventRow, CaseMaterialRow, CaseRow, LicenceRow
from cert_authority.timeutil import BEIJING, aware, local_date, utc_now

Period = Literal["day", "month", "quarter"]
GroupBy = Literal["department", "type", "matter"]
METRICS = ("licences_issued", "uses", "show_checks", "cases", "materials_required", "materials_reused")
DEFAULT_DAYS = 30
MAX_DAYS = 3660


@dataclass(frozen=True)
class StatsRow:
    period: str  # 2026-05-01, 2026-05 or 2026-Q2
    key: str | None  # the department, type or matter; None in totals or where it does not apply
    counts: dict[str, int]

    @property
    def reuse_rate(self) -> float | None:
        required = self.counts["materials_required"]
        return round(self.counts["materials_reused"] / required, 4) if required else None


@dataclass(frozen=True)
class Stats:
    start: dt.date
    end: dt.date
    by: GroupBy | None
    period: Period
    rows: tuple[StatsRow, ...]
    totals: StatsRow

    def to_dict(self) -> dict[str, object]:
        def row(r: StatsRow) -> dict[str, object]:
            return {"period": r.period, "key": r.key, **r.counts, "reuse_rate": r.reuse_rate}

        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "by": self.by,
            "period": self.period,
            "rows": [row(r) for r in self.rows],
            "totals": {**self.totals.counts, "reuse_rate": self.totals.reuse_rate},
        }

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["period", self.by or "key", *METRICS, "reuse_rate"])
        for r in (*self.rows, self.totals):
            rate = "" if r.reuse_rate is None else f"{r.reuse_rate:.4f}"
            writer.writerow([r.period, r.key or "", *(r.counts[m] for m in METRICS), rate])
        return out.getvalue()


class StatsService:
    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.engine = engine
        self.clock = clock

    def compute(
        self,
        actor: Actor,
        start: dt.date | None = None,
        end: dt.date | None = None,
        by: GroupBy | None = None,
        period: Period = "day",
    ) -> Stats:
        """Counts from `start` to `end` inclusive (default: the last 30 days); admins and auditors."""
        ensure_role(actor, "admin", "auditor")
        end = end or local_date(self.clock())
        start = start or end - dt.timedelta(days=DEFAULT_DAYS - 1)
        if start > end:
            raise InvalidRequestError(f"起始日期 {start} 晚于截止日期 {end}")
        if (end - start).days >= MAX_DAYS:
            raise InvalidRequestError(f"统计区间至多 {MAX_DAYS} 天")
        since = dt.datetime.combine(start, dt.time(), BEIJING).astimezone(dt.timezone.utc)
        until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), BEIJING).astimezone(dt.timezone.utc)
        counts: dict[tuple[str, str | None], dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
        totals = dict.fromkeys(METRICS, 0)

        def add(metric: str, at: dt.datetime, keys: dict[str, str | None]) -> None:
            label = _period(local_date(aware(at)), period)
            counts[(label, keys[by] if by else None)][metric] += 1
            totals[metric] += 1

        with Session(self.engine) as session:
            for at, department, type_code, _detail in self._licence_events(session, "issue", since, until):
                add("licences_issued", at, {"department": department, "type": type_code, "matter": None})
            for at, department, type_code, detail in self._licence_events(session, "use", since, until):
                matter = _matter(detail) if by == "matter" else None
                add("uses", at, {"department": department, "type": type_code, "matter": matter})
            for at, department, type_code, _detail in self._licence_events(session, "show_verify", since, until):
                add("show_checks", at, {"department": department, "type": type_code, "matter": None})
            cases = session.exec(
                select(CaseRow.opened_at, CaseRow.department_uscc, CaseRow.matter_code)
                .where(col(CaseRow.opened_at) >= since)
                .where(col(CaseRow.opened_at) < until)
            ).all()
            for at, department, matter in cases:
                add("cases", at, {"department": department, "type": None, "matter": matter})
            materials = session.execute(
                sql_select(
                    col(CaseRow.opened_at),
                    col(CaseRow.department_uscc),
                    col(CaseRow.matter_code),
                    col(CaseMaterialRow.type_code),
                    col(CaseMaterialRow.reused_at),
                )
                .join(CaseMaterialRow, col(CaseMaterialRow.case_id) == col(CaseRow.id))
                .where(col(CaseRow.opened_at) >= since)
                .where(col(CaseRow.opened_at) < until)
            ).all()
            for at, department, matter, type_code, reused_at in materials:
                keys = {"department": department, "type": type_code, "matter": matter}
                add("materials_required", at, keys)
                if reused_at is not None:
                    add("materials_reused", at, keys)
        rows = tuple(
            StatsRow(label, key, values)
            for (label, key), values in sorted(counts.items(), key=lambda item: (item[0][0], item[0][1] or ""))
        )
        return Stats(start, end, by, period, rows, StatsRow("total", None, totals))

    @staticmethod
    def _licence_events(
        session: Session, action: str, since: dt.datetime, until: dt.datetime
    ) -> Iterable[tuple[dt.datetime, str | None, str, str | None]]:
        """(time, department, licence type, detail) of each audit event `action` on a licence: the
        issuing department for issuance, the acting department otherwise."""
        department = col(LicenceRow.issuer_code) if action == "issue" else col(AuditEventRow.actor_department)
        return session.exec(
            select(AuditEventRow.at, department, LicenceRow.type_code, AuditEventRow.detail_json)
            .join(LicenceRow, col(LicenceRow.identifier) == col(AuditEventRow.target))
            .where(col(AuditEventRow.action) == action)
            .where(col(AuditEventRow.at) >= since)
            .where(col(AuditEventRow.at) < until)
        ).all()


def _period(day: dt.date, period: Period) -> str:
    if period == "month":
        return f"{day:%Y-%m}"
    if period == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return day.isoformat()


def _matter(detail: str | None) -> str | None:
    if not detail:
        return None
    matter = json.loads(detail).get("matter")
    return matter if isinstance(matter, str) else None
