"""The counter's verdict across a redirect (post/redirect/get): checking a show code records its one
use, so a reloaded result page must not post the code again (it would be refused as a replay). The
verdict rides in a short-lived HttpOnly cookie, compressed and signed with a key derived from the
key-encryption passphrase (every worker derives the same one), so a forged cookie shows nothing."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import zlib

from fastapi import Request
from fastapi.responses import Response

from cert_authority.web.verdicts import Verdict

RESULT_COOKIE = "ecas_verdict"
RESULT_PATH = "/counter"
KEEP_SECONDS = 600  # a reload within ten minutes shows the same result (with its check time)
MAX_COOKIE = 3800  # browsers keep at least 4096 bytes a cookie; a larger verdict is shown at once


def _key(request: Request) -> bytes:
    kek: bytes = request.app.state.settings.require_kek()
    return hashlib.sha256(b"ecas counter verdict cookie\0" + kek).digest()


def remember(request: Request, response: Response, verdict: Verdict) -> bool:
    """Put the verdict on the redirect; False if it is too large for a cookie."""
    body = zlib.compress(json.dumps(dataclasses.asdict(verdict), ensure_ascii=False).encode(), 9)
    tag = hmac.new(_key(request), body, hashlib.sha256).digest()[:16]
    value = base64.urlsafe_b64encode(tag + body).decode()
    if len(value) > MAX_COOKIE:
        return False
    response.set_cookie(RESULT_COOKIE, value, path=RESULT_PATH, httponly=True, samesite="strict", max_age=KEEP_SECONDS)
    return True


def recall(request: Request) -> Verdict | None:
    raw = request.cookies.get(RESULT_COOKIE)
    if not raw:
        return None
    try:
        data = base64.urlsafe_b64decode(raw.encode())
        tag, body = data[:16], data[16:]
        if not hmac.compare_digest(tag, hmac.new(_key(request), body, hashlib.sha256).digest()[:16]):
            return None
        return Verdict(**json.loads(zlib.decompress(body, bufsize=16384)))
    except (ValueError, TypeError, zlib.error):
        return None
