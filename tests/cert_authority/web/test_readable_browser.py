"""Issue 23's pages in Debian's headless Chromium at a phone's and a desktop's size: post/redirect/get
(a reload makes nothing twice), one-time codes on one line, the show screen's running clock and its
reaction to a revocation and to going offline, a revoked licence marked without downloads, small
thumbnails, the counter's plain verdict with a checklist that agrees and local times, the error page,
the console's separate confirmed revoke and cancel, and no request leaving the site. Screenshots go
to the test artifacts (see test_pages_browser)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from PIL import Image

from cert_authority.actors import CLI_ACTOR
from tests.cert_authority.web import test_pages_browser as shared
from tests.cert_authority.web.web_pages import PASSWORD
from tests.conftest import (
    DRAINAGE_TYPE,
    FOOD_TYPE,
    OTHER_ISSUER_USCC,
    USER_USCC,
    VOCATIONAL_TYPE,
    LicenceEnv,
    example_data,
    issue_example,
)

DESK, HOLDER, PHONE = shared.DESK, shared.HOLDER, shared.PHONE
# The browser, the served app and the screenshot folder of the first browser tests.
artifacts, browser, served_app, server = shared.artifacts, shared.browser, shared.served_app, shared.server
pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]
SMALL_PHONE = {**PHONE, "viewport": {"width": 320, "height": 640}}


def _watched(context: Any, origin: str) -> list[str]:
    """Every request the pages make that leaves the site (a CDN, a font service): should stay empty."""
    foreign: list[str] = []
    context.on("request", lambda r: None if r.url.startswith((origin, "data:", "blob:")) else foreign.append(r.url))
    return foreign


def _holder_page(chromium: Any, origin: str, size: dict[str, Any] = PHONE) -> tuple[Any, list[str]]:
    context = chromium.new_context(**size)
    foreign = _watched(context, origin)
    page = context.new_page()
    page.goto(f"{origin}/wallet/login")
    page.fill("#holder_code", HOLDER)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{origin}/wallet")
    return page, foreign


def _staff_page(chromium: Any, origin: str, user: str, start: str) -> Any:
    page = chromium.new_context(**DESK).new_page()
    page.goto(f"{origin}{start}")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{origin}{start}")
    return page


def test_use_code_reload_makes_no_second_code_and_the_code_stays_on_one_line(
    licence_env: LicenceEnv, served_app: FastAPI, server: str, browser: Any, artifacts: Path
) -> None:
    food = issue_example(licence_env, FOOD_TYPE).licence.identifier
    page, foreign = _holder_page(browser, server, SMALL_PHONE)
    page.goto(f"{server}/wallet/licences/{food}")
    page.select_option("#department_uscc", USER_USCC)
    page.fill("#purpose", "办理排水许可")
    page.click("form[action='/wallet/use-codes'] button[type=submit]")
    page.wait_for_url(f"{server}/wallet/uses")
    page.screenshot(path=artifacts / "phone320-new-use-code.png", full_page=True)
    code = page.locator("#new-code")
    box = code.bounding_box()
    line = float(code.evaluate("e => parseFloat(getComputedStyle(e).lineHeight) || e.getBoundingClientRect().height"))
    assert box and box["height"] <= line * 1.3 and box["x"] + box["width"] <= 320, box  # one line, on screen
    holder = licence_env.services.accounts.holder(HOLDER)
    assert len(licence_env.services.sharing.use_codes(holder)) == 1
    page.reload()  # a GET: no form is sent again
    page.wait_for_load_state("networkidle")
    assert len(licence_env.services.sharing.use_codes(holder)) == 1
    assert page.locator("#new-code").count() == 0
    assert not foreign, foreign


def test_show_screen_runs_a_clock_notices_revocation_and_says_when_offline(
    licence_env: LicenceEnv, served_app: FastAPI, server: str, browser: Any, artifacts: Path
) -> None:
    food = issue_example(licence_env, FOOD_TYPE).licence.identifier
    page, foreign = _holder_page(browser, server)
    page.clock.install()
    page.goto(f"{server}/wallet/licences/{food}/show?seconds=60")
    page.wait_for_selector("#qr svg")
    page.clock.run_for(1_000)
    first = page.inner_text("#clock")
    page.clock.run_for(2_000)
    assert re.fullmatch(r"\d{2}:\d{2}:\d{2}", first) and page.inner_text("#clock") != first  # it moves
    assert int(page.inner_text("#remaining")) <= 60
    assert "有效" in page.inner_text("#show-status") and "颁发" in page.inner_text(".show-facts")
    assert page.locator(".sweep").evaluate("e => getComputedStyle(e).animationName") == "sweep"
    page.screenshot(path=artifacts / "phone-show-live.png")

    # Offline: the screen says so instead of counting down.
    page.context.set_offline(True)
    page.clock.run_for(3_500)
    page.wait_for_selector("#offline", state="visible")
    assert page.locator("#countdown").is_hidden()
    page.screenshot(path=artifacts / "phone-show-offline.png")
    page.context.set_offline(False)
    page.clock.run_for(3_500)
    page.wait_for_selector("#offline", state="hidden")

    # Revoked at the department: within a few seconds the code is gone and the reason is up.
    licence_env.services.lifecycle.revoke(CLI_ACTOR, food, "违反食品安全法，依法吊销")
    page.clock.run_for(3_500)
    page.wait_for_selector(".show-blocked", timeout=10_000)
    page.screenshot(path=artifacts / "phone-show-revoked-live.png")
    assert page.locator("#qr").count() == 0 and "依法吊销" in page.inner_text(".show-blocked")
    assert not foreign, foreign


def test_revoked_licence_is_marked_and_lists_load_thumbnails(
    licence_env: LicenceEnv, served_app: FastAPI, server: str, browser: Any, artifacts: Path
) -> None:
    issue_example(licence_env, FOOD_TYPE)
    revoked = issue_example(licence_env, DRAINAGE_TYPE, {**example_data(DRAINAGE_TYPE), "discharger_code": HOLDER})
    identifier = revoked.licence.identifier
    licence_env.services.lifecycle.revoke(CLI_ACTOR, identifier, "擅自改变排水口位置")
    page, foreign = _holder_page(browser, server)
    pictures: list[tuple[str, int]] = []
    page.on("response", lambda r: pictures.append((r.url, len(r.body()))) if "/licences/" in r.url and
            r.request.resource_type == "image" else None)
    page.reload()
    page.wait_for_load_state("networkidle")
    page.screenshot(path=artifacts / "phone-wallet-thumbnails.png", full_page=True)
    assert pictures and all(url.endswith("thumb.webp") and size < 60_000 for url, size in pictures), pictures
    assert "擅自改变排水口位置" in page.inner_text(f"a[href='/wallet/licences/{identifier}']")
    page.goto(f"{server}/wallet/licences/{identifier}")
    page.wait_for_function("() => document.getElementById('licence-picture').classList.contains('full')")
    page.screenshot(path=artifacts / "phone-licence-revoked.png", full_page=True)
    assert "已吊销" in page.inner_text("#status-notice") and "擅自改变排水口位置" in page.inner_text("#status-notice")
    assert page.locator("a[href$='file.pdf'], a[href$='file.ofd'], a[href$='/show']").count() == 0
    assert page.inner_text("main").count("有效期") == 1
    assert not foreign, foreign


def test_counter_verdicts_are_plain_local_and_agree_with_their_checklist(
    licence_env: LicenceEnv, served_app: FastAPI, server: str, browser: Any, artifacts: Path
) -> None:
    food = issue_example(licence_env, FOOD_TYPE).licence.identifier
    page = _staff_page(browser, server, "counter", "/counter")
    pdf = licence_env.services.queries.file(CLI_ACTOR, food, "pdf")
    tampered = artifacts.parent / "tampered.pdf"
    tampered.write_bytes(pdf.replace(b"/Type /Page", b"/Type /Pagf", 1))
    page.set_input_files("#file", str(tampered))
    page.click("form[action='/counter/file'] button[type=submit]")
    page.wait_for_selector("#verdict")
    page.click("#verdict details summary")
    page.screenshot(path=artifacts / "counter-tampered.png", full_page=True)
    assert "INVALID" in (page.get_attribute("#verdict", "class") or "")
    marks = page.locator("#checks .mark").all_inner_texts()
    assert marks and "✓" not in marks and marks[0] == "✗", marks
    assert not re.search(r"[A-Za-z]", page.inner_text("#reason"))

    holder = licence_env.services.accounts.holder(HOLDER)
    token, _ = served_app.state.holders.show_token(holder, food, None, 60)
    page.fill("#code", token)
    page.press("#code", "Enter")
    page.wait_for_selector("#verdict")
    page.click("#verdict details summary")
    page.screenshot(path=artifacts / "counter-valid-local-times.png", full_page=True)
    text = page.inner_text("#verdict")
    assert "VALID" in (page.get_attribute("#verdict", "class") or "").split()
    assert not re.search(r"\d{2}:\d{2}(:\d{2})?Z", text) and re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", text)
    page.reload()  # post/redirect/get: the result again, not the code checked twice (a replay)
    page.wait_for_selector("#verdict")
    assert "VALID" in (page.get_attribute("#verdict", "class") or "").split()

    page.goto(f"{server}/no-such-page")
    page.screenshot(path=artifacts / "desk-404.png")
    assert page.title() and page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("h1").inner_text() == "没有找到" and "detail" not in page.content()


def test_console_revoke_and_cancel_are_separate_and_confirmed(
    licence_env: LicenceEnv, served_app: FastAPI, server: str, browser: Any, artifacts: Path
) -> None:
    food = issue_example(licence_env, FOOD_TYPE).licence.identifier
    page = _staff_page(browser, server, "market", "/console")
    page.goto(f"{server}/console/licences/{food}")
    page.click("#revoke-act summary")
    page.select_option("#revoke-category", "违反法律法规，依法吊销")
    page.fill("#revoke-reason", "榕市监罚〔2026〕12号")
    page.click("#revoke-form button[type=submit]")  # not confirmed: the browser keeps the form
    assert licence_env.services.queries.get(CLI_ACTOR, food).status == "issued"
    page.screenshot(path=artifacts / "console-revoke-form.png", full_page=True)
    page.check("#revoke-form input[name=confirm]")
    page.click("#revoke-form button[type=submit]")
    page.wait_for_selector("#flash:has-text('已吊销此证照')")
    page.screenshot(path=artifacts / "console-revoked.png", full_page=True)
    licence = licence_env.services.queries.get(CLI_ACTOR, food)
    assert licence.status == "revoked" and licence.status_reason == "违反法律法规，依法吊销：榕市监罚〔2026〕12号"
    page.reload()
    assert page.locator("#flash").count() == 0  # shown once, and a reload posts nothing


def test_staff_pages_fit_a_320_px_phone(
    licence_env: LicenceEnv, served_app: FastAPI, server: str, browser: Any, artifacts: Path
) -> None:
    food = issue_example(licence_env, FOOD_TYPE).licence.identifier
    context = browser.new_context(**SMALL_PHONE)
    page = context.new_page()
    page.goto(f"{server}/console")
    page.fill("#username", "market")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/console")
    for path in ("/console", f"/console/licences/{food}", "/console/batch", f"/console/issue/{FOOD_TYPE}",
                 "/console/types/new", "/counter", f"/v/{food}"):  # /v/: where every licence's QR code leads
        page.goto(f"{server}{path}")
        page.wait_for_load_state("networkidle")
        name = path.strip("/").replace("/", "-")[:40]
        page.screenshot(path=artifacts / f"phone320-{name}.png", full_page=True)
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= 320, (path, wide)
        # No squeezed column: a name one character wide down the page (what a 4-column table did).
        cells = page.evaluate("[...document.querySelectorAll('td')].map(c => c.getBoundingClientRect().width)")
        assert all(width >= 100 for width in cells if width), (path, cells)


def test_api_docs_render_without_internet(
    licence_env: LicenceEnv, served_app: FastAPI, server: str, browser: Any, artifacts: Path
) -> None:
    context = browser.new_context(**DESK)
    foreign = _watched(context, server)
    context.route(lambda url: not url.startswith(server), lambda route: route.abort())  # no internet here
    page = context.new_page()
    page.goto(f"{server}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    page.screenshot(path=artifacts / "desk-docs.png")
    assert page.locator(".opblock").count() > 20 and "ECAS" in page.inner_text(".info")
    assert not foreign, foreign


AXE = Path(
    os.environ.get("ECAS_AXE_JS") or Path(__file__).resolve().parents[3] / ".ci/node/node_modules/axe-core/axe.min.js"
)


def _serious(page: Any) -> list[str]:
    """axe-core's serious and critical WCAG 2.x A/AA violations on the page as it is now."""
    found = page.evaluate("""async () => {
        const tags = ['wcag2a', 'wcag2aa', 'wcag21aa', 'wcag22aa'];
        const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
        return result.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
    }""")
    return list(found)


def test_axe_finds_nothing_serious_on_any_page(
    licence_env: LicenceEnv, served_app: FastAPI, server: str, browser: Any, artifacts: Path
) -> None:
    if not AXE.is_file():
        missing = f"axe-core not installed ({AXE}): npm install --prefix .ci/node axe-core, or set ECAS_AXE_JS"
        (pytest.fail if os.environ.get("CI") else pytest.skip)(missing)
    food = issue_example(licence_env, FOOD_TYPE).licence.identifier
    revoked = issue_example(licence_env, DRAINAGE_TYPE, {**example_data(DRAINAGE_TYPE), "discharger_code": HOLDER})
    licence_env.services.lifecycle.revoke(CLI_ACTOR, revoked.licence.identifier, "擅自改变排水口位置")
    problems: dict[str, list[str]] = {}

    def check(page: Any, label: str) -> None:
        page.wait_for_load_state("networkidle")
        found = _serious(page)
        if page.locator("h1").count() != 1:
            found.append(f"{page.locator('h1').count()} <h1> on the page")
        if found:
            problems[label] = found

    phone, _ = _holder_page(browser, server)
    phone.context.add_init_script(path=str(AXE))
    for path in ("/wallet", f"/wallet/licences/{food}", f"/wallet/licences/{revoked.licence.identifier}",
                 f"/wallet/licences/{food}/show", f"/wallet/licences/{revoked.licence.identifier}/show",
                 "/wallet/uses", f"/v/{food}", f"/v/{revoked.licence.identifier}", "/no-such-page", "/"):
        phone.goto(f"{server}{path}")
        check(phone, f"phone {path}")
    anonymous = browser.new_context(**PHONE)
    anonymous.add_init_script(path=str(AXE))
    login = anonymous.new_page()
    for path in ("/wallet/login", "/staff/login"):
        login.goto(f"{server}{path}")
        check(login, f"phone {path}")

    desk = browser.new_context(**DESK)
    desk.add_init_script(path=str(AXE))
    page = desk.new_page()
    page.goto(f"{server}/console")
    page.fill("#username", "market")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/console")
    for path in ("/console", f"/console/licences/{food}", f"/console/licences/{revoked.licence.identifier}",
                 f"/console/issue/{FOOD_TYPE}", "/console/batch", "/console/types/new", "/console/types/form",
                 "/counter"):
        page.goto(f"{server}{path}")
        check(page, f"desk {path}")
    holder = licence_env.services.accounts.holder(HOLDER)
    for code in (served_app.state.holders.show_token(holder, food, None, 60)[0], revoked.licence.identifier):
        page.fill("#code", code)
        page.press("#code", "Enter")
        page.wait_for_selector("#verdict")
        check(page, f"desk counter verdict {code[:12]}")
    assert not problems, "\n".join(f"{page}: {found}" for page, found in problems.items())


def test_form_type_editor_with_live_preview(
    licence_env: LicenceEnv, served_app: FastAPI, server: str, browser: Any, artifacts: Path
) -> None:
    served_app.state.staff.create("hrss", "周文", "issuer", OTHER_ISSUER_USCC, PASSWORD)
    page = _staff_page(browser, server, "hrss", "/console")
    page.click("a[href='/console/types/form']")
    page.select_option("#example", "food-business-licence")
    page.click("form[action='/console/types/form'] button[type=submit]")
    page.wait_for_selector("#preview:not([hidden])")
    first = page.get_attribute("#preview", "src")
    page.fill("#name", "食品小作坊登记证")
    page.locator(".field-row [name=label]").first.fill("小作坊名称")
    page.wait_for_function("() => document.getElementById('yaml').value.includes('label: 小作坊名称')")
    page.wait_for_function("first => document.getElementById('preview').src !== first", arg=first)
    page.click("#add-row")
    added = page.locator(".field-row").last
    added.locator("[name=label]").fill("从业人员数")
    added.locator("[name=key]").fill("staff_count")
    added.locator("[name=type]").select_option("number")
    added.locator("[name=example]").fill("12")
    page.wait_for_function("() => document.getElementById('yaml').value.includes('key: staff_count')")
    page.wait_for_selector("#form-error", state="hidden")
    page.screenshot(path=artifacts / "console-type-form.png", full_page=True)

    # A background of the department's own: chosen as a file, it is in the preview and the YAML.
    picture = artifacts / "own-background.png"
    Image.new("RGB", (1188, 840), (40, 160, 200)).save(picture)  # the food licence is A4 landscape
    before = page.get_attribute("#preview", "src")
    page.set_input_files("#background_image", str(picture))
    page.wait_for_function("() => document.getElementById('yaml').value.includes('image: own-background.png')")
    page.wait_for_function("first => document.getElementById('preview').src !== first", arg=before)
    assert page.input_value("#background") == "upload"
    corner = page.evaluate("""() => { const img = document.getElementById('preview');
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0); return Array.from(g.getImageData(3, 3, 1, 1).data); }""")
    assert all(abs(a - b) < 12 for a, b in zip(corner[:3], (40, 160, 200), strict=True)), corner
    page.screenshot(path=artifacts / "console-type-form-background.png", full_page=True)
    page.click("#register")
    page.wait_for_selector("#flash:has-text('已登记证照类型「食品小作坊登记证」')")
    [registered] = [t for t in licence_env.registry.list_types() if t.name == "食品小作坊登记证"]
    spec = licence_env.registry.type_spec(registered.code)
    assert spec.fields[0].label == "小作坊名称" and spec.fields[-1].key == "staff_count"
    assert OTHER_ISSUER_USCC in registered.issuers  # the department's own code, filled in


def test_counter_verdict_shows_the_holders_photo(
    licence_env: LicenceEnv, served_app: FastAPI, server: str, browser: Any, artifacts: Path
) -> None:
    """A personal licence shown on the phone: the counter's green verdict names issuer and status and
    shows the holder's photo beside them, as the show screen does (issue 23)."""
    person = example_data(VOCATIONAL_TYPE)
    licence_env.services.accounts.create(person["id_number"], person["holder_name"], PASSWORD)
    licence = issue_example(licence_env, VOCATIONAL_TYPE).licence
    phone = browser.new_context(**PHONE).new_page()
    phone.goto(f"{server}/wallet/login")
    phone.fill("#holder_code", person["id_number"])
    phone.fill("#password", PASSWORD)
    phone.click("button[type=submit]")
    phone.wait_for_url(f"{server}/wallet")
    phone.goto(f"{server}/wallet/licences/{licence.identifier}/show")
    phone.wait_for_selector("#qr svg")
    phone.wait_for_function("() => document.querySelector('.show-photo').naturalWidth > 0")
    phone.screenshot(path=artifacts / "phone-show-photo.png")
    token = shared.zbar(artifacts / "phone-show-photo.png")

    counter = _staff_page(browser, server, "counter", "/counter")
    if AXE.is_file():
        counter.context.add_init_script(path=str(AXE))
    counter.fill("#code", token)
    counter.press("#code", "Enter")
    counter.wait_for_selector("#verdict-photo")
    counter.wait_for_function("() => document.getElementById('verdict-photo').naturalWidth > 0")
    counter.screenshot(path=artifacts / "counter-valid-photo.png", full_page=True)
    verdict = counter.inner_text("#verdict")
    assert "VALID" in (counter.get_attribute("#verdict", "class") or "").split()
    assert licence.issuer.name in verdict and "有效" in verdict and person["holder_name"] in verdict
    if AXE.is_file():
        assert _serious(counter) == []
