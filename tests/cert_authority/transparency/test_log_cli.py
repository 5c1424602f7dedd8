"""`ecas log verify` as a witness: two heads saved by `ecas log head -o`, checked for signatures and
consistency (from the database, or from a running service with --url); a rewritten log, a removed
or edited leaf, a forged or foreign head, and files that are not heads are caught."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from cert_authority.actors import CLI_ACTOR
from tests.cert_authority.cli_runner import ecas, fails, ok
from tests.conftest import FOOD_TYPE, KEK, LicenceEnv, issue_example


@pytest.fixture
def cli(licence_env: LicenceEnv, monkeypatch: pytest.MonkeyPatch) -> LicenceEnv:
    settings = licence_env.settings
    monkeypatch.setenv("ECAS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ECAS_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("ECAS_KEK", KEK)
    return licence_env


def _two_heads(env: LicenceEnv, tmp_path: Path) -> tuple[Path, Path]:
    issue_example(env, FOOD_TYPE)
    old = tmp_path / "old.json"
    assert "已写入" in ok("log", "head", "-o", str(old))
    for _ in range(3):
        issue_example(env, FOOD_TYPE)
    new = tmp_path / "new.json"
    ok("log", "head", "-o", str(new))
    assert json.loads(new.read_text())["tree_size"] == 4
    return old, new


def test_witness_accepts_an_honest_log(cli: LicenceEnv, tmp_path: Path) -> None:
    old, new = _two_heads(cli, tmp_path)
    out = ok("log", "verify", "--from", str(old), "--to", str(new))
    assert "一致性证明成立：1 → 4" in out and "重算出 --to 树头的树根" in out
    ok("log", "verify", "--from", str(new), "--to", str(new))  # a head is consistent with itself
    # The certificate can be pinned from a file (a witness elsewhere).
    certificate = tmp_path / "service.pem"
    certificate.write_text(json.loads(new.read_text())["certificate"])
    ok("log", "verify", "--from", str(old), "--to", str(new), "--certificate", str(certificate))


def test_witness_catches_a_rewritten_log(cli: LicenceEnv, tmp_path: Path) -> None:
    """The operator deletes a licence's leaf and rebuilds the tree and heads from the rest, signing
    with the real key: the new head is validly signed, but not consistent with the old one."""
    old, _ = _two_heads(cli, tmp_path)
    with cli.engine.begin() as connection:
        connection.execute(text("DELETE FROM log_entry WHERE leaf_index = 0"))
        connection.execute(text("UPDATE log_entry SET leaf_index = NULL"))
        connection.execute(text("DELETE FROM log_tile"))
        connection.execute(text("DELETE FROM log_head"))
    cli.services.log.tiles.clear()
    issue_example(cli, FOOD_TYPE)  # and grows it to size 4 again
    rewritten = tmp_path / "rewritten.json"
    ok("log", "head", "-o", str(rewritten))
    assert json.loads(rewritten.read_text())["tree_size"] == 4
    code, out = ecas("log", "verify", "--from", str(old), "--to", str(rewritten))
    assert code == 1 and "树头签名有效" in out and "一致性证明不成立" in out


def test_witness_catches_a_removed_or_edited_leaf(cli: LicenceEnv, tmp_path: Path) -> None:
    old, new = _two_heads(cli, tmp_path)
    with cli.engine.begin() as connection:
        leaf = bytes(connection.execute(text("SELECT leaf FROM log_entry WHERE leaf_index = 2")).scalar_one())
        connection.execute(
            text("UPDATE log_entry SET leaf = :leaf WHERE leaf_index = 2"), {"leaf": leaf[:-1] + b"\x00"}
        )
    code, out = ecas("log", "verify", "--from", str(old), "--to", str(new))
    assert code == 1 and "日志记录被改动" in out
    with cli.engine.begin() as connection:
        connection.execute(text("DELETE FROM log_entry WHERE leaf_index = 2"))
    code, out = ecas("log", "verify", "--from", str(old), "--to", str(new))
    assert code == 1 and "日志记录不全" in out and "[2]" in out


def test_witness_refuses_forged_heads_and_bad_files(cli: LicenceEnv, tmp_path: Path) -> None:
    old, new = _two_heads(cli, tmp_path)
    forged = json.loads(new.read_text())
    forged["tree_size"] = 3  # a smaller tree under the same signature
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    code, out = ecas("log", "verify", "--from", str(old), "--to", str(tmp_path / "forged.json"))
    assert code == 1 and "--to 树头签名无效" in out
    backwards = ecas("log", "verify", "--from", str(new), "--to", str(old))
    assert backwards[0] == 1 and "比 --to 的（1）大" in backwards[1]
    (tmp_path / "junk.json").write_text("[1, 2]")
    fails("log", "verify", "--from", str(tmp_path / "junk.json"), "--to", str(new))
    (tmp_path / "half.json").write_text(json.dumps({"tree_size": 1}))
    fails("log", "verify", "--from", str(tmp_path / "half.json"), "--to", str(new))
    fails("log", "verify", "--from", str(tmp_path / "missing.json"), "--to", str(new))
    (tmp_path / "not-a-cert.pem").write_text("hello")
    fails("log", "verify", "--from", str(old), "--to", str(new), "--certificate", str(tmp_path / "not-a-cert.pem"))


def test_backfill_and_integrate_commands(cli: LicenceEnv) -> None:
    licence = issue_example(cli, FOOD_TYPE).licence
    cli.services.lifecycle.revoke(CLI_ACTOR, licence.identifier, "违法经营")
    with cli.engine.begin() as connection:
        connection.execute(text("DELETE FROM log_entry"))  # as before the log existed
    assert "没有排队的记录" in ok("log", "integrate")
    assert "补记 2 条" in ok("log", "backfill")
    assert "补记 0 条" in ok("log", "backfill")
    code, out = ecas("verify", licence.identifier)
    assert code == 1 and "logged at index 0" in out  # revoked (INVALID), and logged


@pytest.mark.slow  # ecas serve --workers 2 in subprocesses
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_witness_over_http_against_two_workers(cli: LicenceEnv, tmp_path: Path) -> None:
    """Two server workers sequence on a timer (one at a time, by the advisory lock); a witness
    elsewhere saves the served heads and checks them with --url and a pinned certificate."""
    import time

    import httpx

    from tests.cert_authority.cli.test_serve_workers import two_workers

    with two_workers(cli, ECAS_LOG_INTERVAL_SECONDS="0.2") as base:

        def served_head(size: int) -> dict[str, object]:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                response = httpx.get(f"{base}/log/head", timeout=5)
                if response.status_code == 200 and response.json()["tree_size"] == size:
                    return dict(response.json())
                time.sleep(0.2)
            raise AssertionError(f"no head of size {size} was served")

        issue_example(cli, FOOD_TYPE)
        old = served_head(1)
        for _ in range(4):
            issue_example(cli, FOOD_TYPE)
        new = served_head(5)
        (tmp_path / "old.json").write_text(json.dumps(old))
        (tmp_path / "new.json").write_text(json.dumps(new))
        (tmp_path / "service.pem").write_text(str(new["certificate"]))
        out = ok(
            "log", "verify", "--from", str(tmp_path / "old.json"), "--to", str(tmp_path / "new.json"),
            "--certificate", str(tmp_path / "service.pem"), "--url", base,
        )
        assert "一致性证明成立：1 → 5" in out and "重算" not in out  # no database audit over HTTP


def test_witness_catches_a_leaf_refiled_under_another_licence(cli: LicenceEnv, tmp_path: Path) -> None:
    """A verification finds a licence's leaves by the identifier they are filed under: whoever
    refiles a revocation under another identifier (and un-revokes the licence in the registry)
    hides it there. The leaf is unchanged, so the root still checks; the witness reads the leaf."""
    issue_example(cli, FOOD_TYPE)
    old = tmp_path / "old.json"
    ok("log", "head", "-o", str(old))
    revoked = issue_example(cli, FOOD_TYPE).licence
    cli.services.lifecycle.revoke(CLI_ACTOR, revoked.identifier, "违法经营")
    new = tmp_path / "new.json"
    ok("log", "head", "-o", str(new))
    assert "日志记录重算出" in ok("log", "verify", "--from", str(old), "--to", str(new))
    with cli.engine.begin() as connection:
        connection.execute(
            text("UPDATE log_entry SET identifier = 'elsewhere' WHERE identifier = :id AND event = 'revoke'"),
            {"id": revoked.identifier},
        )
    code, out = ecas("log", "verify", "--from", str(old), "--to", str(new))
    assert code == 1 and "重算出 --to 树头的树根" in out and "证照标识或事件与记录内容不符" in out and "[2]" in out
