"""`ecas keys`: the CA's keys rewrapped to SM4 in place (OpenSSL opens them), KEK changed, data keys
rotated with the old versions kept; every step audited."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from cert_authority.services import migrated_engine
from cert_authority.settings import load_settings
from keys.pkcs8 import decrypt_private_key
from tests.cert_authority.cli_runner import fails, ok
from tests.conftest import openssl


def _as_before_sm4(path: Path, passphrase: bytes) -> None:
    """Rewrite a key file as ECAS wrote it before (PBES2 with AES-256-CBC), via OpenSSL."""
    plain = path.with_suffix(".plain")
    plain.write_bytes(decrypt_private_key(path.read_bytes(), passphrase).pkcs8_der())
    openssl(
        "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-inform", "DER", "-in", str(plain), "-out", str(path),
        "-passout", "pass:" + passphrase.decode(),
    )  # fmt: skip
    plain.unlink()


def test_rewrap_rotate_and_list(tmp_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ok("pki", "init")
    kek = os.environ["ECAS_KEK"].encode()
    key_dir = tmp_data_dir / "keys"
    for path in key_dir.glob("*.key.pem"):
        _as_before_sm4(path, kek)
    listed = json.loads(ok("keys", "list", "--json"))
    assert {item["cipher"] for item in listed["private_keys"]} == {"aes-256-cbc"}
    assert "已重新加密 2 个" in ok("keys", "rewrap")
    listed = json.loads(ok("keys", "list", "--json"))
    assert {item["cipher"] for item in listed["private_keys"]} == {"sm4-cbc"}
    for path in key_dir.glob("*.key.pem"):
        openssl("pkey", "-in", str(path), "-passin", "pass:" + kek.decode(), "-noout")
    ok("pki", "issue", "--name", "测试市市场监督管理局", "--uscc", "91350100M000100Y43")  # the CA still signs
    # three SM2 keys (root, branch, the seal's) and the data-key ring under the new KEK below

    assert "第 1 版" in ok("keys", "rotate", "pii")
    assert "第 2 版" in ok("keys", "rotate", "pii")
    listed = json.loads(ok("keys", "list", "--json"))
    assert [(k["purpose"], k["version"]) for k in listed["data_keys"]] == [("pii", 1), ("pii", 2), ("records", 1)]
    fails("keys", "rotate", "everything")

    # A change of KEK: the new one in ECAS_KEK, the old one named.
    monkeypatch.setenv("OLD_KEK", kek.decode())
    monkeypatch.setenv("ECAS_KEK", "the-new-kek-0123456789")
    fails("keys", "rewrap")  # without the old passphrase: refused, nothing changed
    assert "已重新加密 4 个" in ok("keys", "rewrap", "--old-kek-env", "OLD_KEK")
    listed = json.loads(ok("keys", "list", "--json"))
    assert [(k["purpose"], k["version"]) for k in listed["data_keys"]] == [("pii", 1), ("pii", 2), ("records", 1)]
    ok("pki", "issue", "--name", "测试市人力资源和社会保障局", "--uscc", "11350100MB00000201")

    engine = migrated_engine(load_settings())
    with engine.connect() as connection:
        query = text("SELECT action FROM audit_event WHERE action LIKE 'keys_%' ORDER BY id")
        actions = connection.execute(query).scalars().all()
    assert actions == ["keys_rewrap", "keys_rotate", "keys_rotate", "keys_rewrap"]


def test_staff_keygen_and_sign_challenge(tmp_data_dir: Path, tmp_path: Path) -> None:
    """The demo's way to sign in: `ecas staff keygen` writes the key file (OpenSSL opens it) and
    registers it; `ecas staff sign-challenge` answers the challenge the sign-in page shows."""
    from cert_authority.access.signin import SignatureRequiredError
    from cert_authority.access.staff import StaffAccounts
    from cert_authority.cli.main import app
    from tests.cert_authority.cli_runner import runner

    ok("pki", "init")
    settings = load_settings()
    staff = StaffAccounts(migrated_engine(settings), origin=settings.base_url)
    staff.create("root", "王海", "admin", None, "admin-password-1")
    key = tmp_path / "root.key.pem"
    keygen = ["staff", "keygen", "root", "--out", str(key), "--passphrase-stdin"]
    result = runner.invoke(app, keygen, input="key-pass-1\n")
    assert result.exit_code == 0 and "SM3 指纹" in result.output, result.output
    openssl("pkey", "-in", str(key), "-passin", "pass:key-pass-1", "-noout")
    with pytest.raises(SignatureRequiredError) as required:
        staff.login("root", "admin-password-1")
    challenge = required.value.challenge
    # Pasted as a browser copies a textarea: CRLF line ends, a blank line to finish.
    pasted = "key-pass-1\n" + challenge.message.replace("\n", "\r\n") + "\r\n"
    result = runner.invoke(app, ["staff", "sign-challenge", "--key", str(key), "--passphrase-stdin"], input=pasted)
    assert result.exit_code == 0, result.output
    token, _expires, member = staff.finish_login(challenge.id, result.output.strip())
    assert member.username == "root" and member.role == "admin" and token
    fails("staff", "keygen", "root", "--out", str(key), "--passphrase-stdin")  # never overwrites


def test_audit_verify_and_anchor_from_the_command_line(tmp_data_dir: Path) -> None:
    ok("pki", "init")
    ok("keys", "rotate", "pii")  # audited: chained rows
    report = json.loads(ok("audit", "verify", "--json"))
    assert report["ok"] and report["rows"] >= 1 and report["problems"] == []
    anchored = ok("audit", "anchor")
    assert "摘要（SM3）" in anchored and "已记入透明日志" in anchored
    assert "无需锚定" in ok("audit", "anchor")  # nothing moved since
    report = json.loads(ok("audit", "verify", "--json"))
    assert report["ok"] and report["anchor_log"] == {"runs": 1, "logged": 1, "unlogged_before": 0}
    engine = migrated_engine(load_settings())
    with engine.begin() as connection:
        row_id = connection.execute(text("SELECT max(id) FROM audit_event")).scalar_one()
        connection.execute(text("UPDATE audit_event SET actor = 'someone' WHERE id = :id"), {"id": row_id})
    from tests.cert_authority.cli_runner import ecas

    code, out = ecas("audit", "verify", "--json")
    assert code == 1
    problems = json.loads(out)["problems"]
    assert [(p["kind"], p["table"], p["id"]) for p in problems] == [("edited", "audit_event", row_id)]
    code, out = ecas("audit", "verify")
    assert code == 1 and f"被修改：audit_event #{row_id}" in out
