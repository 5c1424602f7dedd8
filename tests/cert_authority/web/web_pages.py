"""A logged-in browser for page tests: TestClient sessions for holders and staff on one app."""

from __future__ import annotations

import base64
import re
from html import unescape
from typing import Any

from fastapi.testclient import TestClient

from cert_authority.actors import CLI_ACTOR
from keys.sm2 import SM2PrivateKey

PASSWORD = "ecas-page-test-1"
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what a browser sends for pages and forms


def browser(app: object) -> TestClient:
    """A client that asks for pages as a browser does (scripts' fetches ask without text/html)."""
    return TestClient(app, headers=HTML)  # type: ignore[arg-type]


def holder_client(app: object, holder_code: str, password: str = PASSWORD) -> TestClient:
    client = browser(app)
    answer = client.post("/wallet/login", data={"holder_code": holder_code, "password": password},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return client


def staff_client(app: object, username: str, password: str = PASSWORD) -> TestClient:
    """A signed-in staff client; an account that must sign (administrators: access/signin.py) gets
    a fresh SM2 key registered and signs the challenge the page shows."""
    client = browser(app)
    login = {"username": username, "password": password}
    answer = client.post("/staff/login", data=login, follow_redirects=False)
    if "尚未登记密钥" in answer.text:
        key = SM2PrivateKey.generate()
        app.state.staff.signin.register(CLI_ACTOR, username, key.public_key.to_der(), "test")  # type: ignore[attr-defined]
        _KEYS[username] = key
        answer = client.post("/staff/login", data=login, follow_redirects=False)
    if answer.status_code == 200 and 'name="challenge"' in answer.text:
        answer = _sign_challenge(client, _KEYS[username], answer.text)
    assert answer.status_code == 303, answer.text
    return client


_KEYS: dict[str, SM2PrivateKey] = {}  # the key registered for each account name by staff_client


def _sign_challenge(client: TestClient, key: SM2PrivateKey, page: str) -> Any:
    challenge = re.search(r'name="challenge" value="([0-9a-f]{64})"', page)
    message = re.search(r'<textarea id="message" rows="6" readonly>(.*?)</textarea>', page, re.S)
    assert challenge and message, page[:2000]
    signature = base64.b64encode(key.sign(unescape(message.group(1)).encode())).decode()
    form = {"challenge": challenge.group(1), "signature": signature, "next": "/console"}
    return client.post("/staff/login/sign", data=form, follow_redirects=False)


def verdict_of(html: str) -> str:
    """The result class of the verdict card on a page: VALID, INVALID or INDETERMINATE."""
    found = re.search(r'class="verdict (\w+)"', html)
    assert found, html[:2000]
    return found.group(1)
