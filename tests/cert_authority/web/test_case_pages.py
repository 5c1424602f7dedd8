"""The counter's case screen and the wallet's standing authorisations through the app, without a
browser: open a case, reuse through a duty rule, a use code and a standing authorisation, close with
the receipt to download; a use code typed into the scan field; every form post answers with a
redirect and its message in Chinese on the next page."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cert_authority.actors import CLI_ACTOR
from cert_authority.demo import BUSINESS_TYPE, register_example_matters
from cert_authority.http.app import create_app
from tests.cert_authority.web.web_pages import PASSWORD, holder_client, staff_client
from tests.conftest import (
    FOOD_TYPE,
    ISSUER_USCC,
    USER_USCC,
    LicenceEnv,
    example_data,
    issue_example,
)
from verification.report import Status

HOLDER = example_data(FOOD_TYPE)["operator_code"]
CATERING = "drainage-permit-catering"  # 营业执照, 食品经营许可证, drawings (paper); USER_USCC handles it
DRAWINGS = "内部排水管网、检测井及排放口位置图"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@dataclass
class Counter:
    env: LicenceEnv
    app: FastAPI
    business: str
    food: str


def business_data(holder: str) -> dict[str, str]:
    spec = yaml.safe_load((EXAMPLES / "types" / "business-licence.yaml").read_text(encoding="utf-8"))
    return {f["key"]: str(f["example"]) for f in spec["fields"]} | {"uscc": holder}


@pytest.fixture
def site(licence_env: LicenceEnv) -> Counter:
    env = licence_env
    register_example_matters(env.services)
    env.services.accounts.create(HOLDER, "演示市鼓楼区好味道餐饮有限公司", PASSWORD)
    business = issue_example(env, BUSINESS_TYPE, business_data(HOLDER)).licence.identifier
    food = issue_example(env, FOOD_TYPE).licence.identifier
    app = create_app(env.settings)
    app.state.staff.create("counter", "李娜", "user", USER_USCC, PASSWORD)
    app.state.staff.create("market", "张敏", "user", ISSUER_USCC, PASSWORD)
    return Counter(env, app, business, food)


def posted(client: TestClient, url: str, data: dict[str, str] | None = None) -> str:
    """A form post: it must answer with a redirect; the page it leads to (with its message)."""
    answer = client.post(url, data=data or {}, follow_redirects=False)
    assert answer.status_code == 303, (url, answer.status_code, answer.text[:500])
    page = client.get(answer.headers["location"])
    assert page.status_code == 200, page.text[:500]
    return page.text


def flash(html: str) -> str:
    found = re.search(r'id="flash">([^<]*)<', html)
    assert found, html[:3000]
    return found.group(1)


def open_case(client: TestClient, number: str = "CG-2026-0001") -> tuple[int, str]:
    answer = client.post("/counter/cases", data={"matter": CATERING, "applicant": HOLDER, "case_number": number},
                         follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/counter/cases/"), answer.text
    return int(answer.headers["location"].rsplit("/", 1)[1]), client.get(answer.headers["location"]).text


def test_a_case_with_a_duty_rule_a_use_code_and_paper(site: Counter) -> None:
    services = site.env.services
    services.duty_rules.add(CLI_ACTOR, USER_USCC, BUSINESS_TYPE, [CATERING])
    counter = staff_client(site.app, "counter")
    home = counter.get("/counter")
    assert "城镇污水排入排水管网许可证核发（餐饮排水户）" in home.text and 'action="/counter/cases"' in home.text
    assert "食品经营许可变更" not in home.text  # another department's matter

    case_id, page = open_case(counter)
    assert "已受理办件" in flash(page) and DRAWINGS in page and "依职责" in page and "需持证人同意" in page
    assert site.business in page and site.food in page and "CG-2026-0001" in page

    # No basis and no use code: refused in Chinese, nothing reused.
    refused = posted(counter, f"/counter/cases/{case_id}/reuse", {"identifier": site.food})
    assert "未能复用" in flash(refused) and "用证码" in flash(refused)
    wrong = posted(counter, f"/counter/cases/{case_id}/reuse", {"identifier": site.food, "use_code": "not a code"})
    assert "用证码应为 8 位" in flash(wrong)
    assert 'data-state="reused"' not in wrong

    # The duty rule: one click, then the face data.
    done = posted(counter, f"/counter/cases/{case_id}/reuse", {"identifier": site.business})
    assert "已复用「营业执照」" in flash(done) and 'data-state="reused"' in done and "照面信息" in done

    # The holder's use code.
    holder = services.accounts.holder(HOLDER)
    code, _ = services.sharing.create_use_code(holder, site.food, USER_USCC, "排水许可")
    done = posted(counter, f"/counter/cases/{case_id}/reuse", {"identifier": site.food, "use_code": code.lower()})
    assert "已复用「食品经营许可证」" in flash(done) and "持证人同意（用证码）" in done
    assert done.count('data-state="reused"') == 2 and 'data-state="paper"' in done

    # Another department's staff cannot see or act on the case.
    market = staff_client(site.app, "market")
    assert market.get(f"/counter/cases/{case_id}").status_code == 403
    assert market.post(f"/counter/cases/{case_id}/close", follow_redirects=False).headers["location"].endswith(
        f"/counter/cases/{case_id}")

    # No receipt before closing; closing gives it, as an attachment that verifies.
    assert counter.get(f"/counter/cases/{case_id}/receipt.pdf").status_code == 409
    closed = posted(counter, f"/counter/cases/{case_id}/close")
    assert "已办结" in flash(closed) and "receipt.pdf" in closed and "已办结" in closed
    pdf = counter.get(f"/counter/cases/{case_id}/receipt.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith("attachment;")
    assert services.verification.verify_file(pdf.content).result is Status.VALID
    again = posted(counter, f"/counter/cases/{case_id}/reuse", {"identifier": site.food})
    assert "未能复用" in flash(again) and "已办结" in flash(again)

    # The holder sees both uses with the matter and the case number.
    wallet = holder_client(site.app, HOLDER).get("/wallet/uses").text
    assert wallet.count("城镇污水排入排水管网许可证核发（餐饮排水户）") >= 2 and "CG-2026-0001" in wallet


def test_opening_errors_are_shown_on_the_counter_page(site: Counter) -> None:
    counter = staff_client(site.app, "counter")
    for data, message in (
        ({"matter": CATERING, "applicant": "91350100M000100Y44"}, "校验位"),
        ({"matter": CATERING, "applicant": ""}, "申请人"),
        ({"matter": "", "applicant": HOLDER}, "请选择办理事项"),
        ({"matter": "no-such-matter", "applicant": HOLDER}, "no-such-matter"),
        ({"matter": "food-licence-change", "applicant": HOLDER}, "不办理"),
    ):
        page = posted(counter, "/counter/cases", data)
        assert message in flash(page), (data, flash(page))
        assert "value_error" not in page and "Field required" not in page
    assert "id=\"flash\"" not in counter.get("/counter").text  # shown once


def test_a_use_code_in_the_scan_field_goes_to_the_use_form(site: Counter) -> None:
    services = site.env.services
    counter = staff_client(site.app, "counter")
    holder = services.accounts.holder(HOLDER)
    code, _ = services.sharing.create_use_code(holder, site.food, USER_USCC, "排水许可")
    typed = counter.post("/counter/check", data={"code": f" {code[:4]}-{code[4:].lower()} "}, follow_redirects=False)
    assert typed.status_code == 303 and typed.headers["location"] == "/counter/use"
    assert code not in typed.headers["location"]
    form = counter.get("/counter/use")
    assert form.status_code == 200 and "食品经营许可证" in form.text and 'name="cause"' in form.text
    assert "请填写用证事由" in flash(posted(counter, "/counter/use", {"cause": " "}))
    used = posted(counter, "/counter/use", {"cause": "办理排水许可"})
    assert "已凭用证码调取证照" in flash(used) and "演示市鼓楼区好味道餐饮有限公司" in used
    # Spent (one use): the same code again is refused on the page, in Chinese.
    again = counter.post("/counter/check", data={"code": code}, follow_redirects=True)
    assert again.status_code == 200 and "用证码无效" in flash(again.text)
    # Another department's staff: the code was not given to it.
    market = staff_client(site.app, "market")
    other, _ = services.sharing.create_use_code(holder, site.food, USER_USCC, "排水许可")
    assert "用证码无效" in flash(market.post("/counter/check", data={"code": other}, follow_redirects=True).text)
    assert market.get(f"/counter/used/{site.food}").status_code == 404
    # An identifier still goes to the check as before.
    checked = counter.post("/counter/check", data={"code": site.food})
    assert checked.status_code == 200 and 'id="verdict"' in checked.text


def test_the_holder_grants_and_withdraws_a_standing_authorisation(site: Counter) -> None:
    wallet = holder_client(site.app, HOLDER)
    page = wallet.get("/wallet/uses").text
    assert "授权用证" in page and f'value="{USER_USCC}|{CATERING}"' in page
    for data, message in (
        ({"choice": "", "days": "30"}, "请选择"),
        ({"choice": f"{USER_USCC}|{CATERING}", "days": "0"}, "有效天数"),
        ({"choice": f"{USER_USCC}|{CATERING}", "days": "abc"}, "有效天数"),
        ({"choice": f"{ISSUER_USCC}|{CATERING}", "days": "30"}, "不办理"),
        ({"choice": f"{USER_USCC}|no-such-matter", "days": "30"}, "未能授权"),
    ):
        assert message in flash(posted(wallet, "/wallet/authorisations", data)), data
    granted = posted(wallet, "/wallet/authorisations", {"choice": f"{USER_USCC}|{CATERING}", "days": "30"})
    assert "已授权" in flash(granted) and "撤回此授权" in granted

    # At the counter: both licences now have the holder's consent, reused without a use code.
    counter = staff_client(site.app, "counter")
    case_id, checklist = open_case(counter, "CG-2")
    assert checklist.count(">持证人授权<") == 2 and "需持证人同意" not in checklist
    done = posted(counter, f"/counter/cases/{case_id}/reuse", {"identifier": site.food})
    assert "持证人授权（授权用证）" in done
    uses = wallet.get("/wallet/uses").text
    assert "办理事项：城镇污水排入排水管网许可证核发（餐饮排水户） · 办件号 CG-2" in uses
    assert site.app.state.registry.get_department_by_uscc(USER_USCC).name in uses  # the department by name

    # Withdrawn: the counter needs a use code again; another holder cannot withdraw it.
    listed = site.env.services.authorisations.list(site.env.services.accounts.holder(HOLDER))
    withdrawn = posted(wallet, f"/wallet/authorisations/{listed[0].id}/withdraw")
    assert "已撤回授权" in flash(withdrawn) and "已撤回" in withdrawn
    _, checklist = open_case(counter, "CG-3")
    assert "需持证人同意" in checklist
    assert "未能撤回" in flash(posted(wallet, "/wallet/authorisations/99999/withdraw"))


def test_the_scan_fields_take_show_tokens_use_codes_and_identifiers(site: Counter) -> None:
    """At opening, a show token opens the case for its holder and reuses that licence; in the case,
    the scan field takes a use code, an identifier or a QR address, and a replayed token is refused."""
    services = site.env.services
    services.duty_rules.add(CLI_ACTOR, USER_USCC, BUSINESS_TYPE, [CATERING])
    counter = staff_client(site.app, "counter")
    holder = services.accounts.holder(HOLDER)

    token, _ = services.holders.show_token(holder, site.food)
    opened = counter.post("/counter/cases", data={"matter": CATERING, "applicant": token, "case_number": "LZ-9"},
                          follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"].startswith("/counter/cases/"), opened.text
    case_id = int(opened.headers["location"].rsplit("/", 1)[1])
    page = counter.get(opened.headers["location"]).text
    assert "已受理办件" in flash(page) and "已复用「食品经营许可证」" in flash(page)
    assert "持证人同意（当面亮证）" in page and 'id="case-scan-form"' in page
    # The same token again, in this case's scan field: a replay.
    replayed = posted(counter, f"/counter/cases/{case_id}/scan", {"code": token})
    assert "未能复用" in flash(replayed) and "只能用一次" in flash(replayed)
    # The licence's QR address: reused on the duty rule.
    done = posted(counter, f"/counter/cases/{case_id}/scan", {"code": f"http://x/v/{site.business}"})
    assert "已复用「营业执照」" in flash(done) and done.count('data-state="reused"') == 2
    assert "请扫描" in flash(posted(counter, f"/counter/cases/{case_id}/scan", {"code": " "}))

    # A use code at opening: the case for its holder, the licence reused with the code.
    code, _ = services.sharing.create_use_code(holder, site.food, USER_USCC, "排水许可")
    second = posted(counter, "/counter/cases", {"matter": CATERING, "applicant": code})
    assert "已复用「食品经营许可证」" in flash(second) and "持证人同意（用证码）" in second
    # In a case's scan field: a use code spent already, and one of another licence, are refused.
    third_id, _ = open_case(counter, "LZ-11")
    assert "用证码无效" in flash(posted(counter, f"/counter/cases/{third_id}/scan", {"code": code}))
    wrong, _ = services.sharing.create_use_code(holder, site.business, USER_USCC, "排水许可")
    done = posted(counter, f"/counter/cases/{third_id}/scan", {"code": wrong})
    assert "已复用「营业执照」" in flash(done)  # the code names its own licence: the business licence
    bad = posted(counter, "/counter/cases", {"matter": CATERING, "applicant": token})
    assert "未能受理" not in flash(bad) and "只能用一次" in flash(bad)  # opened, the replayed token refused


def test_the_counter_lists_its_departments_open_cases(site: Counter) -> None:
    counter = staff_client(site.app, "counter")
    mine, _ = open_case(counter, "MINE-1")
    market = staff_client(site.app, "market")
    home = counter.get("/counter").text
    assert 'id="open-cases"' in home and f'href="/counter/cases/{mine}"' in home and "MINE-1" in home
    assert HOLDER not in home  # masked
    assert f'href="/counter/cases/{mine}"' not in market.get("/counter").text
    posted(counter, f"/counter/cases/{mine}/close")
    assert f'href="/counter/cases/{mine}"' not in counter.get("/counter").text


def test_a_partial_show_token_shows_the_counter_its_fields_only_on_every_page(site: Counter) -> None:
    """Found by an attacker review of the fix that limits a case to the fields a show token
    disclosed: the page that shows a use's face data afterwards (/counter/used/...) showed them all."""
    import json

    services = site.env.services
    face = json.loads(services.sharing.find_licence(site.food).face_json)
    token, shown = services.holders.show_token(services.accounts.holder(HOLDER), site.food, ["operator_name"])
    hidden = {key: str(value) for key, value in face.items() if key not in shown.fields}
    assert hidden and "operator_code" in hidden
    counter = staff_client(site.app, "counter")
    case_id, _ = open_case(counter)
    assert "已复用「食品经营许可证」" in flash(posted(counter, f"/counter/cases/{case_id}/scan", {"code": token}))
    for path in (f"/counter/cases/{case_id}", f"/counter/used/{site.food}"):
        page = counter.get(path)
        assert page.status_code == 200 and face["operator_name"] in page.text, path
        assert [key for key, value in hidden.items() if value in page.text] == [], path


def test_staff_accounts_have_no_exchange_role(site: Counter) -> None:
    """An exchange credential reads the change feed and nothing else: a staff account with it
    could check (and spend) holders' show tokens at the counter page."""
    from cert_authority.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError, match="工作人员的角色"):
        site.app.state.staff.create("xchg", "交换", "exchange", USER_USCC, PASSWORD)
    with pytest.raises(InvalidRequestError, match="工作人员的角色"):
        site.app.state.staff.change_role(CLI_ACTOR, "counter", "exchange", None)
