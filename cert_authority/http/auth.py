"""API-key authentication for /api/v1: `Authorization: Bearer <key>` (or `X-API-Key: <key>`).

`current_actor` is the dependency every /api/v1 route has; `require(*roles)` narrows it. Missing,
unknown or revoked keys are 401 (with `WWW-Authenticate: Bearer`), wrong roles 403. Keys are
never logged or echoed in messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from cert_authority.access.apikeys import ApiKeyService
from cert_authority.actors import Actor, ensure_role
from cert_authority.errors import AuthenticationError

bearer = HTTPBearer(auto_error=False, description="API 密钥（ecas_...），由 ecas apikey create 创建")
header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="也可在 X-API-Key 请求头中给出密钥")


async def current_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    api_key: Annotated[str | None, Depends(header_key)],
) -> Actor:
    key = credentials.credentials if credentials is not None else api_key
    if not key:
        raise AuthenticationError("缺少 API 密钥：请在请求头中给出 Authorization: Bearer <密钥>")
    keys: ApiKeyService = request.app.state.api_keys
    # Async, and to a thread only when the database must be asked: a busy client's key is remembered.
    actor = keys.remembered(key.strip())
    if actor is None:
        actor = await run_in_threadpool(keys.authenticate, key.strip())
    request.state.actor = actor  # for the audit record if the call is then refused
    return actor


def require(*roles: str) -> Callable[[Actor], Awaitable[Actor]]:
    """A dependency giving the caller if its role is one of `roles`, else 403."""

    async def dependency(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
        ensure_role(actor, *roles)
        return actor

    return dependency
