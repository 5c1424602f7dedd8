"""The statistics dashboard (/console/stats, administrators and auditors): totals, the reuse rate
(减材料), charts per period drawn as inline SVG (`charts`), the table per period and group, and the
same figures to download as CSV or XLSX."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cert_authority.actors import ensure_role
from cert_authority.errors import InvalidRequestError
from cert_authority.sharing.stats import (
    GROUP_LABELS,
    METRIC_LABELS,
    METRICS,
    PERIOD_LABELS,
    GroupBy,
    Period,
    Stats,
    StatsService,
    stats_xlsx,
)
from cert_authority.web.charts import BarChart, Series, bar_chart
from cert_authority.web.common import render
from cert_authority.web.staff_pages import Staff

router = APIRouter(prefix="/console", include_in_schema=False)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _compute(
    request: Request, staff: Staff, start: str, end: str, by: str, period: str
) -> Stats:
    ensure_role(staff.actor(), "admin", "auditor")
    if by not in ("", "department", "type", "matter"):
        raise InvalidRequestError("分组应为部门、证照类型或事项")
    if period not in PERIOD_LABELS:
        raise InvalidRequestError("统计周期应为日、月或季度")
    service: StatsService = request.app.state.stats
    group: GroupBy | None = by or None  # type: ignore[assignment]
    chosen: Period = period  # type: ignore[assignment]
    return service.compute(staff.actor(), _date(start, "起始日"), _date(end, "截止日"), group, chosen)


def _date(text: str, what: str) -> dt.date | None:
    if not text.strip():
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequestError(f"{what}应为 YYYY-MM-DD，收到 {text.strip()[:20]!r}") from None


Text = Annotated[str, Query(max_length=20)]


@router.get("/stats")
def stats_page(
    request: Request, staff: Staff, start: Text = "", end: Text = "", by: Text = "", period: Text = "day"
) -> Response:
    stats = _compute(request, staff, start, end, by, period)
    query = f"start={stats.start}&end={stats.end}&by={by}&period={period}"
    return render(
        request, "stats/dashboard.html", staff=staff, stats=stats, charts=_charts(stats), query=query,
        metric_labels=METRIC_LABELS, metrics=METRICS, group_label=GROUP_LABELS[stats.by],
        period_labels=PERIOD_LABELS, by=by, period=period, tab="stats",
    )


@router.get("/stats.{fmt}")
def stats_file(
    fmt: Literal["csv", "xlsx"],
    request: Request,
    staff: Staff,
    start: Text = "",
    end: Text = "",
    by: Text = "",
    period: Text = "day",
) -> Response:
    stats = _compute(request, staff, start, end, by, period)
    name = f"ecas-stats-{stats.start}-{stats.end}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "xlsx":
        return Response(stats_xlsx(stats), media_type=XLSX, headers=headers)
    return Response(stats.to_csv(), media_type="text/csv; charset=utf-8", headers=headers)


def _charts(stats: Stats) -> list[tuple[str, BarChart]]:
    """Per period (the groups added up): cases and materials, then licences issued, used and shown."""
    per_period: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    for row in stats.rows:
        for metric in METRICS:
            per_period[row.period][metric] += row.counts[metric]
    periods = sorted(per_period)

    def series(metric: str, tone: str) -> Series:
        return Series(METRIC_LABELS[metric], tuple(per_period[p][metric] for p in periods), tone)

    return [
        ("办件与材料复用", bar_chart(periods, [series("materials_required", "s1"), series("materials_reused", "s2"),
                                            series("cases", "s3")])),
        ("颁证、用证与亮证核验", bar_chart(periods, [series("licences_issued", "s1"), series("uses", "s2"),
                                                series("show_checks", "s3")])),
    ]
