"""`ecas seals`, `ecas issue` and `ecas licence` as an operator uses them (CliRunner, real files, a
real database on SQLite and PostgreSQL), and `ecas demo` adding nothing the second time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from cert_authority.cli.main import app
from cert_authority.settings import Settings
from cert_authority.store.db import create_db_engine
from cert_authority.store.models import HolderAccountRow, StaffAccountRow
from tests.cert_authority.cli_runner import fails, ok, runner
from tests.conftest import (
    FOOD_TYPE,
    ISSUER_USCC,
    example_data,
    require_tool_or_skip,
    stored_files,
    table_counts,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "types" / "food-business-licence.yaml"


def sm3(data: bytes) -> str:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize().hex()


@pytest.fixture
def cli_env(tmp_data_dir: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("ECAS_DATABASE_URL", database_url)
    ok("pki", "init")
    ok("departments", "add", "--name", "演示市市场监督管理局", "--uscc", ISSUER_USCC, "--area-code", "350100",
       "--level", "city", "--roles", "issuer,user")
    ok("types", "register", str(EXAMPLE))
    data = tmp_path / "food.json"
    data.write_text(json.dumps(example_data(FOOD_TYPE), ensure_ascii=False), encoding="utf-8")
    return data


def test_seals_issue_and_licence_commands(cli_env: Path, tmp_path: Path) -> None:
    issue = ("issue", "--type", FOOD_TYPE, "--issuer", ISSUER_USCC, "--data", str(cli_env))
    assert "没有有效的电子印章" in fails(*issue)

    out = ok("seals", "register", "--uscc", ISSUER_USCC, "--name", "演示市市场监督管理局电子证照专用章",
             "--legal-representative", "陈明", "--generate", "--purpose", "电子证照专用章")
    assert "已备案印章 1" in out and "印章编码 350100" in out
    [seal] = json.loads(ok("seals", "list", "--json"))
    assert (seal["status"], seal["department_uscc"], seal["purpose"]) == ("active", ISSUER_USCC, "电子证照专用章")

    out = ok(*issue, "--idempotency-key", "cli-1")
    identifier, number, pdf, ofd = out.strip().splitlines()
    assert identifier.startswith(f"1.2.156.3005.2.{FOOD_TYPE}.{ISSUER_USCC}.")
    assert number.startswith("证照编号 ") and pdf.startswith("PDF SM3 ") and ofd.startswith("OFD SM3 ")
    result = runner.invoke(app, [*issue, "--idempotency-key", "cli-1"])
    assert result.exit_code == 0 and result.stdout.splitlines()[0] == identifier  # the same licence
    assert "幂等键已使用过" in result.output

    shown = json.loads(ok("licence", "show", identifier, "--json"))
    assert (shown["identifier"], shown["status"]) == (identifier, "issued")
    assert shown["holder"]["code"] == "91350100M000100Y43"  # in full: the operator reads one licence
    assert "演示市鼓楼区好味道餐饮有限公司" in ok("licence", "show", identifier)

    for fmt, line in (("pdf", pdf), ("ofd", ofd)):
        target = tmp_path / f"licence.{fmt}"
        ok("licence", "export", identifier, "--format", fmt, "-o", str(target))
        assert sm3(target.read_bytes()) == line.split()[-1]
    ok("licence", "export", identifier, "--format", "png", "-o", str(tmp_path / "licence.png"))
    assert f"PNG SM3 {sm3(tmp_path.joinpath('licence.png').read_bytes())}" in ok("licence", "show", identifier)
    text = subprocess_text(tmp_path / "licence.pdf")
    assert "演示市鼓楼区好味道餐饮有限公司" in text

    listed = json.loads(ok("licence", "list", "--json"))
    assert listed["total"] == 1 and listed["items"][0]["holder_code"] == "913501********0Y43"
    assert "913501********0Y43" in ok("licence", "list", "--type", FOOD_TYPE, "--status", "issued")

    change = tmp_path / "change.json"
    change.write_text(json.dumps({"premises": "演示市鼓楼区五四路102号"}, ensure_ascii=False), encoding="utf-8")
    new_identifier = ok("licence", "change", identifier, "--data", str(change), "--reason", "经营场所变更").split()[0]
    assert new_identifier.split(".")[-2] == "002"
    assert "不能吊销" in fails("licence", "revoke", identifier, "--reason", "违法经营")
    assert "已吊销" in ok("licence", "revoke", new_identifier, "--reason", "违法经营")
    assert "不能注销" in fails("licence", "cancel", new_identifier, "--reason", "歇业")
    history = json.loads(ok("licence", "history", new_identifier, "--json"))
    assert [e["action"] for e in history] == ["issue", "change", "change", "revoke"]
    assert "revoke" in ok("licence", "history", identifier)

    other = ok(*issue).splitlines()[0]
    assert "已注销" in ok("licence", "cancel", other, "--reason", "申请人歇业")
    assert json.loads(ok("licence", "list", "--status", "cancelled", "--json"))["total"] == 1
    # Pages by key: --page-size 1 and the printed cursor give each version once; --all lists them all.
    every = [i["identifier"] for i in json.loads(ok("licence", "list", "--all", "--json"))]
    first = ok("licence", "list", "--page-size", "1")
    cursor = first.strip().splitlines()[-1].split("--cursor ")[1]
    second = json.loads(ok("licence", "list", "--page-size", "1", "--cursor", cursor, "--json"))
    assert first.split()[0] == every[0] and second["items"][0]["identifier"] == every[1]
    assert len(set(every)) == len(every) == 3
    assert "cursor 无效" in fails("licence", "list", "--cursor", "not-a-cursor")

    revoked = ok("seals", "revoke", str(seal["id"]), "--reason", "keyCompromise", "--note", "测试")
    assert "已吊销印章 1" in revoked and seal["cert_serial"] in revoked
    assert json.loads(ok("pki", "list", "--json"))[0]["status"] == "revoked"
    assert "没有有效的电子印章" in fails(*issue)


def subprocess_text(path: Path) -> str:
    import subprocess

    out = subprocess.run([require_tool_or_skip("pdftotext"), str(path), "-"], capture_output=True, timeout=60)
    return out.stdout.decode()


SEAL = ("--name", "演示市市场监督管理局电子证照专用章", "--legal-representative", "陈明")


def test_cli_errors_are_one_line(cli_env: Path, tmp_path: Path) -> None:
    ok("seals", "register", "--uscc", ISSUER_USCC, *SEAL)
    base = ("issue", "--type", FOOD_TYPE, "--issuer", ISSUER_USCC)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    assert "不是有效的 UTF-8 JSON" in fails(*base, "--data", str(broken))
    twice = tmp_path / "twice.json"
    twice.write_text('{"operator_name": "a", "operator_name": "b"}', encoding="utf-8")
    assert "字段重复：operator_name" in fails(*base, "--data", str(twice))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({**example_data(FOOD_TYPE), "colour": "red"}), encoding="utf-8")
    assert "未知字段：colour" in fails(*base, "--data", str(unknown))
    assert "文件或目录不存在" in fails(*base, "--data", str(tmp_path / "missing.json"))
    assert "应为 YYYY-MM-DD" in fails(*base, "--data", str(cli_env), "--valid-from", "tomorrow")
    assert "由类型规定" in fails(*base, "--data", str(cli_env), "--valid-from", "2026-01-01")
    assert "证照标识应为" in fails("licence", "show", "1.2.156.3005.2.bogus")
    assert "--picture 与 --generate" in fails("seals", "register", "--uscc", ISSUER_USCC, *SEAL,
                                              "--picture", str(unknown), "--generate")
    assert "印章图片不是 PNG" in fails("seals", "register", "--uscc", ISSUER_USCC, *SEAL, "--picture", str(unknown))
    assert "吊销原因 'lost' 无效" in fails("seals", "revoke", "1", "--reason", "lost")


@pytest.mark.slow  # ecas demo twice
def test_demo_twice_adds_nothing_the_second_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECAS_KEK", raising=False)
    monkeypatch.delenv("ECAS_DATABASE_URL", raising=False)
    data = tmp_path / "demo"
    first = ok("--data-dir", str(data), "demo", "--no-serve")
    assert "备案电子印章" in first and "颁发食品经营许可证 10 份" in first and "颁发职业资格证书 10 份" in first
    settings = Settings(data_dir=data)
    engine = create_db_engine(settings.effective_database_url)
    counts, files = table_counts(engine), stored_files(settings)
    assert counts["licence"] == 40 and counts["seal"] == 3 and counts["issued_certificate"] == 4
    assert "吊销城镇污水排入排水管网许可证" in first and "工作人员 counter" in first
    assert "持证人  350102199005170121" in first
    accounts = _account_counts(engine)
    assert accounts == {"staff_account": 4, "holder_account": 6}
    second = ok("--data-dir", str(data), "demo", "--no-serve")
    assert "未做改动" in second and "已颁发 10 份" in second and "工作人员 counter" in second
    assert table_counts(engine) == counts and stored_files(settings) == files
    assert _account_counts(engine) == accounts
    listed = json.loads(ok("--data-dir", str(data), "licence", "list", "--json", "--page-size", "100"))
    assert listed["total"] == 40 and len({i["holder_code"] for i in listed["items"]}) == 20
    engine.dispose()


def _account_counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        return {
            "staff_account": session.exec(select(func.count()).select_from(StaffAccountRow)).one(),
            "holder_account": session.exec(select(func.count()).select_from(HolderAccountRow)).one(),
        }
