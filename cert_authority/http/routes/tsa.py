"""POST /tsa: the RFC 3161 time-stamping authority over HTTP (RFC 3161 §3.4): a DER TimeStampReq
(application/timestamp-query) in, a DER TimeStampResp (application/timestamp-reply) out, for any
department's API key. A request we refuse still gets a TimeStampResp saying why (PKIFailureInfo),
with 400, or 503 while the TSA's clock is not known to be right; each token issued is audited."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from cert_authority.actors import Actor
from cert_authority.boundary import ErrorPublic
from cert_authority.errors import UnsupportedMediaTypeError
from cert_authority.http.auth import current_actor
from cert_authority.http.uploads import binary_body
from cert_authority.timestamping.authority import TimeStampAuthority

router = APIRouter(tags=["timestamping"])
Caller = Annotated[Actor, Depends(current_actor)]
QUERY = "application/timestamp-query"
REPLY = "application/timestamp-reply"


def _tsa(request: Request) -> TimeStampAuthority:
    tsa: TimeStampAuthority = request.app.state.tsa
    return tsa


@router.post(
    "/tsa",
    response_class=Response,
    openapi_extra=binary_body(QUERY),
    responses={
        200: {"content": {REPLY: {}}, "description": "时间戳应答（已签发）"},
        400: {"content": {REPLY: {}}, "description": "时间戳应答（拒绝：请求格式、算法或策略不被接受）"},
        401: {"model": ErrorPublic, "description": "缺少、无效或已吊销的 API 密钥"},
        415: {"model": ErrorPublic, "description": "请求类型应为 application/timestamp-query"},
        503: {"content": {REPLY: {}}, "description": "时间戳应答（拒绝：时钟未同步）"},
    },
)
async def time_stamp(request: Request, caller: Caller) -> Response:
    """Time-stamp a hash (RFC 3161 TimeStampReq in DER); answers a DER TimeStampResp."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != QUERY:
        raise UnsupportedMediaTypeError(f"请求类型应为 {QUERY}")
    body = await request.body()
    tsa = _tsa(request)
    status, reply = await run_in_threadpool(tsa.reply_for, caller, body, dt.datetime.now(dt.timezone.utc))
    return Response(reply, status_code=status, media_type=REPLY)


@router.get("/pki/tsa.pem", response_class=Response, tags=["pki"])
def tsa_certificate(request: Request) -> Response:
    """The time-stamping authority's certificate (PEM), issued by the branch CA."""
    return Response(
        _tsa(request).certificate(dt.datetime.now(dt.timezone.utc)).pem, media_type="application/x-pem-file"
    )
