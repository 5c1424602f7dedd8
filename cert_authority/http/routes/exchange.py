"""The provincial link over HTTP.

City side: `GET /api/v1/feed?after=SEQ&limit=N`, the change feed, for keys with the `exchange` role.
Province side: `POST /api/v1/exchange/batches` (a city's signed batch), `POST /api/v1/exchange/files`
(the sealed files that follow the events, by SM3), `POST /api/v1/exchange/status`
and `POST /api/v1/exchange/days` (signed reads for the pusher and reconciliation). These carry no API
key: the signature by the registered city's service certificate is the authentication (403 for an
unregistered city, 422 for a bad signature)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from cert_authority.actors import Actor
from cert_authority.boundary import ErrorPublic
from cert_authority.errors import SequenceGapError
from cert_authority.exchange.feed import ChangeFeed
from cert_authority.exchange.province import ProvinceLibrary
from cert_authority.exchange.signing import SIGNATURE_HEADER
from cert_authority.http.auth import require
from cert_authority.store.outbox import FEED_LIMIT

feed_router = APIRouter(
    prefix="/api/v1/feed",
    tags=["exchange"],
    responses={
        401: {"model": ErrorPublic, "description": "缺少、无效或已吊销的 API 密钥"},
        403: {"model": ErrorPublic, "description": "不是数据交换（exchange）角色的密钥"},
    },
)
province_router = APIRouter(
    prefix="/api/v1/exchange",
    tags=["exchange"],
    responses={
        403: {"model": ErrorPublic, "description": "城市未在省级库登记"},
        422: {"model": ErrorPublic, "description": "签名无效，或格式错误：未保存任何内容"},
    },
)
SIGNED_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
    "parameters": [
        {
            "name": SIGNATURE_HEADER,
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
            "description": "base64 DER CMS SignedData（SM2/SM3，分离式），由城市服务证书对请求体签名",
        }
    ],
}


@feed_router.get("")
async def feed(
    request: Request,
    _caller: Annotated[Actor, Depends(require("exchange"))],
    after: Annotated[int, Query(ge=0, le=2**62, description="只返回序号大于此值的事件")] = 0,
    limit: Annotated[int, Query(ge=1, le=FEED_LIMIT, description="最多返回的事件数")] = 100,
) -> dict[str, Any]:
    """变更事件流：证照、印章与证照类型的事件，按序号递增。"""
    service: ChangeFeed = request.app.state.feed
    events = await run_in_threadpool(service.events, after, limit)
    latest = await run_in_threadpool(service.latest)
    return {
        "events": [event.to_dict() for event in events],
        "next_after": events[-1].seq if events else after,
        "latest": latest,
    }


province_files_router = APIRouter(
    prefix="/api/v1/province/licences",
    tags=["exchange"],
    responses={
        401: {"model": ErrorPublic},
        403: {"model": ErrorPublic, "description": "仅限省级库的管理员与审计"},
        404: {"model": ErrorPublic, "description": "省级库没有该证照"},
    },
)


@province_files_router.get("/{identifier}/files/{kind}")
async def province_licence_file(
    identifier: str,
    kind: Literal["pdf", "ofd"],
    request: Request,
    _caller: Annotated[Actor, Depends(require("admin", "auditor"))],
) -> Response:
    """省级库：下载城市报送的盖章文件（PDF 或 OFD）。文件含全部照面信息（持证人证件号码、照片），
    与按标识核验时的照面信息一样，仅限省级库的管理员与审计。"""
    data = await run_in_threadpool(_library(request).licence_file, identifier, kind)
    media = "application/pdf" if kind == "pdf" else "application/ofd"
    return Response(data, media_type=media)


def _library(request: Request) -> ProvinceLibrary:
    library: ProvinceLibrary = request.app.state.province
    return library


@province_router.post("/batches", openapi_extra=SIGNED_BODY, responses={409: {"model": ErrorPublic}})
async def receive_batch(request: Request) -> Any:
    """接收城市推送的已签名批次（幂等：按事件编号去重）。"""
    body = await request.body()
    try:
        receipt = await run_in_threadpool(_library(request).receive, body, request.headers.get(SIGNATURE_HEADER))
    except SequenceGapError as exc:
        return JSONResponse({"error": "sequence_gap", "message": str(exc), "acked": exc.acked}, status_code=409)
    return receipt.to_dict()


@province_router.post("/files", openapi_extra=SIGNED_BODY)
async def receive_files(request: Request) -> dict[str, Any]:
    """接收城市按 SM3 补送的盖章文件（只收该城市证照所列的文件）。"""
    body = await request.body()
    return await run_in_threadpool(_library(request).receive_files, body, request.headers.get(SIGNATURE_HEADER))


@province_router.post("/status", openapi_extra=SIGNED_BODY)
async def city_status(request: Request) -> dict[str, Any]:
    """城市查询省级库已确认的序号。"""
    body = await request.body()
    return await run_in_threadpool(_library(request).status, body, request.headers.get(SIGNATURE_HEADER))


@province_router.post("/days", openapi_extra=SIGNED_BODY)
async def city_days(request: Request) -> dict[str, Any]:
    """对账：按日的事件数与 SM3。"""
    body = await request.body()
    return await run_in_threadpool(_library(request).days, body, request.headers.get(SIGNATURE_HEADER))
