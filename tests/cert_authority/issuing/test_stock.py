"""Stock conversion (存量) and paper twins (同步制发), issue 20 part 5, on SQLite and PostgreSQL.

Before: a paper licence of 2022 came out dated today and valid from today, its number replaced
("未知字段：licence_number、issue_date"; "有效期由类型规定（5年），颁证时不能另行给出"). Now, under an
explicit origin, the e-licence carries the paper licence's number, dates and original issuer, the
sealed PDF shows them (read with poppler's pdftotext), the record keeps the conversion time apart,
the identifier is a standard one of the department's, and an edit of the new columns in the
database is caught by the record check."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlmodel import Session, col, select, update

from cert_authority.actors import CLI_ACTOR
from cert_authority.errors import ConflictError, LicenceDataError
from cert_authority.issuing.origin import OriginalLicence, original_licence
from cert_authority.issuing.personal import open_licence
from cert_authority.store.models import LicenceRow
from cert_authority.timeutil import local_date, utc_now
from templates.identifier import LicenceIdentifier
from tests.cert_authority.cli_runner import ecas, ok
from tests.cert_authority.issuing.test_batch import batch_env, read_csv, write_csv  # noqa: F401 (fixture)
from tests.cert_authority.issuing.test_issuance import pdf_text
from tests.conftest import (
    DRAINAGE_TYPE,
    FOOD_TYPE,
    ISSUER_USCC,
    LicenceEnv,
    example_data,
    issue_example,
    table_counts,
)
from verification.report import Status

PAPER_NUMBER = "JY13501020012345"
PAPER_DATE = dt.date(2022, 3, 1)
MERGED = "演示市食品药品监督管理局"  # merged into the market regulation bureau since


def stock(**values: Any) -> OriginalLicence:
    return OriginalLicence("stock", **{"licence_number": PAPER_NUMBER, "issue_date": PAPER_DATE, **values})


def _edit(env: LicenceEnv, identifier: str, **values: Any) -> None:
    with Session(env.engine) as session:
        session.exec(update(LicenceRow).where(col(LicenceRow.identifier) == identifier).values(**values))
        session.commit()


def test_a_stock_licence_keeps_the_paper_licences_number_dates_and_issuer(
    licence_env: LicenceEnv, tmp_path: Path
) -> None:
    env = licence_env
    before = utc_now().replace(microsecond=0)
    licence = issue_example(env, FOOD_TYPE, original=stock(original_issuer_name=MERGED)).licence

    assert (licence.origin, licence.licence_number, licence.issue_date) == ("stock", PAPER_NUMBER, PAPER_DATE)
    assert (licence.valid_from, licence.valid_until) == (PAPER_DATE, dt.date(2027, 2, 28))  # the type's 5 years
    assert licence.original_issuer_name == MERGED and licence.issuer.code == ISSUER_USCC
    assert licence.created_at >= before and licence.seal.sealed_at >= before  # the conversion, kept apart
    assert licence.status == "issued"
    meta = licence.metadata
    assert (meta["ZZBH"], meta["ZZBFRQ"], meta["ZZYXQQSRQ"], meta["ZZYXQJZRQ"]) == (
        PAPER_NUMBER, "2022-03-01", "2022-03-01", "2027-02-28"
    )
    assert (meta["KZ_ZZLY"], meta["KZ_YBZJG"], meta["ZZBFJGDM"]) == ("stock", MERGED, ISSUER_USCC)

    # The identifier is the department's own, standard, with a serial from the counter.
    identifier = LicenceIdentifier.parse(licence.identifier)
    assert (identifier.type_code, identifier.issuer_code, identifier.version) == (FOOD_TYPE, ISSUER_USCC, 1)
    assert identifier.serial.isdigit() and PAPER_NUMBER not in licence.identifier

    # The sealed PDF (and the phone image, laid out from the record) print the paper licence's data.
    text = pdf_text(env.services.queries.file(CLI_ACTOR, licence.identifier, "pdf"), tmp_path / "stock.pdf")
    for printed in (PAPER_NUMBER, "2022年3月1日", "2027年2月28日", MERGED):
        assert printed in text, (printed, text)
    assert "演示市市场监督管理局" not in text.replace(MERGED, "")
    ofd = env.services.queries.file(CLI_ACTOR, licence.identifier, "ofd")
    with zipfile.ZipFile(io.BytesIO(ofd)) as package:  # the OFD's page, read as plain XML
        page = etree.fromstring(package.read("Doc_0/Pages/Page_0/Content.xml"))
    ofd_texts = [code.text for code in page.iter("{http://www.ofdspec.org/2016}TextCode")]
    for printed in (PAPER_NUMBER, "2022年3月1日", "2027年2月28日", MERGED):
        assert printed in ofd_texts, (printed, ofd_texts)
    assert env.services.queries.file(CLI_ACTOR, licence.identifier, "png")[:8] == b"\x89PNG\r\n\x1a\n"

    report = env.services.verification.verify_identifier(CLI_ACTOR, licence.identifier)
    assert report.result is Status.VALID, report
    assert (report.subject["origin"], report.subject["original_issuer_name"]) == ("stock", MERGED)
    pdf = env.services.queries.file(CLI_ACTOR, licence.identifier, "pdf")
    assert env.services.verification.verify_file(pdf).result is Status.VALID


@pytest.mark.parametrize(
    "edit",
    [
        {"origin": "new"},
        {"origin": "paper_twin"},
        {"original_issuer_name": None},
        {"original_issuer_name": "演示市另一局"},
        {"issue_date": dt.date(2023, 3, 1)},
    ],
    ids=["origin_new", "origin_twin", "issuer_dropped", "issuer_changed", "issue_date"],
)
def test_an_edited_stock_record_is_invalid(licence_env: LicenceEnv, edit: dict[str, Any]) -> None:
    """Attack: the new columns edited in the database. The sealed record digest binds them."""
    env = licence_env
    identifier = issue_example(env, FOOD_TYPE, original=stock(original_issuer_name=MERGED)).licence.identifier
    verification = env.services.verification
    assert verification.verify_identifier(CLI_ACTOR, identifier).result is Status.VALID
    _edit(env, identifier, **edit)
    report = verification.verify_identifier(CLI_ACTOR, identifier)
    assert (report.result, report.reason) == (Status.INVALID, "record_mismatch")


def test_a_new_licence_marked_stock_in_the_database_is_invalid(licence_env: LicenceEnv) -> None:
    env = licence_env
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    assert env.services.verification.verify_identifier(CLI_ACTOR, identifier).result is Status.VALID
    _edit(env, identifier, origin="stock")
    report = env.services.verification.verify_identifier(CLI_ACTOR, identifier)
    assert (report.result, report.reason) == (Status.INVALID, "record_mismatch")


def test_an_expired_paper_licence_is_refused_unless_imported_as_expired(licence_env: LicenceEnv) -> None:
    env = licence_env
    old = stock(issue_date=dt.date(2019, 6, 1), licence_number="JY13501020000001")
    before = table_counts(env.engine)
    with pytest.raises(LicenceDataError, match=r"2024-05-31 届满.*--include-expired"):
        issue_example(env, FOOD_TYPE, original=old)
    assert table_counts(env.engine) == before
    imported = issue_example(
        env, FOOD_TYPE, original=OriginalLicence(**{**old.__dict__, "include_expired": True})
    ).licence
    assert (imported.status, imported.valid_until) == ("expired", dt.date(2024, 5, 31))
    assert env.services.verification.verify_identifier(CLI_ACTOR, imported.identifier).reason == "expired"


@pytest.mark.parametrize(
    ("original", "dates", "message"),
    [
        (stock(issue_date=dt.date(2099, 1, 1)), {}, "晚于今天.*不能是将来的日期"),
        (stock(), {"valid_from": dt.date(2022, 3, 1), "valid_until": dt.date(2021, 1, 1)}, "早于起始日期"),
        (stock(issue_date=None), {}, "issue_date：存量证照须给出原证颁证日期"),
        (stock(), {"valid_from": dt.date(9999, 1, 1)}, "截止日期超出日期范围"),
        (stock(licence_number=" "), {}, "licence_number：须给出"),
        (stock(licence_number="JY1\n2"), {}, "控制字符或换行"),
        (stock(licence_number="J" * 41), {}, "最多 40 个字符"),
        (stock(licence_number="JY\U00013000"), {}, "字体无法显示"),
        (OriginalLicence("paper_twin", "HB-1", issue_date=PAPER_DATE), {}, "同步制发的证照当日颁发"),
    ],
    ids=[
        "future", "end_before_start", "no_date", "year_9999", "no_number", "newline", "too_long", "no_glyph",
        "twin_date",
    ],
)
def test_bad_stock_requests_are_refused_and_write_nothing(
    shared_licence_env: LicenceEnv, original: OriginalLicence, dates: dict[str, dt.date], message: str
) -> None:
    env = shared_licence_env
    before = table_counts(env.engine)
    with pytest.raises(LicenceDataError, match=message):
        issue_example(env, FOOD_TYPE, original=original, **dates)
    assert table_counts(env.engine) == before


def test_ordinary_issuance_keeps_refusing_the_fields_with_a_hint(shared_licence_env: LicenceEnv) -> None:
    env = shared_licence_env
    data = {**example_data(FOOD_TYPE), "licence_number": PAPER_NUMBER, "issue_date": "2022-03-01"}
    with pytest.raises(LicenceDataError, match=r"未知字段：licence_number、issue_date.*stock") as error:
        issue_example(env, FOOD_TYPE, data)
    assert "ecas issue-batch --mode stock" in str(error.value)
    with pytest.raises(LicenceDataError, match=r"有效期由类型规定（5年），颁证时不能另行给出.*存量证照"):
        issue_example(env, FOOD_TYPE, valid_from=PAPER_DATE)
    with pytest.raises(LicenceDataError, match="licence_number、issue_date：新办证照"):
        original_licence("new", PAPER_NUMBER, PAPER_DATE)
    with pytest.raises(LicenceDataError, match="origin：取值无效"):
        original_licence("old")


def test_stock_dates_for_each_validity_policy(shared_licence_env: LicenceEnv) -> None:
    env = shared_licence_env
    # A type whose validity is given at issue needs both dates; they may lie in the past.
    with pytest.raises(LicenceDataError, match="缺少有效期截止日期"):
        issue_example(env, DRAINAGE_TYPE, original=stock(licence_number="PS-2022-1"), valid_until=None)
    drainage = issue_example(
        env,
        DRAINAGE_TYPE,
        original=stock(licence_number="PS-2022-2"),
        valid_from=dt.date(2022, 3, 1),
        valid_until=dt.date(2027, 3, 1),
    ).licence
    assert (drainage.issue_date, drainage.valid_from, drainage.valid_until) == (
        PAPER_DATE, dt.date(2022, 3, 1), dt.date(2027, 3, 1)
    )
    # A fixed-term type takes the paper licence's own dates when they differ from today's rule.
    food = issue_example(
        env, FOOD_TYPE, original=stock(licence_number="JY-OWN-DATES"), valid_until=dt.date(2026, 12, 31)
    ).licence
    assert (food.valid_from, food.valid_until, food.original_issuer_name) == (
        PAPER_DATE, dt.date(2026, 12, 31), None
    )


def test_paper_twin_keeps_the_departments_number_and_numbers_stay_unique(licence_env: LicenceEnv) -> None:
    env = licence_env
    twin = issue_example(env, FOOD_TYPE, original=OriginalLicence("paper_twin", "JY-2026-0001")).licence
    today = local_date(utc_now())
    assert (twin.origin, twin.licence_number, twin.issue_date, twin.valid_from) == (
        "paper_twin", "JY-2026-0001", today, today
    )
    assert twin.metadata["KZ_ZZLY"] == "paper_twin"
    assert env.services.verification.verify_identifier(CLI_ACTOR, twin.identifier).result is Status.VALID
    before = table_counts(env.engine)
    with pytest.raises(ConflictError, match=f"证照编号 JY-2026-0001 已被证照 {twin.identifier} 使用"):
        issue_example(env, FOOD_TYPE, original=stock(licence_number="JY-2026-0001"))
    assert table_counts(env.engine) == before
    # A new licence beside them still gets the next number of the counter.
    assert issue_example(env, FOOD_TYPE).licence.licence_number.startswith("350100")


def test_a_changed_stock_licence_stays_stock_and_is_dated_today(licence_env: LicenceEnv) -> None:
    env = licence_env
    licence = issue_example(env, FOOD_TYPE, original=stock(original_issuer_name=MERGED)).licence
    changed = env.services.issuance.change_licence(CLI_ACTOR, licence.identifier, {"legal_representative": "王二"})
    assert (changed.origin, changed.licence_number, changed.issue_date) == (
        "stock", PAPER_NUMBER, local_date(utc_now())
    )
    assert (changed.valid_until, changed.original_issuer_name) == (dt.date(2027, 2, 28), None)
    assert env.services.verification.verify_identifier(CLI_ACTOR, changed.identifier).result is Status.VALID


def test_issue_batch_in_stock_mode(batch_env: LicenceEnv, tmp_path: Path) -> None:  # noqa: F811
    env = batch_env
    base = example_data(FOOD_TYPE)
    rows = [
        {**base, "licence_number": "JY1001", "issue_date": "2022-03-01", "original_issuer_name": MERGED},
        {**base, "operator_name": "过期餐饮有限公司", "licence_number": "JY1002", "issue_date": "2019-06-01"},
        {**base, "operator_name": "未来餐饮有限公司", "licence_number": "JY1003", "issue_date": "2099-01-01"},
        {**base, "operator_name": "重号餐饮有限公司", "licence_number": "JY1001", "issue_date": "2022-03-02"},
    ]
    batch = write_csv(tmp_path / "stock.csv", rows, [*base, "licence_number", "issue_date", "original_issuer_name"])

    # Without --mode the paper licence's columns are refused, each row with the hint.
    code, out = ecas("issue-batch", "--type", FOOD_TYPE, str(batch), "--workers", "1", "--json")
    assert code == 1 and json.loads(out.strip().splitlines()[-1])["issued"] == 0, out
    refused = read_csv(tmp_path / "stock.rejects.csv")
    assert all("未知字段" in r["_reason"] and "--mode stock" in r["_reason"] for r in refused)
    code, out = ecas("issue-batch", "--type", FOOD_TYPE, str(batch), "--include-expired")
    assert code == 1 and "--include-expired 只能与 --mode stock 同用" in out, out

    code, out = ecas("issue-batch", "--type", FOOD_TYPE, str(batch), "--mode", "stock", "--workers", "1", "--json")
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 1 and (summary["issued"], summary["rejected"]) == (1, 3), out
    refused = read_csv(tmp_path / "stock.rejects.csv")
    rejects = {f"{r['licence_number']}/{r['issue_date']}": r["_reason"] for r in refused}
    assert "--include-expired" in rejects["JY1002/2019-06-01"]
    assert "不能是将来的日期" in rejects["JY1003/2099-01-01"]
    assert "已被证照" in rejects["JY1001/2022-03-02"]

    # The rejects file, with --include-expired: the expired licence is imported as expired.
    code, out = ecas("issue-batch", "--type", FOOD_TYPE, str(tmp_path / "stock.rejects.csv"), "--mode", "stock",
                     "--include-expired", "--workers", "1", "--json")
    assert json.loads(out.strip().splitlines()[-1])["issued"] == 1, out
    with Session(env.engine) as session:
        converted = {r.licence_number: r for r in session.exec(LicenceRow.__table__.select()).all()}
    assert converted["JY1001"].issue_date == PAPER_DATE and converted["JY1001"].origin == "stock"
    assert converted["JY1001"].original_issuer_name == MERGED
    assert converted["JY1002"].valid_until == dt.date(2024, 5, 31)
    report = env.services.verification.verify_identifier(CLI_ACTOR, converted["JY1002"].identifier)
    assert report.reason == "expired"
    shown = ok("licence", "show", converted["JY1001"].identifier)
    assert "来源 存量转换（stock）" in shown and f"原颁证单位 {MERGED}" in shown and "颁证日期 2022-03-01" in shown


def test_the_api_issues_stock_licences_only_under_an_explicit_origin(shared_licence_env: LicenceEnv) -> None:
    from fastapi.testclient import TestClient

    from cert_authority.http.app import create_app

    app = create_app(shared_licence_env.settings)
    key = app.state.api_keys.create("issuer", ISSUER_USCC).key
    headers = {"Authorization": f"Bearer {key}"}
    body = {"type_code": FOOD_TYPE, "data": example_data(FOOD_TYPE)}
    paper = {"licence_number": "JY-API-1", "issue_date": "2022-03-01", "original_issuer_name": MERGED}
    with TestClient(app) as client:
        refused = client.post("/api/v1/licences", json={**body, **paper}, headers=headers)
        assert refused.status_code == 422, refused.text
        assert "licence_number、issue_date、original_issuer_name：新办证照" in refused.json()["message"]
        assert "origin: stock" in refused.json()["message"]
        expired = {**paper, "issue_date": "2019-06-01"}
        refused = client.post("/api/v1/licences", json={**body, **expired, "origin": "stock"}, headers=headers)
        assert refused.status_code == 422 and "include_expired: true" in refused.json()["message"], refused.text

        made = client.post("/api/v1/licences", json={**body, **paper, "origin": "stock"}, headers=headers)
        assert made.status_code == 201, made.text
        licence = made.json()
        assert (licence["origin"], licence["licence_number"], licence["issue_date"]) == (
            "stock", "JY-API-1", "2022-03-01"
        )
        assert licence["metadata"]["KZ_ZZLY"] == "stock" and licence["original_issuer_name"] == MERGED
        listed = client.get("/api/v1/licences", params={"type_code": FOOD_TYPE, "page_size": 200}, headers=headers)
        assert {i["identifier"]: i["origin"] for i in listed.json()["items"]}[licence["identifier"]] == "stock"
        again = client.post("/api/v1/licences", json={**body, **paper, "origin": "paper_twin"}, headers=headers)
        assert again.status_code == 422 and "同步制发" in again.json()["message"], again.text


def test_the_digest_of_a_new_licence_is_what_it_was_before_origins(shared_licence_env: LicenceEnv) -> None:
    """Licences sealed before this change carry the digest of BOUND_FIELDS alone: a new licence's
    digest must still be exactly that, or every one of them would read as record_mismatch."""
    from cert_authority.issuing.binding import BOUND_FIELDS, record_digest
    from keys.sm2 import sm3

    identifier = issue_example(shared_licence_env, FOOD_TYPE).licence.identifier
    with Session(shared_licence_env.engine) as session:
        stored = session.exec(select(LicenceRow).where(col(LicenceRow.identifier) == identifier)).one()
    row = open_licence(shared_licence_env.services.personal, stored)
    before = {name: getattr(row, name) for name in BOUND_FIELDS} | {"face_json": json.loads(row.face_json)}
    canonical = json.dumps(before, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    assert record_digest(row) == sm3(canonical.encode()).hex()
    row.origin = "stock"
    assert record_digest(row) != sm3(canonical.encode()).hex()
