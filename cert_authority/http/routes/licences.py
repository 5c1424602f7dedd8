"""/api/v1/licences: issue (with Idempotency-Key), read, list, download, change, revoke, cancel,
history. Writes: admins, and issuers for their own department's licences. Reads: admins,
auditors, and issuers for their own department's (using departments go through /licences/{id}/use).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from cert_authority.actors import Actor
from cert_authority.boundary import ErrorPublic
from cert_authority.http.auth import current_actor
from cert_authority.issuing.issuance import IssuanceService
from cert_authority.issuing.lifecycle import LifecycleService
from cert_authority.issuing.origin import original_licence
from cert_authority.issuing.queries import MAX_PAGE_SIZE, LicenceQueryService
from cert_authority.issuing.schemas import (
    LicenceChange,
    LicenceEventPublic,
    LicenceIssue,
    LicencePage,
    LicencePublic,
    LicenceStatusChange,
    decode_base64,
)
from templates.render import MEDIA_TYPES

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorPublic, "description": text}
    for status, text in (
        (401, "缺少、无效或已吊销的 API 密钥"),
        (403, "角色或部门无权执行此操作，或部门不是该证照类型的颁发部门"),
        (404, "证照或证照类型不存在"),
        (409, "没有有效印章、Idempotency-Key 用于不同请求、或证照状态不允许此操作"),
        (413, "请求体过大"),
        (422, "照面信息、持证主体代码、照片或有效期有误（message 逐条列出）"),
    )
}
router = APIRouter(prefix="/api/v1", tags=["licences"], dependencies=[Depends(current_actor)], responses=ERRORS)

Caller = Annotated[Actor, Depends(current_actor)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="幂等键：同一部门内同一个键只颁发一次，重放返回同一证照"),
]


def _issuance(request: Request) -> IssuanceService:
    service: IssuanceService = request.app.state.issuance
    return service


def _queries(request: Request) -> LicenceQueryService:
    service: LicenceQueryService = request.app.state.licences
    return service


def _lifecycle(request: Request) -> LifecycleService:
    service: LifecycleService = request.app.state.lifecycle
    return service


@router.post("/licences", status_code=201, responses={200: {"description": "幂等重放：返回此前以同一键颁发的证照"}})
def issue_licence(
    body: LicenceIssue, request: Request, response: Response, actor: Caller, idempotency_key: IdempotencyKey = None
) -> LicencePublic:
    """Issue a sealed licence (PDF, OFD, PNG); the same Idempotency-Key returns the same licence."""
    result = _issuance(request).issue_licence(
        actor,
        body.type_code,
        body.data,
        photo=decode_base64(body.photo, "photo"),
        idempotency_key=idempotency_key,
        valid_from=body.valid_from,
        valid_until=body.valid_until,
        issuer_uscc=body.issuer_uscc,
        original=original_licence(
            body.origin, body.licence_number, body.issue_date, body.original_issuer_name, body.include_expired
        ),
    )
    if result.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/api/v1/licences/{result.licence.identifier}"
    return result.licence


@router.get("/licences")
def list_licences(
    request: Request,
    actor: Caller,
    type_code: Annotated[str | None, Query(description="证照类型代码")] = None,
    status: Annotated[
        Literal["issued", "superseded", "revoked", "cancelled", "expired"] | None, Query(description="状态")
    ] = None,
    holder_code: Annotated[str | None, Query(description="持证主体代码（完整代码；结果中脱敏显示）")] = None,
    issuer: Annotated[str | None, Query(description="颁证部门统一社会信用代码")] = None,
    page: Annotated[
        int, Query(ge=1, le=1_000_000, description="页码（旧式按偏移翻页，越往后越慢；请改用 cursor）")
    ] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    cursor: Annotated[str | None, Query(max_length=200, description="上一页结果的 next_cursor：其后的一页")] = None,
    before: Annotated[str | None, Query(max_length=200, description="某页结果的 prev_cursor：其前的一页")] = None,
) -> LicencePage:
    """List licence versions, newest first, with filters; pages by key (cursor), holder codes masked."""
    filters = {"type_code": type_code, "status": status, "holder_code": holder_code, "issuer": issuer}
    return _queries(request).search(actor, **filters, page=page, page_size=page_size, cursor=cursor, before=before)


@router.get("/licences/{identifier}")
def get_licence(identifier: str, request: Request, actor: Caller) -> LicencePublic:
    """One licence version with its face data and GB/T 36903 metadata."""
    return _queries(request).get(actor, identifier)


@router.get("/licences/{identifier}/files/{fmt}", response_class=Response)
def licence_file(identifier: str, fmt: Literal["pdf", "ofd", "png"], request: Request, actor: Caller) -> Response:
    """Download the sealed PDF or OFD, or the PNG for phones."""
    data = _queries(request).file(actor, identifier, fmt)
    disposition = f'attachment; filename="{identifier}.{fmt}"'
    return Response(data, media_type=MEDIA_TYPES[fmt], headers={"Content-Disposition": disposition})


@router.post("/licences/{identifier}/change", status_code=201)
def change_licence(identifier: str, body: LicenceChange, request: Request, actor: Caller) -> LicencePublic:
    """Change (变更) a licence: a new version, sealed anew; the old one is superseded."""
    return _issuance(request).change_licence(
        actor,
        identifier,
        body.data,
        photo=decode_base64(body.photo, "photo"),
        valid_from=body.valid_from,
        valid_until=body.valid_until,
        reason=body.reason,
    )


@router.post("/licences/{identifier}/revoke")
def revoke_licence(identifier: str, body: LicenceStatusChange, request: Request, actor: Caller) -> LicencePublic:
    """Revoke (吊销) a valid licence; the reason is required."""
    return _lifecycle(request).revoke(actor, identifier, body.reason)


@router.post("/licences/{identifier}/cancel")
def cancel_licence(identifier: str, body: LicenceStatusChange, request: Request, actor: Caller) -> LicencePublic:
    """Cancel (注销) a valid or expired licence; the reason is required."""
    return _lifecycle(request).cancel(actor, identifier, body.reason)


@router.get("/licences/{identifier}/history")
def licence_history(identifier: str, request: Request, actor: Caller) -> list[LicenceEventPublic]:
    """The status history of every version of the licence, oldest first."""
    return _queries(request).history(actor, identifier)
