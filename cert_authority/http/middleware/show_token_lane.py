"""The busiest call, POST /api/v1/show-tokens/verify, answered without FastAPI's routing, dependency
and validation layers in the ordinary case: a JSON body that is a valid `ShowTokenCheck` from an API
key this worker accepted within the last seconds. Those layers were about a third of the call's CPU
under `ecas bench serve`. Anything else (no key or one not yet accepted here, another content type, a
large or malformed body) goes on to the FastAPI route unchanged, which documents the call and gives
every refusal. Errors in the check itself get the app's own exception handlers."""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request

from cert_authority.http.middleware.rate_limit import api_key_of
from cert_authority.http.routes.holder import ShowTokenCheck

PATH = "/api/v1/show-tokens/verify"
MAX_BODY = 4096  # a token is at most 2,000 characters; anything larger takes the ordinary route
Message = dict[str, Any]


class ShowTokenLane:
    def __init__(self, app: Any, service: FastAPI) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = api_key_of(headers)
        actor = self.service.state.api_keys.remembered(key) if key else None
        if actor is not None and actor.role == "exchange":
            actor = None  # the route refuses it
        is_json = headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"
        messages, body = await _read_small_body(receive) if actor is not None and is_json else ([], None)
        check = _parse(body)
        if check is None:
            await self.app(scope, _replaying(messages, receive), send)
            return
        Request(scope).state.actor = actor  # as `current_actor` leaves it, for the error handlers
        response: Response
        try:
            report = await run_in_threadpool(self.service.state.show_tokens.verify, actor, check.token)
            response = JSONResponse(report.to_dict())
        except Exception as exc:
            response = await self._handled(scope, exc)
        await response(scope, receive, send)

    async def _handled(self, scope: dict[str, Any], exc: Exception) -> Response:
        """The response the app's exception handlers give for `exc` (re-raised if none applies)."""
        handlers = self.service.exception_handlers
        for kind in type(exc).__mro__:
            if kind in handlers:
                handled = handlers[kind](Request(scope), exc)
                return await handled if inspect.isawaitable(handled) else handled
        raise exc


async def _read_small_body(receive: Any) -> tuple[list[Message], bytes | None]:
    """The messages read, and the body if it was complete within MAX_BODY bytes."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        size += len(message.get("body", b""))
        if size > MAX_BODY:
            return messages, None
        if not message.get("more_body", False):
            return messages, b"".join(m.get("body", b"") for m in messages)


def _parse(body: bytes | None) -> ShowTokenCheck | None:
    if body is None:
        return None
    try:
        return ShowTokenCheck.model_validate_json(body)
    except ValidationError:
        return None


def _replaying(messages: list[Message], receive: Any) -> Any:
    """`receive` for the ordinary route: the messages already read, then the rest."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
