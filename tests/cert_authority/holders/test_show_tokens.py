"""Showing a licence (亮证): holder login (argon2), a short-lived SM2-signed token in one QR code
that zbarimg reads back, and the counter's online check: signature, expiry, live status, replay
(once, at the first department that checks it); tampered, foreign, expired, replayed and revoked
tokens refused with reasons."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.errors import AuthenticationError, ConflictError, InvalidRequestError, NotFoundError
from cert_authority.http.app import create_app
from cert_authority.store.models import AuditEventRow
from tests.conftest import (
    FOOD_TYPE,
    ISSUER_USCC,
    USER_USCC,
    LicenceEnv,
    example_data,
    issue_example,
    require_tool_or_skip,
)
from verification.report import Status
from verification.show_token import make_token, read_token

HOLDER = example_data(FOOD_TYPE)["operator_code"]
PASSWORD = "correct horse battery"
COUNTER = Actor(label="apikey:counter", role="user", department_uscc=USER_USCC)


def scan(qr_png_base64: str, folder: Path) -> str:
    """What zbarimg (an independent decoder) reads from the QR code PNG."""
    (folder / "qr.png").write_bytes(base64.b64decode(qr_png_base64))
    command = [require_tool_or_skip("zbarimg"), "--raw", "-q", str(folder / "qr.png")]
    return subprocess.run(command, capture_output=True, timeout=60, check=True).stdout.decode().strip()


def test_token_format_and_its_failures(shared_licence_env: LicenceEnv) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    signer = shared_licence_env.pki.service_signer(now)
    service = signer.certificate_chain[0]
    text, token = make_token(signer, "1.2.156.3005.2.X", {"operator_name": "好味道"}, now, dt.timedelta(seconds=60))
    assert len(text) < 500 and text.startswith("ECT1.")
    read, check = read_token(text, [service], now)
    assert check.status is Status.VALID and read == token
    head, payload, signature = text.split(".")
    flipped = payload[:-3] + ("A" if payload[-3] != "A" else "B") + payload[-2:]
    assert read_token(f"{head}.{flipped}.{signature}", [service], now)[1].reason in ("bad_signature", "malformed_token")
    assert read_token(text, [service], now + dt.timedelta(seconds=61))[1].reason == "expired"
    assert read_token(text, [service], now - dt.timedelta(minutes=5))[1].reason == "not_yet_valid"
    assert read_token("hello", [service], now)[1].reason == "malformed_token"
    assert read_token(text + "x" * 3000, [service], now)[1].reason == "malformed_token"
    # Another authority's key: same format, a signer we do not know.
    assert read_token(text, [], now)[1].reason == "unknown_key"


def test_show_and_verify(shared_licence_env: LicenceEnv, tmp_path: Path) -> None:
    env = shared_licence_env
    services = env.services
    if not services.accounts.exists(HOLDER):
        services.accounts.create(HOLDER, "演示市鼓楼区好味道餐饮有限公司", PASSWORD)
    with pytest.raises(ConflictError):
        services.accounts.create(HOLDER, "重复", PASSWORD)
    with pytest.raises(InvalidRequestError):
        services.accounts.create("91350100M000100Y4X", "校验位错", PASSWORD)
    identifier = issue_example(env, FOOD_TYPE).licence.identifier

    app = create_app(env.settings)
    user_key = app.state.api_keys.create("user", USER_USCC).key
    issuer_key = app.state.api_keys.create("issuer", ISSUER_USCC).key
    with TestClient(app) as client:
        assert (
            client.post("/api/v1/holder/login", json={"holder_code": HOLDER, "password": "wrong pass"}).status_code
            == 401
        )
        login = client.post("/api/v1/holder/login", json={"holder_code": HOLDER, "password": PASSWORD})
        assert login.status_code == 200, login.text
        session = {"Authorization": f"Bearer {login.json()['session_token']}"}
        mine = client.get("/api/v1/holder/licences", headers=session).json()
        assert identifier in [m["identifier"] for m in mine]
        assert client.get("/api/v1/holder/licences").status_code == 401

        shown = client.post(
            f"/api/v1/holder/licences/{identifier}/show-token", headers=session, json={"fields": ["premises"]}
        )
        assert shown.status_code == 200, shown.text
        body = shown.json()
        assert set(body["fields"]) == {"operator_name", "premises"}  # the holder's name always shows

        # The QR code on the phone reads back to the same token with an independent decoder.
        scanned = scan(body["qr_png"], tmp_path)
        assert scanned == body["token"]

        def check(token: str, key: str = user_key) -> dict[str, object]:
            response = client.post(
                "/api/v1/show-tokens/verify", json={"token": token}, headers={"Authorization": f"Bearer {key}"}
            )
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

        first = check(scanned)
        assert (first["result"], first["face_data"]) == ("VALID", body["fields"]), first
        assert check(scanned)["reason"] == "replayed"  # once…
        # …wherever: a clerk who received the token cannot replay it at another department.
        assert check(scanned, issuer_key)["reason"] == "replayed"
        assert client.post("/api/v1/show-tokens/verify", json={"token": scanned}).status_code == 401

        # Someone else's licence, bad fields, too long a life.
        other = issue_example(env, FOOD_TYPE, data={**example_data(FOOD_TYPE), "operator_code": "91350100MA00070007"})
        url = f"/api/v1/holder/licences/{other.licence.identifier}/show-token"
        assert client.post(url, headers=session, json={}).status_code == 404
        bad = client.post(f"/api/v1/holder/licences/{identifier}/show-token", headers=session, json={"fields": ["x"]})
        assert bad.status_code == 422
        long = client.post(f"/api/v1/holder/licences/{identifier}/show-token", headers=session, json={"seconds": 900})
        assert long.status_code == 422

        # Revoked after showing: the next check is red.
        fresh = client.post(f"/api/v1/holder/licences/{identifier}/show-token", headers=session, json={}).json()
        services.lifecycle.revoke(CLI_ACTOR, identifier, "违法经营")
        assert check(fresh["token"])["reason"] == "revoked"
        refused = client.post(f"/api/v1/holder/licences/{identifier}/show-token", headers=session, json={})
        assert refused.status_code == 409

    # Expired: checked a minute later by the service itself.
    verifier = services.show_tokens
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=120)
    original = verifier.clock
    verifier.clock = lambda: later
    try:
        assert verifier.verify(COUNTER, body["token"]).reason == "expired"
    finally:
        verifier.clock = original

    with Session(env.registry.engine) as session:
        events = list(session.exec(select(AuditEventRow).where(AuditEventRow.target == identifier)))
    assert [e.action for e in events].count("show_token") >= 2
    # Every online check audited with its outcome (the replay too), the holder's code masked.
    checks = sorted((e for e in events if e.action == "show_verify"), key=lambda e: e.id or 0)
    assert [json.loads(e.detail_json or "{}")["reason"] for e in checks] == ["ok", "replayed", "replayed", "revoked"]
    assert {e.actor_department for e in checks[:2]} == {USER_USCC}
    assert all(e.holder_code_masked and "*" in e.holder_code_masked for e in checks)


def test_holder_service_refusals(shared_licence_env: LicenceEnv) -> None:
    services = shared_licence_env.services
    with pytest.raises(AuthenticationError):
        services.holders.login("110105199001010011", "whatever-password")
    with pytest.raises(AuthenticationError):
        services.holders.holder_for_session("hs_not-a-session")
    holder = services.accounts.create("110105198001010016", "张三", "a-long-password")
    with pytest.raises(NotFoundError):
        services.holders.show_token(holder, "1.2.156.3005.2.11100000MA0000001Q001.11350100MB00000100.0000000001.001.C")


def test_cli_adds_holder_accounts(licence_env: LicenceEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from cert_authority.cli.main import app as cli_app

    settings = licence_env.settings
    monkeypatch.setenv("ECAS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ECAS_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("ECAS_KEK", "test-passphrase")
    args = ["holders", "add", "--code", HOLDER, "--name", "好味道餐饮", "--password-stdin"]
    result = CliRunner().invoke(cli_app, args, input=PASSWORD + "\n")
    assert result.exit_code == 0 and "913501********0Y43" in result.output and HOLDER not in result.output
    again = CliRunner().invoke(cli_app, args, input=PASSWORD + "\n")
    assert again.exit_code == 1 and again.output.startswith("错误：") and "已有账号" in again.output
    licence_env.services.holders.login(HOLDER, PASSWORD)
    unlocked = CliRunner().invoke(cli_app, ["holders", "unlock", HOLDER])
    assert unlocked.exit_code == 0 and "已解除 913501********0Y43 的登录限制" in unlocked.output
    staff = CliRunner().invoke(cli_app, ["staff", "unlock", "Nobody"])
    assert staff.exit_code == 0 and "已解除 nobody 的登录限制" in staff.output
    with Session(licence_env.registry.engine) as session:
        rows = session.exec(select(AuditEventRow).where(AuditEventRow.action == "login_unlocked")).all()
    assert [(row.actor, row.actor_role) for row in rows] == [("cli", "admin")] * 2


def test_the_longest_token_still_scans(shared_licence_env: LicenceEnv, tmp_path: Path) -> None:
    """Every field of the wordiest example licence (the drainage permit) disclosed: one QR code that
    zbarimg reads back exactly."""
    from templates.qr import qr_png
    from tests.conftest import DRAINAGE_TYPE

    env = shared_licence_env
    licence = issue_example(env, DRAINAGE_TYPE).licence
    now = dt.datetime.now(dt.timezone.utc)
    face = env.services.queries.get(CLI_ACTOR, licence.identifier).data
    text, _ = make_token(env.pki.service_signer(now), licence.identifier, face, now, dt.timedelta(seconds=60))
    assert len(text) < 1200
    assert scan(base64.b64encode(qr_png(text)).decode(), tmp_path) == text


def test_guessing_passwords_slows_that_address_and_locks_nobody_out(shared_licence_env: LicenceEnv) -> None:
    """Attack: five wrong guesses at someone's account used to lock it for 15 minutes, whoever sent
    them. Now the guessing address waits longer and longer; the holder, from elsewhere, logs in."""
    from cert_authority.errors import TooManyAttemptsError
    from cert_authority.holders.service import LocalAccounts

    engine = shared_licence_env.registry.engine
    now = [dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.timezone.utc)]
    accounts = LocalAccounts(engine, shared_licence_env.services.accounts.personal, clock=lambda: now[0])
    code, password = "110105197001010011", "the-right-password"
    accounts.create(code, "李四", password)
    attacker, holder = "198.51.100.7", "203.0.113.9"
    for _ in range(3):
        with pytest.raises(AuthenticationError):
            accounts.authenticate(code, "a wrong guess", attacker)
    with pytest.raises(TooManyAttemptsError, match="2 秒后再试"):
        accounts.authenticate(code, "another guess", attacker)  # refused before the password is checked
    assert accounts.authenticate(code, password, holder).holder_code == code  # not locked out
    now[0] += dt.timedelta(seconds=2)
    with pytest.raises(AuthenticationError):
        accounts.authenticate(code, "a fourth guess", attacker)
    with pytest.raises(TooManyAttemptsError, match="4 秒后再试"):  # the wait doubles
        accounts.authenticate(code, password, attacker)
    accounts.unlock(CLI_ACTOR, code)  # an administrator clears the count
    assert accounts.authenticate(code, password, attacker).holder_code == code
    actions = ("login_failed", "login_throttled", "login_unlocked")
    with Session(engine) as session:
        rows = session.exec(select(AuditEventRow).where(col(AuditEventRow.action).in_(actions))).all()
    mine = [row for row in rows if row.actor in (attacker, holder, "cli")]
    assert sorted({row.action for row in mine}) == sorted(actions)
    assert [row.actor for row in mine if row.action == "login_failed"] == [attacker] * 4
    assert all(code not in (e.target + (e.holder_code_masked or "")) for e in rows)
