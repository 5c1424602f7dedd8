"""`ecas sync ...` and `ecas cities ...` at the command line: the happy path, and one clear 错误：
line (no trace) for each thing a user can get wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cert_authority.cli_runner import ecas, fails, ok
from tests.cert_authority.exchange.conftest import Province
from tests.conftest import KEK, LicenceEnv


@pytest.fixture
def city_env(licence_env: LicenceEnv, monkeypatch: pytest.MonkeyPatch) -> LicenceEnv:
    monkeypatch.setenv("ECAS_DATA_DIR", str(licence_env.settings.data_dir))
    monkeypatch.setenv("ECAS_DATABASE_URL", licence_env.settings.effective_database_url)
    monkeypatch.setenv("ECAS_KEK", KEK)
    monkeypatch.delenv("ECAS_PROVINCE_URL", raising=False)
    return licence_env


def test_register_a_city_from_its_exported_certificate(
    city_env: LicenceEnv, province: Province, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain, root = tmp_path / "city.pem", tmp_path / "root.pem"
    assert "已写入" in ok("sync", "certificate", "-o", str(chain))
    root.write_bytes(city_env.pki.root_certificate().pem)
    monkeypatch.setenv("ECAS_DATABASE_URL", province.settings.effective_database_url)
    province_dir = str(province.settings.data_dir)
    uscc = city_env.settings.authority_uscc
    assert "根" in fails(
        "--data-dir", province_dir, "cities", "add", "--uscc", uscc, "--name", "演示市", "--certificate", str(chain)
    )  # no root given, none configured
    assert "服务证书" in fails(
        "--data-dir",
        province_dir,
        "cities",
        "add",
        "--uscc",
        "91350100M000100Y43",
        "--name",
        "演示市",
        "--certificate",
        str(chain),
        "--root",
        str(root),
    )
    added = json.loads(
        ok(
            "--data-dir",
            province_dir,
            "cities",
            "add",
            "--uscc",
            uscc,
            "--name",
            "演示市",
            "--certificate",
            str(chain),
            "--root",
            str(root),
            "--json",
        )
    )
    assert added["uscc"] == uscc and added["acked_seq"] == 0
    assert "已登记" in fails(
        "--data-dir",
        province_dir,
        "cities",
        "add",
        "--uscc",
        uscc,
        "--name",
        "演示市",
        "--certificate",
        str(chain),
        "--root",
        str(root),
    )
    listed = json.loads(ok("--data-dir", province_dir, "cities", "list", "--json"))
    assert [city["uscc"] for city in listed] == [uscc]


def test_push_without_a_province_address_says_so(city_env: LicenceEnv) -> None:
    assert "ECAS_PROVINCE_URL" in fails("sync", "push", "--once", "--json")
    assert "ECAS_PROVINCE_URL" in fails("sync", "status")


def test_push_to_an_unreachable_province_exits_1_with_the_status(
    city_env: LicenceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECAS_PROVINCE_URL", "http://127.0.0.1:9")
    code, out = ecas("sync", "push", "--once", "--json")
    assert code == 1
    status = json.loads(out)
    assert status["failures"] == 1 and status["pending"] > 0 and "无法连接" in status["error"]
    assert "连续失败 1 次" in ok("sync", "status")
    assert "--from" in fails("sync", "reconcile", "--from", "yesterday")
