"""/api/v1/seals: seal registration (电子印章备案), listing and revocation.

Admins act for any department; an issuer for its own. Revoking a seal revokes its certificate
(the CRL is re-issued, OCSP answers revoked at once).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from cert_authority.actors import Actor
from cert_authority.boundary import ErrorPublic, RowId
from cert_authority.eseals.schemas import SealCreate, SealPublic, SealRevoke
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
        (409, "印章已吊销"),
        (413, "请求体过大"),
        (422, "请求数据、印章图片或有效期有误"),
    )
}
router = APIRouter(prefix="/api/v1", tags=["seals"], dependencies=[Depends(current_actor)], responses=ERRORS)

Caller = Annotated[Actor, Depends(current_actor)]


def _seals(request: Request) -> SealService:
    seals: SealService = request.app.state.seals
    return seals


@router.post("/seals", status_code=201)
def register_seal(body: SealCreate, request: Request, actor: Caller) -> SealPublic:
    """Register a department's e-seal: the branch CA issues its certificate and signs the SES_Seal."""
    return _seals(request).register(actor, body, decode_base64(body.picture, "picture"))


@router.get("/seals")
def list_seals(
    request: Request,
    actor: Caller,
    department_uscc: Annotated[str | None, Query(description="只列出此部门的印章")] = None,
) -> list[SealPublic]:
    """List registered seals (an issuer sees its own department's)."""
    return _seals(request).list(actor, department_uscc)


@router.get("/seals/{seal_id}")
def get_seal(seal_id: RowId, request: Request, actor: Caller) -> SealPublic:
    """One registered seal."""
    return _seals(request).get(actor, seal_id)


@router.get("/seals/{seal_id}/picture", response_class=Response)
def seal_picture(seal_id: RowId, request: Request, actor: Caller) -> Response:
    """The seal picture (PNG with transparency)."""
    return Response(_seals(request).picture(actor, seal_id), media_type="image/png")


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
