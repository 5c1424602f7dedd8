"""The counter's case screen (办件, /counter/cases): a using department's staff open a case for a
matter their department handles and an applicant, see the checklist (each required material, the
applicant's licences that meet it and the basis this department has for each), reuse a licence with
one click (a use code field where the holder's consent is needed), see the face data of what was
reused, and close the case with the sealed receipt (材料复用清单) to download.

The applicant field and the case's scan field take what a holder presents, as the counter's scan
field does: an applicant code (opening only), a licence's identifier or the address in its QR code,
a show token (亮证码: the holder's consent, once) or a use code (用证码); a show token or a use code
at opening opens the case for its holder and reuses that licence at once.

Also the use code typed or scanned into the check page's scan field: the licence it was given for,
a cause, and the face data after the use.

Every form post answers with a redirect; its message travels in a one-time cookie (`flash`)."""

from __future__ import annotations

import json
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from cert_authority.access.staff import StaffMember
from cert_authority.boundary import RowId
from cert_authority.errors import NotFoundError, ServiceError
from cert_authority.registry.service import RegistryService
from cert_authority.sharing.cases import CaseReuse, CaseService, CaseSummary
from cert_authority.sharing.matters import MatterPublic, MatterService
from cert_authority.sharing.service import CODE_ALPHABET, CODE_LENGTH, SharingService
from cert_authority.store.models import LicenceRow
from cert_authority.web.common import flash, forget_flash, redirect, render, same_origin, take_flash
from cert_authority.web.staff_pages import Staff
from templates.identifier import ROOT
from verification.show_token import MAX_TOKEN_CHARS
from verification.show_token import PREFIX as TOKEN_PREFIX

router = APIRouter(include_in_schema=False)
Posted = Depends(same_origin)
USE_CODE_COOKIE = "ecas_use_code"
USE_PATH = "/counter/use"
# How a basis reads at the counter: in the checklist (before a reuse) and after it.
BASIS_NAMES = {"duty_rule": "依职责", "consent": "持证人授权", None: "需持证人同意"}
REUSED_NAMES = {
    "duty_rule": "依职责",
    "authorisation": "持证人授权（授权用证）",
    "use_code": "持证人同意（用证码）",
    "show_token": "持证人同意（当面亮证）",
}
MAX_TEXT = 200
LICENCE_URL = re.compile(r"/v/(" + re.escape(ROOT) + r"\.[0-9A-Z.]+)$")


def _cases(request: Request) -> CaseService:
    service: CaseService = request.app.state.cases
    return service


def _matters(request: Request) -> MatterService:
    service: MatterService = request.app.state.matters
    return service


def _sharing(request: Request) -> SharingService:
    service: SharingService = request.app.state.sharing
    return service


def _registry(request: Request) -> RegistryService:
    registry: RegistryService = request.app.state.registry
    return registry


def department_matters(request: Request, staff: StaffMember) -> list[MatterPublic]:
    """The matters the staff member's department handles (what it may open cases for)."""
    if staff.department_uscc is None:
        return []
    return [m for m in _matters(request).list() if staff.department_uscc in m.departments]


def department_open_cases(request: Request, staff: StaffMember) -> list[CaseSummary]:
    """The staff member's department's cases still open (for its using-department staff)."""
    if staff.department_uscc is None or staff.role != "user":
        return []
    return _cases(request).list_cases(staff.actor(), staff.department_uscc, "open", limit=50)


def as_use_code(text: str) -> str | None:
    """The text as a use code, if it is one: 8 characters of the use-code alphabet, in any case,
    with or without a dash in the middle."""
    code = text.strip().upper().replace("-", "")
    if len(code) == CODE_LENGTH and all(c in CODE_ALPHABET for c in code):
        return code
    return None


def _back(url: str, tone: str, message: str) -> Response:
    return flash(redirect(url), tone, message)


def _page(request: Request, name: str, status: int = 200, **context: object) -> Response:
    return forget_flash(render(request, name, status, flash=take_flash(request), **context), request)


def _short(text: str) -> str:
    return text.strip()[:MAX_TEXT]


# --- cases ---------------------------------------------------------------------------------------
@router.post("/counter/cases", dependencies=[Posted])
def open_case(
    request: Request,
    staff: Staff,
    matter: Annotated[str, Form()] = "",
    applicant: Annotated[str, Form(max_length=MAX_TOKEN_CHARS)] = "",
    case_number: Annotated[str, Form()] = "",
) -> Response:
    if not matter.strip():
        return _back("/counter", "bad", "请选择办理事项")
    if not applicant.strip():
        return _back("/counter", "bad", "请输入或扫描申请人的统一社会信用代码或公民身份号码")
    cases, actor = _cases(request), staff.actor()
    presented = _presented(applicant)
    try:
        holder, identifier = (
            cases.licence_presented(actor, **presented) if presented else (_short(applicant).upper(), None)
        )
        case = cases.open(actor, _short(matter), holder, case_number=_short(case_number) or None)
    except ServiceError as exc:
        return _back("/counter", "bad", f"未能受理：{exc}")
    opened = f"已受理办件 {case.id}：{case.matter_name}"
    if identifier is None:
        return _back(f"/counter/cases/{case.id}", "ok", opened)
    try:
        done = cases.reuse(actor, case.id, identifier, **presented)
    except ServiceError as exc:
        return _back(f"/counter/cases/{case.id}", "bad", f"{opened}；持证人出示的证照未能复用：{exc}")
    return _back(f"/counter/cases/{case.id}", "ok", f"{opened}；{_reused_message(done)}")


def _presented(text: str) -> dict[str, str]:
    """A show token or a use code, as `CaseService.reuse` takes it; empty for anything else."""
    text = text.strip()
    if text.startswith(TOKEN_PREFIX + "."):
        return {"show_token": text}
    code = as_use_code(text)
    return {"use_code": code} if code else {}


def _reused_message(done: CaseReuse) -> str:
    return f"已复用「{done.use.name}」作为材料「{done.material}」，申请人无需再提交"


@router.get("/counter/cases/{case_id}")
def case_page(case_id: RowId, request: Request, staff: Staff) -> Response:
    case = _cases(request).get(staff.actor(), case_id)
    faces = {m.position: _face(request, m.reused.identifier, m.reused.fields) for m in case.materials if m.reused}
    reused = sum(1 for m in case.materials if m.reused)
    return _page(
        request, "counter/case.html", staff=staff, case=case, faces=faces, reused=reused,
        basis_names=BASIS_NAMES, reused_names=REUSED_NAMES, tab="cases",
    )


@router.post("/counter/cases/{case_id}/reuse", dependencies=[Posted])
def reuse(
    case_id: RowId,
    request: Request,
    staff: Staff,
    identifier: Annotated[str, Form()] = "",
    use_code: Annotated[str, Form()] = "",
) -> Response:
    back = f"/counter/cases/{case_id}"
    code = use_code.strip()
    if code and as_use_code(code) is None:
        return _back(back, "bad", f"用证码应为 {CODE_LENGTH} 位字母或数字，请核对持证人提供的用证码")
    try:
        done = _cases(request).reuse(staff.actor(), case_id, _short(identifier), code or None)
    except ServiceError as exc:
        return _back(back, "bad", f"未能复用：{exc}")
    return _back(back, "ok", _reused_message(done))


@router.post("/counter/cases/{case_id}/scan", dependencies=[Posted])
def scan_into_case(
    case_id: RowId, request: Request, staff: Staff, code: Annotated[str, Form(max_length=MAX_TOKEN_CHARS)] = ""
) -> Response:
    """What the holder presents, scanned or typed into the case: a show token or a use code (the
    holder's consent for that licence), or a licence's identifier or QR address (on the basis the
    department has)."""
    back = f"/counter/cases/{case_id}"
    if not code.strip():
        return _back(back, "bad", "请扫描或输入亮证码、用证码、证照二维码或证照标识")
    cases, actor = _cases(request), staff.actor()
    presented = _presented(code)
    try:
        if presented:
            identifier = cases.licence_presented(actor, **presented)[1]
        else:
            address = LICENCE_URL.search(code.strip())
            identifier = address.group(1) if address else _short(code)
        done = cases.reuse(actor, case_id, identifier, **presented)
    except ServiceError as exc:
        return _back(back, "bad", f"未能复用：{exc}")
    return _back(back, "ok", _reused_message(done))


@router.post("/counter/cases/{case_id}/close", dependencies=[Posted])
def close(case_id: RowId, request: Request, staff: Staff) -> Response:
    back = f"/counter/cases/{case_id}"
    try:
        _cases(request).close(staff.actor(), case_id)
    except ServiceError as exc:
        return _back(back, "bad", f"未能办结：{exc}")
    return _back(back, "ok", "已办结，材料复用清单已盖章生成")


@router.get("/counter/cases/{case_id}/receipt.pdf")
def receipt(case_id: RowId, request: Request, staff: Staff) -> Response:
    found = _cases(request).receipt(staff.actor(), case_id)
    headers = {
        "Content-Disposition": f'attachment; filename="receipt-{case_id}.pdf"',
        "X-Receipt-SM3": found.sm3,
        "Cache-Control": "private, no-store",
    }
    return Response(found.pdf, media_type="application/pdf", headers=headers)


def _face(request: Request, identifier: str, fields: tuple[str, ...] | None) -> list[tuple[str, str]]:
    """The face data of a licence reused in the department's own case, labelled as on the licence:
    those fields the holder disclosed on a show token, or every one (`fields` None)."""
    row = _sharing(request).find_licence(identifier)
    return _labelled(request, row, fields) if row is not None else []


def _labelled(request: Request, row: LicenceRow, fields: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    face: dict[str, str] = json.loads(row.face_json)
    spec = _registry(request).type_spec(row.type_code)
    return [(f.label, str(face[f.key])) for f in spec.fields if f.key in face and (fields is None or f.key in fields)]


# --- a use code at the scan field ------------------------------------------------------------------
def scanned_use_code(code: str) -> Response:
    """The scan field got a use code: on to the use form (the code waits in an HttpOnly cookie, not
    in the address, where logs and history would keep it)."""
    response = redirect(USE_PATH)
    response.set_cookie(USE_CODE_COOKIE, code, path=USE_PATH, httponly=True, samesite="strict", max_age=600)
    return response


@router.get(USE_PATH)
def use_page(request: Request, staff: Staff) -> Response:
    code = request.cookies.get(USE_CODE_COOKIE, "")
    identifier = _sharing(request).use_code_licence(staff.actor(), code) if as_use_code(code) else None
    if identifier is None:
        response = _back("/counter", "bad", "用证码无效：不存在、不是给本部门的、已撤回、已过期或次数已用完")
        response.delete_cookie(USE_CODE_COOKIE, path=USE_PATH)
        return response
    licence = _sharing(request).find_licence(identifier)
    assert licence is not None
    return _page(request, "counter/use.html", staff=staff, licence=licence, code=code, tab="scan")


@router.post(USE_PATH, dependencies=[Posted])
def use(request: Request, staff: Staff, cause: Annotated[str, Form()] = "") -> Response:
    code = request.cookies.get(USE_CODE_COOKIE, "")
    sharing = _sharing(request)
    identifier = sharing.use_code_licence(staff.actor(), code) if as_use_code(code) else None
    if identifier is None:
        return _back("/counter", "bad", "用证码无效：不存在、不是给本部门的、已撤回、已过期或次数已用完")
    if not cause.strip():
        return _back(USE_PATH, "bad", "请填写用证事由（办理的事项）")
    try:
        sharing.use_licence(staff.actor(), identifier, _short(cause), code)
    except ServiceError as exc:
        return _back(USE_PATH, "bad", f"未能用证：{exc}")
    done = "已凭用证码调取证照，此次用证已记录，持证人可在用证记录中查看"
    response = _back(f"/counter/used/{identifier}", "ok", done)
    response.delete_cookie(USE_CODE_COOKIE, path=USE_PATH)
    return response


@router.get("/counter/used/{identifier}")
def used_page(identifier: str, request: Request, staff: Staff) -> Response:
    """The face data of a licence this staff member has just used (in the last minutes)."""
    found = _sharing(request).recent_use(staff.actor(), identifier)
    if found is None:
        raise NotFoundError("没有找到您刚才的用证记录（调取结果只在用证后 10 分钟内显示）")
    row, face_data, cause = found
    face = _labelled(request, row, tuple(face_data))  # what that use gave
    return _page(request, "counter/used.html", staff=staff, licence=row, face=face, cause=cause, tab="scan")
