"""/api/v1/licences and /api/v1/seals over HTTP (FastAPI's TestClient): who may do what (401/403),
issuing with Idempotency-Key, masked and paged lists, downloads with the right media types, the
lifecycle, seal registration and revocation, body limits, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from fastapi.testclient import TestClient
from PIL import Image

from cert_authority.access.apikeys import ApiKeyService
from cert_authority.demo import demo_photo
from cert_authority.http.app import create_app
from tests.conftest import (
    FOOD_TYPE,
    ISSUER_USCC,
    OTHER_ISSUER_USCC,
    USER_USCC,
    VOCATIONAL_TYPE,
    LicenceEnv,
    example_data,
)

FOOD = example_data(FOOD_TYPE)
VOCATIONAL = example_data(VOCATIONAL_TYPE)


@dataclass
class Api:
    client: TestClient
    keys: dict[str, str]

    def __call__(self, method: str, path: str, who: str | None = "admin", **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if who is not None:
            headers["Authorization"] = f"Bearer {self.keys[who]}"
        return self.client.request(method, "/api/v1" + path, headers=headers, **kwargs)

    def issue(self, who: str = "issuer", **body: Any) -> dict[str, Any]:
        response = self("POST", "/licences", who, json={"type_code": FOOD_TYPE, "data": FOOD, **body})
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture(scope="module")
def api(shared_licence_env: LicenceEnv) -> Iterator[Api]:
    app = create_app(shared_licence_env.settings)
    api_keys: ApiKeyService = app.state.api_keys
    keys = {
        "admin": api_keys.create("admin", None).key,
        "issuer": api_keys.create("issuer", ISSUER_USCC).key,
        "other_issuer": api_keys.create("issuer", OTHER_ISSUER_USCC).key,
        "user": api_keys.create("user", USER_USCC).key,
        "auditor": api_keys.create("auditor", USER_USCC).key,
    }
    with TestClient(app) as client:
        yield Api(client, keys)


def error(response: httpx.Response, status: int, code: str, message: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == code, body
    assert message in body["message"], body["message"]


def sm3(data: bytes) -> str:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize().hex()


def test_who_may_do_what(api: Api) -> None:
    identifier = api.issue()["identifier"]
    [seal] = [s for s in api("GET", "/seals", "issuer").json() if s["status"] == "active"][:1]
    reads = [
        ("GET", "/licences", None),
        ("GET", f"/licences/{identifier}", None),
        ("GET", f"/licences/{identifier}/files/pdf", None),
        ("GET", f"/licences/{identifier}/history", None),
        ("GET", "/seals", None),
        ("GET", f"/seals/{seal['id']}", None),
    ]
    writes = [
        ("POST", "/licences", {"type_code": FOOD_TYPE, "data": FOOD, "issuer_uscc": ISSUER_USCC}),
        ("POST", f"/licences/{identifier}/change", {"data": {"premises": "别处"}}),
        ("POST", f"/licences/{identifier}/revoke", {"reason": "违法经营"}),
        ("POST", f"/licences/{identifier}/cancel", {"reason": "歇业"}),
        ("POST", "/seals", {"department_uscc": ISSUER_USCC, "name": "演示市市场监督管理局电子证照专用章",
                            "legal_representative": "陈明"}),
        ("POST", f"/seals/{seal['id']}/revoke", {"reason": "keyCompromise"}),
    ]
    for method, path, body in reads + writes:
        error(api(method, path, None, json=body), 401, "unauthenticated", "缺少 API 密钥")
        response = api(method, path, None, json=body, headers={"Authorization": "Bearer ecas_" + "x" * 43})
        error(response, 401, "unauthenticated")
        assert response.headers["WWW-Authenticate"] == "Bearer"
        error(api(method, path, "user", json=body), 403, "forbidden")
    for method, path, body in writes:
        error(api(method, path, "auditor", json=body), 403, "forbidden")
        error(api(method, path, "other_issuer", json=body), 403, "forbidden")
    for method, path, body in reads:
        assert api(method, path, "auditor", json=body).status_code == 200, path
        assert api(method, path, "issuer", json=body).status_code == 200, path
        if path in ("/licences", "/seals"):  # lists: an issuer sees its own department's
            continue
        error(api(method, path, "other_issuer", json=body), 403, "forbidden")
    # An issuer's list holds only its own department's licences.
    listed = api("GET", "/licences", "other_issuer", params={"page_size": 200}).json()
    assert {i["issuer_code"] for i in listed["items"]} <= {OTHER_ISSUER_USCC}
    error(api("GET", "/licences", "other_issuer", params={"issuer": ISSUER_USCC}), 403, "forbidden")
    # Nothing above changed the licence.
    assert api("GET", f"/licences/{identifier}", "issuer").json()["status"] == "issued"


def test_issue_with_idempotency_key(api: Api) -> None:
    body = {"type_code": FOOD_TYPE, "data": FOOD}
    first = api("POST", "/licences", "issuer", json=body, headers={"Idempotency-Key": "http-1"})
    assert first.status_code == 201, first.text
    identifier = first.json()["identifier"]
    assert first.headers["Location"] == f"/api/v1/licences/{identifier}"
    again = api("POST", "/licences", "issuer", json=body, headers={"Idempotency-Key": "http-1"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["identifier"] == identifier
    different = {"type_code": FOOD_TYPE, "data": {**FOOD, "premises": "别处"}}
    error(api("POST", "/licences", "issuer", json=different, headers={"Idempotency-Key": "http-1"}), 409,
          "idempotency_conflict", "http-1")
    # The admin issues on behalf of a department it names.
    error(api("POST", "/licences", "admin", json=body), 422, "invalid_request", "须指明颁证部门")
    on_behalf = api("POST", "/licences", "admin", json={**body, "issuer_uscc": ISSUER_USCC})
    assert on_behalf.status_code == 201 and on_behalf.json()["issuer"]["code"] == ISSUER_USCC
    assert on_behalf.json()["created_by"].startswith("apikey:")


def test_issue_problems_are_named(api: Api) -> None:
    response = api("POST", "/licences", "issuer", json={"type_code": FOOD_TYPE, "data": {**FOOD, "colour": "red"}})
    error(response, 422, "invalid_licence_data", "未知字段：colour")
    wrong_type = {"type_code": VOCATIONAL_TYPE, "data": VOCATIONAL}
    error(api("POST", "/licences", "issuer", json=wrong_type), 403, "forbidden", "不是证照类型")
    error(api("POST", "/licences", "issuer", json={"data": FOOD}), 422, "invalid_request", "type_code")
    bad_photo = {"type_code": VOCATIONAL_TYPE, "data": VOCATIONAL, "photo": "***"}
    error(api("POST", "/licences", "other_issuer", json=bad_photo), 422, "invalid_request", "photo：不是有效的 base64")
    extra = {"type_code": FOOD_TYPE, "data": FOOD, "colour": 1}
    error(api("POST", "/licences", "issuer", json=extra), 422, "invalid_request", "colour")
    huge = {"type_code": FOOD_TYPE, "data": FOOD, "photo": "A" * (5 * 1024 * 1024)}
    error(api("POST", "/licences", "issuer", json=huge), 413, "payload_too_large")


def test_photo_in_base64(api: Api) -> None:
    body = {"type_code": VOCATIONAL_TYPE, "data": VOCATIONAL, "photo": base64.b64encode(demo_photo(2)).decode()}
    response = api("POST", "/licences", "other_issuer", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["photo_sm3"] and response.json()["holder"]["code_type"] == "111"


def test_list_is_masked_and_paged(api: Api) -> None:
    for _ in range(3):
        api("POST", "/licences", "other_issuer", json={"type_code": VOCATIONAL_TYPE, "data": VOCATIONAL,
                                                        "photo": base64.b64encode(demo_photo(1)).decode()})
    params = {"holder_code": VOCATIONAL["id_number"], "page_size": 2}
    page = api("GET", "/licences", "auditor", params=params).json()
    assert page["total"] >= 3 and page["page"] == 1 and len(page["items"]) == 2
    assert {i["holder_code"] for i in page["items"]} == {"110105********002X"}
    assert VOCATIONAL["id_number"] not in str(page)
    second = api("GET", "/licences", "auditor", params={**params, "page": 2}).json()
    assert second["total"] == page["total"]
    assert not {i["identifier"] for i in second["items"]} & {i["identifier"] for i in page["items"]}
    by_key = api("GET", "/licences", "auditor", params={**params, "cursor": page["next_cursor"]}).json()
    assert by_key["items"] == second["items"] and page["prev_cursor"] is None
    back = api("GET", "/licences", "auditor", params={**params, "before": by_key["prev_cursor"]}).json()
    assert back["items"] == page["items"]
    error(api("GET", "/licences", "admin", params={"cursor": "x"}), 422, "invalid_request", "cursor")
    error(api("GET", "/licences", "admin", params={"cursor": page["next_cursor"], "page": 2}), 422, "invalid_request")
    only_vocational = api("GET", "/licences", "admin", params={"type_code": VOCATIONAL_TYPE, "status": "issued"})
    assert {i["type_code"] for i in only_vocational.json()["items"]} == {VOCATIONAL_TYPE}
    error(api("GET", "/licences", "admin", params={"page_size": 1000}), 422, "invalid_request", "page_size")
    error(api("GET", "/licences", "admin", params={"status": "lost"}), 422, "invalid_request", "status")


def test_downloads_have_media_types_and_names(api: Api) -> None:
    licence = api.issue()
    identifier = licence["identifier"]
    expected = {"pdf": "application/pdf", "ofd": "application/ofd", "png": "image/png"}
    for fmt, media_type in expected.items():
        response = api("GET", f"/licences/{identifier}/files/{fmt}", "issuer")
        assert response.status_code == 200
        assert response.headers["content-type"] == media_type
        assert response.headers["content-disposition"] == f'attachment; filename="{identifier}.{fmt}"'
        recorded = api("GET", f"/licences/{identifier}", "issuer").json()["files"]  # the PNG once rendered
        assert sm3(response.content) == recorded[fmt]
    assert licence["files"]["png"] is None
    assert api("GET", f"/licences/{identifier}/files/pdf", "issuer").content.startswith(b"%PDF-")
    with Image.open(io.BytesIO(api("GET", f"/licences/{identifier}/files/png", "issuer").content)) as image:
        assert image.format == "PNG"
    error(api("GET", f"/licences/{identifier}/files/doc", "issuer"), 422, "invalid_request")
    error(api("GET", f"/licences/{identifier[:-1]}Q/files/pdf", "issuer"), 422, "invalid_code", "校验位")


def test_lifecycle_over_http(api: Api) -> None:
    identifier = api.issue()["identifier"]
    changed = api("POST", f"/licences/{identifier}/change", "issuer",
                  json={"data": {"premises": "演示市鼓楼区五四路102号"}, "reason": "经营场所变更"})
    assert changed.status_code == 201, changed.text
    new_identifier = changed.json()["identifier"]
    assert new_identifier.split(".")[-2] == "002"
    error(api("POST", f"/licences/{new_identifier}/revoke", "issuer", json={}), 422, "invalid_request", "reason")
    revoked = api("POST", f"/licences/{new_identifier}/revoke", "issuer", json={"reason": "违法经营"})
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    error(api("POST", f"/licences/{new_identifier}/cancel", "issuer", json={"reason": "歇业"}), 409,
          "illegal_transition", "已吊销")
    error(api("POST", f"/licences/{identifier}/revoke", "issuer", json={"reason": "x"}), 409,
          "illegal_transition", "已变更")
    history = api("GET", f"/licences/{identifier}/history", "auditor").json()
    assert [(e["action"], e["status"]) for e in history] == [
        ("issue", "issued"), ("change", "superseded"), ("change", "issued"), ("revoke", "revoked")
    ]


def test_seals_over_http(api: Api) -> None:
    out = io.BytesIO()
    image = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    image.paste((220, 0, 0, 255), (50, 50, 250, 250))
    image.save(out, "PNG")
    body = {"department_uscc": ISSUER_USCC, "name": "演示市市场监督管理局电子证照专用章",
            "legal_representative": "陈明", "picture": base64.b64encode(out.getvalue()).decode()}
    error(api("POST", "/seals", "other_issuer", json=body), 403, "forbidden")
    created = api("POST", "/seals", "issuer", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "applied"  # an administrator files it
    seal = api("POST", f"/seals/{created.json()['id']}/approve", "admin").json()
    assert seal["status"] == "active" and seal["width_mm"] == 42 and seal["created_by"].startswith("apikey:")
    picture = api("GET", f"/seals/{seal['id']}/picture", "issuer")
    assert picture.headers["content-type"] == "image/png" and sm3(picture.content) == seal["picture_sm3"]
    assert api.issue()["seal"]["seal_id"] == seal["id"]  # the newest seal is used
    error(api("POST", "/seals", "issuer", json={**body, "picture": base64.b64encode(b"GIF89a").decode()}), 422,
          "invalid_seal_picture", "PNG")
    error(api("POST", "/seals", "issuer", json={**body, "seal_type": 3}), 422, "invalid_request", "seal_type")
    lost = api("POST", f"/seals/{seal['id']}/revoke", "issuer", json={"reason": "lost"})
    error(lost, 422, "invalid_request", "吊销原因")
    revoked = api("POST", f"/seals/{seal['id']}/revoke", "issuer", json={"reason": "superseded", "note": "换新章"})
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    error(api("POST", f"/seals/{seal['id']}/revoke", "issuer", json={}), 409, "seal_status_conflict", "已于")
    error(api("GET", "/seals/999999", "issuer"), 404, "not_found")
