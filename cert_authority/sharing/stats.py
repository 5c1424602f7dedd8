"""Statistics for the plans' figures (减材料): per day, month or quarter (China's calendar), in total
or per department, licence type or matter — licences issued, uses by departments, show-token checks,
cases opened, materials those cases required and how many were met by reusing a licence.

Counted by the database (one GROUP BY per source: only the groups come back, however many events)
from the audit (issue, use, show_verify events, joined to the licence for its type and issuer) and
from the case tables; materials are counted on the day their case was opened, so the
reuse rate of a day compares like with like. Where a figure has no such key (a case per licence
type, an issuance per matter), its key is null.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import xlsxwriter
from sqlalchemy import JSON, Executable, Integer, String, cast, func, literal
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from cert_authority.actors import Actor, ensure_role
from cert_authority.errors import InvalidRequestError
from cert_authority.store.models import AuditEventRow, CaseMaterialRow, CaseRow, LicenceRow
from cert_authority.timeutil import BEIJING, local_date, utc_now

Period = Literal["day", "month", "quarter"]
GroupBy = Literal["department", "type", "matter"]
METRICS = ("licences_issued", "uses", "show_checks", "cases", "materials_required", "materials_reused")
DEFAULT_DAYS = 30
MAX_DAYS = 3660
# A column or SQL expression (the models' columns are typed as the ORM's Mapped[...]).
Expr = Any
BEIJING_ZONE = "Asia/Shanghai"  # no daylight saving since 1991: UTC+8, as timeutil.BEIJING


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


# Column headings for people (the dashboard and the XLSX file); CSV and JSON keep the METRICS keys.
METRIC_LABELS = {
    "licences_issued": "颁发证照",
    "uses": "用证",
    "show_checks": "亮证核验",
    "cases": "办件",
    "materials_required": "所需材料",
    "materials_reused": "复用材料",
}
GROUP_LABELS = {None: "合计", "department": "部门", "type": "证照类型", "matter": "事项"}
PERIOD_LABELS = {"day": "日", "month": "月", "quarter": "季度"}


def stats_xlsx(stats: Stats) -> bytes:
    """The statistics as an Excel workbook (XLSX, Office Open XML): one sheet, a heading row, a row
    per period and group, the totals last; the reuse rate as a percentage."""
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    book.set_properties({"title": f"电子证照统计 {stats.start} 至 {stats.end}", "author": "ECAS"})
    sheet = book.add_worksheet("统计")
    bold = book.add_format({"bold": True})
    percent = book.add_format({"num_format": "0.00%"})
    headings = [f"统计周期（{PERIOD_LABELS[stats.period]}）", GROUP_LABELS[stats.by], *METRIC_LABELS.values(), "复用率"]
    sheet.write_row(0, 0, headings, bold)
    for index, row in enumerate((*stats.rows, stats.totals), start=1):
        label = "合计" if row is stats.totals else row.period
        sheet.write_row(index, 0, [label, row.key or "", *(row.counts[m] for m in METRICS)])
        if row.reuse_rate is not None:
            sheet.write_number(index, len(headings) - 1, row.reuse_rate, percent)
    sheet.set_column(0, 1, 22)
    sheet.set_column(2, len(headings) - 1, 10)
    sheet.freeze_panes(1, 0)
    book.close()
    return out.getvalue()


EARLIEST, LATEST = dt.date(1900, 1, 1), dt.date(9998, 12, 31)


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
        for day in (start, end):
            if day is not None and not EARLIEST <= day <= LATEST:  # the window's arithmetic stays in range
                raise InvalidRequestError(f"统计日期应在 {EARLIEST} 至 {LATEST} 之间，收到 {day}")
        end = end or local_date(self.clock())
        start = start or end - dt.timedelta(days=DEFAULT_DAYS - 1)
        if start > end:
            raise InvalidRequestError(f"起始日期 {start} 晚于截止日期 {end}")
        if (end - start).days >= MAX_DAYS:
            raise InvalidRequestError(f"统计区间至多 {MAX_DAYS} 天")
        since = dt.datetime.combine(start, dt.time(), BEIJING).astimezone(dt.timezone.utc)
        until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), BEIJING).astimezone(dt.timezone.utc)
        sql = _Sql(self.engine.dialect.name, period)
        counts: dict[tuple[str, str | None], dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
        with Session(self.engine) as session:
            for query in self._queries(sql, by, since, until):
                for label, key, *values in session.execute(query.query).all():
                    for metric, value in zip(query.metrics, values, strict=True):
                        counts[(label, key)][metric] += int(value)
        totals = {metric: sum(row[metric] for row in counts.values()) for metric in METRICS}
        rows = tuple(
            StatsRow(label, key, values)
            for (label, key), values in sorted(counts.items(), key=lambda item: (item[0][0], item[0][1] or ""))
        )
        return Stats(start, end, by, period, rows, StatsRow("total", None, totals))

    @staticmethod
    def _queries(sql: _Sql, by: GroupBy | None, since: dt.datetime, until: dt.datetime) -> list[_Counted]:
        """One GROUP BY query per source, each giving (period, key, its metrics...): the database
        counts, only the groups come back."""
        audit_at, opened_at = col(AuditEventRow.at), col(CaseRow.opened_at)
        events = {
            "licences_issued": ("issue", col(LicenceRow.issuer_code)),
            "uses": ("use", col(AuditEventRow.actor_department)),
            "show_checks": ("show_verify", col(AuditEventRow.actor_department)),
        }
        queries = []
        for metric, (action, department) in events.items():
            matter = sql.matter(col(AuditEventRow.detail_json)) if action == "use" else None
            key, label = _key(by, department, col(LicenceRow.type_code), matter), sql.period(audit_at)
            queries.append(
                _Counted(
                    (metric,),
                    sql_select(label, key, func.count())
                    .select_from(AuditEventRow)
                    .join(LicenceRow, col(LicenceRow.identifier) == col(AuditEventRow.target))
                    .where(col(AuditEventRow.action) == action, audit_at >= since, audit_at < until)
                    .group_by(label, key),
                )
            )
        opened, label = (opened_at >= since, opened_at < until), sql.period(opened_at)
        key = _key(by, col(CaseRow.department_uscc), None, col(CaseRow.matter_code))
        queries.append(
            _Counted(
                ("cases",),
                sql_select(label, key, func.count()).select_from(CaseRow).where(*opened).group_by(label, key),
            )
        )
        key = _key(by, col(CaseRow.department_uscc), col(CaseMaterialRow.type_code), col(CaseRow.matter_code))
        queries.append(
            _Counted(
                ("materials_required", "materials_reused"),
                sql_select(label, key, func.count(), func.count(col(CaseMaterialRow.reused_at)))
                .select_from(CaseRow)
                .join(CaseMaterialRow, col(CaseMaterialRow.case_id) == col(CaseRow.id))
                .where(*opened)
                .group_by(label, key),
            )
        )
        return queries


@dataclass(frozen=True)
class _Counted:
    metrics: tuple[str, ...]
    query: Executable  # SELECT period, key, *metrics … GROUP BY period, key


class _Sql:
    """What differs between PostgreSQL and SQLite: the period label of a UTC timestamp on China's
    calendar (UTC+8 all year), and a key of the JSON detail of an audit event."""

    def __init__(self, dialect: str, period: Period) -> None:
        self.postgresql = dialect == "postgresql"
        self.kind = period

    def period(self, at: Expr) -> Expr:
        if self.postgresql:
            local = func.timezone(BEIJING_ZONE, at)
            formats = {"day": "YYYY-MM-DD", "month": "YYYY-MM", "quarter": 'YYYY-"Q"Q'}
            return func.to_char(local, formats[self.kind])
        shift = "+8 hours"
        if self.kind == "quarter":
            month = cast(func.strftime("%m", at, shift), Integer)
            quarter = cast((month + 2) // 3, String)
            return func.strftime("%Y-Q", at, shift, type_=String).concat(quarter)
        return func.strftime("%Y-%m-%d" if self.kind == "day" else "%Y-%m", at, shift, type_=String)

    def matter(self, detail: Expr) -> Expr:
        if self.postgresql:
            return func.json_extract_path_text(cast(detail, JSON), "matter")
        return func.json_extract(detail, "$.matter")


def _key(
    by: GroupBy | None,
    department: Expr,
    type_code: Expr | None,
    matter: Expr | None,
) -> Expr:
    chosen = {"department": department, "type": type_code, "matter": matter}.get(by) if by else None
    return chosen if chosen is not None else literal(None, String)
