"""Staff sign-in for the counter page and the console: username and password, then (administrators,
and staff who registered a key) the SM2 signature of a challenge, then an HttpOnly session cookie for
the whole site (both pages use it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from cert_authority.access.signin import SignatureRequiredError
from cert_authority.access.staff import StaffAccounts, StaffMember
from cert_authority.errors import AuthenticationError, TooManyAttemptsError
from cert_authority.web.common import (
    STAFF_COOKIE,
    client_address,
    redirect,
    render,
    safe_next,
    same_origin,
    set_session,
)
from cert_authority.web.counter_results import RESULT_COOKIE, RESULT_PATH

router = APIRouter(include_in_schema=False)


def _accounts(request: Request) -> StaffAccounts:
    accounts: StaffAccounts = request.app.state.staff
    return accounts


def current_staff(request: Request) -> StaffMember:
    token = request.cookies.get(STAFF_COOKIE)
    if not token:
        raise AuthenticationError("请先登录")
    return _accounts(request).member_for_session(token)


Staff = Annotated[StaffMember, Depends(current_staff)]


@router.get("/staff/login")
def login_page(request: Request, next: str = "") -> Response:
    return render(request, "staff_login.html", next=safe_next(next, "/counter"))


@router.post("/staff/login", dependencies=[Depends(same_origin)])
def login(
    request: Request,
    username: Annotated[str, Form(max_length=40)],
    password: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    target = safe_next(next, "/counter")
    try:
        token, expires, _member = _accounts(request).login(username, password, client_address(request))
    except SignatureRequiredError as required:
        # The password was right; now the account's SM2 key (access/signin.py).
        return render(request, "staff_sign.html", challenge=required.challenge, username=username, next=target)
    except (AuthenticationError, TooManyAttemptsError) as exc:
        status = 429 if isinstance(exc, TooManyAttemptsError) else 401
        return render(request, "staff_login.html", status, error=str(exc), username=username, next=target)
    response = redirect(target)
    set_session(response, request, STAFF_COOKIE, token, expires, "/")
    return response


@router.post("/staff/login/sign", dependencies=[Depends(same_origin)])
def login_sign(
    request: Request,
    challenge: Annotated[str, Form(max_length=64)],
    signature: Annotated[str, Form(max_length=400)],
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """The second step: the SM2 signature of the challenge shown after the password."""
    target = safe_next(next, "/counter")
    try:
        token, expires, _member = _accounts(request).finish_login(challenge, signature, client_address(request))
    except AuthenticationError as exc:
        return render(request, "staff_login.html", 401, error=str(exc), next=target)
    response = redirect(target)
    set_session(response, request, STAFF_COOKIE, token, expires, "/")
    return response


@router.post("/staff/logout", dependencies=[Depends(same_origin)])
def logout(request: Request) -> Response:
    token = request.cookies.get(STAFF_COOKIE)
    if token:
        _accounts(request).logout(token)
    response = redirect("/staff/login")
    response.delete_cookie(STAFF_COOKIE, path="/")
    response.delete_cookie(RESULT_COOKIE, path=RESULT_PATH)  # the next person at this desk sees no verdict
    return response
