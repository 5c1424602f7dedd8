"""Duty rules (依职责用证) for administrators (/console/duty-rules; auditors read): every rule with its
state, granting a rule, setting the last day a rule is in force, and withdrawing one. Each change
must be confirmed on its form (a box the administrator ticks, checked again on the server), goes
through `sharing.rules.DutyRules` and is audited there."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from cert_authority.actors import ensure_role
from cert_authority.boundary import RowId
from cert_authority.errors import ServiceError
from cert_authority.registry.service import RegistryService
from cert_authority.sharing.matters import MatterService
from cert_authority.sharing.rules import DutyRules
from cert_authority.timeutil import local_date
from cert_authority.web.common import flash, forget_flash, redirect, render, same_origin, take_flash
from cert_authority.web.staff_pages import Staff

router = APIRouter(prefix="/console", include_in_schema=False)
Posted = Depends(same_origin)
PAGE = "/console/duty-rules"
STATES = {"active": "生效中", "expired": "已过期", "withdrawn": "已撤销"}
CONFIRMED = "yes"


def _rules(request: Request) -> DutyRules:
    rules: DutyRules = request.app.state.duty_rules
    return rules


@router.get("/duty-rules")
def rules_page(request: Request, staff: Staff) -> Response:
    ensure_role(staff.actor(), "admin", "auditor")
    registry: RegistryService = request.app.state.registry
    matters: MatterService = request.app.state.matters
    rules = _rules(request).list(staff.actor())
    today = local_date(_rules(request).clock())
    departments = {d.uscc: d.name for d in registry.list_departments()}
    page = render(
        request, "console/duty_rules.html", staff=staff, rules=list(reversed(rules)), today=today,
        states={r.id: r.state(today) for r in rules}, state_names=STATES, departments=departments,
        types={t.code: t.name for t in registry.list_types()}, matters={m.code: m.name for m in matters.list()},
        may_change=staff.role == "admin", flash=take_flash(request), tab="rules",
    )
    return forget_flash(page, request)


@router.post("/duty-rules", dependencies=[Posted])
def add_rule(
    request: Request,
    staff: Staff,
    department: Annotated[str, Form(max_length=18)] = "",
    type_code: Annotated[str, Form(max_length=21)] = "",
    matters: Annotated[list[str] | None, Form()] = None,
    valid_until: Annotated[str, Form(max_length=10)] = "",
    confirm: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    if confirm != CONFIRMED:
        return _back("bad", "请勾选确认后再授予规则")
    try:
        until = _date(valid_until)
        rule = _rules(request).add(staff.actor(), department, type_code, matters or None, until)
    except (ServiceError, ValueError) as exc:
        return _back("bad", f"未能授予：{exc}")
    return _back("ok", f"已授予依职责用证规则 {rule.id}")


@router.post("/duty-rules/{rule_id}/expire", dependencies=[Posted])
def expire_rule(
    rule_id: RowId,
    request: Request,
    staff: Staff,
    valid_until: Annotated[str, Form(max_length=10)] = "",
    confirm: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    if confirm != CONFIRMED:
        return _back("bad", f"请勾选确认后再设置规则 {rule_id} 的截止日期")
    try:
        until = _date(valid_until)
        if until is None:
            return _back("bad", "请选择截止日期")
        rule = _rules(request).expire(staff.actor(), rule_id, until)
    except (ServiceError, ValueError) as exc:
        return _back("bad", f"未能设置：{exc}")
    return _back("ok", f"依职责用证规则 {rule.id} 适用至 {rule.valid_until}")


@router.post("/duty-rules/{rule_id}/withdraw", dependencies=[Posted])
def withdraw_rule(
    rule_id: RowId, request: Request, staff: Staff, confirm: Annotated[str, Form(max_length=3)] = ""
) -> Response:
    if confirm != CONFIRMED:
        return _back("bad", f"请勾选确认后再撤销规则 {rule_id}")
    try:
        rule = _rules(request).withdraw(staff.actor(), rule_id)
    except ServiceError as exc:
        return _back("bad", f"未能撤销：{exc}")
    return _back("ok", f"依职责用证规则 {rule.id} 已撤销，此后不能再依此规则用证")


def _date(text: str) -> dt.date | None:
    if not text.strip():
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"日期应为 YYYY-MM-DD，收到 {text.strip()!r}") from None


def _back(tone: str, message: str) -> Response:
    return flash(redirect(PAGE), tone, message)
