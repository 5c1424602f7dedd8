"""/api/v1 sharing for using departments (用证): read a licence with a cause and the holder's use
code or a duty rule, get its annotated copy behind a 10-minute link; admins grant duty rules."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from cert_authority.actors import Actor
from cert_authority.boundary import ErrorPublic
from cert_authority.http.auth import current_actor
from cert_authority.sharing.service import LINK_MINUTES, SharingService

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "缺少、无效或已吊销的 API 密钥"},
    403: {"model": ErrorPublic, "description": "没有有效的用证码，也没有依职能授权"},
    404: {"model": ErrorPublic, "description": "证照不存在，或链接已过期"},
    409: {"model": ErrorPublic, "description": "证照已变更、吊销、注销或过期"},
    422: {"model": ErrorPublic, "description": "缺少用证事由等"},
}
router = APIRouter(prefix="/api/v1", tags=["sharing"], responses=ERRORS)
Caller = Annotated[Actor, Depends(current_actor)]


class LicenceUseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cause: Annotated[str, Field(max_length=200, description="用证事由（必填）")]
    use_code: Annotated[str | None, Field(max_length=20, description="持证人给本部门的用证码；不填则按依职能授权")] = (
        None
    )


class LicenceUsePublic(BaseModel):
    identifier: str
    name: str
    face_data: dict[str, str]
    basis: Annotated[str, Field(description="use_code 或 duty")]
    copy_url: Annotated[str, Field(description=f"加注件 PDF 的临时链接（{LINK_MINUTES} 分钟内有效，无需密钥）")]
    copy_expires_at: str


class DutyRuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    department_uscc: str
    type_code: str


def _sharing(request: Request) -> SharingService:
    service: SharingService = request.app.state.sharing
    return service


@router.post("/licences/{identifier}/use")
def use_licence(identifier: str, body: LicenceUseRequest, request: Request, actor: Caller) -> LicenceUsePublic:
    """Use a licence: face data and an annotated copy, with a cause, on a use code or a duty rule."""
    use = _sharing(request).use_licence(actor, identifier, body.cause, body.use_code)
    return LicenceUsePublic(
        identifier=use.identifier,
        name=use.name,
        face_data=use.face_data,
        basis=use.basis,
        copy_url=f"{str(request.base_url).rstrip('/')}/api/v1/shared/{use.copy_token}",
        copy_expires_at=use.copy_expires_at.isoformat(),
    )


@router.post("/duty-rules", status_code=201)
def allow_duty(body: DutyRuleCreate, request: Request, actor: Caller) -> DutyRuleCreate:
    """Allow a department to read licences of a type for its duties (依职能), admins only."""
    _sharing(request).allow_duty(actor, body.department_uscc, body.type_code)
    return body


@router.get("/shared/{token}", response_class=Response, responses={200: {"content": {"application/pdf": {}}}})
def shared_file(token: str, request: Request) -> Response:
    """An annotated copy behind its temporary link (the link is the permission)."""
    return Response(_sharing(request).shared_file(token), media_type="application/pdf")
