"""Requests that fail FastAPI's validation are answered in the user's language (found trying the
service as a user: "Field required", "Input should be a valid integer")."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cert_authority.http.app import create_app
from tests.cert_authority.web.web_pages import PASSWORD, staff_client
from tests.conftest import USER_USCC, LicenceEnv


def test_validation_errors_are_in_chinese(licence_env: LicenceEnv) -> None:
    app = create_app(licence_env.settings)
    user = {"Authorization": f"Bearer {app.state.api_keys.create('user', USER_USCC).key}"}
    with TestClient(app) as client:
        missing = client.post("/api/v1/holder/login", json={})
        assert missing.status_code == 422
        assert "holder_code：缺少必填项" in missing.json()["message"], missing.text
        not_a_number = client.get("/api/v1/cases/abc", headers=user)
        assert not_a_number.status_code == 422 and "应为整数" in not_a_number.json()["message"], not_a_number.text
    app.state.staff.create("counter", "李娜", "user", USER_USCC, PASSWORD)
    page = staff_client(app, "counter").get("/counter/cases/abc")  # a page: the error page, also in Chinese
    assert page.status_code == 422 and "应为整数" in page.text
    assert "Input should" not in page.text
