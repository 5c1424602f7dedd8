"""Sharing (用证): a using department reads a licence with a cause and the holder's use code (spent
once, bound to that department, withdrawable) or a duty rule; gets an annotated copy sealed by the
authority behind a 10-minute link (checked by qpdf, pdftotext and our verifier); the holder sees
every use. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.http.app import create_app
from tests.conftest import (
    FOOD_TYPE,
    OTHER_ISSUER_USCC,
    USER_USCC,
    LicenceEnv,
    example_data,
    issue_example,
    require_tool_or_skip,
)
from verification.report import Status

HOLDER = example_data(FOOD_TYPE)["operator_code"]
PASSWORD = "sharing-test-password"


def test_use_codes_duty_rules_and_annotated_copies(shared_licence_env: LicenceEnv, tmp_path: Path) -> None:
    env = shared_licence_env
    if not env.services.accounts.exists(HOLDER):
        env.services.accounts.create(HOLDER, "好味道餐饮", PASSWORD)
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    app = create_app(env.settings)
    keys = {
        "user": app.state.api_keys.create("user", USER_USCC).key,
        "other": app.state.api_keys.create("issuer", OTHER_ISSUER_USCC).key,
        "admin": app.state.api_keys.create("admin", None).key,
    }

    with TestClient(app) as client:

        def as_(who: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {keys[who]}"}

        token = client.post("/api/v1/holder/login", json={"holder_code": HOLDER, "password": PASSWORD}).json()
        holder = {"Authorization": f"Bearer {token['session_token']}"}
        use_url = f"/api/v1/licences/{identifier}/use"

        # Without the holder's code or a duty rule: nothing.
        assert client.post(use_url, headers=as_("user"), json={"cause": "办理变更"}).status_code == 403
        created = client.post(
            "/api/v1/holder/use-codes",
            headers=holder,
            json={"identifier": identifier, "department_uscc": USER_USCC, "purpose": "办理食品经营许可变更"},
        )
        assert created.status_code == 201, created.text
        code = created.json()["code"]
        assert len(code) == 8
        assert client.post(use_url, headers=as_("user"), json={"use_code": code}).status_code == 422  # no cause
        assert client.post(use_url, headers=as_("other"), json={"cause": "x", "use_code": code}).status_code == 403

        used = client.post(use_url, headers=as_("user"), json={"cause": "办理食品经营许可变更", "use_code": code})
        assert used.status_code == 200, used.text
        body = used.json()
        assert body["basis"] == "use_code" and body["face_data"]["operator_code"] == HOLDER
        again = client.post(use_url, headers=as_("user"), json={"cause": "再次使用", "use_code": code})
        assert again.status_code == 403  # one use only

        # The annotated copy: a real PDF, sealed by the authority, saying who may use it for what.
        copy = client.get(body["copy_url"].split("testserver", 1)[-1])
        assert copy.status_code == 200 and copy.headers["content-type"] == "application/pdf"
        path = tmp_path / "copy.pdf"
        path.write_bytes(copy.content)
        qpdf = subprocess.run([require_tool_or_skip("qpdf"), "--check", str(path)], capture_output=True, timeout=60)
        assert qpdf.returncode == 0, qpdf.stdout
        text = subprocess.run(
            [require_tool_or_skip("pdftotext"), str(path), "-"], capture_output=True, timeout=60, check=True
        ).stdout.decode()
        assert "仅供" in text and "办理食品经营许可变更" in text
        report = env.services.verification.verify_file(copy.content)
        valid = {c.name for c in report.checks if c.status is Status.VALID}
        assert valid >= {"integrity", "signature", "timestamp", "chain"}  # timestamped, as every seal
        assert report.result is Status.VALID and report.subject["kind"] == "annotated_copy"  # a copy, known as one
        assert report.subject["department"] == USER_USCC and "办理食品经营许可变更" in report.subject["cause"]
        # Made on the first download: every download after is that same file.
        assert client.get(body["copy_url"].split("testserver", 1)[-1]).content == copy.content

        # A withdrawn code no longer works.
        second = client.post(
            "/api/v1/holder/use-codes",
            headers=holder,
            json={"identifier": identifier, "department_uscc": USER_USCC, "purpose": "年检", "max_uses": 3},
        ).json()
        withdrawn = client.post(f"/api/v1/holder/use-codes/{second['id']}/withdraw", headers=holder).json()
        assert withdrawn["withdrawn"] is True
        assert (
            client.post(use_url, headers=as_("user"), json={"cause": "年检", "use_code": second["code"]}).status_code
            == 403
        )
        listed = client.get("/api/v1/holder/use-codes", headers=holder).json()
        assert all(c["code"] is None for c in listed) and len(listed) >= 2

        # Duty-based reads: granted by an admin only, then no code needed.
        rule = {"department_uscc": OTHER_ISSUER_USCC, "type_code": FOOD_TYPE}
        assert client.post("/api/v1/duty-rules", headers=as_("user"), json=rule).status_code == 403
        assert client.post("/api/v1/duty-rules", headers=as_("admin"), json=rule).status_code == 201
        duty = client.post(use_url, headers=as_("other"), json={"cause": "日常监督检查"})
        assert duty.status_code == 200 and duty.json()["basis"] == "duty"

        # The holder sees every use: who, when, why.
        uses = client.get("/api/v1/holder/uses", headers=holder).json()
        causes = {(u["department"], u["cause"]) for u in uses if u["identifier"] == identifier}
        assert {(USER_USCC, "办理食品经营许可变更"), (OTHER_ISSUER_USCC, "日常监督检查")} <= causes

        # The link expires; a revoked licence is not shared.
        sharing = app.state.sharing
        original = sharing.clock
        sharing.clock = lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=11)
        try:
            expired = client.get(body["copy_url"].split("testserver", 1)[-1])
            assert expired.status_code == 404 and "过期" in expired.json()["message"]
        finally:
            sharing.clock = original
        env.services.lifecycle.revoke(CLI_ACTOR, identifier, "违法经营")
        assert client.post(use_url, headers=as_("other"), json={"cause": "检查"}).status_code == 409


def test_a_failed_copy_does_not_spend_the_code(shared_licence_env: LicenceEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    env = shared_licence_env
    if not env.services.accounts.exists(HOLDER):
        env.services.accounts.create(HOLDER, "好味道餐饮", PASSWORD)
    holder = env.services.accounts.authenticate(HOLDER, PASSWORD)
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    sharing = env.services.sharing
    code, _ = sharing.create_use_code(holder, identifier, USER_USCC, "年度核查")
    counter = Actor(label="apikey:counter", role="user", department_uscc=USER_USCC)

    def broken(*_args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(sharing, "_annotated_copy", broken)
    with pytest.raises(RuntimeError):
        sharing.use_licence(counter, identifier, "年度核查", code)
    monkeypatch.undo()
    used = sharing.use_licence(counter, identifier, "年度核查", code.lower()[:4] + "-" + code.lower()[4:])
    assert used.basis == "use_code"  # the one use was still there, typed in lower case with a dash


def test_only_a_using_department_spends_a_use_code(shared_licence_env: LicenceEnv) -> None:
    """Attack: an auditor's or an issuer's key of the department the code was given to spent the
    holder's use code. Now only a user-role key may, and a refused try leaves the code unspent."""
    from cert_authority.errors import PermissionDeniedError

    env = shared_licence_env
    if not env.services.accounts.exists(HOLDER):
        env.services.accounts.create(HOLDER, "好味道餐饮", PASSWORD)
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    holder = env.services.accounts.authenticate(HOLDER, PASSWORD)
    code, _ = env.services.sharing.create_use_code(holder, identifier, USER_USCC, "办理变更")
    for role in ("auditor", "issuer"):
        with pytest.raises(PermissionDeniedError, match="权限不足"):
            env.services.sharing.use_licence(Actor(f"apikey:{role}", role, USER_USCC), identifier, "查看", code)
    used = env.services.sharing.use_licence(Actor("apikey:user", "user", USER_USCC), identifier, "办理变更", code)
    assert used.basis == "use_code"
