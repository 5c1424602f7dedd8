"""A logged-in browser for page tests: TestClient sessions for holders and staff on one app."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

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
    client = browser(app)
    answer = client.post("/staff/login", data={"username": username, "password": password}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return client


def verdict_of(html: str) -> str:
    """The result class of the verdict card on a page: VALID, INVALID or INDETERMINATE."""
    found = re.search(r'class="verdict (\w+)"', html)
    assert found, html[:2000]
    return found.group(1)
