"""`ecas issue-batch` as an operator runs it on existing licences (CSV and JSON Lines, worker
processes, a real database on SQLite and PostgreSQL): rejects with reasons, reruns that skip what
was done, two runs at once that still issue each row once, and `ecas bench issue`."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from cert_authority.actors import CLI_ACTOR
from cert_authority.demo import demo_photo, demo_uscc
from cert_authority.issuing.batch import BatchRow, RowResult, read_rows, row_key
from cert_authority.issuing.personal import open_licence
from cert_authority.store.models import LicenceRow
from tests.cert_authority.cli_runner import ecas
from tests.cert_authority.issuing.test_issuance import _seal_certificate, check_ofd, check_pdf
from tests.conftest import (
    FOOD_TYPE,
    ISSUER_USCC,
    VOCATIONAL_TYPE,
    LicenceEnv,
    example_data,
    table_counts,
)


@pytest.fixture
def batch_env(licence_env: LicenceEnv, monkeypatch: pytest.MonkeyPatch) -> LicenceEnv:
    """A ready authority that `ecas` (and its worker processes) reach through ECAS_* variables."""
    settings = licence_env.settings
    monkeypatch.setenv("ECAS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ECAS_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("ECAS_KEK", "test-passphrase")
    return licence_env


def food_rows(count: int, start: int = 0) -> list[dict[str, str]]:
    base = example_data(FOOD_TYPE)
    return [
        {**base, "operator_name": f"演示市第{i + 1}号餐饮有限公司", "operator_code": demo_uscc("350100", 7000 + i)}
        for i in range(start, start + count)
    ]


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, columns or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def licence_count(env: LicenceEnv) -> int:
    return table_counts(env.registry.engine)["licence"]


@pytest.mark.slow  # a worker per core
def test_csv_batch_rejects_bad_rows_and_reruns_skip_what_was_done(batch_env: LicenceEnv, tmp_path: Path) -> None:
    env = batch_env
    good = food_rows(6)
    bad_check = {**food_rows(1, 100)[0], "operator_code": "91350100M000100Y4X"}
    missing = {**food_rows(1, 101)[0], "legal_representative": ""}
    batch = write_csv(tmp_path / "food.csv", [*good[:3], bad_check, *good[3:], missing])
    with batch.open("a", encoding="utf-8") as handle:
        handle.write("只有,三列,的行\n")
    before = table_counts(env.registry.engine)

    code, out = ecas("issue-batch", "--type", FOOD_TYPE, str(batch))
    assert code == 1 and "共 9 行：颁发 6 份，跳过 0 份（此前已颁发），拒绝 3 行" in out, out
    rejects = sorted(read_csv(tmp_path / "food.rejects.csv"), key=lambda r: int(r["_line"]))  # completion order
    assert [(r["_line"], r["operator_name"]) for r in rejects] == [
        ("5", bad_check["operator_name"]), ("9", missing["operator_name"]), ("10", "只有")
    ]
    assert "校验位" in rejects[0]["_reason"] and "legal_representative" in rejects[1]["_reason"]
    assert "该行有 3 列，表头有 8 列" in rejects[2]["_reason"]
    after = table_counts(env.registry.engine)
    assert {t: after[t] - before[t] for t in ("licence", "licence_event", "audit_event", "idempotency_key")} == {
        "licence": 6, "licence_event": 6, "audit_event": 6, "idempotency_key": 6
    }

    # Every licence is a complete, sealed licence: independent checks on one, stored digests on all.
    with Session(env.registry.engine) as session:
        rows = session.exec(select(LicenceRow).where(col(LicenceRow.type_code) == FOOD_TYPE)).all()
    personal = env.services.queries.personal
    assert sorted(open_licence(personal, r).holder_name for r in rows) == sorted(r["operator_name"] for r in good)
    assert len({r.identifier for r in rows}) == len({r.licence_number for r in rows}) == 6
    for row in rows:
        for fmt in ("pdf", "ofd"):
            env.services.queries.file(CLI_ACTOR, row.identifier, fmt)  # checks the stored SM3
    licence = env.services.queries.get(CLI_ACTOR, rows[0].identifier)
    seal_certificate = _seal_certificate(env, licence)
    check_pdf(env.services.queries.file(CLI_ACTOR, licence.identifier, "pdf"), seal_certificate, tmp_path / "l.pdf")
    check_ofd(env.services.queries.file(CLI_ACTOR, licence.identifier, "ofd"), seal_certificate,
              env.pki.branch_certificate())

    # Running the same file again issues nothing twice.
    code, out = ecas("issue-batch", "--type", FOOD_TYPE, str(batch), "--json")
    assert code == 1
    assert json.loads(out.strip().splitlines()[-1])["issued"] == 0
    assert json.loads(out.strip().splitlines()[-1])["skipped"] == 6
    assert licence_count(env) == after["licence"]

    # The rejects file, corrected, runs as it is ("_" columns are ignored).
    fixed = [{**r, "operator_code": demo_uscc("350100", 7100 + i), "legal_representative": "王五",
              "operator_name": r["operator_name"] or "补录餐饮有限公司"} for i, r in enumerate(rejects)]
    for row in fixed:
        row.update({k: v for k, v in good[0].items() if not row.get(k)})
    write_csv(tmp_path / "food.rejects.csv", fixed)
    code, out = ecas("issue-batch", "--type", FOOD_TYPE, str(tmp_path / "food.rejects.csv"))
    assert code == 0 and "颁发 3 份" in out and "拒绝 0 行" in out, out
    assert not (tmp_path / "food.rejects.rejects.csv").exists()
    assert licence_count(env) == after["licence"] + 3


def test_jsonl_batch_with_photos(batch_env: LicenceEnv, tmp_path: Path) -> None:
    base = example_data(VOCATIONAL_TYPE)
    (tmp_path / "photos").mkdir()
    lines = []
    for i in range(3):
        (tmp_path / "photos" / f"{i}.png").write_bytes(demo_photo(i))
        lines.append(json.dumps({**base, "holder_name": f"持证人{i}", "photo": f"photos/{i}.png"}, ensure_ascii=False))
    lines.append(json.dumps({**base, "photo": "photos/missing.png"}, ensure_ascii=False))
    lines.append(json.dumps({**base, "photo": "../outside.png"}, ensure_ascii=False))
    lines.append("{not json")
    lines.append("")
    batch = tmp_path / "people.jsonl"
    batch.write_text("\n".join(lines) + "\n", encoding="utf-8")

    code, out = ecas("issue-batch", "--type", VOCATIONAL_TYPE, str(batch), "--workers", "1", "--json")
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 1 and (summary["issued"], summary["rejected"]) == (3, 3), out
    rejects = [json.loads(line) for line in (tmp_path / "people.rejects.jsonl").read_text("utf-8").splitlines()]
    rejects.sort(key=lambda r: r["_line"])
    assert [r["_line"] for r in rejects] == [4, 5, 6]
    assert "照片文件 photos/missing.png 不存在" in rejects[0]["_reason"] and "目录之内" in rejects[1]["_reason"]
    assert rejects[2]["_raw"] == "{not json"
    with Session(batch_env.registry.engine) as session:
        issued = session.exec(select(LicenceRow).where(col(LicenceRow.type_code) == VOCATIONAL_TYPE)).all()
    assert len(issued) == 3 and all(r.photo_sm3 for r in issued)


@pytest.mark.slow  # two ecas processes with two workers each
def test_two_runs_at_once_issue_each_row_once(batch_env: LicenceEnv, tmp_path: Path) -> None:
    batch = write_csv(tmp_path / "food.csv", food_rows(120))
    command = [str(Path(sys.executable).with_name("ecas")), "issue-batch", "--type", FOOD_TYPE, str(batch),
               "--issuer", ISSUER_USCC, "--workers", "2", "--json"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
            for _ in range(2)]
    summaries = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err.decode()
        summaries.append(json.loads(out.decode().strip().splitlines()[-1]))
    assert sum(s["issued"] for s in summaries) == 120
    assert sum(s["issued"] + s["skipped"] for s in summaries) == 240
    with Session(batch_env.registry.engine) as session:
        rows = session.exec(select(LicenceRow)).all()
    assert len(rows) == 120 and len({r.identifier for r in rows}) == 120


def test_an_unreadable_batch_file_is_one_clear_line_and_issues_nothing(batch_env: LicenceEnv, tmp_path: Path) -> None:
    """Found trying the CLI as a user: a GBK file (Excel's CSV on a Chinese Windows), an empty one or
    another kind of file printed a Python traceback."""
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("operator_name,premises\n演示餐饮,鼓楼区\n".encode("gbk"))
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "rows.txt").write_text("a\n", encoding="utf-8")
    expected = {"gbk.csv": "不是 UTF-8 编码", "empty.csv": "是空的", "rows.txt": "应为 .csv 或 .jsonl"}
    before = licence_count(batch_env)
    for name, message in expected.items():
        code, out = ecas("issue-batch", "--type", FOOD_TYPE, "--issuer", ISSUER_USCC, str(tmp_path / name))
        assert code == 1 and message in out and "Traceback" not in out, out
    assert licence_count(batch_env) == before


def test_reading_batch_files(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("\ufeffa,b,_note\n1,2,x\n\n3,,y\n", encoding="utf-8")
    assert list(read_rows(path)) == [BatchRow(2, {"a": "1", "b": "2"}), BatchRow(4, {"a": "3"})]
    path.write_text("a,a\n1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="表头有重复"):
        list(read_rows(path))
    with pytest.raises(ValueError, match=r"应为 \.csv 或 \.jsonl"):
        list(read_rows(tmp_path / "rows.xlsx"))
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"a": 1, "_line": 7}\n[1]\n', encoding="utf-8")
    first, second = read_rows(jsonl)
    assert first == BatchRow(1, {"a": 1}) and isinstance(second, RowResult) and second.rejected
    # The key depends on the row's content, not on column order or "_" columns.
    key = row_key(FOOD_TYPE, ISSUER_USCC, BatchRow(1, {"a": "1", "b": "2"}))
    assert key == row_key(FOOD_TYPE, ISSUER_USCC, BatchRow(9, {"b": "2", "a": "1"}))
    assert key != row_key(FOOD_TYPE, ISSUER_USCC, BatchRow(1, {"a": "1", "b": "3"}))
