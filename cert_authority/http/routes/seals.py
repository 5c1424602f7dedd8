"""/api/v1/seals: seal governance (电子印章备案) and use.

An issuer applies for its own department's seals (an administrator for any department); only an
administrator approves (files) or rejects an application, suspends and resumes a seal: an issuer's
key never gets an active seal on its own. Revoking a seal revokes its certificate (the CRL is
re-issued, OCSP answers revoked at once). The filing export is for administrators and auditors.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from cert_authority.actors import Actor
from cert_authority.boundary import ErrorPublic, RowId
from cert_authority.eseals.schemas import (
    SealCreate,
    SealFiling,
    SealImport,
    SealPublic,
    SealReject,
    SealRevoke,
    SealSuspend,
)
from cert_authority.eseals.service import SealService
from cert_authority.http.auth import current_actor
from cert_authority.http.uploads import binary_body
from cert_authority.issuing.schemas import decode_base64

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorPublic, "description": text}
    for status, text in (
        (401, "缺少、无效或已吊销的 API 密钥"),
        (403, "角色或部门无权执行此操作"),
        (404, "部门或印章不存在"),
        (409, "印章状态不允许此操作（如已吊销、不是待审批的申请），或印模与另一部门的印章相似"),
        (413, "请求体过大"),
        (422, "请求数据、印章名称、印章图片、有效期或导入的印章有误"),
    )
}
router = APIRouter(prefix="/api/v1", tags=["seals"], dependencies=[Depends(current_actor)], responses=ERRORS)

Caller = Annotated[Actor, Depends(current_actor)]


def _seals(request: Request) -> SealService:
    seals: SealService = request.app.state.seals
    return seals


@router.post("/seals", status_code=201)
def apply_for_seal(body: SealCreate, request: Request, actor: Caller) -> SealPublic:
    """Apply to file a seal (备案申请): name = department name + purpose; waits for an administrator's approval."""
    return _seals(request).apply(actor, body, decode_base64(body.picture, "picture"))


@router.post("/seals/import", status_code=201)
def import_seal(body: SealImport, request: Request, actor: Caller) -> SealPublic:
    """Submit a seal made by the provincial seal platform (DER SES_Seal): checked, then waits for approval."""
    return _seals(request).import_seal(actor, body)


@router.get("/seals")
def list_seals(
    request: Request,
    actor: Caller,
    department_uscc: Annotated[str | None, Query(description="只列出此部门的印章")] = None,
) -> list[SealPublic]:
    """List seals and applications (an issuer sees its own department's)."""
    return _seals(request).list(actor, department_uscc)


@router.get("/seals/filing")
def seal_filing(request: Request, actor: Caller) -> SealFiling:
    """The filing of active seals for the province: certificates, validity, pictures, SM3 (admins, auditors)."""
    filing, files = _seals(request).filing(actor)
    return filing.model_copy(
        update={"seals": [s.model_copy(update={"picture_png": _b64(files[s.picture_file])}) for s in filing.seals]}
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@router.get("/seals/{seal_id}")
def get_seal(seal_id: RowId, request: Request, actor: Caller) -> SealPublic:
    """One seal or application."""
    return _seals(request).get(actor, seal_id)


@router.get("/seals/{seal_id}/picture", response_class=Response)
def seal_picture(seal_id: RowId, request: Request, actor: Caller) -> Response:
    """The seal picture (PNG with transparency)."""
    return Response(_seals(request).picture(actor, seal_id), media_type="image/png")


@router.post("/seals/{seal_id}/approve")
def approve_seal(seal_id: RowId, request: Request, actor: Caller) -> SealPublic:
    """Approve (file) an application: the branch CA issues the seal certificate and signs the SES_Seal (admins)."""
    return _seals(request).approve(actor, seal_id)


@router.post("/seals/{seal_id}/reject")
def reject_seal(seal_id: RowId, body: SealReject, request: Request, actor: Caller) -> SealPublic:
    """Reject an application, with the reason (admins)."""
    return _seals(request).reject(actor, seal_id, body.reason)


@router.post("/seals/{seal_id}/suspend")
def suspend_seal(seal_id: RowId, body: SealSuspend, request: Request, actor: Caller) -> SealPublic:
    """Suspend an active seal: it seals nothing until resumed (admins)."""
    return _seals(request).suspend(actor, seal_id, body.reason)


@router.post("/seals/{seal_id}/resume")
def resume_seal(seal_id: RowId, request: Request, actor: Caller) -> SealPublic:
    """Resume a suspended seal (admins)."""
    return _seals(request).resume(actor, seal_id)


@router.post("/seals/{seal_id}/revoke")
def revoke_seal(seal_id: RowId, body: SealRevoke, request: Request, actor: Caller) -> SealPublic:
    """Revoke a seal and its certificate (CRL and OCSP show it at once)."""
    return _seals(request).revoke(actor, seal_id, body.reason, body.note)


@router.post(
    "/seals/{seal_id}/sign",
    response_class=Response,
    openapi_extra=binary_body("application/pdf", "application/ofd"),
    responses={200: {"content": {"application/pdf": {}, "application/ofd": {}}, "description": "盖章后的文件"}},
)
async def sign_document(
    seal_id: RowId,
    request: Request,
    actor: Caller,
    x: Annotated[float, Query(description="印章左上角距页面左边缘（mm）")],
    y: Annotated[float, Query(description="印章左上角距页面上边缘（mm）")],
    page: Annotated[int, Query(ge=0, description="页码，从 0 起")] = 0,
    size: Annotated[float | None, Query(gt=0, le=100, description="印章宽度（mm），默认为印章本身尺寸")] = None,
) -> Response:
    """Seal a department's own PDF or OFD (the file is the request body) with one of its seals."""
    document = await request.body()
    sealed = await run_in_threadpool(_seals(request).seal_document, actor, seal_id, document, page, x, y, size)
    media_type = "application/pdf" if sealed[:5] == b"%PDF-" else "application/ofd"
    return Response(sealed, media_type=media_type)
