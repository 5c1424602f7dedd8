"""API-key authentication for /api/v1: `Authorization: Bearer <key>` (or `X-API-Key: <key>`).

`current_actor` is the dependency every /api/v1 route has; `require(*roles)` narrows it. Missing,
unknown or revoked keys are 401 (with `WWW-Authenticate: Bearer`), wrong roles 403. Keys are
never logged or echoed in messages. A data-exchange key (role `exchange`) reads the change feed
and nothing else: only routes that `require("exchange")` take it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from cert_authority.access.apikeys import ApiKeyService
from cert_authority.actors import Actor, ensure_role
from cert_authority.errors import AuthenticationError, PermissionDeniedError

bearer = HTTPBearer(auto_error=False, description="API 密钥（ecas_...），由 ecas apikey create 创建")
header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="也可在 X-API-Key 请求头中给出密钥")


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    api_key: Annotated[str | None, Depends(header_key)],
) -> Actor:
    """The caller of a valid API key, whatever its role."""
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


async def current_actor(actor: Annotated[Actor, Depends(authenticated)]) -> Actor:
    """The caller of a valid API key of any role but `exchange` (403)."""
    if actor.role == "exchange":
        raise PermissionDeniedError("数据交换密钥只能读取变更事件流（/api/v1/feed），不能调用其他接口")
    return actor


def require(*roles: str) -> Callable[[Actor], Awaitable[Actor]]:
    """A dependency giving the caller if its role is one of `roles`, else 403."""

    async def dependency(actor: Annotated[Actor, Depends(authenticated)]) -> Actor:
        ensure_role(actor, *roles)
        return actor

    return dependency
