"""Security headers on every response (ASGI middleware, outermost, so refusals carry them too).

- Pages get a Content-Security-Policy with no inline script and no framing (clickjacking);
  /docs keeps FastAPI's Swagger page working without it.
- Everything gets X-Content-Type-Options: nosniff and Referrer-Policy: no-referrer (page URLs
  carry licence identifiers).
- Cache-Control: no-store unless the route chose its own: API answers and pages carry face data
  and holders' names, and after logout a shared counter's browser must not show them on Back.
  Static files and the public PKI documents (certificates, CRLs) are left to their own caching.
"""

from __future__ import annotations

from typing import Any

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
CACHEABLE = ("/static/", "/pki/")


class SecurityHeaders:
    def __init__(self, app: Any, page_prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.page_prefixes = page_prefixes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        page = path == "/" or path.startswith(self.page_prefixes)
        cacheable = path.startswith(CACHEABLE)
        swagger = path.startswith("/docs")

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                html = b"text/html" in dict(headers).get(b"content-type", b"")
                if (page or html) and not swagger:
                    headers.append((b"content-security-policy", CSP.encode()))
                if b"cache-control" not in names and not cacheable:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
