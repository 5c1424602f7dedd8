"""Registering a licence type in the console: the definition (YAML, as in examples/types) in a text
box, its background image if it has one, and a preview of the licence face that follows the typing
(rendered by the same registry code as the API's /templates/preview; nothing is stored until 登记)."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from cert_authority.access.staff import StaffMember
from cert_authority.actors import ensure_role
from cert_authority.boundary import classify
from cert_authority.demo import EXAMPLE_TYPES
from cert_authority.errors import ServiceError
from cert_authority.registry.service import RegistryService
from cert_authority.registry.spec_input import load_definition, parse_type_spec
from cert_authority.web.common import flash, redirect, render, same_origin
from cert_authority.web.staff_pages import Staff
from templates.errors import TemplateError

router = APIRouter(prefix="/console/types", include_in_schema=False)
MAX_SPEC_CHARS = 200_000
Spec = Annotated[str, Form(max_length=MAX_SPEC_CHARS)]
Images = Annotated[list[UploadFile] | None, File()]
DefinitionErrors = (ServiceError, TemplateError, ValueError)


def _registry(request: Request) -> RegistryService:
    registry: RegistryService = request.app.state.registry
    return registry


def _writer(staff: StaffMember) -> StaffMember:
    ensure_role(staff.actor(), "admin", "issuer")
    return staff


@router.get("/new")
def new_type_page(request: Request, staff: Staff, example: str = "") -> Response:
    _writer(staff)
    examples = sorted(path.stem for path in EXAMPLE_TYPES.glob("*.yaml"))
    chosen = example if example in examples else (examples[0] if examples else "")
    text = (EXAMPLE_TYPES / f"{chosen}.yaml").read_text(encoding="utf-8") if chosen else ""
    taken = {t.code for t in _registry(request).list_types()}
    return _page(request, staff, own_example(text, staff.department_uscc, taken), examples=examples, example=chosen)


EXAMPLE_HEADER = (
    "# 证照类型定义（示例已改为本部门可直接登记的内容）。\n"
    "# code：定义机关统一社会信用代码 + 3 位序号，不能与已登记的类型重复；issuers：可颁发此类证照的部门。\n"
    "# fields 为照面字段（key 为英文字段名，label 为照面上的中文名称）；template 为排版，单位毫米。\n"
)


def own_example(text: str, department_uscc: str | None, taken: set[str]) -> str:
    """An example as a start for this department: Chinese notes instead of the file's English ones,
    the department as the issuer, and a type code not yet registered (so 登记 works as it stands)."""
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    body = "".join(lines)
    if department_uscc:
        body = re.sub(r"(?m)^issuers:.*$", f"issuers: [{department_uscc}]", body, count=1)
    code = re.search(r"(?m)^code: *([0-9A-Z]{18})(\d{3}) *$", body)
    if code and code.group(1) + code.group(2) in taken:
        free = next((n for n in range(int(code.group(2)) + 1, 1000) if f"{code.group(1)}{n:03d}" not in taken), None)
        if free is not None:
            body = body.replace(code.group(0), f"code: {code.group(1)}{free:03d}", 1)
    return EXAMPLE_HEADER + body


@router.post("/new", dependencies=[Depends(same_origin)])
async def register_or_preview(
    request: Request, staff: Staff, spec: Spec, images: Images = None, action: Annotated[str, Form()] = "preview"
) -> Response:
    """Without the page's script: 预览 renders the page with the preview; 登记 registers the type."""
    _writer(staff)
    registry = _registry(request)
    uploaded = await _images(images)
    try:
        definition = parse_type_spec(load_definition(spec.encode(), "定义"))
        if action == "register":
            await run_in_threadpool(registry.register_type, definition, uploaded, staff.actor())
            message = f"已登记证照类型「{definition.name}」（代码 {definition.code}），可以颁发了"
            return flash(redirect(f"/console?type_code={definition.code}"), "ok", message,
                         link=f"/console/issue/{definition.code}", link_text=f"颁发{definition.name}")
        png = await run_in_threadpool(registry.preview_unsaved, definition, uploaded, "png")
    except DefinitionErrors as exc:
        return _page(request, staff, spec, error=str(exc), status=_status(exc))
    return _page(request, staff, spec, preview=base64.b64encode(png).decode())


@router.post("/preview", dependencies=[Depends(same_origin)])
async def live_preview(request: Request, staff: Staff, spec: Spec, images: Images = None) -> Response:
    """The page's script asks for this as the text changes: the face as PNG, or what is wrong."""
    _writer(staff)
    uploaded = await _images(images)
    try:
        definition = parse_type_spec(load_definition(spec.encode(), "定义"))
        png = await run_in_threadpool(_registry(request).preview_unsaved, definition, uploaded, "png")
    except DefinitionErrors as exc:
        return JSONResponse({"message": str(exc)}, status_code=_status(exc))
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


async def _images(images: list[UploadFile] | None) -> dict[str, bytes]:
    """Uploaded background images by file name (the name background.image refers to)."""
    return {Path(i.filename).name: await i.read() for i in images or [] if i.filename}


def _status(exc: Exception) -> int:
    return (classify(exc) or (422, ""))[0]


def _page(request: Request, staff: StaffMember, spec: str, status: int = 200, **extra: object) -> Response:
    return render(request, "console/new_type.html", status, staff=staff, spec=spec, **extra)
