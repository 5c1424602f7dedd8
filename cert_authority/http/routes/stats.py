"""/api/v1/stats: what was issued, used, shown and reused (减材料), per day, month or quarter, in total
or per department, licence type or matter; JSON, CSV or XLSX. Admins and auditors."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from cert_authority.actors import Actor
from cert_authority.boundary import ErrorPublic
from cert_authority.http.auth import current_actor
from cert_authority.sharing.stats import GroupBy, Period, StatsService, stats_xlsx

router = APIRouter(
    prefix="/api/v1",
    tags=["statistics"],
    responses={
        401: {"model": ErrorPublic, "description": "缺少、无效或已吊销的 API 密钥"},
        403: {"model": ErrorPublic, "description": "仅限管理员、审计"},
        422: {"model": ErrorPublic, "description": "日期或参数有误"},
    },
)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ROWS = (
    "rows：每期（day/month/quarter）每个分组一行；totals：区间合计；"
    "reuse_rate = materials_reused / materials_required"
)


@router.get(
    "/stats",
    responses={
        200: {
            "description": ROWS,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
                XLSX: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
    response_class=Response,
)
def stats(
    request: Request,
    actor: Annotated[Actor, Depends(current_actor)],
    start: Annotated[dt.date | None, Query(alias="from", description="起始日（含），默认截止日前 29 天")] = None,
    end: Annotated[dt.date | None, Query(alias="to", description="截止日（含），默认今天")] = None,
    by: Annotated[GroupBy | None, Query(description="分组：department、type、matter；不填为合计")] = None,
    period: Annotated[Period, Query(description="统计周期")] = "day",
    fmt: Annotated[Literal["json", "csv", "xlsx"], Query(alias="format")] = "json",
) -> Response:
    """Licences issued, uses, show-token checks, cases, materials required and reused, and the reuse rate."""
    service: StatsService = request.app.state.stats
    result = service.compute(actor, start, end, by, period)
    if fmt == "xlsx":
        name = f"ecas-stats-{result.start}-{result.end}.xlsx"
        return Response(
            stats_xlsx(result), media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )
    if fmt == "csv":
        name = f"ecas-stats-{result.start}-{result.end}.csv"
        return Response(
            result.to_csv(), media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    body: dict[str, Any] = result.to_dict()
    return JSONResponse(body)
