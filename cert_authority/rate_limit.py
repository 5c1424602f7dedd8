"""Per-client rate limits, one limit however many workers: every request counts against its client
for the current minute in the database (`rate_window`, one upsert), so N workers enforce the limit
once, not N times. The client is the credential the request carries (an API key, a holder's or a
staff member's session), else its address (behind the reverse proxy: X-Forwarded-For, which uvicorn
trusts from 127.0.0.1). Over the limit: 429 with Retry-After, before the body is read.

Counting fails open: if the database cannot count, the request goes on (it needs the database
itself, and answers 503 if it is really away); a limiter must not turn a hiccup into an outage."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request

from cert_authority.web.common import HOLDER_COOKIE, STAFF_COOKIE, is_page, page_error

log = logging.getLogger("ecas.rate_limit")
WINDOW_SECONDS = 60
UNLIMITED_PATHS = ("/healthz", "/static/")  # load balancers' probes; the pages' own scripts and styles
SESSION_COOKIES = (HOLDER_COOKIE, STAFF_COOKIE)
Scope = dict[str, Any]


@dataclass(frozen=True)
class Limits:
    """Requests per minute (0: no limit)."""

    per_credential: int
    per_address: int


def counter_engine(engine: Engine) -> Engine:
    """The engine to count on. PostgreSQL: a small pool of its own whose commits do not wait for the
    WAL flush (a crash forgets a minute of counts at most) and which gives up connecting after 2 s."""
    if engine.dialect.name != "postgresql":
        return engine
    counting = create_engine(engine.url, pool_size=5, max_overflow=5, connect_args={"connect_timeout": 2})
    event.listen(counting, "connect", _no_flush_wait)
    return counting


def _no_flush_wait(dbapi_connection: Any, _record: object) -> None:
    dbapi_connection.execute("SET synchronous_commit = off")
    dbapi_connection.commit()


class RequestCounter:
    """Hits per client in the current window, counted in the database."""

    # One prepared statement, one round trip in autocommit (it is on every request's path).
    _COUNT = text(
        "INSERT INTO rate_window (client, window_start, hits) VALUES (:client, :start, 1) "
        "ON CONFLICT (client, window_start) DO UPDATE SET hits = rate_window.hits + 1 RETURNING hits"
    )
    _SWEEP = text("DELETE FROM rate_window WHERE window_start < :before")

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.clock = clock
        self._next_sweep = 0.0

    def hit(self, client: str) -> tuple[int, float]:
        """Count one request; give the client's hits so far in this window and seconds to its end."""
        now = self.clock()
        start = int(now // WINDOW_SECONDS * WINDOW_SECONDS)
        with self.engine.connect() as connection:
            hits = int(connection.execute(self._COUNT, {"client": client, "start": start}).scalar_one())
            if now >= self._next_sweep:  # once a window per worker: forget finished windows
                self._next_sweep = now + WINDOW_SECONDS
                connection.execute(self._SWEEP, {"before": start - WINDOW_SECONDS})
        return hits, start + WINDOW_SECONDS - now


class RateLimit:
    """ASGI middleware applying `Limits` to every request but `UNLIMITED_PATHS`."""

    def __init__(self, app: Any, counter: RequestCounter, limits: Limits) -> None:
        self.app = app
        self.counter = counter
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNLIMITED_PATHS):
            await self.app(scope, receive, send)
            return
        client, limit = self._client(scope)
        if limit <= 0:
            await self.app(scope, receive, send)
            return
        try:
            hits, reset = await run_in_threadpool(self.counter.hit, client)
        except SQLAlchemyError as exc:
            log.warning("rate limit not counted (%s): request let through", type(exc).__name__)
            await self.app(scope, receive, send)
            return
        retry_after = str(max(1, int(reset + 0.999)))
        headers = {
            "RateLimit-Limit": str(limit),
            "RateLimit-Remaining": str(max(0, limit - hits)),
            "RateLimit-Reset": retry_after,
        }
        if hits > limit:
            if hits == limit + 1:  # once per client and window: the log is not flooded either
                log.warning("client %s over its limit of %d requests a minute", client, limit)
            response = self._refusal(scope, limit, retry_after)
            response.headers.update(headers | {"Retry-After": retry_after})
            await response(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    *((k.lower().encode(), v.encode()) for k, v in headers.items()),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _client(self, scope: Scope) -> tuple[str, int]:
        """Who the request counts against, and that client's limit. A credential is never stored or
        logged: only a prefix of its SHA-256."""
        credential = _credential(scope)
        if credential:
            return "cred:" + hashlib.sha256(credential.encode()).hexdigest()[:32], self.limits.per_credential
        address = (scope.get("client") or ("unknown", 0))[0]
        return f"addr:{address}"[:80], self.limits.per_address

    @staticmethod
    def _refusal(scope: Scope, limit: int, retry_after: str) -> Response:
        message = f"请求过于频繁：每分钟最多 {limit} 次，请 {retry_after} 秒后重试"
        request = Request(scope)
        if is_page(request):
            return page_error(request, 429, message)
        return JSONResponse({"error": "rate_limited", "message": message}, status_code=429)


def _credential(scope: Scope) -> str | None:
    """The API key or session token the request carries, if any."""
    headers = {name.lower(): value.decode("latin-1") for name, value in scope["headers"]}
    authorization = headers.get(b"authorization", "")
    if authorization[:7].lower() == "bearer " and authorization[7:].strip():
        return authorization[7:].strip()
    if headers.get(b"x-api-key", "").strip():
        return headers[b"x-api-key"].strip()
    try:
        cookies = SimpleCookie(headers.get(b"cookie", ""))
    except CookieError:
        return None
    return next((cookies[name].value for name in SESSION_COOKIES if name in cookies), None)
