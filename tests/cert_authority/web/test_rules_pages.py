"""The administrators' duty-rules page (/console/duty-rules): list with states, grant, set an end
date, withdraw, each only when confirmed; auditors read; others are refused; each change counts at
once (a case's checklist follows it)."""

from __future__ import annotations

import datetime as dt
import re

from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.demo import BUSINESS_TYPE, register_example_matters
from cert_authority.http.app import create_app
from cert_authority.timeutil import local_date
from tests.cert_authority.web.test_case_pages import business_data, flash, posted
from tests.cert_authority.web.web_pages import PASSWORD, staff_client
from tests.conftest import FOOD_TYPE, USER_USCC, LicenceEnv, example_data, issue_example

HOLDER = example_data(FOOD_TYPE)["operator_code"]
CATERING = "drainage-permit-catering"
COUNTER = Actor("apikey:counter", "user", USER_USCC)


def test_administrators_grant_expire_and_withdraw_duty_rules_with_confirmation(licence_env: LicenceEnv) -> None:
    env = licence_env
    services = env.services
    register_example_matters(services)
    issue_example(env, BUSINESS_TYPE, business_data(HOLDER))
    app = create_app(env.settings)
    app.state.staff.create("boss", "王强", "admin", None, PASSWORD)
    app.state.staff.create("audit", "赵云", "auditor", USER_USCC, PASSWORD)
    app.state.staff.create("counter", "李娜", "user", USER_USCC, PASSWORD)
    admin = staff_client(app, "boss")

    def basis() -> str | None:
        case = services.cases.open(COUNTER, CATERING, HOLDER)
        return case.materials[0].candidates[0].basis

    assert basis() is None
    grant = {"department": USER_USCC, "type_code": BUSINESS_TYPE, "matters": CATERING}
    unconfirmed = posted(admin, "/console/duty-rules", grant)
    assert "请勾选确认" in flash(unconfirmed) and 'class="card rule"' not in unconfirmed
    granted = posted(admin, "/console/duty-rules", {**grant, "confirm": "yes"})
    found = re.search(r"已授予依职责用证规则 (\d+)", flash(granted))
    assert found, flash(granted)
    rule = found.group(1)
    assert f'id="rule-{rule}" data-state="active"' in granted and "城镇污水排入排水管网许可证核发" in granted
    assert basis() == "duty_rule"

    # An end date: refused unconfirmed or malformed; then the rule lapses after it.
    yesterday = local_date(dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=1)
    assert "请勾选确认" in flash(posted(admin, f"/console/duty-rules/{rule}/expire", {"valid_until": str(yesterday)}))
    assert "YYYY-MM-DD" in flash(posted(admin, f"/console/duty-rules/{rule}/expire",
                                        {"valid_until": "soon", "confirm": "yes"}))
    expired = posted(admin, f"/console/duty-rules/{rule}/expire", {"valid_until": str(yesterday), "confirm": "yes"})
    assert f"适用至 {yesterday}" in flash(expired) and f'id="rule-{rule}" data-state="expired"' in expired
    assert basis() is None

    # Withdraw: only confirmed; then kept and listed as withdrawn, with no forms left on it.
    assert "请勾选确认" in flash(posted(admin, f"/console/duty-rules/{rule}/withdraw"))
    withdrawn = posted(admin, f"/console/duty-rules/{rule}/withdraw", {"confirm": "yes"})
    assert "已撤销" in flash(withdrawn) and f'id="rule-{rule}" data-state="withdrawn"' in withdrawn
    assert f'action="/console/duty-rules/{rule}/withdraw"' not in withdrawn
    assert "已撤销" in flash(posted(admin, f"/console/duty-rules/{rule}/expire",
                                  {"valid_until": "2099-01-01", "confirm": "yes"}))
    assert "没有编号为 999" in flash(posted(admin, "/console/duty-rules/999/withdraw", {"confirm": "yes"}))
    assert "尚未登记" in flash(posted(admin, "/console/duty-rules", {**grant, "matters": "nope", "confirm": "yes"}))
    assert [r.state(yesterday) for r in services.duty_rules.list(CLI_ACTOR)] == ["withdrawn"]

    # Auditors read without forms; a counter's staff neither reads nor changes.
    audit = staff_client(app, "audit").get("/console/duty-rules")
    assert audit.status_code == 200 and f'id="rule-{rule}"' in audit.text and 'name="confirm"' not in audit.text
    counter = staff_client(app, "counter")
    assert counter.get("/console/duty-rules").status_code == 403
    refused = counter.post("/console/duty-rules", data={**grant, "confirm": "yes"}, follow_redirects=False)
    assert refused.status_code == 303 and "%E6%9C%AA%E8%83%BD%E6%8E%88%E4%BA%88" in refused.headers["set-cookie"]
    assert len(services.duty_rules.list(CLI_ACTOR)) == 1
