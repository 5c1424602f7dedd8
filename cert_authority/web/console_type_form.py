"""The form view of licence-type registration: the face fields as rows (key, label, type, required,
example, and where the field sits on the licence: x, y, width, height in millimetres), the type's
code and name; everything else (holder, validity, background, fixed texts, QR code and seal
positions) is kept from the example it started from. Each change is merged into that definition on
the server, which answers with the YAML (the advanced view) and the preview picture, rendered by the
same registry code as the YAML editor; 登记 registers exactly that definition."""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import yaml
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import FormData, UploadFile

from cert_authority.access.staff import StaffMember
from cert_authority.actors import ensure_role
from cert_authority.demo import EXAMPLE_TYPES
from cert_authority.errors import InvalidRequestError
from cert_authority.registry.service import RegistryService
from cert_authority.registry.spec_input import load_definition, parse_type_spec
from cert_authority.web.common import flash, redirect, render, same_origin
from cert_authority.web.console_types import EXAMPLE_HEADER, DefinitionErrors, _status, own_example
from cert_authority.web.staff_pages import Staff
from templates.images import MAX_UPLOAD_BYTES
from templates.layout_spec import DESIGNS
from templates.spec import FieldType

router = APIRouter(prefix="/console/types", include_in_schema=False)
TYPE_NAMES = {
    "text": "单行文字", "long_text": "多行文字", "date": "日期", "date_range": "日期范围", "number": "数字",
    "enum": "选项", "photo": "照片",
}
MAX_ROWS = 40
BOX = ("x", "y", "w", "h")
DESIGN_NAMES = {"green": "绿色花纹", "blue": "蓝色花纹", "red": "红色花纹", "gold": "金色花纹"}
UPLOADED = "upload"  # the background choice meaning "the picture uploaded with the form"


@dataclass
class FieldRow:
    key: str = ""
    label: str = ""
    type: str = "text"
    required: bool = True
    example: str = ""
    values: str = ""  # an enum's choices, separated by 、
    x: str = ""
    y: str = ""
    w: str = ""
    h: str = ""


def _registry(request: Request) -> RegistryService:
    registry: RegistryService = request.app.state.registry
    return registry


def _writer(staff: StaffMember) -> StaffMember:
    ensure_role(staff.actor(), "admin", "issuer")
    return staff


@router.get("/form")
def form_page(request: Request, staff: Staff, example: str = "") -> Response:
    _writer(staff)
    examples = sorted(path.stem for path in EXAMPLE_TYPES.glob("*.yaml"))
    chosen = example if example in examples else (examples[0] if examples else "")
    text = (EXAMPLE_TYPES / f"{chosen}.yaml").read_text(encoding="utf-8") if chosen else ""
    taken = {t.code for t in _registry(request).list_types()}
    definition = yaml.safe_load(own_example(text, staff.department_uscc, taken)) or {}
    return _page(request, staff, definition, examples=examples, example=chosen)


@router.post("/form/preview", dependencies=[Depends(same_origin)])
async def form_preview(request: Request, staff: Staff) -> Response:
    """The page's script sends the form as it changes: the YAML and the face, or what is wrong."""
    _writer(staff)
    try:
        form = await _form(request)
        images = await background_image(form)
        definition = merged(form, images)
        text = as_yaml(definition)
        spec = parse_type_spec(load_definition(text.encode(), "定义"))
        png = await run_in_threadpool(_registry(request).preview_unsaved, spec, images, "png")
    except DefinitionErrors as exc:
        return JSONResponse({"message": str(exc)}, status_code=_status(exc))
    return JSONResponse({"yaml": text, "png": base64.b64encode(png).decode()}, headers={"Cache-Control": "no-store"})


@router.post("/form", dependencies=[Depends(same_origin)])
async def form_register(request: Request, staff: Staff) -> Response:
    _writer(staff)
    form = await _form(request)
    definition: dict[str, Any] = {}
    try:
        images = await background_image(form)
        definition = merged(form, images)
        spec = parse_type_spec(load_definition(as_yaml(definition).encode(), "定义"))
        await run_in_threadpool(_registry(request).register_type, spec, images, staff.actor())
    except DefinitionErrors as exc:
        return _page(request, staff, definition or _base(form), error=str(exc), status=_status(exc))
    message = f"已登记证照类型「{spec.name}」（代码 {spec.code}），可以颁发了"
    return flash(redirect(f"/console?type_code={spec.code}"), "ok", message,
                 link=f"/console/issue/{spec.code}", link_text=f"颁发{spec.name}")


def rows_of(definition: dict[str, Any]) -> list[FieldRow]:
    """The definition's face fields as form rows, with their boxes from the template."""
    boxes = {f.get("field"): f.get("box", {}) for f in (definition.get("template") or {}).get("fields", [])
             if isinstance(f, dict) and f.get("field")}
    photo = (definition.get("template") or {}).get("photo") or {}
    rows = []
    for field in definition.get("fields") or []:
        box = boxes.get(field.get("key")) or (photo.get("box", {}) if photo.get("field") == field.get("key") else {})
        rows.append(FieldRow(
            key=str(field.get("key", "")), label=str(field.get("label", "")), type=str(field.get("type", "text")),
            required=bool(field.get("required", True)), example=str(field.get("example", "") or ""),
            values="、".join(str(v) for v in field.get("values") or []),
            **{k: _number(box.get(k)) for k in BOX},
        ))
    return rows


async def _form(request: Request) -> FormData:
    """The form, a background picture up to the upload limit among it (starlette's default part
    limit is 1 MB; the body limit middleware caps the whole request)."""
    return await request.form(max_part_size=MAX_UPLOAD_BYTES + 1)


async def background_image(form: FormData) -> dict[str, bytes]:
    """The uploaded background by its file name, when the form chose one (the registry checks it:
    PNG or JPEG, size, proportions)."""
    upload = form.get("background_image")
    if form.get("background") != UPLOADED or not isinstance(upload, UploadFile) or not upload.filename:
        return {}
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidRequestError(f"底图文件过大，上限 {MAX_UPLOAD_BYTES // 1048576} MB")
    name = "".join(c for c in PurePath(upload.filename).name if c.isalnum() or c in "._-")[-100:] or "background"
    return {name: data}


def merged(form: FormData, images: dict[str, bytes] | None = None) -> dict[str, Any]:
    """The base definition with the form's code, name, background and field rows (and their boxes)
    put in."""
    definition = _base(form)
    definition["code"] = str(form.get("code") or "").strip()
    definition["name"] = str(form.get("name") or "").strip()
    choice = str(form.get("background") or "")
    if images:
        definition.setdefault("template", {})["background"] = {"image": next(iter(images))}
    elif choice in DESIGNS:
        definition.setdefault("template", {})["background"] = {"design": choice}
    elif choice == UPLOADED:
        raise InvalidRequestError("请选择底图文件（PNG 或 JPEG），或改用内置花纹")
    old_fields = {f.get("key"): f for f in definition.get("fields") or [] if isinstance(f, dict)}
    template = definition.setdefault("template", {})
    placed = {f.get("field"): f for f in template.get("fields") or [] if isinstance(f, dict) and f.get("field")}
    fields, layout = [], [f for f in template.get("fields") or [] if isinstance(f, dict) and not f.get("field")]
    keys = form.getlist("key")[:MAX_ROWS]
    if len(keys) == MAX_ROWS:
        raise InvalidRequestError(f"照面字段最多 {MAX_ROWS - 1} 个")
    column = {name: form.getlist(name) for name in ("label", "type", "example", "values", *BOX)}
    required = set(form.getlist("required"))
    for i, raw_key in enumerate(keys):
        key = str(raw_key).strip()
        if not key:
            continue  # an empty row: left out
        kind = _at(column["type"], i) or "text"
        if kind not in TYPE_NAMES:
            raise InvalidRequestError(f"第 {i + 1} 个字段的类型 {kind!r} 未知")
        field = {k: v for k, v in old_fields.get(key, {}).items() if k not in ("type", "values")}
        field |= {"key": key, "label": _at(column["label"], i).strip(), "type": kind,
                  "required": str(i) in required}
        example = _at(column["example"], i).strip()
        if kind == "photo":
            field.pop("example", None)
        elif example:
            field["example"] = example
        if kind == "enum":
            field["values"] = [v.strip() for v in _at(column["values"], i).replace(",", "、").split("、") if v.strip()]
        fields.append(field)
        box = {k: _float(_at(column[k], i), k, field["label"] or key) for k in BOX}
        if kind == "photo":
            template["photo"] = {**(template.get("photo") or {}), "field": key, "box": box}
        else:
            layout.append({**placed.get(key, {"label_width": 38, "font_size": 12}), "field": key, "box": box})
    definition["fields"] = fields
    template["fields"] = layout
    return definition


def as_yaml(definition: dict[str, Any]) -> str:
    return EXAMPLE_HEADER + yaml.safe_dump(definition, allow_unicode=True, sort_keys=False, width=200)


def _base(form: FormData) -> dict[str, Any]:
    """The definition the form started from (sent back with it), as a mapping."""
    raw = load_definition(str(form.get("base") or "{}").encode(), "定义")
    return copy.deepcopy(raw) if isinstance(raw, dict) else {}


def _at(values: list[Any], i: int) -> str:
    return str(values[i]) if i < len(values) else ""


def _number(value: Any) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, int | float) else str(value)


def _float(text: str, part: str, field: str) -> float:
    try:
        value = float(text)
    except ValueError:
        names = {"x": "左边距", "y": "上边距", "w": "宽", "h": "高"}
        raise InvalidRequestError(f"字段「{field}」的位置（{names[part]}）应为毫米数") from None
    return int(value) if value.is_integer() else value


def _page(
    request: Request, staff: StaffMember, definition: dict[str, Any], status: int = 200, **extra: Any
) -> Response:
    base = yaml.safe_dump(definition, allow_unicode=True, sort_keys=False, width=200)
    return render(
        request, "console/type_form.html", status, staff=staff, definition=definition, rows=rows_of(definition),
        base=base, yaml_text=as_yaml(definition), type_names=TYPE_NAMES, photo=FieldType.PHOTO.value,
        designs=DESIGN_NAMES, background=((definition.get("template") or {}).get("background") or {}), **extra,
    )
