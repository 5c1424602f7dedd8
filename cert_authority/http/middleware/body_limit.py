"""Request body limits for every route, enforced before any handler reads the body (ASGI
middleware): a declared Content-Length over the limit is refused at once; a chunked body is counted
as it arrives. Either way the client gets 413 with the usual JSON error."""

from __future__ import annotations

import json
from typing import Any

from cert_authority.boundary import classify
from cert_authority.errors import PayloadTooLargeError

MB = 1024 * 1024
UPLOAD_LIMIT = 10 * MB  # multipart/form-data: definition plus images
BODY_LIMIT = 1 * MB  # everything else (JSON, YAML)
# JSON bodies that carry a picture in base64 (a holder's photo of up to 2 MB, a seal picture), and
# sealed files sent to be verified.
# OCSP requests are small (RFC 6960: one or a few CertIDs); the route is public.
PATH_LIMITS = {
    "/api/v1/licences": 4 * MB,
    "/api/v1/seals": 4 * MB,
    "/api/v1/verify": 20 * MB,
    "/api/v1/exchange": 32 * MB,  # a city's batch with its sealed files (exchange.pusher)
    "/pki/ocsp": 64 * 1024,
}
DOCUMENT_LIMIT = 20 * MB  # a department's own document sent to be sealed (/api/v1/seals/{id}/sign)

Scope = dict[str, Any]
Message = dict[str, Any]


class BodyLimit:
    def __init__(
        self,
        app: Any,
        prefix: str | tuple[str, ...] = "/",
        skip: tuple[str, ...] = (),
        upload_limit: int = UPLOAD_LIMIT,
        limit: int = BODY_LIMIT,
        path_limits: dict[str, int] | None = None,
    ):
        self.app = app
        self.prefix = prefix
        self.skip = skip  # paths another instance limits
        self.upload_limit = upload_limit
        self.limit = limit
        self.path_limits = PATH_LIMITS if path_limits is None else path_limits

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] in ("GET", "HEAD")
            or not path.startswith(self.prefix)
            or path.startswith(self.skip)
        ):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        multipart = headers.get("content-type", "").lower().startswith("multipart/form-data")
        limit = self.upload_limit if multipart else self._json_limit(path)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await self._too_large(send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            size += len(message.get("body", b""))
            if size > limit:
                await self._too_large(send, limit)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            message: Message = await receive()
            return message

        await self.app(scope, replay, send)

    def _json_limit(self, path: str) -> int:
        if path.startswith("/api/v1/seals/") and path.endswith("/sign"):
            return DOCUMENT_LIMIT
        return next((limit for prefix, limit in self.path_limits.items() if path.startswith(prefix)), self.limit)

    @staticmethod
    async def _too_large(send: Any, limit: int) -> None:
        error = PayloadTooLargeError(f"请求体过大：上限 {limit // MB} MB")
        status, code = classify(error) or (413, "payload_too_large")
        payload = json.dumps({"error": code, "message": str(error)}, ensure_ascii=False).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})
