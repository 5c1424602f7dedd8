"""/api/v1 over HTTP (FastAPI's TestClient): API keys and roles, departments, licence types as JSON
and as multipart uploads, template versions, previews, body limits, error shape."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from PIL import Image

from cert_authority.access.apikeys import ApiKeyService
from cert_authority.http.app import create_app
from cert_authority.registry.service import RegistryService
from cert_authority.settings import Settings
from tests.conftest import (
    AUTHORITY_USCC,
    ISSUER_USCC,
    OTHER_ISSUER_USCC,
    TYPE_CODE,
    USER_USCC,
    add_department,
    template_data,
    type_spec_data,
)

SECOND_CODE = AUTHORITY_USCC + "002"


@dataclass
class Api:
    client: TestClient
    keys: dict[str, str]
    api_keys: ApiKeyService
    registry: RegistryService

    def __call__(self, method: str, path: str, who: str | None = "admin", **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if who is not None:
            headers["Authorization"] = f"Bearer {self.keys[who]}"
        return self.client.request(method, "/api/v1" + path, headers=headers, **kwargs)


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    app = create_app(settings)
    registry: RegistryService = app.state.registry
    api_keys: ApiKeyService = app.state.api_keys
    add_department(registry, ISSUER_USCC, ("issuer", "user"))
    add_department(registry, OTHER_ISSUER_USCC, name="测试市某区市场监督管理局")
    add_department(registry, USER_USCC, ("user",), name="测试市人社局")
    keys = {
        "admin": api_keys.create("admin", None).key,
        "issuer": api_keys.create("issuer", ISSUER_USCC).key,
        "other_issuer": api_keys.create("issuer", OTHER_ISSUER_USCC).key,
        "user": api_keys.create("user", USER_USCC).key,
        "auditor": api_keys.create("auditor", USER_USCC).key,
    }
    with TestClient(app) as client:
        yield Api(client, keys, api_keys, registry)


def error(response: httpx.Response, status: int, code: str, message: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == code, body
    assert message in body["message"], body["message"]


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (240, 250, 240)).save(out, "PNG")
    return out.getvalue()


# --- authentication and roles ------------------------------------------------------------------
def test_every_api_route_needs_a_valid_unrevoked_key(api: Api) -> None:
    paths = {p: ops for p, ops in api.client.get("/openapi.json").json()["paths"].items() if p.startswith("/api/v1")}
    assert sum(len(ops) for ops in paths.values()) >= 12
    for template, operations in paths.items():
        if template in ("/api/v1/holder/login", "/api/v1/shared/{token}"):  # a login; a link that is its own key
            continue
        if template.startswith("/api/v1/exchange/"):  # a city's signed batch, no API key (test_province.py)
            continue
        # Holders' own routes take a holder's session instead of a department's API key.
        expected = "请先登录" if template.startswith("/api/v1/holder/") else "缺少 API 密钥"
        for method in operations:
            path = template.replace("{uscc}", ISSUER_USCC).replace("{code}", TYPE_CODE).replace("{version}", "1")
            response = api.client.request(method, path)
            error(response, 401, "unauthenticated", expected)
            assert response.headers["WWW-Authenticate"] == "Bearer"

    error(api("GET", "/departments", headers={"Authorization": "Bearer ecas_" + "A" * 43}, who=None), 401,
          "unauthenticated", "API 密钥无效")
    error(api("GET", "/departments", headers={"Authorization": "Basic dXNlcjpwYXNz"}, who=None), 401, "unauthenticated")
    # X-API-Key works as well as a bearer token.
    assert api("GET", "/departments", who=None, headers={"X-API-Key": api.keys["user"]}).status_code == 200

    prefix = api.keys["user"][:12]
    api.api_keys.revoke(prefix)
    response = api("GET", "/departments", who="user")
    error(response, 401, "unauthenticated", f"API 密钥 {prefix} 已吊销")
    assert api.keys["user"] not in response.text


def test_who_may_register_a_type(api: Api) -> None:
    spec = type_spec_data()
    error(api("POST", "/licence-types", who="user", json=spec), 403, "forbidden", "仅限管理员、颁证部门")
    error(api("POST", "/licence-types", who="auditor", json=spec), 403, "forbidden")
    error(api("POST", "/licence-types", who="other_issuer", json=spec), 403, "forbidden", "不在该证照类型的颁发部门")
    response = api("POST", "/licence-types", who="issuer", json=spec)
    assert response.status_code == 201, response.text
    assert response.json()["created_by"].startswith("apikey:")
    assert api("POST", "/licence-types", who="admin", json=type_spec_data(code=SECOND_CODE)).status_code == 201

    blue = template_data(background={"design": "blue"})
    error(api("POST", f"/licence-types/{TYPE_CODE}/templates", who="other_issuer", json=blue), 403, "forbidden")
    error(api("POST", f"/licence-types/{TYPE_CODE}/templates", who="user", json=blue), 403, "forbidden")
    assert api("POST", f"/licence-types/{TYPE_CODE}/templates", who="issuer", json=blue).status_code == 201
    # Anyone with a key may read.
    for who in ("user", "auditor", "other_issuer"):
        assert len(api("GET", "/licence-types", who=who).json()) == 2


# --- departments -------------------------------------------------------------------------------
def test_departments_over_http(api: Api) -> None:
    body = {"name": "测试市交通运输局", "uscc": "11350100MB00000403", "area_code": "350100", "level": "city",
            "roles": ["user", "issuer"], "contact": "张三 0591-12345678"}
    error(api("POST", "/departments", who="issuer", json=body), 403, "forbidden", "仅限管理员")
    response = api("POST", "/departments", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["roles"] == ["issuer", "user"]
    error(api("POST", "/departments", json=body), 409, "conflict", "已登记")
    error(api("POST", "/departments", json={**body, "uscc": "11350100MB00000404"}), 422, "invalid_request",
          "uscc：统一社会信用代码校验位错误")
    error(api("POST", "/departments", json={**body, "fax": "1"}), 422, "invalid_request", "fax")

    listed = api("GET", "/departments", who="user").json()
    assert [d["uscc"] for d in listed] == [ISSUER_USCC, OTHER_ISSUER_USCC, USER_USCC, body["uscc"]]
    assert api("GET", f"/departments/{USER_USCC}", who="user").json()["name"] == "测试市人社局"
    error(api("GET", "/departments/11350100MB00000500"), 404, "not_found")


# --- licence types -----------------------------------------------------------------------------
def test_register_list_show_and_duplicates(api: Api) -> None:
    response = api("POST", "/licence-types", json=type_spec_data())
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["code"] == TYPE_CODE and created["latest_version"] == 1
    assert [v["version"] for v in created["versions"]] == [1]

    assert [t["code"] for t in api("GET", "/licence-types", who="user").json()] == [TYPE_CODE]
    assert api("GET", f"/licence-types/{TYPE_CODE}", who="user").json() == created
    error(api("GET", f"/licence-types/{SECOND_CODE}"), 404, "not_found", "尚未登记")
    before = api("GET", f"/licence-types/{TYPE_CODE}").json()
    error(api("POST", "/licence-types", json=type_spec_data(name="重复登记")), 409, "conflict",
          f"证照类型代码 {TYPE_CODE} 已登记")
    assert api("GET", f"/licence-types/{TYPE_CODE}").json() == before


@pytest.mark.parametrize(
    ("change", "status", "code", "message"),
    [
        ({"colour": "red", "size": 1}, 422, "invalid_spec", "colour：未知的键；size：未知的键"),
        ({"issuers": [AUTHORITY_USCC]}, 422, "invalid_request", f"issuers 中的部门尚未登记：{AUTHORITY_USCC}"),
        ({"issuers": [USER_USCC]}, 422, "invalid_request", "没有颁证（issuer）角色"),
        ({"code": "11100000MA0000001R001"}, 422, "invalid_spec", "校验位错误"),
        ({"template": template_data(background={"image": "bg.png"})}, 422, "invalid_spec", "bg.png 没有随模板上传"),
        (
            {"template": template_data(texts=[{"text": "许可证😀", "box": {"x": 60, "y": 15, "w": 177, "h": 16}}])},
            422, "unsupported_character", "U+1F600",
        ),
    ],
)
def test_bad_registrations_are_422_and_store_nothing(
    api: Api, change: dict[str, Any], status: int, code: str, message: str
) -> None:
    error(api("POST", "/licence-types", json={**type_spec_data(), **change}), status, code, message)
    assert api("GET", "/licence-types").json() == []


def test_register_with_an_uploaded_background_as_multipart(api: Api) -> None:
    spec = yaml.safe_dump(type_spec_data(template=template_data(background={"image": "bg.png"})), allow_unicode=True)
    files = [
        ("spec", ("type.yaml", spec.encode(), "application/yaml")),
        ("files", ("bg.png", png(1754, 1240), "image/png")),
    ]
    response = api("POST", "/licence-types", files=files)
    assert response.status_code == 201, response.text
    digest = response.json()["versions"][0]["background_sm3"]
    assert api.registry.filestore.get(digest).startswith(b"\xff\xd8")

    # The spec may also be a plain form field; extra files and fields are refused by name.
    template = json.dumps(template_data(background={"image": "bg2.png"}, note="新底图"))
    path = f"/licence-types/{TYPE_CODE}/templates"
    error(api("POST", path, data={"spec": template}, files={"f": ("other.png", png(10, 10), "image/png")}),
          422, "invalid_request", "上传了模板没有引用的文件：other.png")
    error(api("POST", path, data={"spec": template, "comment": "x"}, files={"f": ("bg2.png", png(10, 10))}),
          422, "invalid_request", "未知的表单字段 comment")
    error(api("POST", path, files={"f": ("bg2.png", png(10, 10))}), 422, "invalid_request", "缺少 spec 部分")
    error(api("POST", path, data={"spec": template}, files={"f": ("bg2.png", b"not an image")}),
          422, "invalid_image", "bg2.png")
    response = api("POST", path, data={"spec": template}, files={"f": ("bg2.png", png(1754, 1240))})
    assert response.status_code == 201, response.text
    assert response.json()["version"] == 2 and response.json()["note"] == "新底图"


def test_template_versions_over_http(api: Api) -> None:
    assert api("POST", "/licence-types", json=type_spec_data()).status_code == 201
    v1 = api("GET", f"/licence-types/{TYPE_CODE}/templates/1").json()
    response = api("POST", f"/licence-types/{TYPE_CODE}/templates", json=template_data(background={"design": "gold"}))
    assert response.status_code == 201 and response.json()["version"] == 2
    assert api("GET", f"/licence-types/{TYPE_CODE}/templates/1").json() == v1
    assert [v["version"] for v in api("GET", f"/licence-types/{TYPE_CODE}/templates").json()] == [1, 2]
    error(api("POST", f"/licence-types/{TYPE_CODE}/templates", json={**template_data(), "paper": "A4"}),
          422, "invalid_spec", "paper：未知的键")
    error(api("GET", f"/licence-types/{TYPE_CODE}/templates/3"), 404, "not_found")


# --- previews ----------------------------------------------------------------------------------
MAGIC = {
    "png": (b"\x89PNG\r\n\x1a\n", "image/png"),
    "pdf": (b"%PDF-", "application/pdf"),
    "ofd": (b"PK\x03\x04", "application/ofd"),
}


@pytest.mark.parametrize("fmt", sorted(MAGIC))
def test_previews_over_http(api: Api, fmt: str) -> None:
    magic, media_type = MAGIC[fmt]
    assert api("POST", "/licence-types", json=type_spec_data()).status_code == 201
    responses = [
        api("GET", f"/licence-types/{TYPE_CODE}/templates/1/preview", who="user", params={"format": fmt}),
        api("POST", "/templates/preview", who="user", params={"format": fmt}, json=type_spec_data(code=SECOND_CODE)),
        api("POST", f"/licence-types/{TYPE_CODE}/templates/preview", params={"format": fmt, "worst_case": "true"},
            json=template_data(background={"design": "red"})),
    ]
    for response in responses:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(media_type)
        assert response.content.startswith(magic)
    assert [t["code"] for t in api("GET", "/licence-types").json()] == [TYPE_CODE]  # previews store nothing


def test_preview_errors(api: Api) -> None:
    assert api("POST", "/licence-types", json=type_spec_data()).status_code == 201
    error(api("GET", f"/licence-types/{TYPE_CODE}/templates/1/preview", params={"format": "tiff"}),
          422, "invalid_request", "format")
    error(api("GET", f"/licence-types/{TYPE_CODE}/templates/9/preview"), 404, "not_found")
    long_field = type_spec_data(code=SECOND_CODE)
    long_field["fields"][0]["max_length"] = 400  # type: ignore[index]
    error(api("POST", "/templates/preview", params={"worst_case": "true"}, json=long_field), 422, "layout_overflow")


# --- request bodies ----------------------------------------------------------------------------
def test_bodies_are_limited_and_typed(api: Api) -> None:
    big_json = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    headers = {"content-type": "application/json"}
    error(api("POST", "/licence-types", content=big_json, headers=headers), 413, "payload_too_large", "上限 1 MB")
    # Without Content-Length (chunked), the body is counted as it arrives.
    chunks = iter([b"{" + b" " * (600 * 1024)] * 2)
    error(api("POST", "/licence-types", content=chunks, headers=headers), 413, "payload_too_large")
    files = {"spec": ("t.json", b"{}"), "bg": ("bg.png", b"\0" * (10 * 1024 * 1024))}
    error(api("POST", "/licence-types", files=files), 413, "payload_too_large", "上限 10 MB")
    error(api("POST", "/licence-types", content=b"code: x", headers={"content-type": "text/plain"}),
          415, "unsupported_media_type", "multipart/form-data")
    error(api("POST", "/licence-types", content=b"{", headers=headers), 422, "invalid_spec", "JSON 格式错误")
    # YAML bodies are read as YAML.
    yaml_body = yaml.safe_dump(type_spec_data(), allow_unicode=True).encode()
    response = api("POST", "/licence-types", content=yaml_body, headers={"content-type": "application/yaml"})
    assert response.status_code == 201, response.text


def test_openapi_documents_the_registry(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    for name in ("LicenceTypeSpec", "TemplateSpec", "FaceField", "DepartmentCreate", "DepartmentPublic",
                 "LicenceTypePublic", "TemplateVersionPublic"):
        assert name in schemas, name
    body = document["paths"]["/api/v1/licence-types"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/LicenceTypeSpec"}
    assert "multipart/form-data" in body
    assert {"HTTPBearer", "APIKeyHeader"} <= set(document["components"]["securitySchemes"])
    assert document["paths"]["/api/v1/departments"]["get"]["summary"]
    assert document["paths"]["/api/v1/departments"]["get"]["description"] == "List the registered departments."
