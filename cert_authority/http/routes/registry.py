"""/api/v1: departments, licence types and their template versions, previews.

Every route needs an API key (see `cert_authority.http.auth`). Definitions come as JSON, YAML, or
multipart/form-data with a `spec` part and image files; see `cert_authority.http.uploads`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from cert_authority.actors import Actor
from cert_authority.boundary import ErrorPublic, RowId
from cert_authority.http.auth import current_actor, require
from cert_authority.http.uploads import definition_body, read_definition
from cert_authority.registry.schemas import (
    DepartmentCreate,
    DepartmentPublic,
    LicenceTypeDetail,
    LicenceTypePublic,
    TemplateVersionPublic,
)
from cert_authority.registry.service import RegistryService
from cert_authority.registry.spec_input import parse_template, parse_type_spec
from templates.render import MEDIA_TYPES

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorPublic, "description": text}
    for status, text in (
        (401, "缺少、无效或已吊销的 API 密钥"),
        (403, "角色或部门无权执行此操作"),
        (404, "部门、证照类型或模板版本不存在"),
        (409, "已登记"),
        (413, "请求体过大"),
        (422, "定义、图片或版式有误（message 逐条列出）"),
    )
}
router = APIRouter(prefix="/api/v1", tags=["registry"], dependencies=[Depends(current_actor)], responses=ERRORS)

Caller = Annotated[Actor, Depends(current_actor)]
Admin = Annotated[Actor, Depends(require("admin"))]
Format = Annotated[Literal["png", "pdf", "ofd"], Query(alias="format", description="输出格式")]
WorstCase = Annotated[bool, Query(description="用字段允许的最长值预览（检查是否放得下）")]
TYPE_BODY = definition_body("#/components/schemas/LicenceTypeSpec", "证照类型定义（含 template）")
TEMPLATE_BODY = definition_body("#/components/schemas/TemplateSpec", "模板定义")


def _registry(request: Request) -> RegistryService:
    registry: RegistryService = request.app.state.registry
    return registry


def _file(data: bytes, fmt: str, name: str) -> Response:
    disposition = f'inline; filename="{name}.{fmt}"'
    return Response(data, media_type=MEDIA_TYPES[fmt], headers={"Content-Disposition": disposition})


# --- departments -------------------------------------------------------------------------------
@router.post("/departments", status_code=201)
def create_department(body: DepartmentCreate, request: Request, _admin: Admin) -> DepartmentPublic:
    """Register a department (admin only)."""
    return _registry(request).create_department(body)


@router.get("/departments")
def list_departments(request: Request) -> list[DepartmentPublic]:
    """List the registered departments."""
    return _registry(request).list_departments()


@router.get("/departments/{uscc}")
def get_department(uscc: str, request: Request) -> DepartmentPublic:
    """One department, by its unified social credit code."""
    return _registry(request).get_department_by_uscc(uscc)


# --- licence types -----------------------------------------------------------------------------
@router.post("/licence-types", status_code=201, openapi_extra=TYPE_BODY)
async def register_type(request: Request, actor: Caller) -> LicenceTypeDetail:
    """Register a licence type with its first template (JSON, YAML, or multipart with images)."""
    data, images = await read_definition(request)
    spec = parse_type_spec(data)
    return await run_in_threadpool(_registry(request).register_type, spec, images, actor)


@router.get("/licence-types")
def list_types(request: Request) -> list[LicenceTypePublic]:
    """List the registered licence types."""
    return _registry(request).list_types()


@router.get("/licence-types/{code}")
def get_type(code: str, request: Request) -> LicenceTypeDetail:
    """One licence type with all its template versions."""
    return _registry(request).get_type(code)


@router.get("/licence-types/{code}/templates")
def list_templates(code: str, request: Request) -> list[TemplateVersionPublic]:
    """The template versions of a licence type, oldest first."""
    return _registry(request).list_template_versions(code)


@router.post("/licence-types/{code}/templates", status_code=201, openapi_extra=TEMPLATE_BODY)
async def add_template(code: str, request: Request, actor: Caller) -> TemplateVersionPublic:
    """Add a new template version to a licence type (earlier versions never change)."""
    data, images = await read_definition(request)
    template = parse_template(data)
    registry = _registry(request)
    version = await run_in_threadpool(registry.add_template_version, code, template, images, actor)
    return registry.get_template(code, version).public


@router.get("/licence-types/{code}/templates/{version}")
def get_template(code: str, version: RowId, request: Request) -> TemplateVersionPublic:
    """One template version."""
    return _registry(request).get_template(code, version).public


@router.get("/licence-types/{code}/templates/{version}/preview", response_class=Response)
def preview_template(
    code: str, version: RowId, request: Request, fmt: Format = "png", worst_case: WorstCase = False
) -> Response:
    """A stored template version rendered with sample data, as PNG, PDF or OFD."""
    return _file(_registry(request).preview(code, version, fmt, worst_case=worst_case), fmt, f"{code}-v{version}")


@router.post("/licence-types/{code}/templates/preview", response_class=Response, openapi_extra=TEMPLATE_BODY)
async def preview_new_template(
    code: str, request: Request, fmt: Format = "png", worst_case: WorstCase = False
) -> Response:
    """Render a template for a registered type without storing it (live preview)."""
    data, images = await read_definition(request)
    template = parse_template(data)
    output = await run_in_threadpool(
        _registry(request).preview_unsaved, (code, template), images, fmt, worst_case=worst_case
    )
    return _file(output, fmt, f"{code}-preview")


@router.post("/templates/preview", response_class=Response, openapi_extra=TYPE_BODY)
async def preview_type(request: Request, fmt: Format = "png", worst_case: WorstCase = False) -> Response:
    """Render an unsaved licence-type spec with its template (live preview; nothing is stored)."""
    data, images = await read_definition(request)
    spec = parse_type_spec(data)
    output = await run_in_threadpool(_registry(request).preview_unsaved, spec, images, fmt, worst_case=worst_case)
    return _file(output, fmt, f"{spec.code}-preview")
