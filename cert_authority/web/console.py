"""The issuer console (/console, for issuing departments' staff): find licences, issue one through a
form built from the type's face fields, change, revoke and cancel. Every action goes through the
same services and rules as the API (the staff member acts with the account's role and department)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.datastructures import FormData
from starlette.datastructures import UploadFile as FormFile

from cert_authority.access.staff import StaffMember
from cert_authority.actors import ensure_role
from cert_authority.boundary import RowId, classify
from cert_authority.errors import InvalidRequestError, ServiceError
from cert_authority.issuing.batch_jobs import BatchJobs
from cert_authority.issuing.dates import describe
from cert_authority.issuing.issuance import IssuanceService
from cert_authority.issuing.lifecycle import LifecycleService
from cert_authority.issuing.queries import MAX_TEXT, LicenceQueryService
from cert_authority.issuing.schemas import LICENCE_STATUSES, LicencePublic
from cert_authority.registry.service import RegistryService
from cert_authority.web.common import flash, forget_flash, redirect, render, same_origin, take_flash
from cert_authority.web.console_search import SCAN_LIMIT, holder_scan, scan_offset
from cert_authority.web.licence_images import pictures_for
from cert_authority.web.staff_pages import Staff
from templates.render import MEDIA_TYPES
from templates.spec import FieldType, LicenceTypeSpec

router = APIRouter(prefix="/console", include_in_schema=False)
Posted = Depends(same_origin)
PAGE_SIZE = 20
MAX_PHOTO_BYTES = 4 * 1024 * 1024


def _state(request: Request) -> tuple[RegistryService, LicenceQueryService, IssuanceService, LifecycleService]:
    state = request.app.state
    return state.registry, state.licences, state.issuance, state.lifecycle


def _writer(staff: StaffMember) -> StaffMember:
    ensure_role(staff.actor(), "admin", "issuer")
    return staff


def _reader(staff: StaffMember) -> StaffMember:
    ensure_role(staff.actor(), "admin", "issuer", "auditor")
    return staff


# --- finding licences -------------------------------------------------------------------------------
@router.get("")
def console_home(
    request: Request,
    staff: Staff,
    type_code: str = "",
    status: str = "",
    holder_code: str = "",
    q: str = "",
    cursor: str = "",
    before: str = "",
) -> Response:
    registry, queries, _, _ = _state(request)
    _reader(staff)
    # Pages by key (next: cursor, previous: before): page 400 costs what page 1 does. A search by
    # name or part of a code (web/console_search.py) pages by its own "scan:N" cursors.
    scan_at = scan_offset(cursor or before)
    by_holder, scan_stopped = False, False
    if scan_at is None:
        results = queries.search(
            staff.actor(),
            type_code=type_code or None,
            status=status if status in LICENCE_STATUSES else None,
            holder_code=holder_code or None,
            text=q[:MAX_TEXT] or None,
            page_size=PAGE_SIZE,
            cursor=cursor[:200] or None,
            before=None if cursor else before[:200] or None,
        )
    if scan_at is not None or (results.total == 0 and q.strip() and not holder_code):
        results, scan_stopped = holder_scan(
            queries, staff.actor(), q[:MAX_TEXT], type_code=type_code or None,
            status=status if status in LICENCE_STATUSES else None, offset=scan_at or 0, page_size=PAGE_SIZE,
        )
        by_holder = True
    types = [t for t in registry.list_types() if staff.role == "admin" or staff.department_uscc in t.issuers]
    page_ = render(
        request, "console/home.html", staff=staff, results=results, types=types, statuses=LICENCE_STATUSES,
        by_holder=by_holder, scan_stopped=scan_stopped, scan_limit=SCAN_LIMIT,
        query={"type_code": type_code, "status": status, "holder_code": holder_code, "q": q[:MAX_TEXT]},
        max_query=MAX_TEXT, flash=take_flash(request),
    )
    return forget_flash(page_, request)


@router.get("/licences/{identifier}")
def licence_page(identifier: str, request: Request, staff: Staff) -> Response:
    return _licence_view(request, staff, identifier)


def _licence_view(
    request: Request, staff: StaffMember, identifier: str, error: str = "", status: int = 200, act: str = ""
) -> Response:
    registry, queries, _, _ = _state(request)
    licence = queries.get(staff.actor(), identifier)
    page = render(
        request, "console/licence.html", status, staff=staff, licence=licence, error=error,
        fields=_labelled(registry.type_spec(licence.type_code), licence.data),
        history=queries.history(staff.actor(), identifier), flash=take_flash(request),
        revoke_reasons=REVOKE_REASONS, cancel_reasons=CANCEL_REASONS, act=act,
    )
    return forget_flash(page, request)


@router.get("/licences/{identifier}/file.{fmt}")
def licence_file(identifier: str, fmt: str, request: Request, staff: Staff) -> Response:
    _, queries, _, _ = _state(request)
    data = queries.file(staff.actor(), identifier, fmt)
    if fmt == "png":
        # The picture of a licence that is no longer valid is marked across (已吊销), as in the
        # wallet: a screenshot of the console must not pass for a valid licence. The sealed PDF and
        # OFD stay as issued (the department's record; their status is checked where they are used).
        status = queries.get(staff.actor(), identifier).status
        data, media_type = pictures_for(request.app.state).full(data, status)
        return Response(data, media_type=media_type, headers={"Content-Disposition": "inline"})
    disposition = f'attachment; filename="{identifier}.{fmt}"'
    return Response(data, media_type=MEDIA_TYPES[fmt], headers={"Content-Disposition": disposition})


# --- revoking and cancelling ------------------------------------------------------------------------
# Two different acts: 吊销 takes a licence away as a penalty, 注销 ends it (the holder asked, the
# holder ceased to exist...). Each has its own form, a reason from its own list plus a free-text
# explanation, and a confirmation box; both reasons end up in the status record.
REVOKE_REASONS = (
    "违反法律法规，依法吊销",
    "以欺骗、贿赂等不正当手段取得",
    "不再具备许可条件，依法吊销",
    "其他",
)
CANCEL_REASONS = (
    "持证人申请注销",
    "持证主体已终止（注销登记、死亡等）",
    "许可被依法撤销或撤回",
    "证照信息有误，需重新颁发",
    "其他",
)
ACTS = {"revoke": ("吊销", REVOKE_REASONS), "cancel": ("注销", CANCEL_REASONS)}
Text = Annotated[str, Form(max_length=200)]


@router.post("/licences/{identifier}/revoke", dependencies=[Posted])
def revoke(
    identifier: str, request: Request, staff: Staff, category: Text = "", reason: Text = "", confirm: Text = ""
) -> Response:
    return _change_status(request, staff, identifier, "revoke", category, reason, confirm)


@router.post("/licences/{identifier}/cancel", dependencies=[Posted])
def cancel(
    identifier: str, request: Request, staff: Staff, category: Text = "", reason: Text = "", confirm: Text = ""
) -> Response:
    return _change_status(request, staff, identifier, "cancel", category, reason, confirm)


def _change_status(
    request: Request, staff: StaffMember, identifier: str, action: str, category: str, reason: str, confirm: str
) -> Response:
    lifecycle = _state(request)[3]
    word, categories = ACTS[action]
    try:
        if category not in categories:
            raise InvalidRequestError(f"请选择{word}原因")
        if not reason.strip():
            raise InvalidRequestError(f"请填写{word}的具体说明（例如处罚决定书文号）")
        if confirm != "yes":
            raise InvalidRequestError(f"请勾选确认后再{word}：{word}后不可恢复")
        text = f"{category}：{reason.strip()}"[:200]
        if action == "revoke":
            lifecycle.revoke(staff.actor(), identifier, text)
        else:
            lifecycle.cancel(staff.actor(), identifier, text)
    except ServiceError as exc:
        _raise_if_not_the_forms_fault(exc)
        return _licence_view(request, staff, identifier, error=str(exc), status=_status(exc), act=action)
    page = f"/console/licences/{identifier}"
    return flash(redirect(page), "ok", f"已{word}此证照：{text}。持证人的亮证码与核验随即失效", link=page)


# --- issuing and changing ---------------------------------------------------------------------------
@router.get("/issue/{type_code}")
def issue_page(type_code: str, request: Request, staff: Staff) -> Response:
    _writer(staff)
    registry = _state(request)[0]
    spec = registry.type_spec(type_code)
    return _form(request, staff, spec, values={}, action=f"/console/issue/{type_code}")


@router.post("/issue/{type_code}", dependencies=[Posted])
async def issue(type_code: str, request: Request, staff: Staff) -> Response:
    registry, _, issuance, _ = _state(request)
    spec = registry.type_spec(type_code)
    form = await request.form()
    values: dict[str, Any] = {}
    try:
        values, photo, dates = await _read_form(spec, form)
        result = await run_in_threadpool(
            issuance.issue_licence,
            staff.actor(),
            type_code,
            values,
            photo=photo,
            # From the form as rendered: a double click or a resent form issues once.
            idempotency_key=str(form.get("idempotency_key") or "") or None,
            valid_from=dates[0],
            valid_until=dates[1],
            issuer_uscc=str(form.get("issuer_uscc") or "") or None,
        )
    except ServiceError as exc:
        _raise_if_not_the_forms_fault(exc)
        return _form(request, staff, spec, values, f"/console/issue/{type_code}", form=form, error=str(exc))
    page = f"/console/licences/{result.licence.identifier}"
    message = f"已颁发{spec.name}，证照编号 {result.licence.licence_number}，已盖电子印章"
    return flash(redirect(page), "ok", message, link=page, link_text="查看证照")


@router.get("/licences/{identifier}/change")
def change_page(identifier: str, request: Request, staff: Staff) -> Response:
    _writer(staff)
    registry, queries, _, _ = _state(request)
    licence = queries.get(staff.actor(), identifier)
    return _form(
        request, staff, registry.type_spec(licence.type_code), licence.data,
        f"/console/licences/{identifier}/change", licence=licence,
    )


@router.post("/licences/{identifier}/change", dependencies=[Posted])
async def change(identifier: str, request: Request, staff: Staff) -> Response:
    registry, queries, issuance, _ = _state(request)
    licence = queries.get(staff.actor(), identifier)
    spec = registry.type_spec(licence.type_code)
    form = await request.form()
    values: dict[str, Any] = {}
    try:
        values, photo, dates = await _read_form(spec, form)
        # Fields emptied on the form are removed (None); the service says if a required one is missing.
        changes = {f.key: values.get(f.key) for f in spec.fields if f.type is not FieldType.PHOTO}
        changed = await run_in_threadpool(
            issuance.change_licence,
            staff.actor(),
            identifier,
            changes,
            photo=photo,
            valid_from=dates[0],
            valid_until=dates[1],
            reason=str(form.get("reason") or "") or None,
        )
    except ServiceError as exc:
        _raise_if_not_the_forms_fault(exc)
        action = f"/console/licences/{identifier}/change"
        return _form(request, staff, spec, values, action, form=form, licence=licence, error=str(exc))
    page = f"/console/licences/{changed.identifier}"
    return flash(redirect(page), "ok", f"已变更，生成第 {changed.version} 版并重新盖章", link=page)


# --- batch files ------------------------------------------------------------------------------------
@router.get("/batch")
def batch_page(request: Request, staff: Staff) -> Response:
    return _batch_view(request, staff)


def _batch_view(request: Request, staff: StaffMember, error: str = "", status: int = 200) -> Response:
    jobs: BatchJobs = request.app.state.batch_jobs
    registry = _state(request)[0]
    _reader(staff)
    types = [t for t in registry.list_types() if staff.role == "admin" or staff.department_uscc in t.issuers]
    return render(
        request, "console/batch.html", status, staff=staff, types=types, jobs=jobs.recent(staff.actor()),
        error=error, tab="batch", names={t.code: t.name for t in registry.list_types()},
    )


@router.post("/batch", dependencies=[Posted])
def submit_batch(
    request: Request,
    staff: Staff,
    type_code: Annotated[str, Form(max_length=40)],
    file: Annotated[UploadFile, File()],
    issuer_uscc: Annotated[str, Form(max_length=18)] = "",
) -> Response:
    jobs: BatchJobs = request.app.state.batch_jobs
    try:
        job_id = jobs.submit(staff.actor(), type_code, file.filename or "", file.file.read(), issuer_uscc or None)
    except ServiceError as exc:
        return _batch_view(request, staff, error=str(exc), status=_status(exc))
    return redirect(f"/console/batch/{job_id}")


@router.get("/batch/{job_id}")
def batch_job_page(job_id: RowId, request: Request, staff: Staff) -> Response:
    jobs: BatchJobs = request.app.state.batch_jobs
    job = jobs.get(staff.actor(), job_id)
    name = _state(request)[0].get_type(job.type_code).name
    return render(request, "console/batch_job.html", staff=staff, job=job, type_name=name, tab="batch")


@router.post("/batch/{job_id}/rerun", dependencies=[Posted])
def rerun_batch(job_id: RowId, request: Request, staff: Staff) -> Response:
    jobs: BatchJobs = request.app.state.batch_jobs
    return redirect(f"/console/batch/{jobs.rerun(staff.actor(), job_id)}")


def _status(exc: Exception) -> int:
    return (classify(exc) or (400, ""))[0]


def _raise_if_not_the_forms_fault(exc: ServiceError) -> None:
    """Not logged in, not allowed, not there: the error page (or the login), not the form again."""
    if _status(exc) in (401, 403, 404):
        raise exc


def _form(
    request: Request,
    staff: StaffMember,
    spec: LicenceTypeSpec,
    values: dict[str, Any],
    action: str,
    form: FormData | None = None,
    licence: LicencePublic | None = None,
    error: str = "",
) -> Response:
    return render(
        request, "console/issue.html", 422 if error else 200, staff=staff, spec=spec, values=values,
        action=action, licence=licence, error=error,
        idempotency_key=str(form.get("idempotency_key")) if form else f"web:{uuid.uuid4()}",
        valid_from=str(form.get("valid_from") or "") if form else "",
        valid_until=str(form.get("valid_until") or "") if form else "",
        validity=describe(spec.validity),
    )


async def _read_form(
    spec: LicenceTypeSpec, form: FormData
) -> tuple[dict[str, Any], bytes | None, tuple[dt.date | None, dt.date | None]]:
    """Face values (empty inputs left out, a date range from its two inputs), the photo, the dates."""
    values: dict[str, Any] = {}
    photo = None
    for field in spec.fields:
        if field.type is FieldType.PHOTO:
            upload = form.get(f"f_{field.key}")
            if isinstance(upload, FormFile) and upload.filename:
                photo = await upload.read(MAX_PHOTO_BYTES + 1)
            continue
        if field.type is FieldType.DATE_RANGE:
            start, end = str(form.get(f"f_{field.key}__from") or ""), str(form.get(f"f_{field.key}__to") or "")
            value = f"{start}/{end}" if start or end else ""
        else:
            value = str(form.get(f"f_{field.key}") or "").strip()
        if value:
            values[field.key] = value
    return values, photo, (_date(form.get("valid_from")), _date(form.get("valid_until")))


def _date(value: object) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(value)) if value else None
    except ValueError:
        raise InvalidRequestError(f"日期 {value} 无效，应为 YYYY-MM-DD") from None


def _labelled(spec: LicenceTypeSpec, data: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f.label, str(data[f.key])) for f in spec.fields if f.key in data]
