"""Behind a TLS/TLCP front (GB/T 38636; docs/deployment.md): refuse what did not come through it.

- With ECAS_BASE_URL on https, a request whose scheme is not https is refused (403
  `insecure_transport`): it reached ECAS without the front, or through a forwarder uvicorn does not
  trust (the scheme comes from X-Forwarded-Proto only from FORWARDED_ALLOW_IPS).
- With ECAS_TLS_CIPHER_HEADER set (the front writes the negotiated suite there, e.g. Tongsuo's
  nginx: `proxy_set_header X-TLS-Cipher $ssl_cipher;`), a suite not in ECAS_TLS_CIPHERS, or none, is
  refused (403 `weak_transport`): the connection to the client was not protected with SM2/SM3/SM4
  (the default list, `settings.SM_SUITES`: TLCP suites as Tongsuo names them, and RFC 8998's).

/healthz is exempt (the front's and the supervisor's probes come over plain HTTP on the host).
"""

from __future__ import annotations

import json
from typing import Any

EXEMPT = ("/healthz",)


class TransportCheck:
    def __init__(self, app: Any, *, require_https: bool, cipher_header: str | None, ciphers: frozenset[str]):
        self.app = app
        self.require_https = require_https
        self.cipher_header = cipher_header.lower().encode("latin-1") if cipher_header else None
        self.ciphers = ciphers

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path") not in EXEMPT:
            if self.require_https and scope.get("scheme") != "https":
                await _refuse(send, "insecure_transport", "请通过 HTTPS（国密 TLCP）访问本服务")
                return
            if self.cipher_header is not None:
                suite = next((v.decode("latin-1") for k, v in scope["headers"] if k == self.cipher_header), "")
                if suite.strip() not in self.ciphers:
                    await _refuse(send, "weak_transport", "连接未使用国密密码套件（SM2/SM3/SM4），已拒绝")
                    return
        await self.app(scope, receive, send)


async def _refuse(send: Any, code: str, message: str) -> None:
    payload = json.dumps({"error": code, "message": message}, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
