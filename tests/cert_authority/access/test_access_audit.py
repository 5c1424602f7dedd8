"""Changes to API keys and staff accounts are audited in the HMAC-SM3 chain (issue 25): each one,
made through `ecas`, is an audit row naming the actor and what changed; `ecas audit verify` covers
it (the chain verifies, every row is chained) and finds it deleted; no key, key hash, password or
password hash is in the audit table."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from cert_authority.store.chain import verify_chains
from cert_authority.store.data_keys import RECORDS, data_key_ring
from tests.cert_authority.cli_runner import fails, ok, runner
from tests.conftest import ISSUER_USCC, KEK, USER_USCC, LicenceEnv

PASSWORD = "staff-password-first"
NEW_PASSWORD = "staff-password-second"
ACTIONS = [
    "apikey_create",
    "apikey_revoke",
    "staff_create",
    "staff_role_change",
    "staff_password_reset",
    "staff_disable",
    "staff_enable",
    "staff_key_register",
    "staff_key_revoke",
]


@pytest.fixture
def cli_env(licence_env: LicenceEnv, monkeypatch: pytest.MonkeyPatch) -> LicenceEnv:
    """`ecas` run in-process on licence_env's database and data directory."""
    monkeypatch.setenv("ECAS_DATA_DIR", str(licence_env.settings.data_dir))
    monkeypatch.setenv("ECAS_DATABASE_URL", licence_env.settings.effective_database_url)
    monkeypatch.setenv("ECAS_KEK", KEK)
    return licence_env


def _changes(env: LicenceEnv) -> dict[str, str]:
    """Every kind of change, through the command line; the secrets it handled."""
    from cert_authority.cli.main import app

    key = ok("apikey", "create", "--role", "issuer", "--uscc", ISSUER_USCC).strip().splitlines()[0]
    assert key.startswith("ecas_")
    ok("apikey", "revoke", key[:12])
    add = ["staff", "add", "--username", "clerk", "--name", "李明", "--role", "issuer", "--department", ISSUER_USCC,
           "--password-stdin"]  # fmt: skip
    assert runner.invoke(app, add, input=PASSWORD + "\n").exit_code == 0
    ok("staff", "set-role", "clerk", "--role", "user", "--department", USER_USCC)
    reset = runner.invoke(app, ["staff", "reset-password", "clerk", "--password-stdin"], input=NEW_PASSWORD + "\n")
    assert reset.exit_code == 0, reset.output
    ok("staff", "disable", "clerk")
    ok("staff", "enable", "clerk")
    public = env.settings.data_dir / "clerk.pub.pem"
    from keys.sm2 import SM2PrivateKey

    public.write_bytes(SM2PrivateKey.generate().public_key.to_pem())
    fingerprint = ok("staff", "register-key", "clerk", str(public)).rsplit("SM3 指纹 ", 1)[1].rstrip("）\n")
    ok("staff", "revoke-key", "clerk", fingerprint)
    with env.engine.connect() as connection:
        key_hash = connection.execute(text("SELECT key_hash FROM api_key ORDER BY id DESC LIMIT 1")).scalar_one()
        password_hash = connection.execute(
            text("SELECT password_hash FROM staff_account WHERE username = 'clerk'")
        ).scalar_one()
    return {"key": key, "key_hash": key_hash, "password": NEW_PASSWORD, "password_hash": password_hash}


def _rows(env: LicenceEnv) -> list[dict[str, object]]:
    query = text("SELECT * FROM audit_event WHERE action LIKE 'apikey_%' OR action LIKE 'staff_%' ORDER BY id")
    with env.engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def test_every_change_is_a_chained_audit_row_without_secrets(cli_env: LicenceEnv) -> None:
    secrets = _changes(cli_env)
    rows = _rows(cli_env)
    assert [row["action"] for row in rows] == ACTIONS
    assert all(row["actor"] == "cli" and row["actor_role"] == "admin" for row in rows)
    assert all(row["chain_mac"] is not None for row in rows)  # in `ecas audit verify`'s scope
    details = {row["action"]: json.loads(str(row["detail_json"])) for row in rows}
    assert details["apikey_create"] == {"role": "issuer", "department": ISSUER_USCC}
    assert details["staff_role_change"] == {
        "username": "clerk",
        "role": ["issuer", "user"],
        "department": [ISSUER_USCC, USER_USCC],
    }
    assert details["staff_password_reset"] == {"username": "clerk"}
    # No secret anywhere in the audit table, nor a part of one (the key's prefix, a hash's start).
    with cli_env.engine.connect() as connection:
        dump = "\n".join(repr(tuple(row)) for row in connection.execute(text("SELECT * FROM audit_event")))
    for name, value in secrets.items():
        assert value not in dump and value[:12] not in dump, name
    assert PASSWORD not in dump
    verified = json.loads(ok("audit", "verify", "--json"))
    assert verified["ok"], verified["problems"]


def test_deleting_a_change_is_found(cli_env: LicenceEnv) -> None:
    _changes(cli_env)
    keys = data_key_ring(cli_env.settings).all_versions(RECORDS)
    ok("audit", "anchor")  # the heads too are vouched for (each command is a process: its own chain)
    for row in _rows(cli_env):
        with cli_env.engine.connect() as connection:
            transaction = connection.begin()
            connection.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": row["id"]})
            report = verify_chains(connection, keys)
            transaction.rollback()
        found = [(p.kind, p.partition, p.seq) for p in report.problems]
        assert len(found) == 1 and found[0][0] in {"deleted", "truncated"}, (row["action"], found)
        assert found[0][1:] == (row["chain_partition"], row["chain_seq"]), row["action"]
    ok("audit", "verify")  # all rolled back: whole again


def test_account_changes_take_effect_and_bad_input_is_refused(cli_env: LicenceEnv) -> None:
    from cert_authority.access.staff import StaffAccounts
    from cert_authority.errors import AuthenticationError

    _changes(cli_env)
    accounts = StaffAccounts(cli_env.engine)
    token, _, member = accounts.login("clerk", NEW_PASSWORD)
    assert (member.role, member.department_uscc) == ("user", USER_USCC)
    with pytest.raises(AuthenticationError):
        accounts.login("clerk", PASSWORD)  # the old password no longer opens it
    ok("staff", "disable", "clerk")
    with pytest.raises(AuthenticationError):
        accounts.member_for_session(token)  # disabling ends its sessions
    with pytest.raises(AuthenticationError):
        accounts.login("clerk", NEW_PASSWORD)
    fails("staff", "disable", "clerk")  # already
    fails("staff", "enable", "nobody")
    fails("staff", "set-role", "clerk", "--role", "root")
    fails("staff", "set-role", "clerk", "--role", "admin", "--department", ISSUER_USCC)
    fails("staff", "set-role", "clerk", "--role", "user", "--department", USER_USCC)  # no change
    fails("apikey", "revoke", "ecas_nothere")
    assert [row["action"] for row in _rows(cli_env)] == [*ACTIONS, "staff_disable"]  # refusals change nothing
