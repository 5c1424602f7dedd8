"""`ecas` as a newcomer meets it (issue 23): the port given to demo/serve is the public address
written into certificates and QR codes unless ECAS_BASE_URL says otherwise; a closed pipe is quiet;
`verify` tells a missing file (2) from an invalid licence (1) and lists its exit codes; commands
refuse a data directory that holds no ECAS data instead of answering 共 0 条."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cert_authority.cli.support import public_address
from cert_authority.settings import load_settings
from tests.cert_authority.cli_runner import ecas
from tests.conftest import FOOD_TYPE, LicenceEnv, issue_example

ECAS = str(Path(sys.executable).parent / "ecas")


def test_verify_tells_a_usage_error_from_an_invalid_licence(tmp_data_dir: Path, tmp_path: Path) -> None:
    code, out = ecas("--data-dir", str(tmp_path / "nothing-here"), "verify", str(tmp_path / "missing.pdf"))
    assert code == 2 and out.startswith("错误：") and len(out.strip().splitlines()) == 1, out
    code, out = ecas("verify", "--help")
    assert code == 0 and "退出码" in out and "INVALID" in out and "INDETERMINATE" in out


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_verify_missing_file_exits_2_and_a_bad_identifier_1(
    licence_env: LicenceEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _use(licence_env, monkeypatch)
    assert ecas("verify", str(tmp_path / "missing.pdf"))[0] == 2
    assert ecas("verify", "1.2.156.3005.2.nonsense")[0] == 1
    identifier = issue_example(licence_env, FOOD_TYPE).licence.identifier
    assert ecas("verify", identifier)[0] == 0


def test_commands_refuse_a_directory_without_ecas_data(tmp_data_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "typo"
    for command in (("licence", "list"), ("types", "list"), ("departments", "list")):
        code, out = ecas("--data-dir", str(empty), *command)
        assert code == 1 and "没有 ECAS 数据" in out and "共 0" not in out, (command, out)
    assert not (empty / "ecas.db").exists()  # nothing was made there


def test_the_port_is_the_public_address_unless_base_url_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECAS_BASE_URL", raising=False)
    monkeypatch.chdir(Path(__file__).parent)  # no .env here
    assert public_address(load_settings(), "127.0.0.1", 8201).base_url == "http://127.0.0.1:8201"
    assert public_address(load_settings(), "0.0.0.0", 9000).base_url == "http://127.0.0.1:9000"  # noqa: S104
    monkeypatch.setenv("ECAS_BASE_URL", "https://licences.example.gov.cn")
    assert public_address(load_settings(), "0.0.0.0", 9000).base_url == "https://licences.example.gov.cn"  # noqa: S104


def test_demo_port_goes_into_certificates(tmp_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECAS_BASE_URL", raising=False)
    code, out = ecas("demo", "--no-serve", "--port", "8201")
    assert code == 0, out
    assert "http://127.0.0.1:8201" in out
    pem = "".join(p.read_text() for p in (tmp_data_dir / "pki").rglob("*.pem"))
    from cryptography import x509

    addresses = []
    for block in pem.split("-----END CERTIFICATE-----")[:-1]:
        cert = x509.load_pem_x509_certificate((block + "-----END CERTIFICATE-----\n").encode())
        try:
            points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        except x509.ExtensionNotFound:
            continue
        addresses += [n.value for p in points for n in p.full_name or []]
    assert addresses and all(":8201/" in a for a in addresses), addresses


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_closed_pipe_is_quiet(licence_env: LicenceEnv) -> None:
    issue_example(licence_env, FOOD_TYPE)
    env = os.environ | {
        "ECAS_DATA_DIR": str(licence_env.settings.data_dir),
        "ECAS_DATABASE_URL": licence_env.settings.effective_database_url,
        "ECAS_KEK": licence_env.settings.require_kek().decode(),
    }
    # `true` reads nothing and exits at once: every line ecas writes goes to a closed pipe.
    run = subprocess.run(["bash", "-c", f"set -o pipefail; '{ECAS}' licence list | true"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stderr.strip() == "", run.stderr


def _use(env: LicenceEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECAS_DATA_DIR", str(env.settings.data_dir))
    monkeypatch.setenv("ECAS_DATABASE_URL", env.settings.effective_database_url)
    monkeypatch.setenv("ECAS_KEK", env.settings.require_kek().decode())


def test_batch_time_left_counts_from_the_first_row() -> None:
    from cert_authority.cli.batch import RemainingTime

    eta = RemainingTime(total=101)
    assert eta.after_one(now=30.0) is None  # 30 s of worker start before the first row: not counted
    for i in range(1, 51):
        shown = eta.after_one(now=30.0 + i * 0.05)
    assert shown == "约剩 2 秒"  # 50 rows in 2.5 s, 50 to go (counting the start would say 30 minutes)
