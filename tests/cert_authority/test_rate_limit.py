"""Rate limits per client: counted in the database so that workers share one count, per credential
(API key, session) or else per address, with a clear 429 and Retry-After; counting that fails lets
the request through rather than refusing everyone."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from cert_authority.app import create_app
from cert_authority.db import create_db_engine
from cert_authority.rate_limit import Limits, RateLimit, RequestCounter, counter_engine
from cert_authority.settings import Settings

MINUTE_START = 1_800_000_000.0  # a window boundary (a multiple of 60)


def _app(settings: Settings, **limits: int) -> FastAPI:
    app = create_app(settings.model_copy(update={f"rate_limit_{name}": value for name, value in limits.items()}))
    app.state.request_counter.clock = lambda: MINUTE_START + 15
    return app


def test_over_the_limit_is_429_with_retry_after_and_the_other_clients_go_on(settings: Settings) -> None:
    client = TestClient(_app(settings, per_credential=3, per_address=2))
    keyed = {"Authorization": "Bearer ecas_not_a_real_key"}
    answers = [client.get("/api/v1/verify/x", headers=keyed) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [401, 401, 401, 429]
    assert [answer.headers["RateLimit-Remaining"] for answer in answers] == ["2", "1", "0", "0"]
    refused = answers[-1]
    assert refused.headers["Retry-After"] == "45" and refused.headers["RateLimit-Limit"] == "3"
    assert refused.json() == {"error": "rate_limited", "message": "请求过于频繁：每分钟最多 3 次，请 45 秒后重试"}
    # Another key, and requests without one (counted by address), have counts of their own.
    assert client.get("/api/v1/verify/x", headers={"X-API-Key": "ecas_other"}).status_code == 401
    assert [client.get("/api/v1/verify/x").status_code for _ in range(3)] == [401, 401, 429]
    # Health probes and the pages' static files are never limited.
    assert client.get("/healthz").status_code == 200 and client.get("/static/app.css").status_code == 200


def test_a_page_over_the_limit_is_an_error_page(settings: Settings) -> None:
    client = TestClient(_app(settings, per_address=1))
    assert client.get("/staff/login", headers={"Accept": "text/html"}).status_code == 200
    refused = client.get("/staff/login", headers={"Accept": "text/html"})
    assert refused.status_code == 429 and "请求过于频繁" in refused.text and "<html" in refused.text


def test_a_session_cookie_is_its_own_client(settings: Settings) -> None:
    client = TestClient(_app(settings, per_address=1, per_credential=5))
    assert client.get("/staff/login").status_code == 200
    assert client.get("/staff/login").status_code == 429
    client.cookies.set("ecas_staff", "some-session")
    assert client.get("/staff/login").status_code == 200


def test_workers_share_one_count_and_a_new_minute_starts_afresh(settings: Settings) -> None:
    first, second = (TestClient(_app(settings, per_address=4)) for _ in range(2))  # two workers, one database
    statuses = [(first if n % 2 else second).get("/api/v1/verify/x").status_code for n in range(6)]
    assert statuses == [401] * 4 + [429] * 2
    first.app.state.request_counter.clock = lambda: MINUTE_START + 60  # type: ignore[attr-defined]
    assert first.get("/api/v1/verify/x").status_code == 401


def test_finished_windows_are_swept(settings: Settings) -> None:
    engine = create_db_engine(settings.effective_database_url)
    create_app(settings)  # the schema
    counter = RequestCounter(counter_engine(engine), clock=lambda: MINUTE_START)
    assert counter.hit("addr:a") == (1, 60) and counter.hit("addr:a") == (2, 60)
    counter.clock = lambda: MINUTE_START + 59.5
    assert counter.hit("addr:b") == (1, 0.5)
    counter.clock = lambda: MINUTE_START + 120  # the next sweep: windows before the last one go
    assert counter.hit("addr:a") == (1, 60)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT client, hits FROM rate_window")).all() == [("addr:a", 1)]


def test_when_counting_fails_the_request_goes_through(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def ok(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

    nowhere = create_db_engine("postgresql+psycopg://127.0.0.1:9/none")  # nothing listens on port 9
    app = RateLimit(ok, RequestCounter(counter_engine(nowhere)), Limits(per_credential=1, per_address=1))
    client = TestClient(app)  # type: ignore[arg-type]
    assert [client.get("/api/v1/verify/x").text for _ in range(2)] == ["ok", "ok"]
    assert "rate limit not counted (OperationalError)" in caplog.text
