"""/api/v1 matters and cases at the counter (办事事项, 办件): administrators register matters, any
department lists them; a using department (or an administrator naming it) opens a case for an
applicant, gets the checklist of reusable licences, reuses them, and closes the case with a sealed
receipt (材料复用清单)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from cert_authority.actors import Actor
from cert_authority.boundary import ErrorPublic, RowId
from cert_authority.http.auth import current_actor
from cert_authority.http.uploads import read_text_definition, text_definition_body
from cert_authority.sharing.cases import (
    MAX_LISTED,
    BasisName,
    Case,
    CaseService,
    ConsentKind,
    Reused,
    split_basis,
)
from cert_authority.sharing.matters import MATTER_CODE, MatterPublic, MatterService, parse_matter_spec
from cert_authority.sharing.service import LINK_MINUTES
from verification.show_token import MAX_TOKEN_CHARS

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorPublic, "description": text}
    for status, text in (
        (401, "缺少、无效或已吊销的 API 密钥"),
        (403, "角色或部门无权办理；或没有用证依据（message 说明缺少哪一项）"),
        (404, "事项、办件或申请人名下的证照不存在"),
        (409, "已登记；办件已办结；材料已复用其他证照；证照已变更、吊销、注销或过期"),
        (413, "请求体过大"),
        (415, "请求体格式不对"),
        (422, "定义、申请人代码（message 说明哪项校验未通过）、办件号或请求体有误"),
    )
}
router = APIRouter(prefix="/api/v1", tags=["cases"], responses=ERRORS)
Caller = Annotated[Actor, Depends(current_actor)]
PDF: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {}}, "description": "盖有电子证照共享服务电子印章的材料复用清单"}
}


def _matters(request: Request) -> MatterService:
    service: MatterService = request.app.state.matters
    return service


def _cases(request: Request) -> CaseService:
    service: CaseService = request.app.state.cases
    return service


# --- matters -----------------------------------------------------------------------------------
@router.post(
    "/matters",
    status_code=201,
    openapi_extra=text_definition_body("#/components/schemas/MatterSpec", "办事事项定义"),
)
async def register_matter(request: Request, actor: Caller) -> MatterPublic:
    """Register a service matter from its definition, JSON or YAML (admins only)."""
    spec = parse_matter_spec(await read_text_definition(request))
    return await run_in_threadpool(_matters(request).register, actor, spec)


@router.get("/matters")
def list_matters(request: Request, _caller: Caller) -> list[MatterPublic]:
    """The registered matters, with their departments and required materials."""
    return _matters(request).list()


@router.get("/matters/{code}")
def get_matter(code: Annotated[str, PathParam(pattern=MATTER_CODE)], request: Request, _caller: Caller) -> MatterPublic:
    """One matter."""
    return _matters(request).get(code)


# --- cases -------------------------------------------------------------------------------------
class CaseOpen(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matter: Annotated[str, Field(max_length=40, description="事项代码")]
    applicant: Annotated[str, Field(max_length=40, description="申请人代码：公民身份号码或统一社会信用代码")]
    case_number: Annotated[str | None, Field(max_length=60, description="本部门业务系统的办件号")] = None
    department_uscc: Annotated[
        str | None, Field(max_length=18, description="办理部门；管理员代办时必填，部门密钥默认本部门")
    ] = None


class CandidatePublic(BaseModel):
    identifier: str
    name: str
    valid_until: dt.date | None
    basis: Annotated[
        BasisName | None, Field(description="duty_rule 依职责；consent 持证人已授权；null 须持证人同意（用证码）")
    ]


class ReusedPublic(BaseModel):
    identifier: str
    version: int
    licence_sm3: Annotated[str, Field(description="所复用证照盖章 PDF 的 SM3")]
    basis: BasisName
    consent: Annotated[
        ConsentKind | None,
        Field(description="持证人同意的方式：use_code 用证码，show_token 当面出示的亮证码，authorisation 授权用证"),
    ]
    at: dt.datetime
    fields: Annotated[
        list[str] | None, Field(description="以亮证码为依据时持证人出示的照面字段；null：其他依据，全部照面信息")
    ] = None


class CaseMaterialPublic(BaseModel):
    name: str
    licence_type: Annotated[str | None, Field(description="证照类型代码；null 为申请人提交的材料")]
    candidates: Annotated[
        list[CandidatePublic], Field(description="申请人名下当前有效、可满足此项的证照（办件未办结时）")
    ]
    reused: ReusedPublic | None


class CasePublic(BaseModel):
    case: Annotated[int, Field(description="办件编号")]
    matter: str
    matter_name: str
    department_uscc: str
    applicant: Annotated[str, Field(description="申请人代码（部分隐藏）")]
    case_number: str | None
    status: Literal["open", "closed"]
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    receipt_sm3: str | None
    materials: list[CaseMaterialPublic]


class CaseReuseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    identifier: Annotated[
        str | None, Field(max_length=120, description="证照标识；给出亮证码时可省略（以亮证码出示的证照为准）")
    ] = None
    use_code: Annotated[str | None, Field(max_length=20, description="持证人给本部门此证照的用证码")] = None
    show_token: Annotated[
        str | None,
        Field(max_length=MAX_TOKEN_CHARS, description="持证人当面出示的亮证码（ECT1.…），作为持证人同意，只能用一次"),
    ] = None


class CaseReusePublic(BaseModel):
    case: int
    material: str
    identifier: str
    name: str
    basis: BasisName
    consent: ConsentKind | None
    face_data: dict[str, str]
    copy_url: Annotated[
        str | None,
        Field(
            description=f"加注件 PDF 的临时链接（{LINK_MINUTES} 分钟内有效，无需密钥）；"
            "持证人以亮证码只出示部分照面信息时为 null（加注件含全部照面信息）"
        ),
    ]
    copy_expires_at: str | None


def case_public(case: Case) -> CasePublic:
    return CasePublic(
        case=case.id,
        matter=case.matter_code,
        matter_name=case.matter_name,
        department_uscc=case.department_uscc,
        applicant=case.applicant,
        case_number=case.case_number,
        status="closed" if case.status == "closed" else "open",
        opened_at=case.opened_at,
        closed_at=case.closed_at,
        receipt_sm3=case.receipt_sm3,
        materials=[
            CaseMaterialPublic(
                name=m.name,
                licence_type=m.licence_type,
                candidates=[
                    CandidatePublic(identifier=c.identifier, name=c.name, valid_until=c.valid_until, basis=c.basis)
                    for c in m.candidates
                ],
                reused=None if m.reused is None else _reused(m.reused),
            )
            for m in case.materials
        ],
    )


def _reused(reused: Reused) -> ReusedPublic:
    basis, consent = split_basis(reused.basis)
    return ReusedPublic(
        identifier=reused.identifier,
        version=reused.version,
        licence_sm3=reused.licence_sm3,
        basis=basis,
        consent=consent,
        at=reused.at,
        fields=None if reused.fields is None else list(reused.fields),
    )


def _copy_url(request: Request, token: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/api/v1/shared/{token}"


def _pdf(data: bytes, case_id: int, sm3: str) -> Response:
    headers = {"Content-Disposition": f'inline; filename="receipt-{case_id}.pdf"', "X-Receipt-SM3": sm3}
    return Response(data, media_type="application/pdf", headers=headers)


@router.post("/cases", status_code=201)
def open_case(body: CaseOpen, request: Request, actor: Caller) -> CasePublic:
    """Open a case for an applicant and a matter; the answer is the checklist of reusable licences."""
    case = _cases(request).open(actor, body.matter, body.applicant, body.department_uscc, body.case_number)
    return case_public(case)


class CaseSummaryPublic(BaseModel):
    case: int
    matter: str
    matter_name: str
    department_uscc: str
    applicant: Annotated[str, Field(description="申请人代码（部分隐藏）")]
    case_number: str | None
    status: Literal["open", "closed"]
    opened_at: dt.datetime
    materials_required: int
    materials_reused: int


@router.get("/cases")
def list_cases(
    request: Request,
    actor: Caller,
    status: Annotated[Literal["open", "closed"], Query(description="open 办理中（默认），closed 已办结")] = "open",
    department_uscc: Annotated[
        str | None, Query(max_length=18, description="管理员、审计可指定部门；部门密钥只能查看本部门")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 100,
) -> list[CaseSummaryPublic]:
    """A department's cases, newest first: its user keys see their own; admins and auditors any or all."""
    return [
        CaseSummaryPublic(
            case=c.id,
            matter=c.matter_code,
            matter_name=c.matter_name,
            department_uscc=c.department_uscc,
            applicant=c.applicant,
            case_number=c.case_number,
            status="closed" if c.status == "closed" else "open",
            opened_at=c.opened_at,
            materials_required=c.required,
            materials_reused=c.reused,
        )
        for c in _cases(request).list_cases(actor, department_uscc, status, limit)
    ]


@router.get("/cases/{case_id}")
def get_case(case_id: RowId, request: Request, actor: Caller) -> CasePublic:
    """A case and its checklist (the department's user keys, admins and auditors)."""
    return case_public(_cases(request).get(actor, case_id))


@router.post("/cases/{case_id}/reuse")
def reuse_licence(case_id: RowId, body: CaseReuseRequest, request: Request, actor: Caller) -> CaseReusePublic:
    """Reuse one of the applicant's licences for the case: face data and an annotated copy, audited."""
    reuse = _cases(request).reuse(actor, case_id, body.identifier, body.use_code, body.show_token)
    use = reuse.use
    return CaseReusePublic(
        case=reuse.case_id,
        material=reuse.material,
        identifier=use.identifier,
        name=use.name,
        basis=reuse.basis,
        consent=reuse.consent,
        face_data=use.face_data,
        copy_url=None if use.copy_token is None else _copy_url(request, use.copy_token),
        copy_expires_at=None if use.copy_expires_at is None else use.copy_expires_at.isoformat(),
    )


@router.post("/cases/{case_id}/close", response_class=Response, responses=PDF)
def close_case(case_id: RowId, request: Request, actor: Caller) -> Response:
    """Close the case: the sealed reuse receipt (closing again returns the same receipt)."""
    receipt = _cases(request).close(actor, case_id)
    return _pdf(receipt.pdf, receipt.case_id, receipt.sm3)


@router.get("/cases/{case_id}/receipt", response_class=Response, responses=PDF)
def get_receipt(case_id: RowId, request: Request, actor: Caller) -> Response:
    """The sealed reuse receipt of a closed case."""
    receipt = _cases(request).receipt(actor, case_id)
    return _pdf(receipt.pdf, receipt.case_id, receipt.sm3)
