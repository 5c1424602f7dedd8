"""Pages a clerk, a holder and an issuer read without help (issue 23), through the app without a
browser: post/redirect/get, revoked licences marked and not downloadable, small thumbnails, plain
verdicts whose checklist agrees with them, local times, an error page for unknown addresses, and
refused replays told apart in 用证记录."""

from __future__ import annotations

import base64
import csv
import html
import io
import re
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from cert_authority.actors import CLI_ACTOR
from cert_authority.http.app import create_app
from cert_authority.web.common import keep_units
from cert_authority.web.console_type_form import rows_of
from keys.uscc import uscc_check_character
from tests.cert_authority.web.web_pages import PASSWORD, browser, holder_client, staff_client, verdict_of
from tests.conftest import (
    DRAINAGE_TYPE,
    FOOD_TYPE,
    ISSUER_USCC,
    OTHER_ISSUER_USCC,
    USER_USCC,
    VOCATIONAL_TYPE,
    LicenceEnv,
    example_data,
    issue_example,
    table_counts,
)

HOLDER = example_data(FOOD_TYPE)["operator_code"]
REVOKE_REASON = "擅自改变排水口位置"


@dataclass
class Site:
    env: LicenceEnv
    app: FastAPI
    food: str  # the holder's valid food licence
    revoked: str  # the holder's revoked drainage permit


@pytest.fixture(scope="module")
def site(shared_licence_env: LicenceEnv) -> Iterator[Site]:
    env = shared_licence_env
    env.services.accounts.create(HOLDER, "演示市鼓楼区好味道餐饮有限公司", PASSWORD)
    food = issue_example(env, FOOD_TYPE).licence.identifier
    revoked = issue_example(env, DRAINAGE_TYPE, {**example_data(DRAINAGE_TYPE), "discharger_code": HOLDER})
    env.services.lifecycle.revoke(CLI_ACTOR, revoked.licence.identifier, REVOKE_REASON)
    app = create_app(env.settings)
    app.state.staff.create("market", "张敏", "issuer", ISSUER_USCC, PASSWORD)
    app.state.staff.create("counter", "李娜", "user", USER_USCC, PASSWORD)
    yield Site(env, app, food, revoked.licence.identifier)



def _shown_token(site: Site) -> str:
    holder = site.env.services.accounts.holder(HOLDER)
    text, _ = site.app.state.holders.show_token(holder, site.food, None, 60)
    return text


# --- the holder -------------------------------------------------------------------------------------
def test_revoked_licence_is_marked_with_its_reason_and_not_downloadable(site: Site) -> None:
    client = holder_client(site.app, HOLDER)
    page = client.get(f"/wallet/licences/{site.revoked}")
    notice = re.search(r'id="status-notice"[^>]*>(.*?)</div>', page.text, re.S)
    assert notice and "已吊销" in notice.group(1) and REVOKE_REASON in notice.group(1)
    assert "file.pdf" not in page.text and "file.ofd" not in page.text and "/show" not in page.text
    for fmt in ("pdf", "ofd"):
        refused = client.get(f"/wallet/licences/{site.revoked}/file.{fmt}")
        assert refused.status_code == 409 and "已吊销" in refused.text
    assert client.get(f"/wallet/licences/{site.food}/file.pdf").content.startswith(b"%PDF")
    listing = client.get("/wallet")
    assert REVOKE_REASON in listing.text

    # The pictures of a revoked licence are not the clean face: marked in red across the middle.
    clean = Image.open(io.BytesIO(client.get(f"/wallet/licences/{site.food}/file.png").content)).convert("RGB")
    marked_answer = client.get(f"/wallet/licences/{site.revoked}/file.png")
    assert marked_answer.headers["content-type"] == "image/webp"
    marked = Image.open(io.BytesIO(marked_answer.content)).convert("RGB")
    assert _red_share(marked) > _red_share(clean) + 0.02
    stored_png = site.env.services.queries.file(CLI_ACTOR, site.revoked, "png")
    assert marked_answer.content != stored_png


def _red_share(image: Image.Image) -> float:
    small = image.resize((200, round(200 * image.height / image.width)))
    pixels = list(small.getdata())
    return sum(1 for r, g, b in pixels if r > 150 and g < 90 and b < 90) / len(pixels)


def test_thumbnails_are_small_webp_and_cached(site: Site) -> None:
    client = holder_client(site.app, HOLDER)
    full = client.get(f"/wallet/licences/{site.food}/file.png")
    thumb = client.get(f"/wallet/licences/{site.food}/thumb.webp")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    picture = Image.open(io.BytesIO(thumb.content))
    assert picture.format == "WEBP" and picture.width == 360
    assert len(thumb.content) * 10 < len(full.content), (len(thumb.content), len(full.content))
    cached = list((site.env.settings.data_dir / "cache" / "pictures").glob("*thumb*"))
    assert cached and client.get(f"/wallet/licences/{site.food}/thumb.webp").content == thumb.content
    # Sealed on disk like the file store's files (the picture shows the holder): not a WebP there.
    assert all(not p.read_bytes().startswith(b"RIFF") and thumb.content not in p.read_bytes() for p in cached)
    home = client.get("/wallet")
    assert f"/wallet/licences/{site.food}/thumb.webp" in home.text and "file.png" not in home.text
    # Someone else's licence: not found, as for every other file.
    other = holder_client(site.app, HOLDER)
    assert other.get("/wallet/licences/1.2.156.3005.2.nothing/thumb.webp").status_code == 404


def test_validity_once_and_formatted(site: Site) -> None:
    client = holder_client(site.app, HOLDER)
    page = client.get(f"/wallet/licences/{site.revoked}").text
    assert page.count("<dt>有效期</dt>") == 1
    assert not re.search(r"\d{4}-\d{2}-\d{2}/\d{4}-\d{2}-\d{2}", page)


def test_refused_replay_is_told_apart_in_the_use_record(site: Site) -> None:
    text = _shown_token(site)
    counter = staff_client(site.app, "counter")
    assert verdict_of(counter.post("/counter/check", data={"code": text}).text) == "VALID"
    assert verdict_of(counter.post("/counter/check", data={"code": text}).text) == "INVALID"
    uses = holder_client(site.app, HOLDER).get("/wallet/uses").text
    assert uses.count("亮证核验 · 已拒绝") == 1 and "只能核验一次" in uses
    assert "亮证核验 · 通过" in uses


# --- the counter ------------------------------------------------------------------------------------
def test_tampered_pdf_checklist_agrees_with_the_verdict(site: Site) -> None:
    counter = staff_client(site.app, "counter")
    pdf = site.env.services.queries.file(CLI_ACTOR, site.food, "pdf")
    tampered = pdf.replace(b"/Type /Page", b"/Type /Pagf", 1)
    page = counter.post("/counter/file", files={"file": ("x.pdf", tampered, "application/pdf")}).text
    assert verdict_of(page) == "INVALID"
    assert "文件内容在盖章后被改动过" in _main_line(page)
    checks = re.findall(r'<li class="check (\w+)"><span class="mark" aria-hidden="true">(.)</span>([^<]*)', page)
    assert checks and checks[0][0] == "bad"  # the failure first
    assert not [c for c in checks if c[1] == "✓"], checks  # nothing ticked under 不通过
    signature = next(c for c in checks if "SM2 签名" in c[2])
    assert signature[1] == "–" and "文件内容已被改动" in signature[2]


def test_counter_messages_are_plain(site: Site) -> None:
    counter = staff_client(site.app, "counter")
    ofd = site.env.services.queries.file(CLI_ACTOR, site.food, "ofd")
    # A damaged OFD package: the library's words (Bad CRC-32 …) only in the details line.
    broken = _damaged_zip_member(ofd)
    page = counter.post("/counter/file", files={"file": ("x.ofd", broken, "application/ofd")}).text
    assert verdict_of(page) == "INVALID"
    main = _main_line(page)
    assert re.fullmatch(r"[^A-Za-z_]+", main), main  # no library text, no field keys, no standard numbers
    details = re.search(r'id="details">([^<]*)<', page)
    assert details and re.search(r"[A-Za-z]{3}", details.group(1))  # the library text, kept for support
    # An identifier with one wrong character: the clerk reads what to do.
    wrong = site.food[:-1] + ("X" if site.food[-1] != "X" else "Y")
    page = counter.post("/counter/check", data={"code": wrong}).text
    assert "校验位不对" in _main_line(page)
    garbage = counter.post("/counter/check", data={"code": "hello"}).text
    assert re.fullmatch(r"[^A-Za-z_]+", _main_line(garbage))


def _main_line(page: str) -> str:
    found = re.search(r'id="reason">([^<]*)<', page)
    assert found, page[:3000]
    return found.group(1)


def _damaged_zip_member(ofd: bytes) -> bytes:
    """The OFD with one byte of a stored member's data flipped (its CRC no longer matches)."""
    with zipfile.ZipFile(io.BytesIO(ofd)) as archive:
        info = next(i for i in archive.infolist() if i.file_size > 100)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 10
    data = bytearray(ofd)
    data[start] ^= 0xFF
    return bytes(data)


def test_times_are_local_in_one_format_and_the_zone_is_a_setting(site: Site) -> None:
    counter = staff_client(site.app, "counter")
    page = counter.post("/counter/check", data={"code": _shown_token(site)}).text
    assert verdict_of(page) == "VALID"
    times = re.findall(r"\d{2}:\d{2}(?::\d{2})?Z?", re.sub(r"<[^>]+>", " ", page))
    assert times and not [t for t in times if t.endswith("Z")], times
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", page)
    shanghai = re.search(r"核验时间：(\d{4}-\d{2}-\d{2} \d{2}):", page)
    utc_app = create_app(site.env.settings.model_copy(update={"timezone": "UTC"}))
    utc_app.state.staff.create("counter2", "王芳", "user", USER_USCC, PASSWORD)
    utc_page = staff_client(utc_app, "counter2").post("/counter/check", data={"code": site.food}).text
    in_utc = re.search(r"核验时间：(\d{4}-\d{2}-\d{2} \d{2}):", utc_page)
    assert shanghai and in_utc
    assert (int(shanghai.group(1)[-2:]) - int(in_utc.group(1)[-2:])) % 24 == 8


def test_unknown_addresses_get_an_error_page_not_json(site: Site) -> None:
    page = browser(site.app).get("/no-such-page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN">' in page.text and "<title>" in page.text and "<h1>" in page.text
    assert "detail" not in page.text
    # A program asking the API still gets JSON.
    assert browser(site.app).get("/api/v1/no-such-thing").headers["content-type"].startswith("application/json")


# --- the issuer console -----------------------------------------------------------------------------
def test_revoke_and_cancel_are_separate_confirmed_and_need_a_listed_reason(site: Site) -> None:
    target = issue_example(site.env, FOOD_TYPE).licence.identifier
    market = staff_client(site.app, "market")
    page = market.get(f"/console/licences/{target}").text
    assert 'id="revoke-form"' in page and 'id="cancel-form"' in page
    assert page.count('name="confirm"') == 2 and "持证人申请注销" in page and "以欺骗、贿赂等不正当手段取得" in page
    good = {"category": "持证人申请注销", "reason": "持证人书面申请（2026-12-01）", "confirm": "yes"}
    refusals = [
        ("revoke", {**good}, "请选择吊销原因"),  # a cancel reason does not revoke
        ("cancel", {**good, "category": "随便写的"}, "请选择注销原因"),
        ("cancel", {**good, "reason": "  "}, "具体说明"),
        ("cancel", {**good, "confirm": ""}, "请勾选确认"),
    ]
    for action, form, message in refusals:
        refused = market.post(f"/console/licences/{target}/{action}", data=form)
        assert refused.status_code == 422 and message in refused.text, (action, form)
        assert site.env.services.queries.get(CLI_ACTOR, target).status == "issued"
    done = market.post(f"/console/licences/{target}/cancel", data=good, follow_redirects=False)
    assert done.status_code == 303
    shown = market.get(done.headers["location"]).text
    assert "已注销此证照" in re.search(r'id="flash"[^>]*>(.*?)</div>', shown, re.S).group(1)  # type: ignore[union-attr]
    licence = site.env.services.queries.get(CLI_ACTOR, target)
    assert licence.status == "cancelled" and licence.status_reason == "持证人申请注销：持证人书面申请（2026-12-01）"
    assert "id=\"flash\"" not in market.get(done.headers["location"]).text  # shown once


def test_issuing_says_so_with_a_link(site: Site) -> None:
    market = staff_client(site.app, "market")
    form = market.get(f"/console/issue/{FOOD_TYPE}").text
    # A type that fixes the period offers no dates (found trying the console as a user: it offered
    # them and refused any typed in); one whose dates are given at issue requires both.
    assert 'name="valid_until"' not in form and "有效期由证照类型规定：5年，自颁证之日起算" in form
    site.app.state.staff.create("drainage", "吴刚", "issuer", USER_USCC, PASSWORD)
    drainage = staff_client(site.app, "drainage").get(f"/console/issue/{DRAINAGE_TYPE}").text
    assert re.search(r'name="valid_from" value="" required', drainage)
    assert re.search(r'name="valid_until" value="" required', drainage)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    data = {f"f_{k}": v for k, v in example_data(FOOD_TYPE).items()} | {"idempotency_key": key}
    done = market.post(f"/console/issue/{FOOD_TYPE}", data=data, follow_redirects=False)
    assert done.status_code == 303, done.text[:2000]
    page = market.get(done.headers["location"]).text
    message = re.search(r'id="flash"[^>]*>(.*?)</div>', page, re.S)
    assert message and "已颁发" in message.group(1) and f'href="{done.headers["location"]}"' in message.group(1)


def test_the_type_example_is_the_departments_own_and_registers_as_it_stands(site: Site) -> None:
    site.app.state.staff.create("hrss2", "周文", "issuer", OTHER_ISSUER_USCC, PASSWORD)
    client = staff_client(site.app, "hrss2")
    page = client.get("/console/types/new", params={"example": "food-business-licence"}).text
    spec = html.unescape(re.search(r'<textarea id="spec"[^>]*>(.*?)</textarea>', page, re.S).group(1))  # type: ignore[union-attr]
    assert f"issuers: [{OTHER_ISSUER_USCC}]" in spec and FOOD_TYPE not in spec  # a free code, this department
    comments = [line for line in spec.splitlines() if line.startswith("#")]
    assert comments and all(re.search(r"[\u4e00-\u9fff]", line) for line in comments)
    done = client.post("/console/types/new", data={"spec": spec, "action": "register"}, follow_redirects=False)
    assert done.status_code == 303, done.text[:3000]
    shown = client.get(done.headers["location"]).text
    message = re.search(r'id="flash"[^>]*>(.*?)</div>', shown, re.S)
    assert message and "已登记证照类型" in message.group(1) and 'href="/console/issue/' in message.group(1)


def test_a_batch_with_rejects_says_so_and_gives_the_rejected_rows_back(site: Site) -> None:
    market = staff_client(site.app, "market")
    template = market.get(f"/console/batch/template/{FOOD_TYPE}.csv")
    assert template.status_code == 200 and template.headers["content-type"].startswith("text/csv")
    header, example = list(csv.reader(io.StringIO(template.content.decode("utf-8-sig"))))[:2]
    assert "operator_code" in header and "photo" not in header and example[header.index("operator_code")]
    good = "91350100MA0000201" + uscc_check_character("91350100MA0000201")
    bad = "91350100MA0000202" + ("X" if uscc_check_character("91350100MA0000202") != "X" else "Y")
    rows = [header] + [[code if key == "operator_code" else value for key, value in zip(header, example, strict=True)]
                       for code in (good, bad)]
    body = io.StringIO()
    csv.writer(body).writerows(rows)
    sent = market.post("/console/batch", data={"type_code": FOOD_TYPE},
                       files={"file": ("stock.csv", body.getvalue().encode(), "text/csv")}, follow_redirects=False)
    page = _finished(market, sent.headers["location"])
    state = re.search(r'<span class="badge (\w+)" id="job-state"[^>]*>([^<]*)<', page)
    assert state and state.group(1) == "warn" and "1 行被拒" in state.group(2)  # not a green 已完成
    assert re.search(r'class="badge bad" id="rejected">1<', page)
    rejects = market.get(sent.headers["location"] + "/rejects")
    assert rejects.status_code == 200
    back = list(csv.DictReader(io.StringIO(rejects.content.decode("utf-8-sig"))))
    assert [r["operator_code"] for r in back] == [bad] and back[0]["_reason"] and back[0]["_line"] == "3"
    # Another department gets neither the rejects nor a peek at them.
    site.app.state.staff.create("hrss3", "周文", "issuer", OTHER_ISSUER_USCC, PASSWORD)
    assert staff_client(site.app, "hrss3").get(sent.headers["location"] + "/rejects").status_code == 403


def _finished(client: object, url: str) -> str:
    for _ in range(300):
        page: str = client.get(url).text  # type: ignore[attr-defined]
        if re.search(r'data-state="(done|failed|interrupted)"', page):
            return page
        time.sleep(0.1)
    raise AssertionError("batch job did not finish")


def test_console_search_by_code_number_name_or_part_of_them(site: Site) -> None:
    market = staff_client(site.app, "market")
    mine = issue_example(site.env, FOOD_TYPE).licence
    for part in (HOLDER, HOLDER.lower(), mine.licence_number[-6:], mine.identifier[-12:]):
        page = market.get("/console", params={"q": part}).text
        assert f"/console/licences/{mine.identifier}" in page, part
        assert HOLDER not in page.replace(f'value="{part}"', "")  # codes stay masked in the list
    # A whole identifier finds that licence only (it was cut to its first 60 characters, which every
    # licence of the type and issuer shares).
    another = issue_example(site.env, FOOD_TYPE).licence
    page = market.get("/console", params={"q": mine.identifier}).text
    assert f"/console/licences/{mine.identifier}" in page and f"/console/licences/{another.identifier}" not in page
    # Holders' codes and names are sealed at rest and indexed whole only (docs/personal-data.md): a
    # name or part of a code is found by opening the department's newest versions in memory.
    for part in (HOLDER[6:12], "好味道"):
        page = market.get("/console", params={"q": part}).text
        assert f"/console/licences/{mine.identifier}" in page and "按持证人名称或代码的一部分查找" in page, part
        assert HOLDER not in page  # still masked
    assert f"/console/licences/{mine.identifier}" not in market.get("/console", params={"q": "没有这个名字"}).text
    assert f"/console/licences/{mine.identifier}" not in market.get(
        "/console", params={"q": "好味道", "type_code": DRAINAGE_TYPE}).text  # the other filters still apply
    assert "没有符合条件的证照" in market.get("/console", params={"q": "%"}).text  # a wildcard is a character
    # Another department's staff find none of this department's licences, whatever they type.
    site.app.state.staff.create("hrss4", "周文", "issuer", OTHER_ISSUER_USCC, PASSWORD)
    assert "没有符合条件的证照" in staff_client(site.app, "hrss4").get("/console", params={"q": "好味道"}).text


def test_console_pages_by_key(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """下一页 and 上一页 carry a cursor: each licence once going forward, the same pages going back."""
    monkeypatch.setattr("cert_authority.web.console.PAGE_SIZE", 2)
    market = staff_client(site.app, "market")
    for _ in range(3):
        issue_example(site.env, FOOD_TYPE)
    listed = site.env.services.queries.search(CLI_ACTOR, issuer=ISSUER_USCC, page_size=200).items
    link = re.compile(r'href="\?([^"]*&amp;(?:cursor|before)=[^"]*)">(上一页|下一页)<')
    url, seen, pages = "/console", [], []
    while True:
        page = market.get(url).text
        pages.append(re.findall(r'href="/console/licences/([^"]+)"', page))
        seen += pages[-1]
        links = {label: html.unescape(target) for target, label in link.findall(page)}
        if "下一页" not in links:
            break
        url = "/console?" + links["下一页"]
    assert seen == [item.identifier for item in listed]  # each once, newest first
    back = market.get("/console?" + links["上一页"]).text
    assert re.findall(r'href="/console/licences/([^"]+)"', back) == pages[-2]


def test_counter_check_redirects_and_a_reload_does_not_check_again(site: Site) -> None:
    counter = staff_client(site.app, "counter")
    token = _shown_token(site)
    audited = table_counts(site.env.engine)["audit_event"]
    sent = counter.post("/counter/check", data={"code": token}, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"] == "/counter/result"
    for _ in range(2):  # the result, then a reload of it
        assert verdict_of(counter.get("/counter/result").text) == "VALID"
    assert table_counts(site.env.engine)["audit_event"] == audited + 1  # one check, one use
    # A verdict cookie made up in the browser shows nothing.
    forged = staff_client(site.app, "counter")
    cookie = counter.cookies.get("ecas_verdict")
    assert cookie
    forged.cookies.set("ecas_verdict", cookie[:-8] + ("A" * 8 if not cookie.endswith("A" * 8) else "B" * 8),
                       path="/counter")
    assert forged.get("/counter/result", follow_redirects=False).headers["location"] == "/counter"
    # The genuine cookie, copied to another staff member's browser, or kept past its ten minutes,
    # shows nothing either (an attacker review: only the browser's max-age limited it).
    site.app.state.staff.create("counter3", "王芳", "user", USER_USCC, PASSWORD)
    other = staff_client(site.app, "counter3")
    other.cookies.set("ecas_verdict", cookie, path="/counter")
    assert other.get("/counter/result", follow_redirects=False).headers["location"] == "/counter"
    later = time.time() + 601
    with pytest.MonkeyPatch.context() as clock:
        clock.setattr("cert_authority.web.counter_results.time.time", lambda: later)
        assert counter.get("/counter/result", follow_redirects=False).headers["location"] == "/counter"
    assert verdict_of(counter.get("/counter/result").text) == "VALID"  # within its minutes, still shown
    # Logging out takes the last verdict off this desk.
    counter.post("/staff/logout")
    assert "ecas_verdict" not in counter.cookies


def test_the_form_type_editor_previews_and_registers(site: Site) -> None:
    site.app.state.staff.create("hrss5", "周文", "issuer", OTHER_ISSUER_USCC, PASSWORD)
    client = staff_client(site.app, "hrss5")
    page = client.get("/console/types/form", params={"example": "vocational-qualification"})
    assert page.status_code == 200 and 'name="label"' in page.text
    found = re.search(r'<textarea name="base" id="base" hidden>(.*?)</textarea>', page.text, re.S)
    assert found
    base = html.unescape(found.group(1))
    definition = yaml.safe_load(base)
    rows = rows_of(definition)
    assert any(r.type == "photo" and r.w for r in rows) and all(r.x and r.y for r in rows)

    def form(**changes: object) -> dict[str, object]:
        data: dict[str, object] = {"base": base, "code": definition["code"], "name": "职业技能等级证书"}
        for part in ("key", "label", "type", "example", "values", "x", "y", "w", "h"):
            data[part] = [getattr(r, part) for r in rows]
        data["required"] = [str(i) for i, r in enumerate(rows) if r.required]
        return data | changes

    labels = [r.label for r in rows]
    renamed = form(label=["持证人姓名", *labels[1:]])
    shown = client.post("/console/types/form/preview", data=renamed)
    assert shown.status_code == 200, shown.text
    answer = shown.json()
    assert "label: 持证人姓名" in answer["yaml"] and base64.b64decode(answer["png"]).startswith(b"\x89PNG")
    assert all("#" not in line or re.search(r"[\u4e00-\u9fff]", line) for line in answer["yaml"].splitlines()
               if line.startswith("#"))
    bad = client.post("/console/types/form/preview", data=form(x=["左边", *[r.x for r in rows[1:]]]))
    assert bad.status_code == 422 and "毫米" in bad.json()["message"]
    done = client.post("/console/types/form", data=renamed, follow_redirects=False)
    assert done.status_code == 303, done.text[:3000]
    spec = site.env.registry.type_spec(definition["code"])
    assert spec.name == "职业技能等级证书" and spec.fields[0].label == "持证人姓名"
    twice = client.post("/console/types/form", data=renamed)
    assert twice.status_code == 409 and 'id="form-error"' in twice.text


def test_show_screen_has_status_issuer_and_the_holders_photo(site: Site) -> None:
    person = example_data(VOCATIONAL_TYPE)
    site.env.services.accounts.create(person["id_number"], person["holder_name"], PASSWORD)
    licence = issue_example(site.env, VOCATIONAL_TYPE).licence
    client = holder_client(site.app, person["id_number"])
    page = client.get(f"/wallet/licences/{licence.identifier}/show").text
    assert f'src="/wallet/licences/{licence.identifier}/photo"' in page and 'id="clock"' in page
    assert licence.issuer.name in page and 'id="show-status"' in page
    photo = client.get(f"/wallet/licences/{licence.identifier}/photo")
    assert photo.status_code == 200 and photo.content == site.env.registry.filestore.get(licence.photo_sm3 or "")
    assert client.get(f"/wallet/licences/{licence.identifier}/status").json()["status"] == "issued"
    # A company's licence has no photo; another holder's licence is not found.
    food = holder_client(site.app, HOLDER)
    assert food.get(f"/wallet/licences/{site.food}/photo").status_code == 404
    assert food.get(f"/wallet/licences/{licence.identifier}/photo").status_code == 404
    assert food.get(f"/wallet/licences/{licence.identifier}/status").status_code == 404
    site.env.services.lifecycle.revoke(CLI_ACTOR, licence.identifier, "以欺骗手段取得")
    assert client.get(f"/wallet/licences/{licence.identifier}/status").json()["status"] == "revoked"


def test_counter_verdict_shows_status_issuer_and_the_photo_of_an_accepted_show_code(site: Site) -> None:
    person = {**example_data(VOCATIONAL_TYPE), "id_number": "350102199212120012", "holder_name": "郑一鸣"}
    site.env.services.accounts.create(person["id_number"], person["holder_name"], PASSWORD)
    licence = issue_example(site.env, VOCATIONAL_TYPE, person).licence
    stored = site.env.registry.filestore.get(licence.photo_sm3 or "")
    holder = site.env.services.accounts.holder(person["id_number"])
    counter = staff_client(site.app, "counter")
    text, _ = site.app.state.holders.show_token(holder, licence.identifier, None, 60)
    page = counter.post("/counter/check", data={"code": text}).text
    assert verdict_of(page) == "VALID"
    facts = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert licence.issuer.name in facts and "证照状态" in facts and "有效" in facts
    assert licence.photo_sm3 not in facts.replace(f"/counter/result/photo/{licence.photo_sm3}", "")  # no digest as text
    photo = counter.get(f"/counter/result/photo/{licence.photo_sm3}")
    assert photo.status_code == 200 and photo.content == stored and "no-store" in photo.headers["cache-control"]

    # Attacks: another stored file's digest, a forged or missing verdict cookie, a refused code.
    assert counter.get(f"/counter/result/photo/{'0' * 64}").status_code == 404
    cookie = counter.cookies.get("ecas_verdict")
    counter.cookies.set("ecas_verdict", cookie[:-6] + ("AAAAAA" if not cookie.endswith("AAAAAA") else "BBBBBB"),
                        path="/counter")
    assert counter.get(f"/counter/result/photo/{licence.photo_sm3}").status_code == 404
    fresh = staff_client(site.app, "counter")
    assert fresh.get(f"/counter/result/photo/{licence.photo_sm3}").status_code == 404
    replay = verdict_of(fresh.post("/counter/check", data={"code": text}).text)
    assert replay == "INVALID"
    assert fresh.get(f"/counter/result/photo/{licence.photo_sm3}").status_code == 404
    holders = holder_client(site.app, HOLDER).get(f"/counter/result/photo/{licence.photo_sm3}", follow_redirects=False)
    assert holders.status_code in (303, 401, 403) and holders.content != stored  # staff only


def test_the_form_type_editor_takes_an_uploaded_background(site: Site) -> None:
    site.app.state.staff.create("hrss6", "周文", "issuer", OTHER_ISSUER_USCC, PASSWORD)
    client = staff_client(site.app, "hrss6")
    page = client.get("/console/types/form", params={"example": "vocational-qualification"})
    assert 'id="background_image"' in page.text and 'enctype="multipart/form-data"' in page.text
    found = re.search(r'<textarea name="base" id="base" hidden>(.*?)</textarea>', page.text, re.S)
    assert found
    base = html.unescape(found.group(1))
    definition = yaml.safe_load(base)
    rows = rows_of(definition)
    data: dict[str, object] = {"base": base, "code": definition["code"], "name": "职业资格证书（自有底图）",
                               "background": "upload", "required": [str(i) for i, r in enumerate(rows) if r.required]}
    for part in ("key", "label", "type", "example", "values", "x", "y", "w", "h"):
        data[part] = [getattr(r, part) for r in rows]
    picture = io.BytesIO()
    Image.new("RGB", (840, 1188), (40, 160, 200)).save(picture, "PNG")
    upload = {"background_image": ("底图 v1.png", picture.getvalue(), "image/png")}

    shown = client.post("/console/types/form/preview", data=data, files=upload)
    assert shown.status_code == 200, shown.text
    assert "image: 底图v1.png" in shown.json()["yaml"]  # the name, without its space
    with Image.open(io.BytesIO(base64.b64decode(shown.json()["png"]))) as face:
        corner = face.convert("RGB").getpixel((3, 3))
    assert all(abs(a - b) < 12 for a, b in zip(corner, (40, 160, 200), strict=True)), corner  # our picture

    # Not a picture, or "upload" without a file: a precise 4xx, nothing registered.
    text_file = {"background_image": ("bg.png", b"not a picture", "image/png")}
    refused = client.post("/console/types/form/preview", data=data, files=text_file)
    assert refused.status_code in (400, 413, 415, 422) and re.search(r"[\u4e00-\u9fff]", refused.json()["message"])
    missing = client.post("/console/types/form/preview", data=data)
    assert missing.status_code == 422 and "底图" in missing.json()["message"]
    assert client.post("/console/types/form", data=data, files=text_file).status_code in (400, 413, 415, 422)
    assert definition["code"] not in {t.code for t in site.env.registry.list_types()}

    done = client.post("/console/types/form", data=data, files=upload, follow_redirects=False)
    assert done.status_code == 303, done.text[:2000]
    assert site.env.registry.type_spec(definition["code"]).name == "职业资格证书（自有底图）"
    # A built-in design chosen instead goes into the definition as such.
    plain = client.post("/console/types/form/preview", data={**data, "background": "gold"})
    assert plain.status_code == 200 and "design: gold" in plain.json()["yaml"]


def test_a_starting_server_warms_the_licence_pictures(site: Site) -> None:
    """The first licence picture after a start does not wait for the fonts (1-2 s): the server's
    start loads them in the background. Building an app (tests build many) does not."""
    app = create_app(site.env.settings)
    assert app.state.registry._fonts is None
    with TestClient(app):
        for thread in threading.enumerate():
            if thread.name == "ecas-warm":
                thread.join(timeout=120)
        assert app.state.registry._fonts is not None


def test_pages_keep_units_together_and_escape() -> None:
    shown = str(keep_units("<b>≤45 mg/L；排水量（立方米/日）"))
    assert shown.startswith("&lt;b&gt;")
    assert '<span class="nowrap">≤45 mg/L</span>' in shown and '<span class="nowrap">（立方米/日）</span>' in shown


def test_console_marks_the_picture_of_a_licence_no_longer_valid(site: Site) -> None:
    market = staff_client(site.app, "market")
    licence = issue_example(site.env, FOOD_TYPE).licence
    valid = market.get(f"/console/licences/{licence.identifier}/file.png")
    assert valid.status_code == 200 and valid.headers["content-type"] == "image/png"
    site.env.services.lifecycle.revoke(CLI_ACTOR, licence.identifier, "违反食品安全法，依法吊销")
    marked = market.get(f"/console/licences/{licence.identifier}/file.png")
    assert marked.status_code == 200 and marked.headers["content-type"] == "image/webp"
    assert marked.content != valid.content
    with Image.open(io.BytesIO(marked.content)) as picture, Image.open(io.BytesIO(valid.content)) as clean:
        # The red mark across the middle: the centre differs from the clean picture's.
        box = (clean.width // 2 - 40, clean.height // 2 - 20, clean.width // 2 + 40, clean.height // 2 + 20)
        assert picture.convert("RGB").crop(box).tobytes() != clean.convert("RGB").crop(box).tobytes()
    page = market.get(f"/console/licences/{licence.identifier}").text
    assert 'id="archive-note"' in page and "已吊销" in page
