"""A case at the counter from the command line, on the demo as `ecas demo --no-serve` leaves it (on
SQLite and PostgreSQL): the checklist printed in the shape scripts rely on, two reuses (a duty rule
and the demo holder's standing authorisation), the sealed receipt that `ecas verify` calls VALID,
duty rules, matters and statistics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import openpyxl
import pytest

from cert_authority.demo import BUSINESS_TYPE, DEMO_CASE_MATTER, DEPARTMENTS, FOOD_TYPE, demo_holders
from cert_authority.services import licence_services
from cert_authority.settings import load_settings
from tests.cert_authority.cli_runner import ecas, fails, ok

COUNTER_USCC = DEPARTMENTS[2].uscc
EXAMPLE_MATTERS = Path(__file__).resolve().parents[3] / "examples" / "matters"


@pytest.fixture
def demo(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("ECAS_KEK", raising=False)
    monkeypatch.setenv("ECAS_DATABASE_URL", database_url)
    data = tmp_path / "demo"
    monkeypatch.setenv("ECAS_DATA_DIR", str(data))
    out = ok("demo", "--no-serve")
    assert "登记办事事项" in out and "依职责使用营业执照" in out and "颁发营业执照 10 份" in out
    again = ok("demo", "--no-serve")
    assert "未做改动" in again  # idempotent: no second rule, authorisation or matter
    return data


def test_a_case_on_the_demo_from_the_command_line(demo: Path, tmp_path: Path) -> None:
    applicant = demo_holders()[0][0]
    listed = json.loads(ok("matters", "list", "--json"))
    assert len(listed) == len(list(EXAMPLE_MATTERS.glob("*.yaml")))
    assert "申请人提交" in ok("matters", "show", DEMO_CASE_MATTER)

    opened = ok("cases", "open", "--department", COUNTER_USCC, "--matter", DEMO_CASE_MATTER,
                "--applicant", applicant, "--case-number", "CG-2026-0042", "--json")
    checklist = json.loads(opened)
    assert set(checklist) == {"case", "materials"}
    assert [set(m) for m in checklist["materials"]] == [{"name", "licence_type", "candidates"}] * 3
    business, food, drawings = checklist["materials"]
    assert business["licence_type"] == BUSINESS_TYPE and food["licence_type"] == FOOD_TYPE
    assert drawings == {"name": "内部排水管网、检测井及排放口位置图", "licence_type": None, "candidates": []}
    [by_duty] = business["candidates"]
    [by_consent] = food["candidates"]
    assert set(by_duty) == {"identifier", "basis"}
    assert (by_duty["basis"], by_consent["basis"]) == ("duty_rule", "consent")
    case = str(checklist["case"])

    # An output file that cannot be written is refused before anything is done (found trying the
    # CLI as a user: the reuse was recorded, or the case closed, and then the write failed).
    code, out = ecas("cases", "reuse", case, "--identifier", by_duty["identifier"], "--copy", "/nonexistent/c.pdf")
    assert code == 2 and "/nonexistent" in out, out
    code, out = ecas("cases", "close", case, "-o", str(tmp_path))
    assert code == 2 and "是一个目录" in out, out
    assert all(m["reused"] is None for m in json.loads(ok("cases", "show", case, "--json"))["materials"])

    reused = json.loads(ok("cases", "reuse", case, "--identifier", by_duty["identifier"], "--json",
                           "--copy", str(tmp_path / "copy.pdf")))
    assert reused["basis"] == "duty_rule" and reused["face_data"]["uscc"] == applicant
    assert (tmp_path / "copy.pdf").read_bytes().startswith(b"%PDF")
    # The copy is this authority's too (found trying the CLI as a user: INDETERMINATE, "可能…重新盖章").
    copy = json.loads(ecas("verify", str(tmp_path / "copy.pdf"), "--json")[1])
    assert copy["result"] == "VALID" and copy["subject"]["kind"] == "annotated_copy", copy
    assert copy["subject"]["identifier"] == by_duty["identifier"] and "CG-2026-0042" in copy["subject"]["cause"]
    consent = json.loads(ok("cases", "reuse", case, "--identifier", by_consent["identifier"], "--json"))
    assert (consent["basis"], consent["consent"]) == ("consent", "authorisation")
    assert "已复用" in ok("cases", "show", case)
    assert json.loads(ok("cases", "show", case, "--json"))["materials"][2]["reused"] is None

    receipt = tmp_path / "receipt.pdf"
    assert ecas("cases", "close", case, "-o", "/nonexistent/receipt.pdf")[0] == 2
    assert json.loads(ok("cases", "show", case, "--json"))["status"] == "open"
    assert "已办结" in ok("cases", "close", case, "-o", str(receipt))
    again = tmp_path / "again.pdf"
    ok("cases", "close", case, "-o", str(again))
    assert again.read_bytes() == receipt.read_bytes()
    code, verdict = ecas("verify", str(receipt))
    assert code == 0, verdict
    assert "VALID" in verdict and "材料复用清单：办件" in verdict and "CG-2026-0042" in verdict
    report = json.loads(ecas("verify", str(receipt), "--json")[1])
    assert report["subject"]["kind"] == "reuse_receipt"
    assert "已办结" in fails("cases", "reuse", case, "--identifier", by_duty["identifier"])

    assert "文件或目录不存在：/nonexistent/s.xlsx" in fails("stats", "--xlsx", "/nonexistent/s.xlsx")  # not Errno 2
    stats = json.loads(ok("stats", "--json"))
    # A copy is relied on as the licence: once that is revoked, so is the copy's verdict.
    ok("licence", "revoke", by_duty["identifier"], "--reason", "以欺骗手段取得")
    copy = json.loads(ecas("verify", str(tmp_path / "copy.pdf"), "--json")[1])
    assert (copy["result"], copy["reason"]) == ("INVALID", "revoked"), copy
    assert stats["totals"]["cases"] == 1 and stats["totals"]["materials_reused"] == 2
    assert stats["totals"]["licences_issued"] == 40 and stats["totals"]["reuse_rate"] == 0.6667
    by_matter = json.loads(ok("stats", "--by", "matter", "--json"))
    assert any(r["key"] == DEMO_CASE_MATTER and r["materials_required"] == 3 for r in by_matter["rows"])
    assert ok("stats", "--csv").startswith("period,key,")
    ok("stats", "--by", "department", "--xlsx", str(tmp_path / "stats.xlsx"))
    sheet = openpyxl.load_workbook(tmp_path / "stats.xlsx").active
    assert sheet["A1"].value == "统计周期（日）" and sheet["B1"].value == "部门"
    assert "复用率" in ok("stats", "--period", "month")


def test_duty_rules_and_bad_input_from_the_command_line(demo: Path, tmp_path: Path) -> None:
    applicant = demo_holders()[0][0]
    [rule] = json.loads(ok("duty-rules", "list", "--json"))
    assert (rule["matters"], rule["state"]) == ([DEMO_CASE_MATTER], "active")
    added = ok("duty-rules", "add", "--department", COUNTER_USCC, "--type", FOOD_TYPE, "--matter", DEMO_CASE_MATTER,
               "--valid-until", "2099-12-31")
    found = re.search(r"依职责用证规则 (\d+)", added)
    assert found, added
    rule_id = found.group(1)
    assert "适用至 2099-06-30" in ok("duty-rules", "expire", rule_id, "--on", "2099-06-30")
    assert "已撤销" in ok("duty-rules", "withdraw", rule_id)
    assert "withdrawn" in ok("duty-rules", "list")
    assert "应为 YYYY-MM-DD" in fails("duty-rules", "add", "--department", COUNTER_USCC, "--type", FOOD_TYPE,
                                      "--valid-until", "someday")
    assert "没有编号为 999 的依职责用证规则" in fails("duty-rules", "withdraw", "999")

    base = ("cases", "open", "--department", COUNTER_USCC, "--matter", DEMO_CASE_MATTER)
    assert "事项 nope 尚未登记" in fails("cases", "open", "--department", COUNTER_USCC, "--matter", "nope",
                                    "--applicant", applicant)
    assert "校验位错误" in fails(*base, "--applicant", applicant[:-1] + "0")
    assert "不办理事项" in fails("cases", "open", "--department", DEPARTMENTS[0].uscc, "--matter", DEMO_CASE_MATTER,
                             "--applicant", applicant)
    # A malformed code or identifier is named as such (found trying the CLI as a user: "handles no
    # matter" for a department code one character short, "holds no such licence" for a bad check).
    assert "应为18位" in fails("cases", "open", "--department", COUNTER_USCC[:-1], "--matter", DEMO_CASE_MATTER,
                             "--applicant", applicant)
    case = str(json.loads(ok(*base, "--applicant", applicant, "--json"))["case"])
    [business] = json.loads(ok("cases", "show", case, "--json"))["materials"][0]["candidates"]
    wrong = business["identifier"][:-1] + ("A" if business["identifier"][-1] != "A" else "B")
    assert "证照标识有误" in fails("cases", "reuse", case, "--identifier", wrong)
    assert "没有编号为 999 的办件" in fails("cases", "close", "999", "-o", str(tmp_path / "x.pdf"))
    assert "已登记" in fails("matters", "register", str(EXAMPLE_MATTERS / "skills-subsidy.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("code: x\nname: 事项\ndepartments: []\nmaterials: []\ncolour: red\n", encoding="utf-8")
    assert "未知的键" in fails("matters", "register", str(bad))
    assert "--by 应为" in fails("stats", "--by", "colour")


def test_a_show_token_as_consent_from_the_command_line(demo: Path) -> None:
    """`ecas cases reuse CASE --show-token TOKEN`: the licence the token shows, once."""
    applicant = demo_holders()[0][0]
    services = licence_services(load_settings())
    holder = services.accounts.holder(applicant)
    [food] = [item.identifier for item in services.holders.licences(holder) if item.type_code == FOOD_TYPE]
    token, _ = services.holders.show_token(holder, food)
    opened = json.loads(ok("cases", "open", "--department", COUNTER_USCC, "--matter", DEMO_CASE_MATTER,
                           "--applicant", applicant, "--json"))
    case = str(opened["case"])
    reused = json.loads(ok("cases", "reuse", case, "--show-token", token, "--json"))
    assert (reused["identifier"], reused["basis"], reused["consent"]) == (food, "consent", "show_token")
    assert "只能用一次" in fails("cases", "reuse", case, "--show-token", token)
    assert "亮证码" in fails("cases", "reuse", case, "--show-token", token[:-4] + "AAAA")
    assert "证照标识" in fails("cases", "reuse", case)
