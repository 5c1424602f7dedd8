"""Rate limits per client: per API key once the key has been accepted, else per address (so made-up
keys buy nothing), with a clear 429 and Retry-After. On PostgreSQL the workers share one count in
the database; on SQLite each process counts in memory. Counting that fails lets requests through."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from cert_authority.http.app import create_app
from cert_authority.http.middleware.rate_limit import LEASE_MAX, DatabaseCounter, Limits, RateLimit, counter_engine
from cert_authority.settings import Settings
from cert_authority.store.db import create_db_engine

MINUTE_START = 1_800_000_000.0  # a window boundary (a multiple of 60)
ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _app(settings: Settings, **limits: int) -> FastAPI:
    app = create_app(settings.model_copy(update={f"rate_limit_{name}": value for name, value in limits.items()}))
    app.state.request_counter.clock = lambda: MINUTE_START + 15
    return app


def test_a_key_over_its_limit_gets_429_with_retry_after(settings: Settings) -> None:
    app = _app(settings, per_key=3, per_address=100)
    key = app.state.api_keys.create("admin", None).key
    app.state.api_keys.authenticate(key)  # accepted once: from now on it is a client of its own
    client = TestClient(app)
    answers = [client.get("/api/v1/verify/x", headers={"Authorization": f"Bearer {key}"}) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert [answer.headers["RateLimit-Remaining"] for answer in answers] == ["2", "1", "0", "0"]
    refused = answers[-1]
    assert refused.headers["Retry-After"] == "45" and refused.headers["RateLimit-Limit"] == "3"
    assert refused.json() == {"error": "rate_limited", "message": "请求过于频繁：每分钟最多 3 次，请 45 秒后重试"}
    # The key counts whichever header carries it, and a second Authorization header changes nothing
    # (authentication reads the first).
    assert client.get("/api/v1/verify/x", headers={"X-API-Key": key}).status_code == 429
    twice = [("Authorization", f"Bearer {key}"), ("Authorization", "Bearer ecas_made_up")]
    assert client.get("/api/v1/verify/x", headers=twice).status_code == 429
    # Requests without a key count against the address, apart from the key.
    assert client.get("/api/v1/verify/x").status_code == 401
    # Health probes and the pages' static files are never limited.
    assert client.get("/healthz").status_code == 200 and client.get("/static/app.css").status_code == 200


def test_made_up_keys_and_session_cookies_count_against_the_address(settings: Settings) -> None:
    client = TestClient(_app(settings, per_address=3))
    for _ in range(2):
        made_up = {"Authorization": f"Bearer ecas_{uuid.uuid4().hex}"}
        assert client.get("/api/v1/verify/x", headers=made_up).status_code == 401
    client.cookies.set("ecas_staff", uuid.uuid4().hex)
    assert client.get("/staff/login").status_code == 200
    assert client.get("/api/v1/verify/x", headers={"X-API-Key": f"ecas_{uuid.uuid4().hex}"}).status_code == 429


def test_a_page_over_the_limit_is_an_error_page(settings: Settings) -> None:
    client = TestClient(_app(settings, per_address=1))
    assert client.get("/staff/login", headers={"Accept": "text/html"}).status_code == 200
    refused = client.get("/staff/login", headers={"Accept": "text/html"})
    assert refused.status_code == 429 and "请求过于频繁" in refused.text and "<html" in refused.text


@ON_POSTGRESQL
def test_on_postgresql_workers_share_one_count_and_a_new_minute_starts_afresh(settings: Settings) -> None:
    first, second = (TestClient(_app(settings, per_address=4)) for _ in range(2))  # two workers, one database
    statuses = [(first if n % 2 else second).get("/api/v1/verify/x").status_code for n in range(6)]
    assert statuses == [401] * 4 + [429] * 2
    first.app.state.request_counter.clock = lambda: MINUTE_START + 60  # type: ignore[attr-defined]
    assert first.get("/api/v1/verify/x").status_code == 401


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_on_sqlite_each_process_counts_in_memory(settings: Settings) -> None:
    first, second = (TestClient(_app(settings, per_address=2)) for _ in range(2))
    assert [first.get("/api/v1/verify/x").status_code for _ in range(3)] == [401, 401, 429]
    assert second.get("/api/v1/verify/x").status_code == 401
    with create_db_engine(settings.effective_database_url).connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM rate_window")).scalar_one() == 0


@ON_POSTGRESQL
def test_finished_windows_are_swept(settings: Settings) -> None:
    engine = create_db_engine(settings.effective_database_url)
    create_app(settings)  # the schema
    counter = DatabaseCounter(counter_engine(engine), clock=lambda: MINUTE_START)
    assert counter.hit("addr:a") == (1, 60) and counter.hit("addr:a") == (2, 60)
    counter.clock = lambda: MINUTE_START + 59.5
    assert counter.hit("addr:b") == (1, 0.5)
    counter.clock = lambda: MINUTE_START + 120  # the next sweep: windows before the last one go
    assert counter.hit("addr:a") == (1, 60)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT client, hits FROM rate_window")).all() == [("addr:a", 1)]


def test_when_counting_fails_requests_go_through(caplog: pytest.LogCaptureFixture) -> None:
    async def ok(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

    nowhere = create_db_engine("postgresql+psycopg://127.0.0.1:9/none")  # nothing listens on port 9
    limits = Limits(per_key=1, per_address=1)
    client = TestClient(RateLimit(ok, DatabaseCounter(counter_engine(nowhere)), limits, lambda key: False))
    assert [client.get("/api/v1/verify/x").text for _ in range(3)] == ["ok"] * 3
    # One attempt and one warning, then a pause: no slow connect on every request while it is away.
    assert caplog.text.count("rate limits not counted for 5 s (OperationalError)") == 1


def _counts(counter: DatabaseCounter, requests: list[tuple[str, float]], limit: int) -> list[int]:
    """The hits each (client, clock) request is counted as."""

    async def run() -> list[int]:
        hits = []
        for client, now in requests:
            counter.clock = lambda now=now: now  # type: ignore[misc]
            counted = await counter.count(client, limit)
            assert counted is not None
            hits.append(counted[0])
        return hits

    return asyncio.run(run())


def _stored_hits(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {client: hits for client, hits in connection.execute(text("SELECT client, hits FROM rate_window"))}


@ON_POSTGRESQL
def test_a_busy_client_is_counted_in_leases_and_an_occasional_one_hit_by_hit(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_db_engine(settings.effective_database_url)
    create_app(settings)  # the schema
    counter = DatabaseCounter(counter_engine(engine))
    trips: list[int] = []
    original = counter.hit

    def hit(client: str, n: int = 1) -> tuple[int, float]:
        trips.append(n)
        return original(client, n)

    monkeypatch.setattr(counter, "hit", hit)
    busy = [("addr:busy", MINUTE_START + 1)] * 200  # all in the same second
    assert _counts(counter, busy, limit=10**6) == list(range(1, 201))
    assert len(trips) < 20 and max(trips) == LEASE_MAX  # not a round trip per request
    assert 200 <= _stored_hits(engine)["addr:busy"] < 200 + LEASE_MAX
    trips.clear()
    occasional = [("addr:slow", MINUTE_START + 2 * n) for n in range(10)]
    assert _counts(counter, occasional, limit=10**6) == list(range(1, 11))
    assert trips == [1] * 10 and _stored_hits(engine)["addr:slow"] == 10


@ON_POSTGRESQL
def test_workers_with_leases_together_never_admit_more_than_the_limit(settings: Settings) -> None:
    engine = create_db_engine(settings.effective_database_url)
    create_app(settings)
    workers = [DatabaseCounter(counter_engine(engine)) for _ in range(3)]
    limit, admitted = 1000, 0
    for n in range(3000):  # bursts to each worker in turn, all within one second
        worker = workers[n // 7 % 3]
        admitted += _counts(worker, [("key:k", MINUTE_START + 5)], limit)[0] <= limit
    assert limit - 3 * LEASE_MAX <= admitted <= limit
    # Below the limit's last sixteenth leases shrink to one: a low limit is exact.
    tight = [DatabaseCounter(counter_engine(engine)) for _ in range(2)]
    verdicts = [_counts(tight[n % 2], [("key:t", MINUTE_START + 5)], 10)[0] <= 10 for n in range(30)]
    assert verdicts == [True] * 10 + [False] * 20
