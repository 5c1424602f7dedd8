"""Material reuse at the counter (减材料), on SQLite and PostgreSQL: service matters, cases with their
checklist of the applicant's valid licences and the basis for each (duty rule, the holder's consent
by a use code or a standing authorisation, or none), reuse recorded as a use the holder sees, the
sealed receipt (qpdf, pdftotext, our verifier) and the bad-input and concurrency rules of issue 19."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlmodel import Session, col, func, select

from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.demo import BUSINESS_TYPE, register_example_matters
from cert_authority.errors import (
    ConflictError,
    IllegalTransitionError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from cert_authority.http.app import create_app
from cert_authority.sharing.matters import parse_matter_spec
from cert_authority.store.chain import verify_chains
from cert_authority.store.data_keys import RECORDS, data_key_ring
from cert_authority.store.models import (
    AuditEventRow,
    CaseMaterialRow,
    CaseRow,
    LicenceRow,
    PackedFileRow,
    SharedFileRow,
    StandingAuthorisationRow,
)
from cert_authority.timeutil import local_date
from templates.errors import SpecError
from tests.conftest import (
    DRAINAGE_TYPE,
    FOOD_TYPE,
    ISSUER_USCC,
    OTHER_ISSUER_USCC,
    USER_USCC,
    VOCATIONAL_TYPE,
    LicenceEnv,
    PkiHierarchy,
    example_data,
    flip_stored_bit,
    issue_example,
    overwrite_stored,
    require_tool_or_skip,
    stored_name,
)
from verification.report import Status
from verification.show_token import make_token

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
HOLDER = example_data(FOOD_TYPE)["operator_code"]  # 91350100M000100Y43: a company
PASSWORD = "cases-test-password"
CATERING = "drainage-permit-catering"  # 营业执照, 食品经营许可证 (valid 30 more days), drawings; USER_USCC
RENEWAL = "drainage-permit-renewal"  # 营业执照, 排水许可证, test report; USER_USCC
DRAWINGS = "内部排水管网、检测井及排放口位置图"
COUNTER = Actor("apikey:counter", "user", USER_USCC)


def business_data(**changes: str) -> dict[str, str]:
    spec = yaml.safe_load((EXAMPLES / "types" / "business-licence.yaml").read_text(encoding="utf-8"))
    return {f["key"]: str(f["example"]) for f in spec["fields"]} | changes


def drainage_data(**changes: str) -> dict[str, str]:
    return {**example_data(DRAINAGE_TYPE), **changes}


@pytest.fixture
def env(licence_env: LicenceEnv) -> LicenceEnv:
    """The licence environment with the example matters, and the holder's account."""
    register_example_matters(licence_env.services)
    licence_env.services.accounts.create(HOLDER, "好味道餐饮", PASSWORD)
    return licence_env


def issue_business(env: LicenceEnv, holder: str = HOLDER) -> str:
    return issue_example(env, BUSINESS_TYPE, business_data(uscc=holder)).licence.identifier


def issue_food(env: LicenceEnv, holder: str = HOLDER) -> str:
    return issue_example(env, FOOD_TYPE, {**example_data(FOOD_TYPE), "operator_code": holder}).licence.identifier


def use_count(env: LicenceEnv) -> int:
    with Session(env.engine) as session:
        return session.exec(
            select(func.count()).select_from(AuditEventRow).where(col(AuditEventRow.action) == "use")
        ).one()


def candidates(case: Any, material: str) -> dict[str, str | None]:
    found = next(m for m in case.materials if m.name == material)
    return {c.identifier: c.basis for c in found.candidates}


# --- matters -----------------------------------------------------------------------------------
def test_matters_are_registered_by_admins_from_strict_definitions(env: LicenceEnv) -> None:
    app = create_app(env.settings)
    keys = app.state.api_keys
    admin = {"Authorization": f"Bearer {keys.create('admin', None).key}"}
    user = {"Authorization": f"Bearer {keys.create('user', USER_USCC).key}"}
    definition = {
        "code": "food-licence-new",
        "name": "食品经营许可（新办）",
        "departments": [ISSUER_USCC],
        "materials": [
            {"name": "营业执照", "licence_type": BUSINESS_TYPE},
            {"name": "经营场所平面图"},
        ],
    }
    with TestClient(app) as client:
        assert client.post("/api/v1/matters", json=definition, headers=user).status_code == 403
        created = client.post("/api/v1/matters", json=definition, headers=admin)
        assert created.status_code == 201, created.text
        assert created.json()["materials"][1] == {"name": "经营场所平面图", "licence_type": None,
                                                  "valid_for_days": 0, "note": None}
        assert client.post("/api/v1/matters", json=definition, headers=admin).status_code == 409
        as_yaml = yaml.safe_dump({**definition, "code": "food-licence-new-2"}, allow_unicode=True)
        posted = client.post("/api/v1/matters", content=as_yaml.encode(),
                             headers={**admin, "Content-Type": "application/yaml"})
        assert posted.status_code == 201, posted.text

        def refused(changes: dict[str, Any]) -> str:
            answer = client.post("/api/v1/matters", json={**definition, "code": "x1", **changes}, headers=admin)
            assert answer.status_code == 422, answer.text
            return str(answer.json()["message"])

        assert "colour" in refused({"colour": "red"}) and "未知的键" in refused({"colour": "red"})
        assert "校验位" in refused({"departments": ["11350100MB00000101"]})
        assert "尚未登记" in refused({"departments": ["91350100M000100Y43"]})
        unknown_type = {"materials": [{"name": "证", "licence_type": BUSINESS_TYPE[:-1] + "9"}]}
        assert "11100000MA0000001Q009" in refused(unknown_type)
        assert "材料名称重复" in refused({"materials": [{"name": "图"}, {"name": "图"}]})
        assert "conditions" in refused({"materials": [{"name": "图", "conditions": {"valid_for_days": 1}}]})
        assert "code" in refused({"code": "不是ASCII"})
        bad_yaml = b"code: a\ncode: b\n"
        twice = client.post("/api/v1/matters", content=bad_yaml, headers={**admin, "Content-Type": "application/yaml"})
        assert twice.status_code == 422 and "重复" in twice.json()["message"]

        listed = client.get("/api/v1/matters", headers=user)
        assert listed.status_code == 200
        codes = {m["code"] for m in listed.json()}
        assert {CATERING, RENEWAL, "food-licence-change", "skills-subsidy", "food-licence-new"} <= codes
        assert client.get(f"/api/v1/matters/{CATERING}", headers=user).json()["materials"][1]["valid_for_days"] == 30
        assert client.get("/api/v1/matters/unknown", headers=user).status_code == 404
        assert client.get("/api/v1/matters", headers={}).status_code == 401


def test_the_example_matters_parse_strictly() -> None:
    for path in sorted((EXAMPLES / "matters").glob("*.yaml")):
        from cert_authority.registry.spec_input import load_definition

        spec = parse_matter_spec(load_definition(path.read_bytes(), path.name))
        assert spec.licence_types, path
    with pytest.raises(SpecError, match="未知的键"):
        parse_matter_spec({"code": "a", "name": "事项", "departments": [USER_USCC], "materials": [{"name": "x"}],
                           "extra": 1})


# --- the checklist -----------------------------------------------------------------------------
def test_the_checklist_lists_valid_licences_with_the_basis_this_department_has(env: LicenceEnv) -> None:
    services = env.services
    business = issue_business(env)
    food = issue_food(env)
    revoked = issue_food(env)
    services.lifecycle.revoke(CLI_ACTOR, revoked, "违法经营")
    second = issue_business(env)  # the same holder's: both listed
    other = issue_business(env, holder=_other_company())
    case = services.cases.open(COUNTER, CATERING, HOLDER, case_number="CG-1")
    assert case.status == "open" and case.case_number == "CG-1" and case.applicant == "913501********0Y43"
    assert [m.name for m in case.materials] == ["营业执照", "食品经营许可证", DRAWINGS]
    found = candidates(case, "营业执照")
    assert set(found) == {business, second} and other not in found and set(found.values()) == {None}
    assert candidates(case, "食品经营许可证") == {food: None}  # the revoked one never appears
    assert case.materials[2].licence_type is None and case.materials[2].candidates == ()

    # A duty rule for another matter does not serve this one; one for this matter does.
    services.duty_rules.add(CLI_ACTOR, USER_USCC, BUSINESS_TYPE, [RENEWAL])
    assert set(candidates(services.cases.get(COUNTER, case.id), "营业执照").values()) == {None}
    rule = services.duty_rules.add(CLI_ACTOR, USER_USCC, BUSINESS_TYPE, [CATERING])
    assert set(candidates(services.cases.get(COUNTER, case.id), "营业执照").values()) == {"duty_rule"}
    # Expired, then withdrawn: no longer a basis.
    today = local_date(dt.datetime.now(dt.timezone.utc))
    services.duty_rules.expire(CLI_ACTOR, rule.id, today - dt.timedelta(days=1))
    assert set(candidates(services.cases.get(COUNTER, case.id), "营业执照").values()) == {None}
    services.duty_rules.expire(CLI_ACTOR, rule.id, today)
    assert set(candidates(services.cases.get(COUNTER, case.id), "营业执照").values()) == {"duty_rule"}
    services.duty_rules.withdraw(CLI_ACTOR, rule.id)
    assert set(candidates(services.cases.get(COUNTER, case.id), "营业执照").values()) == {None}

    # The holder's standing authorisation for this department and matter: consent, for every type.
    holder = services.accounts.holder(HOLDER)
    granted = services.authorisations.grant(holder, USER_USCC, CATERING, days=30)
    checklist = services.cases.get(COUNTER, case.id)
    assert candidates(checklist, "食品经营许可证") == {food: "consent"}
    assert set(candidates(checklist, "营业执照").values()) == {"consent"}
    services.authorisations.withdraw(holder, granted.id)
    assert candidates(services.cases.get(COUNTER, case.id), "食品经营许可证") == {food: None}
    # Another matter's, and one past its expiry (as the database has it): no basis either.
    services.authorisations.grant(holder, USER_USCC, RENEWAL, days=30)
    lapsed = services.authorisations.grant(holder, USER_USCC, CATERING, days=1)
    with Session(env.engine) as session:
        row = session.get(StandingAuthorisationRow, lapsed.id)
        assert row is not None
        row.expires_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
        session.add(row)
        session.commit()
    assert candidates(services.cases.get(COUNTER, case.id), "食品经营许可证") == {food: None}
    with pytest.raises(PermissionDeniedError, match="没有用证依据"):
        services.cases.reuse(COUNTER, case.id, food)


def test_expired_licences_and_unmet_conditions_are_not_listed(env: LicenceEnv) -> None:
    services = env.services
    today = local_date(dt.datetime.now(dt.timezone.utc))

    def drainage(days: int) -> str:
        return issue_example(env, DRAINAGE_TYPE, drainage_data(), valid_from=dt.date(2020, 1, 1),
                             valid_until=today + dt.timedelta(days=days)).licence.identifier

    expired, soon, later = drainage(2), drainage(15), drainage(95)
    # Five days on: the first has expired.
    services.cases.clock = lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=5)
    renewal = services.cases.open(COUNTER, RENEWAL, HOLDER)
    assert set(candidates(renewal, "城镇污水排入排水管网许可证")) == {soon, later}  # not the expired one
    strict = parse_matter_spec({
        "code": "drainage-strict", "name": "排水许可变更", "departments": [USER_USCC],
        "materials": [{"name": "排水许可证", "licence_type": DRAINAGE_TYPE, "conditions": {"valid_for_days": 30}}],
    })
    services.matters.register(CLI_ACTOR, strict)
    case = services.cases.open(COUNTER, "drainage-strict", HOLDER)
    assert set(candidates(case, "排水许可证")) == {later}
    services.duty_rules.add(CLI_ACTOR, USER_USCC, DRAINAGE_TYPE)
    with pytest.raises(IllegalTransitionError, match="至少 30 天"):
        services.cases.reuse(COUNTER, case.id, soon)
    with pytest.raises(IllegalTransitionError, match="expired"):
        services.cases.reuse(COUNTER, renewal.id, expired)
    assert services.cases.reuse(COUNTER, case.id, later).basis == "duty_rule"


# --- reuse over the API ------------------------------------------------------------------------
def test_a_case_at_the_counter_over_the_api(env: LicenceEnv, tmp_path: Path) -> None:
    services = env.services
    business, food = issue_business(env), issue_food(env)
    other_food = issue_food(env, holder=_other_company())
    vocational = issue_example(env, VOCATIONAL_TYPE).licence.identifier
    app = create_app(env.settings)
    keys = app.state.api_keys
    counter = {"Authorization": f"Bearer {keys.create('user', USER_USCC).key}"}
    market = {"Authorization": f"Bearer {keys.create('user', ISSUER_USCC).key}"}
    issuer = {"Authorization": f"Bearer {keys.create('issuer', USER_USCC).key}"}
    admin = {"Authorization": f"Bearer {keys.create('admin', None).key}"}
    auditor = {"Authorization": f"Bearer {keys.create('auditor', OTHER_ISSUER_USCC).key}"}
    opening = {"matter": CATERING, "applicant": HOLDER, "case_number": "CG-2026-0001"}

    with TestClient(app) as client:
        # Who may open: the handling department's user keys, or an admin naming it.
        assert client.post("/api/v1/cases", json=opening, headers=market).status_code == 403
        assert client.post("/api/v1/cases", json=opening, headers=issuer).status_code == 403
        assert client.post("/api/v1/cases", json=opening, headers=admin).status_code == 422
        by_admin = client.post("/api/v1/cases", json={**opening, "department_uscc": USER_USCC}, headers=admin)
        assert by_admin.status_code == 201, by_admin.text
        elsewhere = client.post("/api/v1/cases", json={**opening, "department_uscc": ISSUER_USCC}, headers=counter)
        assert elsewhere.status_code == 403
        # Bad input: unknown matter 404, a malformed applicant code 422 naming the failed check.
        unknown = client.post("/api/v1/cases", json={**opening, "matter": "no-such-matter"}, headers=counter)
        assert unknown.status_code == 404 and "no-such-matter" in unknown.json()["message"]
        for code, check in (("91350100M000100Y44", "校验位"), ("913501", "18位"), ("350102199013170121", "出生日期"),
                            ("350102199005170122", "校验位")):
            answer = client.post("/api/v1/cases", json={**opening, "applicant": code}, headers=counter)
            assert answer.status_code == 422 and check in answer.json()["message"], (code, answer.text)

        opened = client.post("/api/v1/cases", json=opening, headers=counter)
        assert opened.status_code == 201, opened.text
        case = opened.json()
        case_id = case["case"]
        assert [m["name"] for m in case["materials"]] == ["营业执照", "食品经营许可证", DRAWINGS]
        assert case["materials"][0]["candidates"] == [
            {"identifier": business, "name": "营业执照", "valid_until": None, "basis": None}
        ]
        assert "face_data" not in str(case)  # no face data before a basis is shown
        reuse = f"/api/v1/cases/{case_id}/reuse"

        # No basis: 403 naming what is missing, nothing recorded.
        before = use_count(env)
        refused = client.post(reuse, json={"identifier": business}, headers=counter)
        assert refused.status_code == 403
        assert "依职责用证规则" in refused.json()["message"] and "未授权" in refused.json()["message"]
        assert use_count(env) == before
        assert all(m.reused is None for m in services.cases.get(CLI_ACTOR, case_id).materials)

        # Not the applicant's, not needed by the matter, another department's case.
        assert client.post(reuse, json={"identifier": other_food}, headers=counter).status_code == 404
        malformed = client.post(reuse, json={"identifier": "1.2.156.3005.2.nope"}, headers=counter)
        assert malformed.status_code == 422 and "证照标识有误" in malformed.json()["message"]  # named as such
        services.duty_rules.add(CLI_ACTOR, USER_USCC, BUSINESS_TYPE, [CATERING])
        assert client.post(reuse, json={"identifier": business}, headers=market).status_code == 403

        # The duty rule: face data and an annotated copy.
        done = client.post(reuse, json={"identifier": business}, headers=counter)
        assert done.status_code == 200, done.text
        body = done.json()
        assert (body["basis"], body["consent"], body["material"]) == ("duty_rule", None, "营业执照")
        assert body["face_data"]["uscc"] == HOLDER
        copy = client.get(body["copy_url"].split("testserver", 1)[-1])
        assert copy.status_code == 200 and copy.headers["content-type"] == "application/pdf"

        # The holder's use code: consent. Codes of another licence or another department are refused.
        login = client.post("/api/v1/holder/login", json={"holder_code": HOLDER, "password": PASSWORD}).json()
        holder = {"Authorization": f"Bearer {login['session_token']}"}

        def use_code(identifier: str, department: str = USER_USCC) -> str:
            made = client.post("/api/v1/holder/use-codes", headers=holder,
                               json={"identifier": identifier, "department_uscc": department, "purpose": "排水许可"})
            assert made.status_code == 201, made.text
            return str(made.json()["code"])

        for wrong in (use_code(business), use_code(food, ISSUER_USCC)):
            answer = client.post(reuse, json={"identifier": food, "use_code": wrong}, headers=counter)
            assert answer.status_code == 403, answer.text
        env.services.accounts.create(_other_company(), "另一家公司", PASSWORD)
        other_login = client.post("/api/v1/holder/login",
                                  json={"holder_code": _other_company(), "password": PASSWORD}).json()
        theirs = client.post("/api/v1/holder/use-codes",
                             headers={"Authorization": f"Bearer {other_login['session_token']}"},
                             json={"identifier": other_food, "department_uscc": USER_USCC, "purpose": "x"}).json()
        assert client.post(reuse, json={"identifier": food, "use_code": theirs["code"]},
                           headers=counter).status_code == 403
        assert use_count(env) == before + 1
        consent = client.post(reuse, json={"identifier": food, "use_code": use_code(food)}, headers=counter)
        assert consent.status_code == 200, consent.text
        assert (consent.json()["basis"], consent.json()["consent"]) == ("consent", "use_code")
        # A licence type the matter does not need.
        not_needed = client.post(reuse, json={"identifier": vocational}, headers=counter)
        assert not_needed.status_code in (404, 422)  # another holder's licence: 404 before anything else

        # The holder sees both uses with the matter and the case number.
        uses = [u for u in client.get("/api/v1/holder/uses", headers=holder).json() if u["action"] == "use"]
        assert {(u["identifier"], u["matter"], u["case_number"], u["department"]) for u in uses} == {
            (business, CATERING, "CG-2026-0001", USER_USCC), (food, CATERING, "CG-2026-0001", USER_USCC)}
        assert all("城镇污水排入排水管网许可证核发" in u["cause"] for u in uses)

        shown = client.get(f"/api/v1/cases/{case_id}", headers=auditor).json()
        assert [m["reused"]["basis"] if m["reused"] else None for m in shown["materials"]] == [
            "duty_rule", "consent", None]
        assert shown["materials"][1]["reused"]["consent"] == "use_code"
        assert client.get(f"/api/v1/cases/{case_id}", headers=market).status_code == 403
        assert client.get("/api/v1/cases/999999", headers=counter).status_code == 404
        assert client.get(f"/api/v1/cases/{case_id}/receipt", headers=counter).status_code == 409

        # Close: a sealed receipt; again: the same one; no reuse afterwards.
        closed = client.post(f"/api/v1/cases/{case_id}/close", headers=counter)
        assert closed.status_code == 200 and closed.headers["content-type"] == "application/pdf"
        again = client.post(f"/api/v1/cases/{case_id}/close", headers=counter)
        assert again.content == closed.content and again.headers["x-receipt-sm3"] == closed.headers["x-receipt-sm3"]
        assert client.get(f"/api/v1/cases/{case_id}/receipt", headers=counter).content == closed.content
        late = client.post(reuse, json={"identifier": business}, headers=counter)
        assert late.status_code == 409 and "已办结" in late.json()["message"]

        verified = client.post("/api/v1/verify", content=closed.content,
                               headers={**counter, "Content-Type": "application/pdf"}).json()
        assert verified["result"] == "VALID", verified
        assert verified["subject"]["kind"] == "reuse_receipt" and verified["subject"]["case"] == case_id

    report = services.verification.verify_file(closed.content)
    assert report.result is Status.VALID and report.subject["matter"] == CATERING
    tampered = closed.content.replace(b"/Title", b"/Titlf", 1)
    assert services.verification.verify_file(tampered).result is not Status.VALID
    path = tmp_path / "receipt.pdf"
    path.write_bytes(closed.content)
    qpdf = subprocess.run([require_tool_or_skip("qpdf"), "--check", str(path)], capture_output=True, timeout=60)
    assert qpdf.returncode == 0, qpdf.stdout
    text = subprocess.run([require_tool_or_skip("pdftotext"), str(path), "-"], capture_output=True, timeout=60,
                          check=True).stdout.decode()
    for expected in ("材料复用清单", "CG-2026-0001", business, food, "申请人提交", "依职责用证", "用证码",
                     "所需材料 3 项：复用电子证照 2 项，申请人提交 1 项"):
        assert expected in text.replace("\n", "") or expected in text, expected
    with Session(env.engine) as session:
        material = session.get(CaseMaterialRow, (case_id, 0))
        assert material is not None and material.licence_sm3 == services.queries.get(CLI_ACTOR, business).files.pdf


def test_reuse_rules_in_the_service(env: LicenceEnv) -> None:
    services = env.services
    business, food = issue_business(env), issue_food(env)
    services.duty_rules.add(CLI_ACTOR, USER_USCC, BUSINESS_TYPE)
    services.duty_rules.add(CLI_ACTOR, USER_USCC, FOOD_TYPE)
    case = services.cases.open(COUNTER, CATERING, HOLDER)
    assert services.cases.reuse(COUNTER, case.id, business).basis == "duty_rule"
    assert services.cases.reuse(COUNTER, case.id, business).basis == "duty_rule"  # again: another use, same material
    second = issue_business(env)
    with pytest.raises(ConflictError, match="已复用"):
        services.cases.reuse(COUNTER, case.id, second)
    services.lifecycle.revoke(CLI_ACTOR, food, "违法经营")
    with pytest.raises(IllegalTransitionError, match="revoked"):
        services.cases.reuse(COUNTER, case.id, food)
    with pytest.raises(NotFoundError):
        services.cases.reuse(COUNTER, 999_999, business)
    with pytest.raises(PermissionDeniedError):
        services.cases.reuse(Actor("apikey:a", "auditor", USER_USCC), case.id, business)
    with pytest.raises(InvalidRequestError, match="办件号"):
        services.cases.open(COUNTER, CATERING, HOLDER, case_number="x" * 61)
    with pytest.raises(PermissionDeniedError, match="不办理"):
        services.cases.open(Actor("apikey:m", "user", ISSUER_USCC), CATERING, HOLDER)
    receipt = services.cases.close(COUNTER, case.id)
    assert services.cases.close(COUNTER, case.id) == receipt
    with pytest.raises(IllegalTransitionError):
        services.cases.reuse(COUNTER, case.id, business)


def test_only_the_cases_department_or_an_administrator_closes_it(env: LicenceEnv) -> None:
    """Another department's key, and a user key of no department, are refused and claim nothing:
    the case stays open for its own counter, which closes it."""
    services = env.services
    case = services.cases.open(COUNTER, CATERING, HOLDER)
    for stranger in (Actor("apikey:m", "user", ISSUER_USCC), Actor("apikey:n", "user", None)):
        with pytest.raises(PermissionDeniedError, match="权限不足"):
            services.cases.close(stranger, case.id)
        assert services.cases.get(COUNTER, case.id).status == "open"
    receipt = services.cases.close(COUNTER, case.id)
    assert services.cases.get(Actor("apikey:a", "admin", None), case.id).receipt_sm3 == receipt.sm3


def test_two_counters_spending_one_use_code_at_once_exactly_one_succeeds(env: LicenceEnv) -> None:
    """Two cases of the applicant at one department, one one-time use code, two threads at once."""
    services = env.services
    food = issue_food(env)
    holder = services.accounts.holder(HOLDER)
    for _round in range(3):
        code, _ = services.sharing.create_use_code(holder, food, USER_USCC, "排水许可", max_uses=1)
        cases = [services.cases.open(COUNTER, CATERING, HOLDER, case_number=f"C{n}").id for n in range(2)]
        outcomes = _at_once([lambda c=c, code=code: services.cases.reuse(COUNTER, c, food, code) for c in cases])
        assert sorted(type(o).__name__ for o in outcomes) == ["CaseReuse", "PermissionDeniedError"], outcomes
        with Session(env.engine) as session:
            reused = session.exec(
                select(func.count()).select_from(CaseMaterialRow)
                .where(col(CaseMaterialRow.case_id).in_(cases)).where(col(CaseMaterialRow.identifier) == food)
            ).one()
        assert reused == 1
    assert [c.uses for c in services.sharing.use_codes(holder)] == [1, 1, 1]


def test_closing_twice_at_once_gives_one_receipt_and_races_with_reuse(env: LicenceEnv) -> None:
    services = env.services
    business = issue_business(env)
    services.duty_rules.add(CLI_ACTOR, USER_USCC, BUSINESS_TYPE)
    case = services.cases.open(COUNTER, CATERING, HOLDER)
    outcomes = _at_once([
        lambda: services.cases.close(COUNTER, case.id),
        lambda: services.cases.close(COUNTER, case.id),
        lambda: services.cases.reuse(COUNTER, case.id, business),
    ])
    receipts = [o for o in outcomes[:2]]
    assert all(not isinstance(r, BaseException) for r in receipts), outcomes
    assert receipts[0] == receipts[1]
    reused = services.cases.get(CLI_ACTOR, case.id).materials[0].reused
    if isinstance(outcomes[2], BaseException):  # closed first: refused, and not in the receipt
        assert isinstance(outcomes[2], IllegalTransitionError) and reused is None
    else:  # reused first: in the receipt
        assert reused is not None
    text = services.verification.verify_file(receipts[0].pdf)  # type: ignore[union-attr]
    assert text.result is Status.VALID
    assert any(c.name == "timestamp" and c.status is Status.VALID for c in text.checks)  # the seal is timestamped


def test_a_case_closed_after_it_was_read_refuses_the_reuse_and_records_nothing(
    env: LicenceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reuse read the case while it was open; the close came before its write (on PostgreSQL
    one statement): refused, the use code given back, no use, link or claim written, and the
    audit chain whole (the refused row took no place in it)."""
    services = env.services
    food = issue_food(env)
    holder = services.accounts.holder(HOLDER)
    code, _ = services.sharing.create_use_code(holder, food, USER_USCC, "排水许可", max_uses=1)
    case = services.cases.open(COUNTER, CATERING, HOLDER)
    as_read = services.cases._case_and_licence(case.id, food)
    services.cases.close(COUNTER, case.id)
    uses_before = use_count(env)
    with monkeypatch.context() as patched:
        patched.setattr(services.cases, "_case_and_licence", lambda _case_id, _identifier: as_read)
        with pytest.raises(IllegalTransitionError, match="已办结"):
            services.cases.reuse(COUNTER, case.id, food, code)
    assert use_count(env) == uses_before
    assert [c.uses for c in services.sharing.use_codes(holder)] == [0]
    with Session(env.engine) as session:
        assert session.exec(select(func.count()).select_from(SharedFileRow)).one() == 0
        claimed = session.exec(select(CaseMaterialRow.identifier).where(col(CaseMaterialRow.case_id) == case.id)).all()
    assert claimed == [None, None, None]
    other = services.cases.open(COUNTER, CATERING, HOLDER)  # the next use follows in the chain
    assert services.cases.reuse(COUNTER, other.id, food, code).consent == "use_code"
    keys = data_key_ring(env.settings).all_versions(RECORDS)
    with env.engine.connect() as connection:
        report = verify_chains(connection, keys)
    assert report.ok, report.problems


def test_a_reuse_after_the_licence_file_was_damaged_or_repointed_is_refused(env: LicenceEnv) -> None:
    """The licence's record was checked against its sealed OFD at the first reuse; the OFD's
    manifest (its name read with the case) is then damaged, or the packed-file row pointed at
    another file's: the next reuse is refused (409) and nothing recorded; put back, it works."""
    services = env.services
    business = issue_business(env)
    services.duty_rules.add(CLI_ACTOR, USER_USCC, BUSINESS_TYPE)
    services.cases.reuse(COUNTER, services.cases.open(COUNTER, CATERING, HOLDER).id, business)
    with Session(env.engine) as session:
        licence = session.exec(select(LicenceRow).where(col(LicenceRow.identifier) == business)).one()
    ofd, other_pdf = licence.ofd_sm3, licence.pdf_sm3
    store, manifest = env.registry.filestore, stored_name(env, licence.ofd_sm3)
    original = flip_stored_bit(store, manifest)
    case = services.cases.open(COUNTER, CATERING, HOLDER).id
    uses = use_count(env)
    with pytest.raises(ConflictError):
        services.cases.reuse(COUNTER, case, business)
    overwrite_stored(store, manifest, original)
    table = PackedFileRow.__table__  # type: ignore[attr-defined]
    with env.engine.begin() as connection:
        connection.execute(
            table.update().where(table.c.sm3 == ofd).values(manifest_sm3=stored_name(env, other_pdf))
        )
    with pytest.raises(ConflictError):
        services.cases.reuse(COUNTER, case, business)
    assert use_count(env) == uses
    with env.engine.begin() as connection:
        connection.execute(table.update().where(table.c.sm3 == ofd).values(manifest_sm3=manifest))
    assert services.cases.reuse(COUNTER, case, business).basis == "duty_rule"


def _at_once(calls: list[Callable[[], object]]) -> list[object]:
    barrier = threading.Barrier(len(calls))
    outcomes: list[object] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = calls[index]()
        except Exception as exc:  # the outcome to compare
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def _other_company() -> str:
    from cert_authority.demo import demo_uscc

    return demo_uscc("350103", 4242)


# --- duty rules, standing authorisations, statistics -----------------------------------------------
def test_duty_rules_are_listed_expired_and_withdrawn_by_admins(env: LicenceEnv) -> None:
    food = issue_food(env)
    app = create_app(env.settings)
    keys = app.state.api_keys
    admin = {"Authorization": f"Bearer {keys.create('admin', None).key}"}
    counter = {"Authorization": f"Bearer {keys.create('user', USER_USCC).key}"}
    market = {"Authorization": f"Bearer {keys.create('issuer', ISSUER_USCC).key}"}
    auditor = {"Authorization": f"Bearer {keys.create('auditor', OTHER_ISSUER_USCC).key}"}
    use = f"/api/v1/licences/{food}/use"
    with TestClient(app) as client:
        rule = {"department_uscc": USER_USCC, "type_code": FOOD_TYPE}
        assert client.post("/api/v1/duty-rules", json=rule, headers=counter).status_code == 403
        created = client.post("/api/v1/duty-rules", json=rule, headers=admin)
        assert created.status_code == 201 and created.json()["state"] == "active"
        rule_id = created.json()["id"]
        assert client.post("/api/v1/duty-rules", json=rule, headers=admin).json()["id"] == rule_id  # not doubled
        tied = client.post("/api/v1/duty-rules", json={**rule, "matters": [CATERING]}, headers=admin).json()
        assert tied["matters"] == [CATERING] and tied["id"] != rule_id
        assert client.post("/api/v1/duty-rules", json={**rule, "matters": ["nope"]}, headers=admin).status_code == 422
        # Rules that could never apply (found trying the CLI as a user: both were granted, active).
        for never, why in (
            ({**rule, "type_code": DRAINAGE_TYPE, "matters": [CATERING]}, "不需要证照类型"),
            ({**rule, "department_uscc": ISSUER_USCC, "matters": [CATERING]}, "不办理事项"),
        ):
            refused = client.post("/api/v1/duty-rules", json=never, headers=admin)
            assert refused.status_code == 422 and why in refused.json()["message"], refused.text
        past = client.post("/api/v1/duty-rules", json={**rule, "valid_until": "2020-01-01"}, headers=admin)
        assert past.status_code == 422
        assert client.post("/api/v1/duty-rules", json={**rule, "type_code": "x"}, headers=admin).status_code == 404

        # Who sees what: admins and auditors everything, a department its own.
        assert {r["id"] for r in client.get("/api/v1/duty-rules", headers=counter).json()} == {rule_id, tied["id"]}
        assert client.get("/api/v1/duty-rules", headers=market).json() == []
        assert client.get(f"/api/v1/duty-rules?department_uscc={USER_USCC}", headers=market).status_code == 403
        assert len(client.get("/api/v1/duty-rules", headers=auditor).json()) == 2

        ok = client.post(use, json={"cause": "日常检查"}, headers=counter)
        assert ok.status_code == 200 and ok.json()["basis"] == "duty"
        # Expire (yesterday): no longer serves; then withdrawn for good.
        yesterday = (local_date(dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=1)).isoformat()
        assert client.post(f"/api/v1/duty-rules/{rule_id}/expire", json={"valid_until": yesterday},
                           headers=counter).status_code == 403
        expired = client.post(f"/api/v1/duty-rules/{rule_id}/expire", json={"valid_until": yesterday}, headers=admin)
        assert expired.status_code == 200 and expired.json()["state"] == "expired"
        assert client.post(use, json={"cause": "日常检查"}, headers=counter).status_code == 403
        assert client.post(f"/api/v1/duty-rules/{rule_id}/withdraw", headers=counter).status_code == 403
        withdrawn = client.post(f"/api/v1/duty-rules/{rule_id}/withdraw", headers=admin).json()
        assert withdrawn["state"] == "withdrawn" and withdrawn["withdrawn_by"].startswith("apikey:")
        assert client.post(f"/api/v1/duty-rules/{rule_id}/expire", json={"valid_until": yesterday},
                           headers=admin).status_code == 422
        assert client.post("/api/v1/duty-rules/99999/withdraw", headers=admin).status_code == 404
        # A rule tied to matters serves cases of those matters only, not a plain use.
        assert client.post(use, json={"cause": "日常检查"}, headers=counter).status_code == 403
        listed = client.get("/api/v1/duty-rules", headers=admin).json()
        assert [r["state"] for r in listed] == ["withdrawn", "active"]


def test_holders_grant_list_and_withdraw_standing_authorisations(env: LicenceEnv) -> None:
    food = issue_food(env)
    app = create_app(env.settings)
    counter = {"Authorization": f"Bearer {app.state.api_keys.create('user', USER_USCC).key}"}
    with TestClient(app) as client:
        login = client.post("/api/v1/holder/login", json={"holder_code": HOLDER, "password": PASSWORD}).json()
        holder = {"Authorization": f"Bearer {login['session_token']}"}
        grant = {"department_uscc": USER_USCC, "matter": CATERING, "days": 30}
        assert client.post("/api/v1/holder/authorisations", json=grant).status_code == 401
        assert client.post("/api/v1/holder/authorisations", json=grant, headers=counter).status_code == 401
        assert client.post("/api/v1/holder/authorisations", json={**grant, "matter": "nope"},
                           headers=holder).status_code == 404
        wrong = client.post("/api/v1/holder/authorisations", json={**grant, "department_uscc": ISSUER_USCC},
                            headers=holder)
        assert wrong.status_code == 422 and "不办理" in wrong.json()["message"]
        assert client.post("/api/v1/holder/authorisations", json={**grant, "days": 400},
                           headers=holder).status_code == 422
        made = client.post("/api/v1/holder/authorisations", json=grant, headers=holder)
        assert made.status_code == 201, made.text
        granted = made.json()
        assert granted["matter"] == CATERING and not granted["withdrawn"]

        case = client.post("/api/v1/cases", json={"matter": CATERING, "applicant": HOLDER}, headers=counter).json()
        assert case["materials"][1]["candidates"][0]["basis"] == "consent"
        reused = client.post(f"/api/v1/cases/{case['case']}/reuse", json={"identifier": food}, headers=counter)
        assert reused.status_code == 200 and reused.json()["consent"] == "authorisation"

        listed = client.get("/api/v1/holder/authorisations", headers=holder).json()
        assert [a["id"] for a in listed] == [granted["id"]]
        gone = client.post(f"/api/v1/holder/authorisations/{granted['id']}/withdraw", headers=holder).json()
        assert gone["withdrawn"] is True
        second = client.post("/api/v1/cases", json={"matter": CATERING, "applicant": HOLDER}, headers=counter).json()
        assert second["materials"][1]["candidates"][0]["basis"] is None
        refused = client.post(f"/api/v1/cases/{second['case']}/reuse", json={"identifier": food}, headers=counter)
        assert refused.status_code == 403
        env.services.accounts.create(_other_company(), "另一家公司", PASSWORD)
        other = client.post("/api/v1/holder/login", json={"holder_code": _other_company(), "password": PASSWORD})
        other_holder = {"Authorization": f"Bearer {other.json()['session_token']}"}
        assert client.post(f"/api/v1/holder/authorisations/{granted['id']}/withdraw",
                           headers=other_holder).status_code == 404


def test_statistics_count_what_was_issued_used_shown_and_reused(env: LicenceEnv) -> None:
    services = env.services
    business, food = issue_business(env), issue_food(env)
    holder = services.accounts.holder(HOLDER)
    token, _ = services.holders.show_token(holder, food)
    services.show_tokens.verify(COUNTER, token)
    services.duty_rules.add(CLI_ACTOR, USER_USCC, BUSINESS_TYPE)
    case = services.cases.open(COUNTER, CATERING, HOLDER)
    services.cases.reuse(COUNTER, case.id, business)
    services.cases.close(COUNTER, case.id)
    market = Actor("apikey:m", "user", ISSUER_USCC)
    services.cases.open(market, "food-licence-change", HOLDER)  # 4 materials, none reused

    today = local_date(dt.datetime.now(dt.timezone.utc))
    stats = services.stats.compute(CLI_ACTOR)
    totals = stats.totals.counts
    assert (totals["licences_issued"], totals["uses"], totals["show_checks"], totals["cases"]) == (2, 1, 1, 2)
    assert (totals["materials_required"], totals["materials_reused"], stats.totals.reuse_rate) == (7, 1, 0.1429)
    assert [r.period for r in stats.rows] == [today.isoformat()]
    by_matter = {r.key: r for r in services.stats.compute(CLI_ACTOR, by="matter", period="month").rows}
    assert by_matter[CATERING].counts["materials_reused"] == 1 and by_matter[CATERING].reuse_rate == 0.3333
    assert by_matter[CATERING].counts["uses"] == 1 and by_matter[None].counts["licences_issued"] == 2
    assert by_matter["food-licence-change"].counts["materials_required"] == 4
    by_type = {r.key: r.counts for r in services.stats.compute(CLI_ACTOR, by="type", period="quarter").rows}
    assert by_type[BUSINESS_TYPE]["materials_reused"] == 1 and by_type[FOOD_TYPE]["show_checks"] == 1
    assert by_type[None]["materials_required"] == 3 and by_type[None]["cases"] == 2  # submitted materials
    by_department = {r.key: r.counts for r in services.stats.compute(CLI_ACTOR, by="department").rows}
    assert by_department[ISSUER_USCC]["licences_issued"] == 2 and by_department[ISSUER_USCC]["cases"] == 1
    assert by_department[USER_USCC]["uses"] == 1 and by_department[USER_USCC]["show_checks"] == 1
    long_ago = services.stats.compute(CLI_ACTOR, dt.date(2020, 1, 1), dt.date(2020, 1, 31))
    assert long_ago.rows == () and long_ago.totals.reuse_rate is None

    app = create_app(env.settings)
    keys = app.state.api_keys
    with TestClient(app) as client:
        admin = {"Authorization": f"Bearer {keys.create('admin', None).key}"}
        auditor = {"Authorization": f"Bearer {keys.create('auditor', USER_USCC).key}"}
        user = {"Authorization": f"Bearer {keys.create('user', USER_USCC).key}"}
        assert client.get("/api/v1/stats", headers=user).status_code == 403
        body = client.get("/api/v1/stats?by=matter", headers=auditor).json()
        assert body["totals"]["materials_reused"] == 1 and body["by"] == "matter"
        csv_answer = client.get(f"/api/v1/stats?format=csv&from={today}&to={today}", headers=admin)
        assert csv_answer.status_code == 200 and csv_answer.headers["content-type"].startswith("text/csv")
        lines = csv_answer.text.strip().splitlines()
        assert lines[0].startswith("period,key,licences_issued") and lines[-1].startswith("total,,2,1,1,2,7,1,0.1429")
        xlsx = client.get("/api/v1/stats?format=xlsx&by=type", headers=auditor)
        assert xlsx.status_code == 200 and xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
        sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
        assert [c.value for c in sheet[sheet.max_row]][:8] == ["合计", None, 2, 1, 1, 2, 7, 1]
        assert client.get("/api/v1/stats?from=2026-02-01&to=2026-01-01", headers=admin).status_code == 422
        for edge in ("to=0001-01-05", "to=9999-12-31", "from=0001-01-01&to=0001-01-02"):  # found by the fuzzer
            answer = client.get(f"/api/v1/stats?{edge}", headers=admin)
            assert answer.status_code == 422 and "统计日期应在" in answer.text, answer.text
        assert client.get("/api/v1/stats?by=colour", headers=admin).status_code == 422


# --- who may call what ---------------------------------------------------------------------------
def test_every_caller_against_the_case_endpoints(env: LicenceEnv) -> None:
    """The auth matrix of test_auth_matrix for the new endpoints: 401/403 or 2xx, refusals audited."""
    business = issue_business(env)
    env.services.duty_rules.add(CLI_ACTOR, USER_USCC, BUSINESS_TYPE)
    app = create_app(env.settings)
    keys = app.state.api_keys
    callers = {
        "none": {},
        "admin": {"Authorization": f"Bearer {keys.create('admin', None).key}"},
        "issuer": {"Authorization": f"Bearer {keys.create('issuer', ISSUER_USCC).key}"},
        "other_user": {"Authorization": f"Bearer {keys.create('user', ISSUER_USCC).key}"},
        "user": {"Authorization": f"Bearer {keys.create('user', USER_USCC).key}"},
        "auditor": {"Authorization": f"Bearer {keys.create('auditor', USER_USCC).key}"},
    }
    every = frozenset(callers) - {"none"}

    def new_case(_: str) -> int:
        return env.services.cases.open(CLI_ACTOR, CATERING, HOLDER, USER_USCC).id

    counter = iter(range(1000))
    matter = {"code": "m", "name": "测试事项", "departments": [USER_USCC], "materials": [{"name": "材料"}]}
    endpoints: list[tuple[str, Callable[[str], tuple[str, str, dict[str, Any]]], frozenset[str]]] = [
        ("list matters", lambda _: ("GET", "/api/v1/matters", {}), every),
        ("one matter", lambda _: ("GET", f"/api/v1/matters/{CATERING}", {}), every),
        ("register matter", lambda _: ("POST", "/api/v1/matters", {"json": {**matter, "code": f"m{next(counter)}"}}),
         frozenset({"admin"})),
        ("open case", lambda c: ("POST", "/api/v1/cases", {"json": {
            "matter": CATERING, "applicant": HOLDER, **({"department_uscc": USER_USCC} if c == "admin" else {})}}),
         frozenset({"admin", "user"})),
        ("get case", lambda c: ("GET", f"/api/v1/cases/{new_case(c)}", {}), frozenset({"admin", "user", "auditor"})),
        ("reuse", lambda c: ("POST", f"/api/v1/cases/{new_case(c)}/reuse", {"json": {"identifier": business}}),
         frozenset({"admin", "user"})),
        ("close", lambda c: ("POST", f"/api/v1/cases/{new_case(c)}/close", {}), frozenset({"admin", "user"})),
        ("list duty rules", lambda _: ("GET", "/api/v1/duty-rules", {}), every),
        ("withdraw duty rule", lambda _: ("POST", f"/api/v1/duty-rules/{_rule(env)}/withdraw", {}),
         frozenset({"admin"})),
        ("stats", lambda _: ("GET", "/api/v1/stats", {}), frozenset({"admin", "auditor"})),
    ]
    wrong, denied = [], 0
    with Session(env.engine) as session:
        before = session.exec(select(func.count()).select_from(AuditEventRow)
                              .where(col(AuditEventRow.action) == "denied")).one()
    with TestClient(app) as client:
        for name, request, allowed in endpoints:
            for caller, headers in callers.items():
                method, path, options = request(caller)
                status = client.request(method, path, headers=headers, **options).status_code
                if caller in allowed:
                    good = 200 <= status < 300
                else:
                    good = status == (401 if caller == "none" else 403)
                    denied += 1
                if not good:
                    wrong.append(f"{name:20} {caller:12} {method} {path} → {status}")
    assert not wrong, "\n".join(wrong)
    with Session(env.engine) as session:
        after = session.exec(select(func.count()).select_from(AuditEventRow)
                             .where(col(AuditEventRow.action) == "denied")).one()
    assert after - before == denied


def _rule(env: LicenceEnv) -> int:
    return env.services.duty_rules.add(CLI_ACTOR, USER_USCC, FOOD_TYPE, valid_until=dt.date(2100, 1, 1)).id


# --- a show token scanned at the counter as the holder's consent -----------------------------------
def test_a_show_token_is_the_holders_consent_once_for_the_licence_it_shows(env: LicenceEnv, pki: PkiHierarchy) -> None:
    services = env.services
    food, business = issue_food(env), issue_business(env)
    other = _other_company()
    other_food = issue_food(env, holder=other)
    services.accounts.create(other, "另一家公司", PASSWORD)
    app = create_app(env.settings)
    counter = {"Authorization": f"Bearer {app.state.api_keys.create('user', USER_USCC).key}"}

    with TestClient(app) as client:

        def login(code: str) -> dict[str, str]:
            answer = client.post("/api/v1/holder/login", json={"holder_code": code, "password": PASSWORD}).json()
            return {"Authorization": f"Bearer {answer['session_token']}"}

        holder, other_holder = login(HOLDER), login(other)

        def shown(identifier: str, who: dict[str, str] = holder) -> str:
            made = client.post(f"/api/v1/holder/licences/{identifier}/show-token", json={}, headers=who)
            assert made.status_code == 200, made.text
            return str(made.json()["token"])

        def open_case(number: str) -> str:
            opened = client.post("/api/v1/cases", headers=counter,
                                 json={"matter": CATERING, "applicant": HOLDER, "case_number": number})
            assert opened.status_code == 201, opened.text
            return f"/api/v1/cases/{opened.json()['case']}/reuse"

        reuse = open_case("LZ-1")
        before = use_count(env)
        # Attacks: each refused with 403 and nothing recorded.
        token = shown(food)
        payload = token.split(".")[1]
        flipped = payload[:40] + ("A" if payload[40] != "A" else "B") + payload[41:]
        signer = services.cases.pki.service_signer(dt.datetime.now(dt.timezone.utc))
        long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
        expired = make_token(signer, food, {"operator_name": "x"}, long_ago, dt.timedelta(seconds=60))[0]
        foreign = make_token(pki.seal_signer, food, {"operator_name": "x"}, dt.datetime.now(dt.timezone.utc),
                             dt.timedelta(seconds=60))[0]
        attacks = {
            "another holder's licence": {"show_token": shown(other_food, other_holder)},
            "another licence than the one named": {"identifier": business, "show_token": token},
            "expired": {"show_token": expired},
            "altered": {"show_token": ".".join([token.split(".")[0], flipped, token.split(".")[2]])},
            "signed by another key": {"show_token": foreign},
            "not a token": {"show_token": "ECT1.abc.def"},
        }
        for what, body in attacks.items():
            answer = client.post(reuse, json=body, headers=counter)
            assert answer.status_code == 403, (what, answer.text)
            assert "亮证码" in answer.json()["message"], what
        assert client.post(reuse, json={"identifier": food, "use_code": "ABCD1234", "show_token": token},
                           headers=counter).status_code == 422
        assert use_count(env) == before

        # The holder's own token for the licence: consent, the identifier taken from the token.
        done = client.post(reuse, json={"show_token": token}, headers=counter)
        assert done.status_code == 200, done.text
        assert (done.json()["identifier"], done.json()["basis"], done.json()["consent"]) == (
            food, "consent", "show_token")
        assert use_count(env) == before + 1
        # Replayed: in another case, and at the plain check after it.
        again = client.post(open_case("LZ-2"), json={"show_token": token}, headers=counter)
        assert again.status_code == 403 and "只能用一次" in again.json()["message"]
        verified = client.post("/api/v1/show-tokens/verify", json={"token": token}, headers=counter).json()
        assert verified["reason"] == "replayed"
        # A token checked at the plain check first is spent too.
        checked = shown(food)
        assert client.post("/api/v1/show-tokens/verify", json={"token": checked}, headers=counter).json()[
            "result"] == "VALID"
        assert client.post(open_case("LZ-3"), json={"show_token": checked}, headers=counter).status_code == 403

        # The holder sees the use with the matter and case number; the receipt names the basis.
        uses = [u for u in client.get("/api/v1/holder/uses", headers=holder).json() if u["action"] == "use"]
        assert (food, CATERING, "LZ-1") in {(u["identifier"], u["matter"], u["case_number"]) for u in uses}
        case_id = int(reuse.split("/")[-2])
        shown_case = client.get(f"/api/v1/cases/{case_id}", headers=counter).json()
        assert shown_case["materials"][1]["reused"]["consent"] == "show_token"
        receipt = services.cases.close(COUNTER, case_id)
        assert services.verification.verify_file(receipt.pdf).result is Status.VALID


def test_a_show_token_disclosing_some_fields_gives_the_case_those_fields_only(env: LicenceEnv) -> None:
    """Found by an attacker review: a token on which the holder showed one field handed the case every
    face field and a sealed copy of the whole licence. The department gets what was shown, then and
    on the case's record, and no copy; a token showing every field still gives both."""
    food = issue_food(env)
    full_face = set(json.loads(env.services.sharing.find_licence(food).face_json))
    app = create_app(env.settings)
    counter = {"Authorization": f"Bearer {app.state.api_keys.create('user', USER_USCC).key}"}
    with TestClient(app) as client:
        session = client.post("/api/v1/holder/login", json={"holder_code": HOLDER, "password": PASSWORD}).json()
        holder = {"Authorization": f"Bearer {session['session_token']}"}

        def shown(fields: list[str] | None) -> tuple[str, set[str]]:
            body = {} if fields is None else {"fields": fields}
            made = client.post(f"/api/v1/holder/licences/{food}/show-token", json=body, headers=holder).json()
            return made["token"], set(made["fields"])

        def reuse_in_new_case(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
            opened = client.post("/api/v1/cases", json={"matter": CATERING, "applicant": HOLDER}, headers=counter)
            case = opened.json()["case"]
            done = client.post(f"/api/v1/cases/{case}/reuse", json={"show_token": token}, headers=counter)
            assert done.status_code == 200, done.text
            return done.json(), client.get(f"/api/v1/cases/{case}", headers=counter).json()

        token, disclosed = shown(["operator_name"])
        assert disclosed < full_face
        done, case = reuse_in_new_case(token)
        assert set(done["face_data"]) == disclosed and done["copy_url"] is None
        reused = next(m["reused"] for m in case["materials"] if m["reused"])
        assert set(reused["fields"]) == disclosed

        token, disclosed = shown(None)  # every field
        assert disclosed == full_face
        done, case = reuse_in_new_case(token)
        assert set(done["face_data"]) == full_face and done["copy_url"] is not None
        assert set(next(m["reused"] for m in case["materials"] if m["reused"])["fields"]) == full_face
        copy = client.get(done["copy_url"].split("testserver", 1)[-1])
        assert copy.status_code == 200 and copy.content.startswith(b"%PDF")


def test_a_failed_reuse_gives_the_show_token_back_and_two_counters_get_it_once(
    env: LicenceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = env.services
    food = issue_food(env)
    holder = services.accounts.holder(HOLDER)
    token, _ = services.holders.show_token(holder, food)
    case = services.cases.open(COUNTER, CATERING, HOLDER, case_number="F1").id
    original = services.sharing._annotated_copy

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(services.sharing, "_annotated_copy", broken)
    with pytest.raises(OSError):
        services.cases.reuse(COUNTER, case, None, show_token=token)
    monkeypatch.setattr(services.sharing, "_annotated_copy", original)
    assert services.cases.reuse(COUNTER, case, None, show_token=token).consent == "show_token"

    for _round in range(3):
        token, _ = services.holders.show_token(holder, food)
        cases = [services.cases.open(COUNTER, CATERING, HOLDER, case_number=f"T{n}").id for n in range(2)]
        outcomes = _at_once([lambda c=c, t=token: services.cases.reuse(COUNTER, c, None, show_token=t) for c in cases])
        assert sorted(type(o).__name__ for o in outcomes) == ["CaseReuse", "PermissionDeniedError"], outcomes


def test_statistics_are_counted_by_the_database_on_chinas_calendar(env: LicenceEnv) -> None:
    """Events either side of midnight, a month's end and a quarter's end in Beijing (UTC+8) land in
    the right day, month and quarter; the database groups them: one statement a source, however many
    events."""
    services = env.services
    food = issue_food(env)
    utc = dt.timezone.utc
    moments = {
        dt.datetime(2025, 3, 31, 15, 59, tzinfo=utc): ("2025-03-31", "2025-03", "2025-Q1"),  # 23:59 Beijing
        dt.datetime(2025, 3, 31, 16, 1, tzinfo=utc): ("2025-04-01", "2025-04", "2025-Q2"),  # 00:01 on 1 April
        dt.datetime(2025, 12, 31, 16, 30, tzinfo=utc): ("2026-01-01", "2026-01", "2026-Q1"),
    }
    with Session(env.engine) as session:
        for at in moments:
            for n in range(3):
                session.add(AuditEventRow(at=at, actor="apikey:x", actor_role="user", actor_department=USER_USCC,
                                          action="use", target=food, detail_json=json.dumps({"matter": CATERING})))
                session.add(CaseRow(matter_code=CATERING, department_uscc=USER_USCC, applicant_code=HOLDER,
                                    status="open", opened_at=at + dt.timedelta(seconds=n), opened_by="x"))
        session.commit()
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(env.engine, "before_cursor_execute", count)
    try:
        for index, period in enumerate(("day", "month", "quarter")):
            statements.clear()
            stats = services.stats.compute(CLI_ACTOR, dt.date(2025, 3, 1), dt.date(2026, 1, 31), "matter", period)
            assert len(statements) == 5, statements  # issued, uses, show checks, cases, materials
            assert all("GROUP BY" in s for s in statements)
            got = {(r.period, r.key): (r.counts["uses"], r.counts["cases"]) for r in stats.rows}
            assert got == {(labels[index], CATERING): (3, 3) for labels in moments.values()}, got
            assert stats.totals.counts["uses"] == 9 and stats.totals.counts["materials_required"] == 0
    finally:
        event.remove(env.engine, "before_cursor_execute", count)
    # The first day of the range begins at midnight in Beijing: 23:59 on 31 March is outside 1 April on.
    april = services.stats.compute(CLI_ACTOR, dt.date(2025, 4, 1), dt.date(2025, 4, 30))
    assert april.totals.counts["uses"] == 3 and [r.period for r in april.rows] == ["2025-04-01"]


# --- a department's list of its cases ----------------------------------------------------------------
def test_a_department_lists_its_own_open_cases(env: LicenceEnv) -> None:
    services = env.services
    business = issue_business(env)
    services.duty_rules.add(CLI_ACTOR, USER_USCC, BUSINESS_TYPE, [CATERING])
    first = services.cases.open(COUNTER, CATERING, HOLDER, case_number="A-1").id
    second = services.cases.open(COUNTER, CATERING, HOLDER, case_number="A-2").id
    services.cases.reuse(COUNTER, second, business)
    closed = services.cases.open(COUNTER, CATERING, HOLDER).id
    services.cases.close(COUNTER, closed)
    market = Actor("apikey:m", "user", ISSUER_USCC)
    theirs = services.cases.open(market, "food-licence-change", HOLDER).id

    listed = services.cases.list_cases(COUNTER)
    assert [(c.id, c.required, c.reused) for c in listed] == [(second, 3, 1), (first, 3, 0)]  # newest first
    assert listed[0].applicant != HOLDER and listed[0].case_number == "A-2"
    assert [c.id for c in services.cases.list_cases(COUNTER, status="closed")] == [closed]
    assert [c.id for c in services.cases.list_cases(market)] == [theirs]
    with pytest.raises(PermissionDeniedError):
        services.cases.list_cases(COUNTER, ISSUER_USCC)  # another department's
    assert {c.id for c in services.cases.list_cases(CLI_ACTOR)} == {first, second, theirs}

    app = create_app(env.settings)
    keys = app.state.api_keys
    with TestClient(app) as client:
        counter = {"Authorization": f"Bearer {keys.create('user', USER_USCC).key}"}
        auditor = {"Authorization": f"Bearer {keys.create('auditor', OTHER_ISSUER_USCC).key}"}
        issuer = {"Authorization": f"Bearer {keys.create('issuer', USER_USCC).key}"}
        body = client.get("/api/v1/cases", headers=counter).json()
        assert [(c["case"], c["materials_required"], c["materials_reused"]) for c in body] == [(second, 3, 1),
                                                                                               (first, 3, 0)]
        assert client.get(f"/api/v1/cases?department_uscc={ISSUER_USCC}", headers=counter).status_code == 403
        assert client.get("/api/v1/cases?status=closed", headers=counter).json()[0]["case"] == closed
        assert [c["case"] for c in client.get(f"/api/v1/cases?department_uscc={ISSUER_USCC}",
                                              headers=auditor).json()] == [theirs]
        assert client.get("/api/v1/cases", headers=issuer).status_code == 403
        assert client.get("/api/v1/cases?status=nope", headers=counter).status_code == 422
        assert client.get("/api/v1/cases").status_code == 401
