"""The `ecas` command line as an operator uses it: real files, real database, clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cert_authority.cli_runner import ecas
from tests.conftest import DEPT_USCC, openssl


def test_pki_lifecycle_from_the_command_line(tmp_data_dir: Path, tmp_path: Path) -> None:
    code, out = ecas("pki", "init")
    assert code == 0, out
    code, serial = ecas("pki", "issue", "--name", "测试市市场监督管理局", "--uscc", DEPT_USCC)
    assert code == 0 and re.fullmatch(r"[0-9A-F]+\n", serial), serial
    serial = serial.strip()

    code, out = ecas("pki", "revoke", serial, "--reason", "superseded")
    assert code == 0, out
    code, out = ecas("pki", "list", "--json")
    assert json.loads(out) == [
        {
            "serial": serial,
            "subject": "测试市市场监督管理局",
            "uscc": DEPT_USCC,
            "not_after": json.loads(out)[0]["not_after"],
            "status": "revoked",
            "reason": "superseded",
        }
    ]

    export = tmp_path / "export"
    code, out = ecas("pki", "export", str(export))
    assert code == 0, out
    crl_text = openssl("crl", "-inform", "DER", "-in", str(export / "crl.der"), "-text", "-noout").stdout
    assert serial in crl_text.decode().replace(":", "") and b"Superseded" in crl_text
    assert (export / f"seal-{serial}.pem").exists()

    # Keys rest encrypted, owner-only.
    for key_file in (tmp_data_dir / "keys").iterdir():
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert key_file.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pki", "issue", "--name", "某局", "--uscc", "91350100M000100Y44"), "校验位错误"),
        (("pki", "issue", "--name", "某局", "--uscc", "91350100M00010OY43"), "非法字符"),
        (("pki", "revoke", "XYZ"), "十六进制"),
        (("pki", "revoke", "ABCDEF", "--reason", "lost"), "吊销原因 'lost' 无效"),
        (("pki", "revoke", "ABCDEF"), "未签发"),
        (("pki", "init"), "已初始化"),
    ],
)
def test_bad_input_gets_one_clear_line(tmp_data_dir: Path, args: tuple[str, ...], message: str) -> None:
    assert ecas("pki", "init")[0] == 0
    code, out = ecas(*args)
    assert code == 1 and message in out, out


def test_commands_explain_missing_setup(tmp_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = ecas("pki", "crl")
    assert code == 1 and "ecas pki init" in out
    monkeypatch.delenv("ECAS_KEK")
    code, out = ecas("pki", "init")
    assert code == 1 and "ECAS_KEK" in out
    assert not (tmp_data_dir / "pki" / "branch.pem").exists()


@pytest.mark.slow  # ecas demo: 30 licences
def test_data_dir_option_and_demo_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECAS_KEK", raising=False)
    data = tmp_path / "demo-data"
    code, first = ecas("--data-dir", str(data), "demo", "--no-serve")
    assert code == 0 and "演示模式" in first, first
    assert (data / "demo-kek").stat().st_mode & 0o777 == 0o600
    assert (data / "province" / "demo-kek").stat().st_mode & 0o777 == 0o600  # the province: its own
    code, second = ecas("--data-dir", str(data), "demo", "--no-serve")
    assert code == 0 and "未做改动" in second
    code, listing = ecas("--data-dir", str(data), "pki", "list", "--json")
    assert len(json.loads(listing)) == 4  # three seals and the authority's service certificate
    code, types = ecas("--data-dir", str(data), "types", "list", "--json")
    assert code == 0
    assert {t["name"] for t in json.loads(types)} == {
        "食品经营许可证", "营业执照", "职业资格证书", "城镇污水排入排水管网许可证"}
    assert all(t["latest_version"] == 1 for t in json.loads(types))
    code, departments = ecas("--data-dir", str(data), "departments", "list", "--json")
    assert len(json.loads(departments)) == 3
