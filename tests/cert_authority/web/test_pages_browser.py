"""The pages in a real browser (Debian's headless Chromium, driven by Playwright): at a phone's
viewport a holder logs in and opens the show screen; an independent decoder (zbarimg) reads the QR
code off the screenshot; the counter page accepts that token as VALID once, shows it expired after
its lifetime, and shows red for a revoked licence. Screenshots of each page go to the test
artifacts ($ECAS_ARTIFACTS_DIR, else the test's temporary folder) for people to look at."""

from __future__ import annotations

import base64
import datetime as dt
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from fastapi import FastAPI

from cert_authority.actors import CLI_ACTOR
from cert_authority.demo import BUSINESS_TYPE, register_example_matters
from cert_authority.http.app import create_app
from cert_authority.timeutil import utc_now
from keys.sm2 import SM2PrivateKey
from tests.cert_authority.web.web_pages import PASSWORD
from tests.conftest import (
    FOOD_TYPE,
    ISSUER_USCC,
    USER_USCC,
    LicenceEnv,
    example_data,
    issue_example,
    require_tool_or_skip,
)
from verification.report import Status

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
HOLDER = example_data(FOOD_TYPE)["operator_code"]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "locale": "zh-CN",
         "is_mobile": True, "has_touch": True}
CATERING = "drainage-permit-catering"  # 营业执照, 食品经营许可证, drawings on paper; the counter's department
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
DESK = {"viewport": {"width": 1280, "height": 900}, "locale": "zh-CN"}


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ECAS_ARTIFACTS_DIR") or tmp_path) / "screens"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def served_app(licence_env: LicenceEnv) -> FastAPI:
    """The app with a holder, an issuing and a using department's staff."""
    app = create_app(licence_env.settings)
    app.state.staff.create("market", "张敏", "issuer", ISSUER_USCC, PASSWORD)
    app.state.staff.create("counter", "李娜", "user", USER_USCC, PASSWORD)
    licence_env.services.accounts.create(HOLDER, "演示市鼓楼区好味道餐饮有限公司", PASSWORD)
    return app


@pytest.fixture
def server(served_app: FastAPI) -> Iterator[str]:
    """The app on a free local port, served by uvicorn in a thread, as `ecas serve` would."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = served_app
    running = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    while not running.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[object]:
    """Chromium; every context it opens reports what the Content-Security-Policy refused, and a test
    whose pages broke the policy (an inline script, a foreign source) fails."""
    chromium = require_tool_or_skip("chromium")
    refused: list[str] = []
    with playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--lang=zh-CN"])
        new_context = launched.new_context

        def watched_context(*args: Any, **kwargs: Any) -> Any:
            context = new_context(*args, **kwargs)
            context.on("console", lambda message: _note_refusal(message.text, refused))
            return context

        launched.new_context = watched_context  # type: ignore[method-assign]
        yield launched
        launched.close()
    assert not refused, refused


def _note_refusal(text: str, refused: list[str]) -> None:
    if "Content Security Policy" in text:
        refused.append(text)


def zbar(image: Path) -> str:
    """The QR code's text as zbarimg (not our code) reads it off a screenshot."""
    command = [require_tool_or_skip("zbarimg"), "--raw", "-q", str(image)]
    return subprocess.run(command, capture_output=True, timeout=60, check=True).stdout.decode().strip()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_show_scan_verify_expire_and_revoke(
    licence_env: LicenceEnv, served_app: FastAPI, server: str, browser: object, artifacts: Path
) -> None:
    food = issue_example(licence_env, FOOD_TYPE).licence.identifier
    phone = browser.new_context(**PHONE).new_page()  # type: ignore[attr-defined]
    counter = browser.new_context(**DESK).new_page()  # type: ignore[attr-defined]

    # The counter signs in first, ready for the holder.
    counter.goto(f"{server}/counter")
    counter.fill("#username", "counter")
    counter.fill("#password", PASSWORD)
    counter.click("button[type=submit]")
    counter.wait_for_url(f"{server}/counter")
    counter.screenshot(path=artifacts / "counter-empty.png", full_page=True)

    # The holder logs in on the phone and opens the licence and its show screen.
    phone.goto(f"{server}/wallet")
    phone.screenshot(path=artifacts / "phone-login.png")
    phone.fill("#holder_code", HOLDER)
    phone.fill("#password", PASSWORD)
    phone.click("button[type=submit]")
    phone.wait_for_url(f"{server}/wallet")
    phone.wait_for_load_state("networkidle")
    phone.screenshot(path=artifacts / "phone-wallet.png", full_page=True)
    phone.click(f"a[href='/wallet/licences/{food}']")
    phone.wait_for_url(f"{server}/wallet/licences/{food}")  # the click's navigation, not the list's idle
    phone.wait_for_load_state("networkidle")
    phone.screenshot(path=artifacts / "phone-licence.png", full_page=True)
    phone.clock.install()  # the show screen's timers run on a clock the test moves
    phone.goto(f"{server}/wallet/licences/{food}/show?seconds=15")
    phone.wait_for_selector("#qr svg")
    first_qr = phone.inner_html("#qr")
    phone.screenshot(path=artifacts / "phone-show.png")
    token = zbar(artifacts / "phone-show.png")
    assert token.startswith("ECT1.")
    assert phone.is_visible("#remaining") and int(phone.inner_text("#remaining")) <= 15

    # The counter types it in (as a scanner gun does, Enter submits): green, with the face data.
    counter.fill("#code", token)
    counter.press("#code", "Enter")
    counter.wait_for_selector("#verdict")
    counter.screenshot(path=artifacts / "counter-valid.png", full_page=True)
    assert "VALID" in (counter.get_attribute("#verdict", "class") or "").split()
    assert "演示市鼓楼区好味道餐饮有限公司" in counter.inner_text("#verdict")

    # After the token's lifetime (the server's check told that 16.5 s have passed) the same token is
    # refused as expired.
    verifier = served_app.state.show_tokens
    verifier.clock = lambda: utc_now() + dt.timedelta(seconds=16.5)
    counter.fill("#code", token)
    counter.press("#code", "Enter")
    counter.wait_for_selector("#verdict")
    counter.screenshot(path=artifacts / "counter-expired.png", full_page=True)
    assert "INVALID" in (counter.get_attribute("#verdict", "class") or "").split()
    assert "过期" in counter.inner_text("#verdict")
    verifier.clock = utc_now

    # The phone's 16.5 s: a few seconds before expiry it fetched a fresh code on its own.
    phone.clock.run_for(16_500)
    phone.wait_for_function("first => document.getElementById('qr').innerHTML !== first", arg=first_qr)

    # Meanwhile the phone fetched fresh codes on its own: the one on screen now is another, live one.
    phone.wait_for_selector("#qr svg", state="visible")
    phone.screenshot(path=artifacts / "phone-show-refreshed.png")
    refreshed = zbar(artifacts / "phone-show-refreshed.png")
    assert refreshed.startswith("ECT1.") and refreshed != token

    # The department revokes the licence: the code shown before is red at the counter, and the
    # phone's show screen turns red with no code.
    licence_env.services.lifecycle.revoke(CLI_ACTOR, food, "违反食品安全法，依法吊销")
    counter.fill("#code", refreshed)
    counter.press("#code", "Enter")
    counter.wait_for_selector("#verdict")
    counter.screenshot(path=artifacts / "counter-revoked.png", full_page=True)
    assert "INVALID" in (counter.get_attribute("#verdict", "class") or "").split()
    assert "吊销" in counter.inner_text("#verdict")
    phone.goto(f"{server}/wallet/licences/{food}/show")
    phone.wait_for_selector(".show-blocked")
    phone.screenshot(path=artifacts / "phone-show-revoked.png")
    assert phone.locator("#qr").count() == 0 and "已吊销" in phone.inner_text(".show-blocked")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_issuer_issues_from_the_console(licence_env: LicenceEnv, server: str, browser: object, artifacts: Path) -> None:
    page = browser.new_context(**DESK).new_page()  # type: ignore[attr-defined]
    page.goto(f"{server}/console")
    page.fill("#username", "market")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/console")
    page.click(f"a[href='/console/issue/{FOOD_TYPE}']")
    for key, value in example_data(FOOD_TYPE).items():
        field = page.locator(f"[name=f_{key}]")
        if field.evaluate("element => element.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    page.screenshot(path=artifacts / "console-issue-form.png", full_page=True)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{server}/console/licences/**")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=artifacts / "console-licence.png", full_page=True)
    assert "有效" in page.inner_text("h1")
    identifier = page.url.rsplit("/", 1)[1]
    assert licence_env.services.queries.get(CLI_ACTOR, identifier).issuer.code == ISSUER_USCC
    page.goto(f"{server}/console")
    page.screenshot(path=artifacts / "console-home.png", full_page=True)
    assert dt.date.today().isoformat()[:4] in page.inner_text("table")

    # Registering a type: the preview follows the definition as it is typed.
    page.goto(f"{server}/console/types/new")
    page.wait_for_selector("#preview:not([hidden])")
    page.fill("#spec", page.input_value("#spec").replace("name: 食品经营许可证", "name: 食品小作坊登记证"))
    page.wait_for_function("document.getElementById('preview').src.startsWith('blob:')")
    page.screenshot(path=artifacts / "console-new-type.png", full_page=True)
    page.fill("#spec", "code: [broken")
    page.wait_for_selector("#preview-error:not([hidden])")
    assert page.inner_text("#preview-error").strip() and page.inner_text("#preview-state") == "（定义有误）"

    # A batch file: upload it, watch the progress page refresh itself until done.
    data = example_data(FOOD_TYPE)
    rows = [",".join(data)] + [",".join(f'"{v}"' for v in {**data, "operator_name": f"批量{i}号"}.values())
                               for i in range(3)]
    batch = artifacts.parent / "batch.csv"
    batch.write_text("\n".join(rows) + "\n", encoding="utf-8")
    page.goto(f"{server}/console/batch")
    page.set_input_files("#file", str(batch))
    page.click("main button[type=submit]")
    page.wait_for_selector("#job-state[data-state=done]", timeout=60_000)
    page.screenshot(path=artifacts / "console-batch-done.png", full_page=True)
    assert page.inner_text("#issued") == "3"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_case_at_the_counter_reuses_two_licences_and_the_receipt_verifies(
    licence_env: LicenceEnv, served_app: FastAPI, server: str, browser: object, artifacts: Path
) -> None:
    """A case with three materials: the business licence through the department's duty rule, the
    food licence through the holder's standing authorisation (given on the phone), the drawings on
    paper. The receipt downloads and verifies VALID; the holder's use record shows both uses."""
    services = licence_env.services
    register_example_matters(services)
    services.duty_rules.add(CLI_ACTOR, USER_USCC, BUSINESS_TYPE, [CATERING])
    spec = yaml.safe_load((EXAMPLES / "types" / "business-licence.yaml").read_text(encoding="utf-8"))
    business_data = {f["key"]: str(f["example"]) for f in spec["fields"]} | {"uscc": HOLDER}
    business = issue_example(licence_env, BUSINESS_TYPE, business_data).licence.identifier
    food = issue_example(licence_env, FOOD_TYPE).licence.identifier
    phone = browser.new_context(**PHONE).new_page()  # type: ignore[attr-defined]
    counter = browser.new_context(**DESK, accept_downloads=True).new_page()  # type: ignore[attr-defined]

    # The holder authorises the urban management bureau for this matter on the phone.
    phone.goto(f"{server}/wallet/login?next=/wallet/uses")
    phone.fill("#holder_code", HOLDER)
    phone.fill("#password", PASSWORD)
    phone.click("button[type=submit]")
    phone.wait_for_url(f"{server}/wallet/uses")
    phone.select_option("#choice", f"{USER_USCC}|{CATERING}")
    phone.fill("#auth-days", "30")
    phone.click("#authorise-form button[type=submit]")
    phone.wait_for_selector("#flash:has-text('已授权')")  # the answer's flash, not one shown before

    # The counter opens the case: the matter, the applicant's code typed in, its own case number.
    counter.goto(f"{server}/counter")
    counter.fill("#username", "counter")
    counter.fill("#password", PASSWORD)
    counter.click("button[type=submit]")
    counter.wait_for_url(f"{server}/counter")
    counter.select_option("#matter", CATERING)
    counter.fill("#applicant", HOLDER)
    counter.fill("#case_number", "CG-2026-0100")
    counter.click("#case-form button[type=submit]")
    counter.wait_for_url(f"{server}/counter/cases/*")
    assert counter.locator(".material").count() == 3
    assert "依职责" in counter.inner_text("#material-0") and "持证人授权" in counter.inner_text("#material-1")
    assert counter.get_attribute("#material-2", "data-state") == "paper"

    # One click each: the face data appears under the material.
    for position, identifier in ((0, business), (1, food)):
        counter.click(f"#material-{position} form:has(input[value='{identifier}']) button")
        counter.wait_for_selector(f"#material-{position}[data-state=reused]")
        assert "照面信息" in counter.inner_text(f"#material-{position}")
    assert "依职责" in counter.inner_text("#material-0 .basis")
    assert "授权用证" in counter.inner_text("#material-1 .basis")
    assert HOLDER in counter.inner_text("#material-0 .face")

    # 办结: the receipt downloads as a file and verifies VALID.
    counter.click("#close-form button")
    counter.wait_for_selector("#receipt-link")
    counter.screenshot(path=artifacts / "counter-case-closed.png", full_page=True)
    with counter.expect_download() as download:
        counter.click("#receipt-link")
    saved = artifacts.parent / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.endswith(".pdf")
    assert services.verification.verify_file(saved.read_bytes()).result is Status.VALID

    # The holder's use record shows both uses with the matter and the case number.
    phone.goto(f"{server}/wallet/uses")
    phone.screenshot(path=artifacts / "phone-uses-after-case.png", full_page=True)
    matters = phone.locator(".use-matter").all_inner_texts()
    assert len(matters) == 2 and all("CG-2026-0100" in text for text in matters)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_show_token_scanned_into_a_case_and_the_statistics_dashboard(
    licence_env: LicenceEnv, served_app: FastAPI, server: str, browser: object, artifacts: Path
) -> None:
    """The holder shows the food licence on the phone; zbarimg reads the QR code off the screen; the
    counter scans it into the open case: reused on the holder's consent (当面亮证), once. Then an
    administrator's dashboard draws its charts as inline SVG, within the pages' CSP."""
    services = licence_env.services
    register_example_matters(services)
    food = issue_example(licence_env, FOOD_TYPE).licence.identifier
    served_app.state.staff.create("boss", "王强", "admin", None, PASSWORD)
    admin_key = SM2PrivateKey.generate()  # what the administrator's UKey holds
    served_app.state.staff.signin.register(CLI_ACTOR, "boss", admin_key.public_key.to_der(), "UKey")
    phone = browser.new_context(**PHONE).new_page()  # type: ignore[attr-defined]
    counter = browser.new_context(**DESK).new_page()  # type: ignore[attr-defined]

    counter.goto(f"{server}/counter")
    counter.fill("#username", "counter")
    counter.fill("#password", PASSWORD)
    counter.click("button[type=submit]")
    counter.wait_for_url(f"{server}/counter")
    counter.select_option("#matter", CATERING)
    counter.fill("#applicant", HOLDER)
    counter.fill("#case_number", "LZ-2026-0001")
    counter.click("#case-form button[type=submit]")
    counter.wait_for_url(f"{server}/counter/cases/*")
    assert counter.get_attribute("#material-1", "data-state") == "open"

    phone.goto(f"{server}/wallet")
    phone.fill("#holder_code", HOLDER)
    phone.fill("#password", PASSWORD)
    phone.click("button[type=submit]")
    phone.wait_for_url(f"{server}/wallet")
    phone.goto(f"{server}/wallet/licences/{food}/show")
    phone.wait_for_selector("#qr svg")
    phone.screenshot(path=artifacts / "phone-show-for-case.png")
    token = zbar(artifacts / "phone-show-for-case.png")
    assert token.startswith("ECT1.")

    counter.fill("#case-code", token)  # a scanner gun types it and presses Enter
    counter.press("#case-code", "Enter")
    counter.wait_for_selector("#material-1[data-state=reused]")
    counter.screenshot(path=artifacts / "counter-case-show-token.png", full_page=True)
    assert "当面亮证" in counter.inner_text("#material-1 .basis")
    assert "已复用「食品经营许可证」" in counter.inner_text("#flash")
    counter.fill("#case-code", token)  # the same token again: refused
    counter.press("#case-code", "Enter")
    counter.wait_for_selector("#flash:has-text('只能用一次')")  # not the reuse's flash still shown

    admin = browser.new_context(**DESK).new_page()  # type: ignore[attr-defined]
    admin.goto(f"{server}/console/stats")
    admin.fill("#username", "boss")
    admin.fill("#password", PASSWORD)
    admin.click("button[type=submit]")
    # The second step: the page shows the challenge; the key signs it (SM2, SM3, the standard ID).
    message = admin.input_value("#message")
    admin.fill("#signature", base64.b64encode(admin_key.sign(message.encode())).decode())
    admin.click("button[type=submit]")
    admin.wait_for_url(f"{server}/console/stats")
    admin.goto(f"{server}/console/stats?by=matter")
    admin.wait_for_selector("svg.bars rect")
    admin.screenshot(path=artifacts / "stats-dashboard.png", full_page=True)
    assert admin.inner_text("#totals [data-metric=materials_reused]") == "1"
    box = admin.locator("svg.bars").first.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 80  # drawn, scaled to the card
