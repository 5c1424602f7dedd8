"""/api/v1 sharing for using departments (用证): read a licence with a cause and the holder's use
code or a duty rule, get its annotated copy behind a 10-minute link; admins grant, expire and
withdraw duty rules (依职责用证), which departments list."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from cert_authority.actors import Actor
from cert_authority.boundary import ErrorPublic, RowId
from cert_authority.http.auth import current_actor
from cert_authority.sharing.rules import DutyRule, DutyRules
from cert_authority.sharing.service import LINK_MINUTES, SharingService
from cert_authority.timeutil import local_date

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "缺少、无效或已吊销的 API 密钥"},
    403: {"model": ErrorPublic, "description": "没有有效的用证码，也没有依职责用证规则；或角色无权"},
    404: {"model": ErrorPublic, "description": "证照、部门、证照类型或规则不存在，或链接已过期"},
    409: {"model": ErrorPublic, "description": "证照已变更、吊销、注销或过期"},
    422: {"model": ErrorPublic, "description": "缺少用证事由、事项未登记、截止日期已过等"},
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
    department_uscc: Annotated[str, Field(max_length=18)]
    type_code: Annotated[str, Field(max_length=40)]
    matters: Annotated[
        list[Annotated[str, Field(max_length=40)]] | None,
        Field(max_length=50, description="只在办理这些事项时适用；不填则适用于该部门的一切用证"),
    ] = None
    valid_until: Annotated[dt.date | None, Field(description="最后适用日（含）；不填则长期有效")] = None


class DutyRuleExpire(BaseModel):
    model_config = ConfigDict(extra="forbid")
    valid_until: Annotated[dt.date, Field(description="最后适用日（含）")]


class DutyRulePublic(BaseModel):
    id: int
    department_uscc: str
    type_code: str
    matters: list[str] | None
    valid_until: dt.date | None
    state: Annotated[Literal["active", "expired", "withdrawn"], Field(description="今天的状态")]
    created_at: dt.datetime
    created_by: str
    withdrawn_at: dt.datetime | None
    withdrawn_by: str | None


def duty_rule_public(rule: DutyRule, today: dt.date) -> DutyRulePublic:
    return DutyRulePublic(
        id=rule.id,
        department_uscc=rule.department_uscc,
        type_code=rule.type_code,
        matters=list(rule.matters) if rule.matters is not None else None,
        valid_until=rule.valid_until,
        state=rule.state(today),
        created_at=rule.created_at,
        created_by=rule.created_by,
        withdrawn_at=rule.withdrawn_at,
        withdrawn_by=rule.withdrawn_by,
    )


def _sharing(request: Request) -> SharingService:
    service: SharingService = request.app.state.sharing
    return service


@router.post("/licences/{identifier}/use")
def use_licence(identifier: str, body: LicenceUseRequest, request: Request, actor: Caller) -> LicenceUsePublic:
    """Use a licence: face data and an annotated copy, with a cause, on a use code or a duty rule."""
    use = _sharing(request).use_licence(actor, identifier, body.cause, body.use_code)
    assert use.copy_token is not None and use.copy_expires_at is not None  # every field is given here
    return LicenceUsePublic(
        identifier=use.identifier,
        name=use.name,
        face_data=use.face_data,
        basis=use.basis,
        copy_url=f"{str(request.base_url).rstrip('/')}/api/v1/shared/{use.copy_token}",
        copy_expires_at=use.copy_expires_at.isoformat(),
    )


def _rules(request: Request) -> DutyRules:
    rules: DutyRules = request.app.state.duty_rules
    return rules


def _today(request: Request) -> dt.date:
    return local_date(_rules(request).clock())


@router.post("/duty-rules", status_code=201)
def allow_duty(body: DutyRuleCreate, request: Request, actor: Caller) -> DutyRulePublic:
    """Allow a department to read licences of a type for its duties (依职责用证), optionally only in
    cases of some matters and until a date; admins only. The same rule in force is not doubled."""
    rule = _rules(request).add(actor, body.department_uscc, body.type_code, body.matters, body.valid_until)
    return duty_rule_public(rule, _today(request))


@router.get("/duty-rules")
def list_duty_rules(
    request: Request, actor: Caller, department_uscc: str | None = None, type_code: str | None = None
) -> list[DutyRulePublic]:
    """Duty rules, withdrawn and expired ones included: every department's for admins and auditors,
    a department's own for its keys."""
    today = _today(request)
    return [duty_rule_public(r, today) for r in _rules(request).list(actor, department_uscc, type_code)]


@router.post("/duty-rules/{rule_id}/withdraw")
def withdraw_duty_rule(rule_id: RowId, request: Request, actor: Caller) -> DutyRulePublic:
    """Withdraw a duty rule (admins): it serves no use from now on; the record stays."""
    return duty_rule_public(_rules(request).withdraw(actor, rule_id), _today(request))


@router.post("/duty-rules/{rule_id}/expire")
def expire_duty_rule(rule_id: RowId, body: DutyRuleExpire, request: Request, actor: Caller) -> DutyRulePublic:
    """Set the last day a duty rule is in force (admins)."""
    return duty_rule_public(_rules(request).expire(actor, rule_id, body.valid_until), _today(request))


@router.get("/shared/{token}", response_class=Response, responses={200: {"content": {"application/pdf": {}}}})
def shared_file(token: str, request: Request) -> Response:
    """An annotated copy behind its temporary link (the link is the permission)."""
    return Response(_sharing(request).shared_file(token), media_type="application/pdf")
