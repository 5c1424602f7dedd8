"""Holders on their phones (/api/v1/holder: log in, my licences, a show token with its QR code) and
counters checking a shown token (/api/v1/show-tokens/verify, with a department's API key)."""

from __future__ import annotations

import base64
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from cert_authority.actors import Actor
from cert_authority.boundary import ErrorPublic, RowId
from cert_authority.checking.show_tokens import ShowTokenVerifier
from cert_authority.errors import AuthenticationError
from cert_authority.holders.service import MAX_SHOW_SECONDS, Holder, HolderService
from cert_authority.http.auth import current_actor
from cert_authority.http.routes.verify import VerificationPublic
from cert_authority.issuing.schemas import LicenceSummary
from cert_authority.sharing.rules import MAX_AUTHORISATION_DAYS, Authorisation, Authorisations
from cert_authority.sharing.service import SharingService, UseCode
from cert_authority.web.common import client_address
from templates.qr import qr_png

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "未登录、登录已失效或密码错误"},
    404: {"model": ErrorPublic, "description": "持证人名下没有此证照；部门、事项或授权不存在"},
    409: {"model": ErrorPublic, "description": "证照已变更、吊销、注销或过期，不能亮证"},
    422: {"model": ErrorPublic, "description": "字段或有效期不合规；部门不办理该事项"},
    429: {"model": ErrorPublic, "description": "登录失败次数过多，15 分钟内不能再试"},
}
holder_router = APIRouter(prefix="/api/v1/holder", tags=["holders"], responses=ERRORS)
verify_router = APIRouter(
    prefix="/api/v1/show-tokens",
    tags=["verification"],
    dependencies=[Depends(current_actor)],
    responses={  # any verdict is a 200 report; a 429 here is the per-key rate limit (app-wide)
        401: {"model": ErrorPublic, "description": "缺少、无效或已吊销的 API 密钥"},
        422: {"model": ErrorPublic, "description": "请求体不合规"},
    },
)
_bearer = HTTPBearer(auto_error=False, description="持证人登录后得到的会话令牌（hs_…）")


class HolderLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    holder_code: Annotated[
        str, Field(max_length=18, pattern=r"^[0-9A-Za-z]*$", description="公民身份号码或统一社会信用代码")
    ]
    password: Annotated[str, Field(max_length=200)]


class HolderSessionPublic(BaseModel):
    session_token: str
    expires_at: str
    name: str


class ShowTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: Annotated[list[str] | None, Field(description="要出示的字段 key；默认全部（持证人名称总会出示）")] = None
    seconds: Annotated[int | None, Field(ge=10, le=MAX_SHOW_SECONDS, description="有效期（秒），默认 60")] = None


class ShowTokenPublic(BaseModel):
    token: str
    expires_at: str
    fields: dict[str, str]
    qr_png: Annotated[str, Field(description="亮证二维码 PNG（base64）")]


class ShowTokenCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: Annotated[str, Field(max_length=2000)]


def _holders(request: Request) -> HolderService:
    service: HolderService = request.app.state.holders
    return service


def current_holder(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Holder:
    if credentials is None:
        raise AuthenticationError("请先登录（Authorization: Bearer 会话令牌）")
    return _holders(request).holder_for_session(credentials.credentials)


HolderCaller = Annotated[Holder, Depends(current_holder)]


@holder_router.post("/login")
def login(body: HolderLogin, request: Request) -> HolderSessionPublic:
    """Log in with the holder code and password; the session token is shown once."""
    token, expires, holder = _holders(request).login(body.holder_code, body.password, client_address(request))
    return HolderSessionPublic(session_token=token, expires_at=expires.isoformat(), name=holder.name)


@holder_router.get("/licences")
def my_licences(request: Request, holder: HolderCaller) -> list[LicenceSummary]:
    """The logged-in holder's licences (every version), newest first."""
    return _holders(request).licences(holder)


@holder_router.post("/licences/{identifier}/show-token")
def show_token(identifier: str, body: ShowTokenRequest, request: Request, holder: HolderCaller) -> ShowTokenPublic:
    """A short-lived signed show token for one of the holder's valid licences, with its QR code."""
    text, token = _holders(request).show_token(holder, identifier, body.fields, body.seconds)
    picture = base64.b64encode(qr_png(text)).decode()
    return ShowTokenPublic(token=text, expires_at=token.expires_at.isoformat(), fields=token.fields, qr_png=picture)


@verify_router.post("/verify", response_model=VerificationPublic)
async def verify_show_token(
    body: ShowTokenCheck, request: Request, actor: Annotated[Actor, Depends(current_actor)]
) -> JSONResponse:
    """Check a shown token: signature, expiry, live licence status, and first use by this department."""
    # The busiest call of all: a known key's well-formed check is answered before it gets here
    # (show_token_lane); this route documents the call and answers the first and the faulty ones.
    verifier: ShowTokenVerifier = request.app.state.show_tokens
    report = await run_in_threadpool(verifier.verify, actor, body.token)
    return JSONResponse(report.to_dict())


class UseCodeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    identifier: str
    department_uscc: Annotated[str, Field(description="被授权使用的部门")]
    purpose: Annotated[str, Field(max_length=200, description="用证事项（办理的服务事项）")]
    max_uses: Annotated[int, Field(ge=1, le=100)] = 1
    days: Annotated[int, Field(ge=1, le=30, description="有效天数")] = 7


class UseCodePublic(BaseModel):
    id: int
    identifier: str
    department_uscc: str
    purpose: str
    max_uses: int
    uses: int
    expires_at: str
    withdrawn: bool
    code: Annotated[str | None, Field(description="用证码：只在创建时返回一次")] = None


class UseRecordPublic(BaseModel):
    identifier: str
    at: str
    action: Annotated[str, Field(description="use（部门用证）或 show_verify（亮证核验）")]
    department: str | None
    cause: str | None
    matter: Annotated[str | None, Field(description="办件的事项代码（窗口办件时）")] = None
    matter_name: str | None = None
    case_number: Annotated[str | None, Field(description="办件号（窗口办件时）")] = None


class AuthorisationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    department_uscc: Annotated[str, Field(max_length=18, description="被授权的部门")]
    matter: Annotated[str, Field(max_length=40, description="事项代码：该部门办理此事项时可使用我的证照")]
    days: Annotated[int, Field(ge=1, le=MAX_AUTHORISATION_DAYS, description="有效天数")] = 90


class AuthorisationPublic(BaseModel):
    id: int
    department_uscc: str
    matter: str
    expires_at: str
    created_at: str
    withdrawn: bool


def _authorisations(request: Request) -> Authorisations:
    service: Authorisations = request.app.state.authorisations
    return service


def _authorisation_public(a: Authorisation) -> AuthorisationPublic:
    return AuthorisationPublic(
        id=a.id,
        department_uscc=a.department_uscc,
        matter=a.matter_code,
        expires_at=a.expires_at.isoformat(),
        created_at=a.created_at.isoformat(),
        withdrawn=a.withdrawn,
    )


def _sharing(request: Request) -> SharingService:
    service: SharingService = request.app.state.sharing
    return service


def _code_public(code: UseCode, text: str | None = None) -> UseCodePublic:
    return UseCodePublic(**{**asdict(code), "expires_at": code.expires_at.isoformat()}, code=text)


@holder_router.post("/use-codes", status_code=201)
def create_use_code(body: UseCodeCreate, request: Request, holder: HolderCaller) -> UseCodePublic:
    """Authorise one department to use one of my licences for a purpose; the code is shown once."""
    text, code = _sharing(request).create_use_code(
        holder, body.identifier, body.department_uscc, body.purpose, body.max_uses, body.days
    )
    return _code_public(code, text)


@holder_router.get("/use-codes")
def list_use_codes(request: Request, holder: HolderCaller) -> list[UseCodePublic]:
    """My use codes (without the codes themselves)."""
    return [_code_public(c) for c in _sharing(request).use_codes(holder)]


@holder_router.post("/use-codes/{code_id}/withdraw")
def withdraw_use_code(code_id: RowId, request: Request, holder: HolderCaller) -> UseCodePublic:
    """Withdraw a use code: it can no longer be used."""
    return _code_public(_sharing(request).withdraw_use_code(holder, code_id))


@holder_router.get("/uses")
def my_uses(request: Request, holder: HolderCaller) -> list[UseRecordPublic]:
    """Who used my licences, when and why (uses and show-token checks), newest first."""
    return [
        UseRecordPublic(
            identifier=u.identifier,
            at=u.at.isoformat(),
            action=u.action,
            department=u.department,
            cause=u.cause,
            matter=u.matter,
            matter_name=u.matter_name,
            case_number=u.case_number,
        )
        for u in _sharing(request).uses(holder)
    ]


@holder_router.post("/authorisations", status_code=201)
def grant_authorisation(body: AuthorisationCreate, request: Request, holder: HolderCaller) -> AuthorisationPublic:
    """Let a department use my licences whenever it handles a case of one matter for me, until expiry (授权用证)."""
    granted = _authorisations(request).grant(holder, body.department_uscc, body.matter, body.days)
    return _authorisation_public(granted)


@holder_router.get("/authorisations")
def list_authorisations(request: Request, holder: HolderCaller) -> list[AuthorisationPublic]:
    """My standing authorisations, newest first (withdrawn and expired ones included)."""
    return [_authorisation_public(a) for a in _authorisations(request).list(holder)]


@holder_router.post("/authorisations/{authorisation_id}/withdraw")
def withdraw_authorisation(authorisation_id: RowId, request: Request, holder: HolderCaller) -> AuthorisationPublic:
    """Withdraw a standing authorisation: it serves no case from now on."""
    return _authorisation_public(_authorisations(request).withdraw(holder, authorisation_id))
