"""Reading a definition (licence-type spec or template) from an API request: a JSON or YAML body,
or multipart/form-data with a `spec` part (YAML or JSON text) and image files named as the
template refers to them (`background.image`)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic.json_schema import models_json_schema
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from cert_authority.errors import InvalidRequestError, UnsupportedMediaTypeError
from cert_authority.registry.spec_input import load_definition
from cert_authority.sharing.matters import MatterSpec
from templates.layout_spec import TemplateSpec
from templates.spec import LicenceTypeSpec

SPEC_PART = "spec"
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
MAX_IMAGES = 8


def definition_schemas() -> dict[str, Any]:
    """JSON schemas of LicenceTypeSpec, TemplateSpec and MatterSpec for the OpenAPI components: the
    definition endpoints read their bodies themselves (JSON, YAML or multipart), so FastAPI cannot
    infer them."""
    _, top = models_json_schema(
        [(LicenceTypeSpec, "validation"), (TemplateSpec, "validation"), (MatterSpec, "validation")],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = top["$defs"]
    return schemas


def definition_body(schema_ref: str, what: str) -> dict[str, Any]:
    """The OpenAPI request body of a definition endpoint: JSON, or multipart with images."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": schema_ref}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": [SPEC_PART],
                        "properties": {
                            SPEC_PART: {"type": "string", "description": f"{what}（YAML 或 JSON 文本）"},
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "description": "底图等图片文件，文件名与 background.image 一致",
                            },
                        },
                    }
                },
            },
        }
    }


def text_definition_body(schema_ref: str, what: str) -> dict[str, Any]:
    """The OpenAPI request body of a definition without pictures: JSON, or the same as YAML text."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": schema_ref}},
                "application/yaml": {"schema": {"type": "string", "description": f"{what}（YAML 文本）"}},
            },
        }
    }


async def read_text_definition(request: Request) -> dict[str, Any]:
    """A definition sent as JSON or YAML (not yet validated)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and content_type not in YAML_TYPES:
        raise UnsupportedMediaTypeError("请求体应为 application/json 或 application/yaml")
    return load_definition(await request.body(), "请求体")


async def read_definition(request: Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The definition as a mapping (not yet validated) and the uploaded images by file name."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type in YAML_TYPES:
        return load_definition(await request.body(), "请求体"), {}
    if content_type != "multipart/form-data":
        raise UnsupportedMediaTypeError(
            "请求体应为 application/json（定义本身，底图用 design），"
            "或 multipart/form-data（spec 部分为 YAML/JSON 定义，另附底图文件）"
        )
    try:
        form = await request.form(max_files=MAX_IMAGES, max_fields=MAX_IMAGES + 1)
    except HTTPException as exc:  # starlette's multipart parser reports limits and syntax this way
        raise InvalidRequestError(f"multipart 请求无法解析：{exc.detail}") from None
    try:
        spec, images = await _parts(form)
    finally:
        await form.close()
    if spec is None:
        raise InvalidRequestError("multipart 请求缺少 spec 部分（YAML 或 JSON 定义）")
    return load_definition(spec, "spec"), images


async def _parts(form: FormData) -> tuple[bytes | None, dict[str, bytes]]:
    spec: bytes | None = None
    images: dict[str, bytes] = {}
    for name, value in form.multi_items():
        if name == SPEC_PART:
            if spec is not None:
                raise InvalidRequestError("multipart 请求中 spec 部分只能有一个")
            spec = await value.read() if isinstance(value, UploadFile) else value.encode()
        elif isinstance(value, UploadFile):
            filename = value.filename or ""
            if not filename:
                raise InvalidRequestError(f"文件部分 {name} 缺少文件名（文件名应与 background.image 一致）")
            if filename in images:
                raise InvalidRequestError(f"文件 {filename} 上传了不止一次")
            images[filename] = await value.read()
        else:
            raise InvalidRequestError(f"未知的表单字段 {name}：只接受 spec 和图片文件")
    return spec, images


def binary_body(*media_types: str) -> dict[str, Any]:
    """OpenAPI for an endpoint whose request body is a file itself (a PDF or OFD to seal or verify)."""
    content = {media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in media_types}
    return {"requestBody": {"required": True, "content": content}}
