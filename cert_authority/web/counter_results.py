"""The counter's verdict across a redirect (post/redirect/get): checking a show code records its one
use, so a reloaded result page must not post the code again (it would be refused as a replay). The
verdict rides in a short-lived HttpOnly cookie, compressed and signed with a key derived from the
key-encryption passphrase (every worker derives the same one), so a forged cookie shows nothing.
The signed part names the staff member and the time it was made: a cookie copied to another
account, or kept past its ten minutes, shows nothing either (the browser's max-age is not a check)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
import zlib

from fastapi import Request
from fastapi.responses import Response

from cert_authority.access.staff import StaffMember
from cert_authority.web.verdicts import Verdict

RESULT_COOKIE = "ecas_verdict"
RESULT_PATH = "/counter"
KEEP_SECONDS = 600  # a reload within ten minutes shows the same result (with its check time)
MAX_COOKIE = 3800  # browsers keep at least 4096 bytes a cookie; a larger verdict is shown at once


def _key(request: Request) -> bytes:
    kek: bytes = request.app.state.settings.require_kek()
    return hashlib.sha256(b"ecas counter verdict cookie\0" + kek).digest()


def remember(request: Request, response: Response, verdict: Verdict, staff: StaffMember) -> bool:
    """Put the verdict on the redirect; False if it is too large for a cookie."""
    held = {"verdict": dataclasses.asdict(verdict), "staff": staff.id, "at": int(time.time())}
    body = zlib.compress(json.dumps(held, ensure_ascii=False).encode(), 9)
    tag = hmac.new(_key(request), body, hashlib.sha256).digest()[:16]
    value = base64.urlsafe_b64encode(tag + body).decode()
    if len(value) > MAX_COOKIE:
        return False
    response.set_cookie(RESULT_COOKIE, value, path=RESULT_PATH, httponly=True, samesite="strict", max_age=KEEP_SECONDS)
    return True


def recall(request: Request, staff: StaffMember) -> Verdict | None:
    """The verdict this staff member's last check put in the cookie, within KEEP_SECONDS."""
    raw = request.cookies.get(RESULT_COOKIE)
    if not raw:
        return None
    try:
        data = base64.urlsafe_b64decode(raw.encode())
        tag, body = data[:16], data[16:]
        if not hmac.compare_digest(tag, hmac.new(_key(request), body, hashlib.sha256).digest()[:16]):
            return None
        held = json.loads(zlib.decompress(body, bufsize=16384))
        if held["staff"] != staff.id or not 0 <= time.time() - held["at"] <= KEEP_SECONDS:
            return None
        return Verdict(**held["verdict"])
    except (ValueError, TypeError, KeyError, zlib.error):
        return None
