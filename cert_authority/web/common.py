"""What every page shares: templates and their filters, session cookies, the same-origin guard on
form posts, and turning service errors into pages (a 401 becomes the right login page)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup, escape

from cert_authority.errors import PermissionDeniedError
from cert_authority.issuing.schemas import STATUS_NAMES
from cert_authority.timeutil import BEIJING, aware
from templates.units import unbreakable_spans

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
HOLDER_COOKIE = "ecas_wallet"
STAFF_COOKIE = "ecas_staff"
FLASH_COOKIE = "ecas_flash"  # a message for the page a form post redirects to (post/redirect/get)
PAGE_PREFIXES = ("/wallet", "/counter", "/console", "/staff", "/v/")

templates = Jinja2Templates(directory=WEB_DIR / "templates")


TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # the one format for every time a person reads


def keep_units(text: object) -> Markup:
    """Text for a page with each number and its unit, and each short parenthesis (a label's unit),
    kept on one line: "≤45 mg/L" and "（立方米/日）" never break inside (templates.units)."""
    value = str(text)
    if len(value) >= 20 and not any(c.isspace() for c in value):
        return escape(value)  # a code (identifier, licence number): no units in it, and it must wrap on a phone
    parts, at = [], 0
    for start, end in unbreakable_spans(value):
        parts += [escape(value[at:start]), Markup('<span class="nowrap">%s</span>') % value[start:end]]
        at = end
    parts.append(escape(value[at:]))
    return Markup("").join(parts)


def local_time(value: dt.datetime | str | None, zone: dt.tzinfo = BEIJING) -> str:
    """A time as people read it: in the service's time zone (ECAS_TIMEZONE), to the second.
    Naive times are UTC (what SQLite gives back)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return aware(value).astimezone(zone).strftime(TIME_FORMAT)


def zone_of(request: Request) -> dt.tzinfo:
    zone: dt.tzinfo = request.app.state.settings.zone
    return zone


@pass_context
def _local_time_filter(context: Any, value: dt.datetime | str | None) -> str:
    request = context.get("request")
    return local_time(value, zone_of(request) if request is not None else BEIJING)


def face_value(field_type: str, value: object) -> str:
    """A face value as people read it: a date range "2026-01-01/2030-12-31" as "2026-01-01 至 2030-12-31"."""
    text = str(value)
    if field_type == "date_range" and "/" in text:
        start, _, end = text.partition("/")
        return f"{start or '—'} 至 {end or '长期'}"
    return text


def status_tone(status: str) -> str:
    return {"issued": "ok", "expired": "warn", "superseded": "warn"}.get(status, "bad")


templates.env.filters["local_time"] = _local_time_filter
templates.env.filters["status_name"] = lambda status: STATUS_NAMES.get(status, status)
templates.env.filters["status_tone"] = status_tone
templates.env.filters["keep_units"] = keep_units


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)  # after a POST: the browser follows with GET


def flash(response: Response, tone: str, message: str, path: str = "/", **extra: str) -> Response:
    """Carry a message (tone ok, bad or warn) to the next page: the post answers with a redirect
    and the page the browser then gets shows it once (a reload does not post again). Text only: the
    page escapes it. `extra` carries a short value the page shows with it (a new one-time code, a
    link to what was made)."""
    found = {"tone": tone, "message": message[:1000]} | {k: v[:500] for k, v in extra.items()}
    value = quote(json.dumps(found, ensure_ascii=False))
    response.set_cookie(FLASH_COOKIE, value, path=path, httponly=True, samesite="strict", max_age=120)
    return response


def take_flash(request: Request) -> dict[str, str] | None:
    """The message a redirect carried, if any (`forget_flash` drops it from the browser)."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        found = json.loads(unquote(raw))
    except ValueError:
        return None
    if not isinstance(found, dict) or found.get("tone") not in ("ok", "bad", "warn"):
        return None
    return {str(key): str(value) for key, value in found.items()}


def forget_flash(response: Response, request: Request, path: str = "/") -> Response:
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path=path)
    return response


def set_session(response: Response, request: Request, name: str, token: str, expires: dt.datetime, path: str) -> None:
    # HttpOnly: no script reads it; SameSite=Strict: other sites' forms cannot post with it.
    secure = request.app.state.settings.base_url.startswith("https://")
    response.set_cookie(name, token, expires=expires, path=path, httponly=True, samesite="strict", secure=secure)


def same_origin(request: Request) -> None:
    """A dependency for form posts: refuse what a browser marks as sent from another site."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise PermissionDeniedError("拒绝来自其他网站的表单提交")


def safe_next(target: str | None, default: str) -> str:
    """Only a path on this site (no //host, no scheme): a login must not redirect elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def client_address(request: Request) -> str:
    """The caller's address as the server sees it (behind a proxy: what uvicorn's proxy headers set)."""
    return request.client.host if request.client else "unknown"


def is_page(request: Request) -> bool:
    path = request.url.path
    return path == "/" or path.startswith(PAGE_PREFIXES)


def wants_html(request: Request) -> bool:
    """A browser asking for a page outside the API (a mistyped address): it gets a page, not JSON."""
    return "text/html" in request.headers.get("accept", "") and not request.url.path.startswith("/api/")


def page_error(request: Request, status: int, message: str) -> Response:
    """A failed page request: to the login page when not (or no longer) logged in, else an error page.
    The pages' scripts (which do not ask for HTML) get the status and message as JSON instead."""
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"error": "page_error", "message": message}, status_code=status)
    if status == 401:
        path = request.url.path
        login = "/wallet/login" if path.startswith("/wallet") else "/staff/login"
        back = path if request.method == "GET" else ""
        return redirect(f"{login}?next={quote(back)}" if back else login)
    return render(request, "error.html", status_code=status, status=status, message=message)
