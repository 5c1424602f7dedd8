"""The holder's wallet on the phone (/wallet): log in, my licences, one licence with its files,
the show screen (亮证) with a self-refreshing QR code, and who used my licences (用证记录) with
the use codes (用证码) I gave out."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from cert_authority.boundary import RowId
from cert_authority.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    ServiceError,
    TooManyAttemptsError,
)
from cert_authority.holders.service import DEFAULT_SHOW_SECONDS, MAX_SHOW_SECONDS, Holder, HolderService
from cert_authority.issuing.queries import LicenceQueryService
from cert_authority.issuing.schemas import STATUS_NAMES, LicencePublic
from cert_authority.registry.service import RegistryService
from cert_authority.sharing.matters import MatterService
from cert_authority.sharing.rules import MAX_AUTHORISATION_DAYS, Authorisations
from cert_authority.sharing.service import SharingService
from cert_authority.web.common import (
    HOLDER_COOKIE,
    client_address,
    face_value,
    flash,
    forget_flash,
    redirect,
    render,
    safe_next,
    same_origin,
    set_session,
    take_flash,
)
from cert_authority.web.licence_images import pictures_for
from templates.qr import qr_svg
from templates.render import MEDIA_TYPES
from templates.spec import FieldType

router = APIRouter(prefix="/wallet", include_in_schema=False)
NO_DOWNLOAD = ("revoked", "cancelled")
REFUSALS = {  # why a show-code check was refused, as the holder reads it in 用证记录
    "replayed": "同一个亮证码被再次出示，已拒绝：每个亮证码只能核验一次（截图或转发的码无效）",
    "revoked": "证照已吊销，核验未通过",
    "cancelled": "证照已注销，核验未通过",
    "expired": "证照已过期，核验未通过",
    "superseded": "证照已变更为新版本，旧版本核验未通过",
}
Posted = Depends(same_origin)


def _holders(request: Request) -> HolderService:
    service: HolderService = request.app.state.holders
    return service


def _queries(request: Request) -> LicenceQueryService:
    service: LicenceQueryService = request.app.state.licences
    return service


def _sharing(request: Request) -> SharingService:
    service: SharingService = request.app.state.sharing
    return service


def _authorisations(request: Request) -> Authorisations:
    service: Authorisations = request.app.state.authorisations
    return service


def _matters(request: Request) -> MatterService:
    service: MatterService = request.app.state.matters
    return service


def _registry(request: Request) -> RegistryService:
    service: RegistryService = request.app.state.registry
    return service


def current_holder(request: Request) -> Holder:
    token = request.cookies.get(HOLDER_COOKIE)
    if not token:
        raise AuthenticationError("请先登录")
    return _holders(request).holder_for_session(token)


Me = Annotated[Holder, Depends(current_holder)]


# --- logging in ---------------------------------------------------------------------------------
@router.get("/login")
def login_page(request: Request, next: str = "") -> Response:
    return render(request, "wallet/login.html", next=safe_next(next, "/wallet"))


@router.post("/login", dependencies=[Posted])
def login(
    request: Request,
    holder_code: Annotated[str, Form(max_length=18)],
    password: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    target = safe_next(next, "/wallet")
    try:
        token, expires, _holder = _holders(request).login(holder_code, password, client_address(request))
    except (AuthenticationError, TooManyAttemptsError) as exc:
        status = 429 if isinstance(exc, TooManyAttemptsError) else 401
        return render(request, "wallet/login.html", status, error=str(exc), holder_code=holder_code, next=target)
    response = redirect(target)
    set_session(response, request, HOLDER_COOKIE, token, expires, "/wallet")
    return response


@router.post("/logout", dependencies=[Posted])
def logout(request: Request) -> Response:
    token = request.cookies.get(HOLDER_COOKIE)
    if token:
        _holders(request).logout(token)
    response = redirect("/wallet/login")
    response.delete_cookie(HOLDER_COOKIE, path="/wallet")
    return response


# --- my licences ----------------------------------------------------------------------------------
@router.get("")
def wallet(request: Request, me: Me) -> Response:
    licences = _holders(request).licences(me)
    current = [lic for lic in licences if lic.status != "superseded"]  # old versions stay on the licence page
    reasons = {
        lic.identifier: _queries(request).holder_licence(me.holder_code, lic.identifier).status_reason or ""
        for lic in current
        if lic.status in NO_DOWNLOAD
    }
    return render(request, "wallet/home.html", me=me, licences=current, reasons=reasons, tab="licences")


@router.get("/licences/{identifier}")
def licence_page(identifier: str, request: Request, me: Me) -> Response:
    licence = _queries(request).holder_licence(me.holder_code, identifier)
    departments = [d for d in _registry(request).list_departments() if "user" in d.roles]
    spec = _registry(request).type_spec(licence.type_code)
    photos = {f.key for f in spec.fields if f.type is FieldType.PHOTO}
    # The validity dates are shown once, formatted; a photo field's value is a file digest, not text.
    facts = [(label, value) for key, label, value, _ in _labelled(request, licence) if key not in photos
             and label != "有效期"]
    return render(
        request, "wallet/licence.html", me=me, licence=licence, facts=facts, departments=departments, tab="licences",
    )


@router.get("/licences/{identifier}/file.{fmt}")
def licence_file(identifier: str, fmt: str, request: Request, me: Me) -> Response:
    """The picture (marked across once the licence is no longer valid) or the sealed file (not at
    all for a revoked or cancelled licence: no clean copy of it leaves the wallet)."""
    licence = _queries(request).holder_licence(me.holder_code, identifier)
    if fmt != "png" and licence.status in NO_DOWNLOAD:
        raise ConflictError(f"此证照{STATUS_NAMES[licence.status]}，不再提供 PDF 或 OFD 下载")
    data = _queries(request).holder_file(me.holder_code, identifier, fmt)
    media_type = MEDIA_TYPES.get(fmt, "application/octet-stream")
    if fmt == "png":
        data, media_type = pictures_for(request.app.state).full(data, licence.status)
    disposition = "inline" if fmt == "png" else f'attachment; filename="{identifier}.{fmt}"'
    headers = {"Content-Disposition": disposition, "Cache-Control": "private, no-cache"}
    return Response(data, media_type=media_type, headers=headers)


@router.get("/licences/{identifier}/thumb.webp")
def licence_thumbnail(identifier: str, request: Request, me: Me) -> Response:
    """A small picture for the list (marked like the full one); revalidated, so a revocation shows."""
    licence = _queries(request).holder_licence(me.holder_code, identifier)
    png = _queries(request).holder_file(me.holder_code, identifier, "png")
    data = pictures_for(request.app.state).thumbnail(png, licence.status)
    return Response(data, media_type="image/webp", headers={"Cache-Control": "private, no-cache"})


# --- showing (亮证) ---------------------------------------------------------------------------------
@router.get("/licences/{identifier}/show")
def show_page(
    identifier: str,
    request: Request,
    me: Me,
    fields: Annotated[list[str] | None, Query()] = None,
    seconds: Annotated[int, Query(ge=10, le=MAX_SHOW_SECONDS)] = DEFAULT_SHOW_SECONDS,
) -> Response:
    """The show screen. A licence that is not valid gets a red screen and no code; otherwise the
    first code is in the page, and the script fetches the next one before it runs out."""
    licence = _queries(request).holder_licence(me.holder_code, identifier)
    labelled = _labelled(request, licence)
    choices = [(key, label) for key, label, _value, _disclosable in labelled]
    # Least disclosure by default: the fields the type marks as fit to show alone, if it marks any.
    chosen = [f for f in fields or [] if f in licence.data] or [key for key, *_, alone in labelled if alone] or None
    token = None
    if licence.status == "issued":
        text, shown = _holders(request).show_token(me, identifier, chosen, seconds)
        token = {"qr_svg": qr_svg(text), "expires_at": shown.expires_at.isoformat(), "fields": shown.fields}
    return render(
        request, "wallet/show.html", me=me, licence=licence, token=token, choices=choices,
        chosen=chosen or [], seconds=seconds,
    )


@router.get("/licences/{identifier}/status")
def licence_status(identifier: str, request: Request, me: Me) -> dict[str, str]:
    """The show screen asks every few seconds: a licence revoked meanwhile takes its code off at once."""
    licence = _queries(request).holder_licence(me.holder_code, identifier)
    return {"status": licence.status, "status_name": STATUS_NAMES.get(licence.status, licence.status)}


@router.get("/licences/{identifier}/photo")
def licence_photo(identifier: str, request: Request, me: Me) -> Response:
    """The holder's photo on a personal licence, for the show screen."""
    licence = _queries(request).holder_licence(me.holder_code, identifier)
    if not licence.photo_sm3:
        raise NotFoundError("此证照没有照片")
    data = _registry(request).filestore.get(licence.photo_sm3)
    media_type = "image/jpeg" if data.startswith(b"\xff\xd8") else "image/png"
    return Response(data, media_type=media_type, headers={"Cache-Control": "private, max-age=300"})


class ShowTokenAsk(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: Annotated[list[str] | None, Field(max_length=60)] = None
    seconds: Annotated[int, Field(ge=10, le=MAX_SHOW_SECONDS)] = DEFAULT_SHOW_SECONDS


@router.post("/licences/{identifier}/show-token", dependencies=[Posted])
def next_show_token(identifier: str, body: ShowTokenAsk, request: Request, me: Me) -> dict[str, object]:
    """The show screen's next code (JSON for its script)."""
    text, shown = _holders(request).show_token(me, identifier, body.fields, body.seconds)
    seconds = int((shown.expires_at - shown.issued_at).total_seconds())
    return {"qr_svg": qr_svg(text), "expires_at": shown.expires_at.isoformat(), "seconds": seconds}


# --- uses and use codes -----------------------------------------------------------------------------
@router.get("/uses")
def uses_page(request: Request, me: Me) -> Response:
    return _uses_page(request, me)


@router.post("/use-codes", dependencies=[Posted])
def create_use_code(
    request: Request,
    me: Me,
    identifier: Annotated[str, Form(max_length=120)],
    department_uscc: Annotated[str, Form(max_length=18)],
    purpose: Annotated[str, Form(max_length=200)],
    max_uses: Annotated[int, Form(ge=1, le=100)] = 1,
    days: Annotated[int, Form(ge=1, le=30)] = 7,
) -> Response:
    try:
        text, _code = _sharing(request).create_use_code(me, identifier, department_uscc, purpose, max_uses, days)
    except ServiceError as exc:
        return _uses_page(request, me, error=str(exc), status=400)
    # Post/redirect/get: the code rides to the next page once, so a reload shows no second code.
    return flash(redirect("/wallet/uses"), "ok", "用证码已生成（只显示这一次）", new_code=text)


@router.post("/use-codes/{code_id}/withdraw", dependencies=[Posted])
def withdraw_use_code(code_id: RowId, request: Request, me: Me) -> Response:
    _sharing(request).withdraw_use_code(me, code_id)
    return redirect("/wallet/uses")


# --- standing authorisations (授权用证) -------------------------------------------------------------
@router.post("/authorisations", dependencies=[Posted])
def grant_authorisation(
    request: Request,
    me: Me,
    choice: Annotated[str, Form()] = "",
    days: Annotated[str, Form()] = "90",
) -> Response:
    """Let one department use my licences in cases of one matter, for so many days."""
    department, _, matter = choice.partition("|")
    if not department or not matter:
        return _back("bad", "请选择授权的部门和办理事项")
    if not days.strip().isdigit() or not 1 <= int(days) <= MAX_AUTHORISATION_DAYS:
        return _back("bad", f"授权有效天数应为 1–{MAX_AUTHORISATION_DAYS} 天")
    try:
        granted = _authorisations(request).grant(me, department[:18], matter[:40], int(days))
    except ServiceError as exc:
        return _back("bad", f"未能授权：{exc}")
    matter_name = _matters(request).get(granted.matter_code).name
    return _back("ok", f"已授权：办理「{matter_name}」时，该部门可直接使用您的证照，{int(days)} 天内有效")


@router.post("/authorisations/{authorisation_id}/withdraw", dependencies=[Posted])
def withdraw_authorisation(authorisation_id: RowId, request: Request, me: Me) -> Response:
    try:
        _authorisations(request).withdraw(me, authorisation_id)
    except ServiceError as exc:
        return _back("bad", f"未能撤回：{exc}")
    return _back("ok", "已撤回授权：该部门不能再凭此授权使用您的证照")


def _back(tone: str, message: str) -> Response:
    return flash(redirect("/wallet/uses"), tone, message)


def _uses_page(request: Request, me: Holder, status: int = 200, **extra: object) -> Response:
    sharing = _sharing(request)
    names = {d.uscc: d.name for d in _registry(request).list_departments()}
    licences = {lic.identifier: lic.name for lic in _holders(request).licences(me)}
    matters = _matters(request).list()
    choices = [(f"{uscc}|{m.code}", f"{m.name}（{names.get(uscc, uscc)}）") for m in matters for uscc in m.departments]
    page = render(
        request, "wallet/uses.html", status, me=me, uses=sharing.uses(me), codes=sharing.use_codes(me),
        departments=names, licences=licences, now=dt.datetime.now(dt.UTC), tab="uses",
        authorisations=_authorisations(request).list(me), matter_names={m.code: m.name for m in matters},
        choices=choices, max_days=MAX_AUTHORISATION_DAYS, flash=take_flash(request), refusals=REFUSALS, **extra,
    )
    return forget_flash(page, request)


def _labelled(request: Request, licence: LicencePublic) -> list[tuple[str, str, str, bool]]:
    """(key, label, value, disclosable) of each face field, in the type's order; a date range as
    "from 至 to" (the licence's own 有效期 row is shown once, from its validity dates)."""
    spec = _registry(request).type_spec(licence.type_code)
    return [
        (f.key, f.label, face_value(f.type, licence.data[f.key]), f.disclosable)
        for f in spec.fields
        if f.key in licence.data
    ]
