"""Cryptographic sign-in for staff (access/signin.py): after the password, an SM2 signature of the
server's challenge by a key registered for the account. The signer is OpenSSL's command line with a
key file, as a UKey's middleware would be: not our code. Attacks: no signature, a wrong one, a replay,
another account's key, a signature of another message, an expired challenge, and an administrator
without a key; every failure audited."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from html import unescape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from cert_authority.access.signin import SignInKeys
from cert_authority.access.staff import StaffAccounts
from cert_authority.actors import CLI_ACTOR
from cert_authority.errors import AuthenticationError
from cert_authority.http.app import create_app
from keys.keystore import create_key_file
from tests.cert_authority.web.web_pages import browser
from tests.conftest import ISSUER_USCC, LicenceEnv, openssl

PASSWORD = "ecas-signin-test-1"
KEY_PASSPHRASE = "key-file-passphrase"


def _key(directory: Path, name: str) -> tuple[Path, bytes]:
    """A key file (ours, SM4 PKCS#8) and its public key as OpenSSL exports it."""
    path = directory / f"{name}.key.pem"
    create_key_file(path, KEY_PASSPHRASE.encode(), iterations=1000)
    public = openssl("pkey", "-in", str(path), "-passin", "pass:" + KEY_PASSPHRASE, "-pubout").stdout
    return path, public


def _openssl_sign(key: Path, message: str, work: Path) -> str:
    """base64 DER SM2 signature (SM3, signer ID 1234567812345678) by the OpenSSL CLI."""
    (work / "challenge.txt").write_text(message, encoding="utf-8", newline="")
    openssl(
        "pkeyutl", "-sign", "-inkey", str(key), "-passin", "pass:" + KEY_PASSPHRASE, "-rawin", "-digest", "sm3",
        "-pkeyopt", "distid:1234567812345678", "-in", str(work / "challenge.txt"), "-out", str(work / "sig.der"),
    )  # fmt: skip
    return subprocess.run(["base64", "-w0", str(work / "sig.der")], capture_output=True, check=True).stdout.decode()


def _challenge(client: TestClient, username: str) -> tuple[str, str]:
    page = client.post("/staff/login", data={"username": username, "password": PASSWORD}, follow_redirects=False)
    assert page.status_code == 200 and "SM2 签名登录" in page.text, page.text[:500]
    challenge = re.search(r'name="challenge" value="([0-9a-f]{64})"', page.text)
    message = re.search(r'<textarea id="message" rows="6" readonly>(.*?)</textarea>', page.text, re.S)
    assert challenge and message
    return challenge.group(1), unescape(message.group(1))


def _sign_in(client: TestClient, challenge: str, signature: str) -> int:
    answer = client.post("/staff/login/sign", data={"challenge": challenge, "signature": signature, "next": "/console"},
                         follow_redirects=False)
    return answer.status_code


@pytest.fixture
def site(licence_env: LicenceEnv, tmp_path: Path) -> tuple[TestClient, StaffAccounts, dict[str, Path]]:
    app = create_app(licence_env.settings)
    staff: StaffAccounts = app.state.staff
    staff.create("root", "王海", "admin", None, PASSWORD)
    staff.create("clerk", "张敏", "issuer", ISSUER_USCC, PASSWORD)
    keys = {}
    for username in ("root", "clerk"):
        path, public = _key(tmp_path, username)
        staff.signin.register(CLI_ACTOR, username, public, "test")
        keys[username] = path
    return browser(app), staff, keys


def _failures(licence_env: LicenceEnv) -> int:
    with licence_env.engine.connect() as connection:
        query = text("SELECT count(*) FROM audit_event WHERE action = 'staff_sign_failed'")
        return int(connection.execute(query).scalar_one())


def test_admin_signs_in_with_an_openssl_signature(site, licence_env: LicenceEnv, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client, _staff, keys = site
    assert client.get("/console", follow_redirects=False).status_code in (302, 303, 401)
    challenge, message = _challenge(client, "root")
    assert message.startswith("ECAS-STAFF-SIGNIN/1\norigin=http://127.0.0.1:8000\nusername=root\n")
    assert _sign_in(client, challenge, _openssl_sign(keys["root"], message, tmp_path)) == 303
    assert client.get("/console").status_code == 200
    # The same answer again: the challenge is spent.
    assert _sign_in(browser(client.app), challenge, _openssl_sign(keys["root"], message, tmp_path)) == 401
    assert _failures(licence_env) == 1


def test_attacks_are_refused_and_audited(site, licence_env: LicenceEnv, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client, _staff, keys = site
    cases = 0
    # No signature, garbage, and a signature with a flipped byte.
    for bad in ("", "not base64!", "AAAA"):
        challenge, _message = _challenge(client, "root")
        assert _sign_in(client, challenge, bad) in (401, 422)
        cases += 1
    challenge, message = _challenge(client, "root")
    good = _openssl_sign(keys["root"], message, tmp_path)
    flipped = good[:20] + ("A" if good[20] != "A" else "B") + good[21:]
    assert _sign_in(client, challenge, flipped) == 401
    # One try: the right signature after a wrong one is too late.
    assert _sign_in(client, challenge, good) == 401
    cases += 2
    # Another account's key (clerk's, registered and valid) on root's challenge.
    challenge, message = _challenge(client, "root")
    assert _sign_in(client, challenge, _openssl_sign(keys["clerk"], message, tmp_path)) == 401
    cases += 1
    # root's own key over another message (another server's origin, same challenge id).
    challenge, message = _challenge(client, "root")
    elsewhere = message.replace("origin=http://127.0.0.1:8000", "origin=https://evil.example")
    assert _sign_in(client, challenge, _openssl_sign(keys["root"], elsewhere, tmp_path)) == 401
    cases += 1
    # A challenge made up by the client.
    assert _sign_in(client, "ab" * 32, good) == 401
    cases += 1
    assert client.get("/console", follow_redirects=False).status_code != 200
    assert _failures(licence_env) == cases - 1  # the 422 for an empty field never reached the check


def test_wrong_password_gets_no_challenge_and_admin_needs_a_key(site) -> None:  # type: ignore[no-untyped-def]
    client, staff, _keys = site
    page = client.post("/staff/login", data={"username": "root", "password": "wrong-password"})
    assert page.status_code == 401 and "challenge" not in page.text
    staff.create("keyless", "李", "admin", None, PASSWORD)
    with pytest.raises(AuthenticationError, match="尚未登记密钥"):
        staff.login("keyless", PASSWORD)
    # Staff without a key keep the password; with one, they sign too.
    staff.create("plain", "周", "issuer", ISSUER_USCC, PASSWORD)
    token, _expires, member = staff.login("plain", PASSWORD)
    assert member.username == "plain" and token


def test_expired_challenge_is_refused(licence_env: LicenceEnv, tmp_path: Path) -> None:
    now = [dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.timezone.utc)]
    staff = StaffAccounts(licence_env.engine, clock=lambda: now[0], origin="https://ecas.example")
    staff.create("root", "王海", "admin", None, PASSWORD)
    path, public = _key(tmp_path, "root")
    staff.signin.register(CLI_ACTOR, "root", public, "test")
    try:
        staff.login("root", PASSWORD)
    except AuthenticationError as exc:
        challenge = exc.challenge  # type: ignore[attr-defined]
    now[0] += dt.timedelta(minutes=5)
    with pytest.raises(AuthenticationError):
        staff.finish_login(challenge.id, _openssl_sign(path, challenge.message, tmp_path))


def test_a_key_serves_one_account_and_can_be_revoked(licence_env: LicenceEnv, tmp_path: Path) -> None:
    staff = StaffAccounts(licence_env.engine, origin="https://ecas.example")
    staff.create("root", "王海", "admin", None, PASSWORD)
    staff.create("root2", "王海", "admin", None, PASSWORD)
    _path, public = _key(tmp_path, "root")
    keys: SignInKeys = staff.signin
    fingerprint = keys.register(CLI_ACTOR, "root", public, "test")
    from cert_authority.errors import ConflictError

    with pytest.raises(ConflictError):
        keys.register(CLI_ACTOR, "root2", public, "test")
    keys.revoke(CLI_ACTOR, "root", fingerprint)
    with pytest.raises(AuthenticationError, match="尚未登记密钥"):
        staff.login("root", PASSWORD)


def test_staff_get_only_the_roles_their_department_has(licence_env: LicenceEnv) -> None:
    """As for API keys: a department registered to issue only gets no counter (user) staff, by
    creation or by a role change (found by an attacker review; an administrator's mistake, but the
    two paths to the same power should refuse alike)."""
    from cert_authority.errors import InvalidRequestError
    from cert_authority.registry.schemas import DepartmentCreate

    issue_only = "11350100MB00000403"
    licence_env.registry.create_department(
        DepartmentCreate(name="仅颁证局", uscc=issue_only, area_code="350100", level="city", roles=["issuer"])
    )
    staff = StaffAccounts(licence_env.engine)
    with pytest.raises(InvalidRequestError, match="没有用证部门角色"):
        staff.create("only.user", "某人", "user", issue_only, "pw-long-enough-1")
    staff.create("only.issuer", "某人", "issuer", issue_only, "pw-long-enough-1")
    with pytest.raises(InvalidRequestError, match="没有用证部门角色"):
        staff.change_role(CLI_ACTOR, "only.issuer", "user", issue_only)
