"""Per-client rate limits. Every request counts against its client for the current minute: its API
key if this worker has seen the key succeed within the last seconds (a made-up key never has), else
its address (behind the reverse proxy: X-Forwarded-For, which uvicorn trusts from
FORWARDED_ALLOW_IPS). Over the limit: 429 with Retry-After, before the body is read.

On PostgreSQL the counts live in the database (`rate_window`), so N workers enforce one limit, not N.
A worker reserves hits for a client in the database and admits requests against its reservation
(a lease) without asking again: one at a time for an occasional client, so low limits are exact,
and up to LEASE_MAX at once for a client it hears from many times a second (under load, one round
trip per several requests instead of one per request). A request is admitted only if its place in
the reserved hits is within the limit, so all workers together never admit more than the limit;
hits reserved and left unused when the window ends can only refuse a client slightly early.
On SQLite (the single-host default) counts are kept in memory per process: a write on every request
would queue every reader behind SQLite's one writer.

Counting fails open: if the database cannot count, the request goes on (it needs the database
itself, and answers 503 if it is really away); a limiter must not turn a hiccup into an outage."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import Headers
from starlette.requests import Request

from cert_authority.web.common import is_page, page_error

log = logging.getLogger("ecas.rate_limit")
WINDOW_SECONDS = 60
PAUSE_AFTER_FAILURE = 5.0  # seconds without counting after the database failed to count
LEASE_MAX = 32  # hits a worker reserves at once for its busiest clients
LEASE_GROWS_WITHIN = 1.0  # a lease used up this soon after it was reserved: the next one doubles
LEASE_SHARE = 16  # a lease is at most this fraction of what is left of the limit, so it stays exact near it
UNLIMITED_PATHS = ("/healthz", "/static/")  # load balancers' probes; the pages' own scripts and styles
Scope = dict[str, Any]
Clock = Callable[[], float]


@dataclass(frozen=True)
class Limits:
    """Requests per minute (0: no limit)."""

    per_key: int
    per_address: int


class RequestCounter(Protocol):
    clock: Clock

    async def count(self, client: str, limit: int) -> tuple[int, float] | None:
        """Count one request: the client's hits in this window and seconds to its end; None if it
        could not be counted."""


def request_counter(engine: Engine) -> RequestCounter:
    if engine.dialect.name == "postgresql":
        return DatabaseCounter(counter_engine(engine))
    return MemoryCounter()


def counter_engine(engine: Engine) -> Engine:
    """A small pool of its own for counting on PostgreSQL: its commits do not wait for the WAL flush
    (a crash forgets a minute of counts at most), and it gives up quickly (connect 2 s, a free
    connection 0.5 s) so that a slow database delays no request for long."""
    counting = create_engine(
        engine.url, pool_size=5, max_overflow=5, pool_timeout=0.5, connect_args={"connect_timeout": 2}
    )
    event.listen(counting, "connect", _no_flush_wait)
    return counting


def _no_flush_wait(dbapi_connection: Any, _record: object) -> None:
    dbapi_connection.execute("SET synchronous_commit = off")
    dbapi_connection.commit()


def _window(now: float) -> int:
    return int(now // WINDOW_SECONDS * WINDOW_SECONDS)


@dataclass
class _Lease:
    """A worker's share of one client's count in the current window."""

    base: int = 0  # the window's count before this worker's latest reservation
    reserved: int = 0  # hits of that reservation
    used: int = 0  # of which counted here
    reserved_at: float = 0.0


class DatabaseCounter:
    """Hits per client and window in the database, shared by every worker, reserved in leases."""

    # One prepared statement, one round trip in autocommit.
    _RESERVE = text(
        "INSERT INTO rate_window (client, window_start, hits) VALUES (:client, :start, :n) "
        "ON CONFLICT (client, window_start) DO UPDATE SET hits = rate_window.hits + :n RETURNING hits"
    )
    _SWEEP = text("DELETE FROM rate_window WHERE window_start < :before")

    def __init__(self, engine: Engine, clock: Clock = time.time) -> None:
        self.engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.clock = clock
        self._next_sweep = 0.0
        self._paused_until = 0.0
        self._leases: dict[str, _Lease] = {}  # only touched on the event loop's thread
        self._window = 0

    async def count(self, client: str, limit: int) -> tuple[int, float] | None:
        now = self.clock()
        start = _window(now)
        if start != self._window:  # a new minute: every client starts afresh
            self._window, self._leases = start, {}
        lease = self._leases.setdefault(client, _Lease())
        reset = start + WINDOW_SECONDS - now
        if lease.used < lease.reserved or lease.base + lease.used >= limit:
            # Within the lease; or over the limit already (counts only grow within a window).
            lease.used += 1
            return lease.base + lease.used, reset
        if time.monotonic() < self._paused_until:
            return None
        size = self._next_size(lease, limit, now)
        try:
            total, reset = await run_in_threadpool(self.hit, client, size)
        except SQLAlchemyError as exc:
            # Not one slow attempt and one warning per request while the database is away.
            self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
            log.warning("rate limits not counted for %.0f s (%s)", PAUSE_AFTER_FAILURE, type(exc).__name__)
            return None
        if start != self._window:
            return total, reset  # the window ended while the database answered
        lease = self._leases.setdefault(client, lease)
        lease.base, lease.reserved, lease.used, lease.reserved_at = total - size, size, 1, now
        return lease.base + 1, reset

    @staticmethod
    def _next_size(lease: _Lease, limit: int, now: float) -> int:
        busy = now - lease.reserved_at < LEASE_GROWS_WITHIN
        size = min(LEASE_MAX, lease.reserved * 2) if busy else 1
        return max(1, min(size, (limit - lease.base - lease.used) // LEASE_SHARE))

    def hit(self, client: str, n: int = 1) -> tuple[int, float]:
        """Add n hits to the client's count in this window: the new count and seconds to the window's end."""
        now = self.clock()
        start = _window(now)
        with self.engine.connect() as connection:
            hits = int(connection.execute(self._RESERVE, {"client": client, "start": start, "n": n}).scalar_one())
            if now >= self._next_sweep:  # once a window per worker: forget finished windows
                self._next_sweep = now + WINDOW_SECONDS
                connection.execute(self._SWEEP, {"before": start - WINDOW_SECONDS})
        return hits, start + WINDOW_SECONDS - now


class MemoryCounter:
    """Hits per client in the current window, in this process only."""

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self._window = 0
        self._hits: dict[str, int] = {}
        self._lock = threading.Lock()

    async def count(self, client: str, limit: int) -> tuple[int, float] | None:
        now = self.clock()
        start = _window(now)
        with self._lock:
            if start != self._window:
                self._window, self._hits = start, {}
            hits = self._hits[client] = self._hits.get(client, 0) + 1
        return hits, start + WINDOW_SECONDS - now


class RateLimit:
    """ASGI middleware applying `Limits` to every request but `UNLIMITED_PATHS`. `known_key` tells
    whether an API key was recently accepted by this worker (without asking the database)."""

    def __init__(self, app: Any, counter: RequestCounter, limits: Limits, known_key: Callable[[str], bool]) -> None:
        self.app = app
        self.counter = counter
        self.limits = limits
        self.known_key = known_key

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNLIMITED_PATHS):
            await self.app(scope, receive, send)
            return
        client, limit = self._client(scope)
        counted = await self.counter.count(client, limit) if limit > 0 else None
        if counted is None:
            await self.app(scope, receive, send)
            return
        hits, reset = counted
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
        """Who the request counts against, and that client's limit. A key is never stored or logged:
        only a prefix of its SHA-256."""
        key = api_key_of(Headers(scope=scope))
        if key and self.known_key(key):
            return "key:" + hashlib.sha256(key.encode()).hexdigest()[:32], self.limits.per_key
        address = (scope.get("client") or ("unknown", 0))[0]
        return f"addr:{address}"[:80], self.limits.per_address

    @staticmethod
    def _refusal(scope: Scope, limit: int, retry_after: str) -> Response:
        message = f"请求过于频繁：每分钟最多 {limit} 次，请 {retry_after} 秒后重试"
        request = Request(scope)
        if is_page(request):
            return page_error(request, 429, message)
        return JSONResponse({"error": "rate_limited", "message": message}, status_code=429)


def api_key_of(headers: Headers) -> str | None:
    """The key as authentication reads it: the first Authorization: Bearer header, else X-API-Key."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("x-api-key", "").strip() or None
