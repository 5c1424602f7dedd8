"""The fast lane for show-token checks answers exactly as the FastAPI route does, takes only a known
key's well-formed check, and leaves every other request (and every refusal) to the route."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from cert_authority.http.app import create_app
from cert_authority.http.middleware import show_token_lane
from tests.conftest import FOOD_TYPE, USER_USCC, LicenceEnv, issue_example
from verification.show_token import make_token

URL = "/api/v1/show-tokens/verify"


def _token(env: LicenceEnv, identifier: str, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    text, _ = make_token(
        env.pki.service_signer(now), identifier, {"operator_name": "好味道"}, now, dt.timedelta(minutes=2)
    )
    return text


def _answers(env: LicenceEnv, identifier: str, now: dt.datetime) -> list[tuple[int, Any]]:
    """Status and JSON (without the time of the check) of a series of checks from one new key, of a
    token made at `now` (so that two series' answers name the same expiry)."""
    app = create_app(env.settings)
    key = {"Authorization": f"Bearer {app.state.api_keys.create('user', USER_USCC).key}"}
    token = _token(env, identifier, now)
    head, payload, signature = token.split(".")
    tampered = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    requests: list[dict[str, Any]] = [
        {"json": {"token": token}, "headers": key},  # first use
        {"json": {"token": token}, "headers": key},  # replayed
        {"json": {"token": tampered}, "headers": key},
        {"json": {"token": token, "extra": 1}, "headers": key},
        {"json": {"token": "x" * 2001}, "headers": key},
        {"json": {"token": "x" * 5000}, "headers": key},  # larger than the lane takes
        {"content": b'{"token": ', "headers": {**key, "Content-Type": "application/json"}},
        {"content": b'{"token": "x"}', "headers": {**key, "Content-Type": "text/plain"}},
        {"json": {"token": token}},  # no key
        {"json": {"token": token}, "headers": {"Authorization": "Bearer ecas_made_up"}},
    ]
    answers = []
    with TestClient(app) as client:
        for request in requests:
            response = client.post(URL, **request)
            assert "RateLimit-Limit" in response.headers  # counted either way
            body = response.json()
            body.pop("checked_at", None)
            answers.append((response.status_code, body))
    return answers


def test_the_lane_answers_as_the_route_does(shared_licence_env: LicenceEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    identifier = issue_example(shared_licence_env, FOOD_TYPE).licence.identifier
    routed: list[str] = []
    handle = APIRoute.handle

    async def counting_handle(route: APIRoute, scope: Any, receive: Any, send: Any) -> None:
        routed.append(scope["path"])
        await handle(route, scope, receive, send)

    monkeypatch.setattr(APIRoute, "handle", counting_handle)
    now = dt.datetime.now(dt.timezone.utc)
    through_lane = _answers(shared_licence_env, identifier, now)
    # The first check (the key not yet accepted by this worker) and the seven faulty ones took the route.
    assert len(routed) == 8
    monkeypatch.setattr(show_token_lane, "PATH", "/nowhere")
    routed.clear()
    through_route = _answers(shared_licence_env, identifier, now)
    assert len(routed) == 10
    assert through_lane == through_route
    statuses = [status for status, _ in through_lane]
    assert statuses == [200, 200, 200, 422, 422, 422, 422, 422, 401, 401]
    assert [body.get("reason") for _, body in through_lane[:3]] == ["ok", "replayed", "bad_signature"]


def test_a_database_failure_in_the_lane_is_a_clear_503(shared_licence_env: LicenceEnv) -> None:
    identifier = issue_example(shared_licence_env, FOOD_TYPE).licence.identifier
    app = create_app(shared_licence_env.settings)
    key = {"Authorization": f"Bearer {app.state.api_keys.create('user', USER_USCC).key}"}
    with TestClient(app) as client:
        assert client.post(URL, json={"token": _token(shared_licence_env, identifier)}, headers=key).status_code == 200

        def database_away(*_: object) -> None:
            raise OperationalError("SELECT", {}, Exception("connection refused"))

        app.state.show_tokens.verify = database_away
        answer = client.post(URL, json={"token": _token(shared_licence_env, identifier)}, headers=key)
    assert answer.status_code == 503
    assert answer.json() == {"error": "database_unavailable", "message": "数据库暂不可用，请稍后重试"}
