"""The pages (wallet, counter, console, public check) through the app, without a browser: sessions
in HttpOnly SameSite cookies, each role only its own pages and data, forms that write exactly once
or not at all, and verdicts that match the API's."""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import qrcode
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session, select

from cert_authority.actors import CLI_ACTOR
from cert_authority.demo import EXAMPLE_TYPES, demo_uscc
from cert_authority.errors import AuthenticationError, ConflictError, InvalidRequestError, NotFoundError
from cert_authority.http.access_log import WithoutQuery
from cert_authority.http.app import create_app
from cert_authority.store.models import AuditEventRow, BatchJobRow
from keys.uscc import uscc_check_character
from templates.identifier import mask_holder_code
from tests.cert_authority.web.web_pages import PASSWORD, browser, holder_client, staff_client, verdict_of
from tests.conftest import (
    DRAINAGE_TYPE,
    FOOD_TYPE,
    ISSUER_USCC,
    OTHER_ISSUER_USCC,
    USER_USCC,
    LicenceEnv,
    example_data,
    issue_example,
    table_counts,
)

HOLDER = example_data(FOOD_TYPE)["operator_code"]
OTHER_HOLDER = "91350103MA00000026"


@dataclass
class Site:
    env: LicenceEnv
    app: FastAPI
    food: str  # the holder's valid food licence
    revoked: str  # the holder's revoked drainage permit
    others: str  # another holder's licence


@pytest.fixture(scope="module")
def site(shared_licence_env: LicenceEnv) -> Iterator[Site]:
    env = shared_licence_env
    services = env.services
    services.accounts.create(HOLDER, "演示市鼓楼区好味道餐饮有限公司", PASSWORD)
    services.accounts.create(OTHER_HOLDER, "演示市台江区闽味轩餐饮管理有限公司", PASSWORD)
    food = issue_example(env, FOOD_TYPE).licence.identifier
    revoked = issue_example(env, DRAINAGE_TYPE, {**example_data(DRAINAGE_TYPE), "discharger_code": HOLDER})
    services.lifecycle.revoke(CLI_ACTOR, revoked.licence.identifier, "擅自改变排水口位置")
    others = issue_example(env, FOOD_TYPE, {**example_data(FOOD_TYPE), "operator_code": OTHER_HOLDER})
    app = create_app(env.settings)
    staff = app.state.staff
    staff.create("market", "张敏", "issuer", ISSUER_USCC, PASSWORD)
    staff.create("hrss", "周文", "issuer", OTHER_ISSUER_USCC, PASSWORD)
    staff.create("counter", "李娜", "user", USER_USCC, PASSWORD)
    yield Site(env, app, food, revoked.licence.identifier, others.licence.identifier)


# --- holders ----------------------------------------------------------------------------------------
def test_holder_login_sets_a_strict_cookie_and_pages_need_it(site: Site) -> None:
    client = browser(site.app)
    assert client.get("/wallet", follow_redirects=False).headers["location"] == "/wallet/login?next=/wallet"
    wrong = client.post("/wallet/login", data={"holder_code": HOLDER, "password": "not the one"})
    assert wrong.status_code == 401 and "持证主体代码或密码错误" in wrong.text and "set-cookie" not in wrong.headers
    good = client.post("/wallet/login", data={"holder_code": HOLDER, "password": PASSWORD, "next": "//evil.example"},
                       follow_redirects=False)
    assert good.status_code == 303 and good.headers["location"] == "/wallet"  # no redirect off the site
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/wallet" in cookie
    assert "hs_" in cookie and PASSWORD not in cookie
    wallet = client.get("/wallet")
    assert wallet.status_code == 200 and "食品经营许可证" in wallet.text
    assert site.others not in wallet.text  # only the holder's own
    # A form posted from another site is refused, whatever the cookie.
    assert client.post("/wallet/logout", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    client.post("/wallet/logout")
    assert client.get("/wallet", follow_redirects=False).status_code == 303


def test_holder_sees_and_downloads_only_own_licences(site: Site) -> None:
    client = holder_client(site.app, HOLDER)
    page = client.get(f"/wallet/licences/{site.food}")
    assert page.status_code == 200 and "下载 PDF" in page.text and "亮证" in page.text
    pdf = client.get(f"/wallet/licences/{site.food}/file.pdf")
    stored = site.env.services.queries.file(CLI_ACTOR, site.food, "pdf")
    assert pdf.status_code == 200 and pdf.content == stored and pdf.headers["content-type"] == "application/pdf"
    assert client.get(f"/wallet/licences/{site.food}/file.png").content.startswith(b"\x89PNG")
    for path in (f"/wallet/licences/{site.others}", f"/wallet/licences/{site.others}/file.pdf",
                 f"/wallet/licences/{site.others}/show"):
        answer = client.get(path)
        assert answer.status_code == 404 and "您名下没有证照" in answer.text and "<html" in answer.text
    assert client.get(f"/wallet/licences/{site.food}/file.exe").status_code == 422


def test_show_screen_gives_a_token_that_verifies_and_refreshes(site: Site) -> None:
    client = holder_client(site.app, HOLDER)
    page = client.get(f"/wallet/licences/{site.food}/show")
    assert page.status_code == 200 and "<svg" in page.text and "秒后自动更新" in page.text
    # Least disclosure by default: the fields the type marks as fit to show alone.
    fresh = client.post(f"/wallet/licences/{site.food}/show-token", json={"seconds": 30})
    assert fresh.status_code == 200 and fresh.json()["seconds"] == 30 and "<svg" in fresh.json()["qr_svg"]
    chosen = client.get(f"/wallet/licences/{site.food}/show", params={"fields": ["licence_no", "operator_name"]})
    assert chosen.status_code == 200
    assert client.get(f"/wallet/licences/{site.food}/show", params={"seconds": 5}).status_code == 422
    assert client.post(f"/wallet/licences/{site.food}/show-token", json={"fields": ["nope"]}).status_code == 422
    with Session(site.env.engine) as session:
        shown = session.exec(select(AuditEventRow).where(AuditEventRow.action == "show_token")).all()
    assert any(event.target == site.food for event in shown)


def test_revoked_licence_shows_red_and_no_code(site: Site) -> None:
    client = holder_client(site.app, HOLDER)
    page = client.get(f"/wallet/licences/{site.revoked}/show")
    assert page.status_code == 200 and "show-blocked" in page.text and "已吊销" in page.text
    assert "<svg" not in page.text
    assert client.post(f"/wallet/licences/{site.revoked}/show-token", json={}).status_code == 409


def test_use_codes_from_the_wallet(site: Site) -> None:
    client = holder_client(site.app, HOLDER)
    codes_before = len(site.env.services.sharing.use_codes(site.env.services.accounts.holder(HOLDER)))
    made = client.post("/wallet/use-codes", data={"identifier": site.food, "department_uscc": USER_USCC,
                                                  "purpose": "办理排水许可", "max_uses": "2", "days": "3"},
                       follow_redirects=False)
    assert made.status_code == 303 and made.headers["location"] == "/wallet/uses"  # post/redirect/get
    shown = client.get("/wallet/uses")
    code = re.search(r'id="new-code"[^>]*>([0-9A-Z]{8})<', shown.text)
    assert code, shown.text
    # A reload gets the page again: no second code is made, and the first is not shown again.
    reloaded = client.get("/wallet/uses")
    assert 'id="new-code"' not in reloaded.text
    assert len(site.env.services.sharing.use_codes(site.env.services.accounts.holder(HOLDER))) == codes_before + 1
    use = site.env.services.sharing.use_licence(
        site.app.state.api_keys.authenticate(site.app.state.api_keys.create("user", USER_USCC).key),
        site.food, "办理排水许可", use_code=code.group(1),
    )
    assert use.identifier == site.food
    uses = client.get("/wallet/uses")
    assert "办理排水许可" in uses.text and "调取使用" in uses.text and site.env.registry.get_department_by_uscc(
        USER_USCC).name in uses.text
    withdraw = re.search(r'action="/wallet/use-codes/(\d+)/withdraw"', uses.text)
    assert withdraw
    assert client.post(f"/wallet/use-codes/{withdraw.group(1)}/withdraw", follow_redirects=False).status_code == 303
    bad = client.post("/wallet/use-codes", data={"identifier": site.others, "department_uscc": USER_USCC,
                                                 "purpose": "别人的证照"})
    assert bad.status_code == 400 and "alert bad" in bad.text


# --- the counter ------------------------------------------------------------------------------------
def test_counter_needs_staff_and_checks_tokens_identifiers_and_files(site: Site) -> None:
    anonymous = browser(site.app)
    assert anonymous.get("/counter", follow_redirects=False).headers["location"] == "/staff/login?next=/counter"
    holder = holder_client(site.app, HOLDER)
    assert holder.get("/counter", follow_redirects=False).status_code == 303  # a holder is not staff
    text = _token_text(site)
    counter = staff_client(site.app, "counter")
    result = counter.post("/counter/check", data={"code": text})
    assert result.status_code == 200 and verdict_of(result.text) == "VALID"
    assert "核验通过" in result.text and "持证人出示的照面信息" in result.text
    again = counter.post("/counter/check", data={"code": text})
    assert verdict_of(again.text) == "INVALID" and "已被核验过" in again.text
    # The licence's own QR code (an address ending in the identifier) and a bare identifier.
    by_url = counter.post("/counter/check", data={"code": f"http://127.0.0.1:8000/v/{site.food}"})
    assert verdict_of(by_url.text) == "VALID" and "证照标识" in by_url.text
    assert verdict_of(counter.post("/counter/check", data={"code": site.revoked}).text) == "INVALID"
    wrong_check = site.food[:-1] + ("X" if site.food[-1] != "X" else "Y")
    assert "校验" in counter.post("/counter/check", data={"code": wrong_check}).text
    pdf = site.env.services.queries.file(CLI_ACTOR, site.food, "pdf")
    checked = counter.post("/counter/file", files={"file": ("licence.pdf", pdf, "application/pdf")})
    assert verdict_of(checked.text) == "VALID" and "电子印章" in checked.text
    tampered = pdf.replace(b"/Type /Page", b"/Type /Pagf", 1) if b"/Type /Page" in pdf else pdf[:-200]
    assert verdict_of(counter.post("/counter/file", files={"file": ("x.pdf", tampered)}).text) == "INVALID"


def test_counter_reads_a_photo_of_the_code(site: Site) -> None:
    text = _token_text(site)
    picture = io.BytesIO()
    qrcode.make(text).save(picture)
    counter = staff_client(site.app, "counter")
    answer = counter.post("/counter/image", files={"image": ("code.png", picture.getvalue(), "image/png")})
    assert verdict_of(answer.text) == "VALID"
    not_image = counter.post("/counter/image", files={"image": ("code.png", b"%PDF-1.7 not a picture")})
    assert not_image.status_code == 422 and "请上传 PNG 或 JPEG" in not_image.text
    # PostScript would go to Ghostscript, a huge canvas would take gigabytes: neither is decoded.
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    assert counter.post("/counter/image", files={"image": ("code.eps", eps)}).status_code == 422
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, "PNG")
    assert counter.post("/counter/image", files={"image": ("bomb.png", bomb.getvalue())}).status_code == 422
    blank = io.BytesIO()
    Image.new("RGB", (200, 200), "white").save(blank, "PNG")
    empty = counter.post("/counter/image", files={"image": ("blank.png", blank.getvalue(), "image/png")})
    assert empty.status_code == 422 and "没有找到二维码" in empty.text


def test_public_check_shows_status_without_personal_data(site: Site) -> None:
    client = browser(site.app)
    page = client.get(f"/v/{site.food}")
    assert page.status_code == 200 and verdict_of(page.text) == "VALID"
    assert "演示市鼓楼区好味道餐饮有限公司" not in page.text and HOLDER not in page.text
    assert verdict_of(client.get(f"/v/{site.revoked}").text) == "INVALID"
    assert verdict_of(client.get("/v/1.2.156.3005.2.nonsense").text) == "INVALID"


# --- the console ------------------------------------------------------------------------------------
def test_console_issues_once_from_the_form_and_rejects_bad_data_whole(site: Site) -> None:
    market = staff_client(site.app, "market")
    form_page = market.get(f"/console/issue/{FOOD_TYPE}")
    assert form_page.status_code == 200 and "颁发食品经营许可证" in form_page.text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form_page.text).group(1)  # type: ignore[union-attr]
    data = {f"f_{k}": v for k, v in example_data(FOOD_TYPE).items()} | {"idempotency_key": key}
    before = table_counts(site.env.engine)
    first = market.post(f"/console/issue/{FOOD_TYPE}", data=data, follow_redirects=False)
    assert first.status_code == 303, first.text
    again = market.post(f"/console/issue/{FOOD_TYPE}", data=data, follow_redirects=False)  # a double click
    assert again.headers["location"] == first.headers["location"]
    assert table_counts(site.env.engine)["licence"] == before["licence"] + 1
    issued = market.get(first.headers["location"])
    assert issued.status_code == 200 and "吊销" in issued.text
    # A wrong USCC check character: the form comes back with the reason and its values; nothing is written.
    bad = {**data, "idempotency_key": "web:bad-one", "f_operator_code": HOLDER[:-1] + "0"}
    refused = market.post(f"/console/issue/{FOOD_TYPE}", data=bad)
    assert refused.status_code == 422 and "form-error" in refused.text and "operator_code" in refused.text
    assert table_counts(site.env.engine)["licence"] == before["licence"] + 1


def test_console_roles_and_departments(site: Site) -> None:
    counter = staff_client(site.app, "counter")
    assert counter.get("/console").status_code == 403
    hrss = staff_client(site.app, "hrss")
    listing = hrss.get("/console")
    assert listing.status_code == 200 and site.food not in listing.text  # another department's licences
    assert hrss.get(f"/console/licences/{site.food}").status_code == 403
    refused = hrss.post(f"/console/licences/{site.food}/revoke", data={"reason": "越权"})
    assert refused.status_code == 403
    assert site.env.services.queries.get(CLI_ACTOR, site.food).status == "issued"
    mine = staff_client(site.app, "market").get("/console", params={"holder_code": HOLDER, "status": "issued"})
    assert f"/console/licences/{site.food}" in mine.text
    # Codes are masked in lists: the full one only in the search box it was typed into.
    assert mine.text.count(HOLDER) == 1 and mask_holder_code(HOLDER) in mine.text


def test_console_revokes_with_a_reason(site: Site) -> None:
    target = issue_example(site.env, FOOD_TYPE).licence.identifier
    market = staff_client(site.app, "market")
    form = {"category": "违反法律法规，依法吊销", "reason": "", "confirm": "yes"}
    assert market.post(f"/console/licences/{target}/revoke", data=form).status_code == 422
    form["reason"] = "榕市监罚〔2026〕12号"
    done = market.post(f"/console/licences/{target}/revoke", data=form, follow_redirects=False)
    assert done.status_code == 303
    assert site.env.services.queries.get(CLI_ACTOR, target).status == "revoked"
    twice = market.post(f"/console/licences/{target}/revoke", data=form)
    assert twice.status_code == 409 and "alert bad" in twice.text


# --- staff accounts ---------------------------------------------------------------------------------
def test_staff_accounts(site: Site) -> None:
    staff = site.app.state.staff
    with pytest.raises(InvalidRequestError):
        staff.create("Bad Name", "某", "user", USER_USCC, PASSWORD)
    with pytest.raises(InvalidRequestError):
        staff.create("nodept", "某", "user", None, PASSWORD)
    with pytest.raises(InvalidRequestError):
        staff.create("short", "某", "user", USER_USCC, "short")
    with pytest.raises(ConflictError):
        staff.create("market", "重名", "issuer", ISSUER_USCC, PASSWORD)
    with pytest.raises(AuthenticationError):
        staff.member_for_session("ss_forged")
    token, _expires, member = staff.login("MARKET ", PASSWORD)
    assert member.actor().department_uscc == ISSUER_USCC and staff.member_for_session(token).username == "market"
    staff.logout(token)
    with pytest.raises(AuthenticationError):
        staff.member_for_session(token)


def _token_text(site: Site) -> str:
    """A fresh show token for the food licence, as the holder's service makes it."""
    services = site.env.services
    text, _token = services.holders.show_token(services.accounts.authenticate(HOLDER, PASSWORD), site.food)
    return text


# --- batch files in the console ---------------------------------------------------------------------
def _batch_csv(codes: list[str]) -> bytes:
    data = example_data(FOOD_TYPE)
    header = list(data)
    lines = [",".join(header)]
    for code in codes:
        lines.append(",".join(f'"{code if key == "operator_code" else data[key]}"' for key in header))
    return ("\n".join(lines) + "\n").encode()


def _wait_for(client: TestClient, job_url: str) -> str:
    for _ in range(300):
        page = client.get(job_url).text
        state = re.search(r'data-state="(\w+)"', page).group(1)  # type: ignore[union-attr]
        if state in ("done", "failed", "interrupted"):
            return page
        time.sleep(0.1)
    raise AssertionError("batch job did not finish")


def test_batch_upload_issues_each_row_once_and_shows_progress(site: Site) -> None:
    market = staff_client(site.app, "market")
    assert "上传并开始颁发" in market.get("/console/batch").text
    good = ["91350100MA0000101A", "91350100MA0000102Y"]
    good = [code[:17] + uscc_check_character(code[:17]) for code in good]
    body = _batch_csv([*good, "91350100MA0000103X"])  # the last one's check character is wrong
    before = table_counts(site.env.engine)["licence"]
    sent = market.post("/console/batch", data={"type_code": FOOD_TYPE},
                       files={"file": ("stock.csv", body, "text/csv")}, follow_redirects=False)
    assert sent.status_code == 303, sent.text
    page = _wait_for(market, sent.headers["location"])
    assert 'data-state="done"' in page and re.search(r'id="issued">2<', page) and re.search(r'id="rejected">1<', page)
    assert "统一社会信用代码" in page or "校验" in page  # the reject's reason, per line
    assert table_counts(site.env.engine)["licence"] == before + 2
    # Run again (after an interruption, or with the rejects fixed): nothing issued twice.
    rerun = market.post(sent.headers["location"] + "/rerun", follow_redirects=False)
    again = _wait_for(market, rerun.headers["location"])
    assert re.search(r'id="issued">0<', again) and "已跳过" in again
    assert table_counts(site.env.engine)["licence"] == before + 2
    # Another department sees neither the job nor may it upload for this type.
    hrss = staff_client(site.app, "hrss")
    assert hrss.get(sent.headers["location"]).status_code == 403
    refused = hrss.post("/console/batch", data={"type_code": FOOD_TYPE}, files={"file": ("x.csv", body)})
    assert refused.status_code == 403 and "alert bad" in refused.text


def test_batch_upload_refuses_bad_files_whole(site: Site) -> None:
    market = staff_client(site.app, "market")
    before = table_counts(site.env.engine)
    for name, body in (("stock.xlsx", b"PK\x03\x04"), ("empty.csv", b""), ("header.csv", b"operator_name\n"),
                       ("dup.csv", b"a,a\n1,2\n")):
        answer = market.post("/console/batch", data={"type_code": FOOD_TYPE}, files={"file": (name, body)})
        assert answer.status_code == 422 and "alert bad" in answer.text, (name, answer.text[:300])
    assert table_counts(site.env.engine) == before


def test_an_abandoned_batch_shows_interrupted(site: Site) -> None:
    jobs = site.app.state.batch_jobs
    with Session(site.env.engine) as session:
        old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
        row = BatchJobRow(type_code=FOOD_TYPE, issuer_uscc=ISSUER_USCC, filename="killed.csv", file_sm3="0" * 64,
                          created_by="staff:1", created_at=old, updated_at=old, state="running", total=10, issued=4)
        session.add(row)
        session.commit()
        session.refresh(row)
    assert jobs.get(CLI_ACTOR, row.id).state == "interrupted"
    page = staff_client(site.app, "market").get(f"/console/batch/{row.id}")
    assert "再次运行此文件" in page.text and "已中断" in page.text


# --- registering a licence type ---------------------------------------------------------------------
def test_type_registration_with_live_preview(site: Site) -> None:
    market = staff_client(site.app, "market")
    page = market.get("/console/types/new", params={"example": "food-business-licence"})
    assert page.status_code == 200 and "食品经营许可证" in page.text
    example = (EXAMPLE_TYPES / "food-business-licence.yaml").read_text(encoding="utf-8")
    new = example.replace(FOOD_TYPE, FOOD_TYPE[:-3] + "009").replace("name: 食品经营许可证", "name: 食品小作坊登记证")
    shown = market.post("/console/types/preview", data={"spec": new})
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
    assert shown.content.startswith(b"\x89PNG")
    broken = market.post("/console/types/preview", data={"spec": new.replace("fields:", "fieldz:")})
    assert broken.status_code == 422 and "fieldz" in broken.json()["message"]
    before = table_counts(site.env.engine)
    done = market.post("/console/types/new", data={"spec": new, "action": "register"}, follow_redirects=False)
    assert done.status_code == 303, done.text
    assert site.env.registry.get_type(FOOD_TYPE[:-3] + "009").name == "食品小作坊登记证"
    twice = market.post("/console/types/new", data={"spec": new, "action": "register"})
    assert twice.status_code == 409 and "alert bad" in twice.text
    # Another department's type: refused, nothing stored; a using department may not register at all.
    hrss = staff_client(site.app, "hrss")
    other = new.replace(FOOD_TYPE[:-3] + "009", FOOD_TYPE[:-3] + "010")
    assert hrss.post("/console/types/new", data={"spec": other, "action": "register"}).status_code == 403
    assert staff_client(site.app, "counter").get("/console/types/new").status_code == 403
    with pytest.raises(NotFoundError):
        site.env.registry.get_type(FOOD_TYPE[:-3] + "010")
    assert table_counts(site.env.engine) == before


def test_console_changes_a_licence_into_a_new_version(site: Site) -> None:
    target = issue_example(site.env, FOOD_TYPE).licence.identifier
    market = staff_client(site.app, "market")
    form = market.get(f"/console/licences/{target}/change")
    assert form.status_code == 200 and "变更原因" in form.text
    data = {f"f_{k}": v for k, v in example_data(FOOD_TYPE).items()} | {"f_premises": "演示市鼓楼区五四路102号"}
    changed = market.post(f"/console/licences/{target}/change", data={**data, "reason": "经营场所变更"},
                          follow_redirects=False)
    assert changed.status_code == 303, changed.text
    new_identifier = changed.headers["location"].rsplit("/", 1)[1]
    assert ".002." in new_identifier
    assert site.env.services.queries.get(CLI_ACTOR, new_identifier).data["premises"] == "演示市鼓楼区五四路102号"
    assert site.env.services.queries.get(CLI_ACTOR, target).status == "superseded"


# --- what a review found ----------------------------------------------------------------------------
def test_scripts_get_json_errors_and_unknown_pages_an_error_page(site: Site) -> None:
    fetch = TestClient(site.app)  # a script's fetch does not ask for text/html
    answer = fetch.post(f"/wallet/licences/{site.food}/show-token", json={}, follow_redirects=False)
    assert answer.status_code == 401 and answer.json()["message"]
    page = browser(site.app).get("/wallet/no-such-page")
    assert page.status_code == 404 and "<html" in page.text and "页面不存在" in page.text
    assert TestClient(site.app).get("/api/v1/no-such-thing").json() == {"detail": "Not Found"}


def test_unknown_logins_cost_the_same_and_are_audited(site: Site) -> None:
    def failures() -> int:
        with Session(site.env.engine) as session:
            return len(session.exec(select(AuditEventRow).where(AuditEventRow.action == "login_failed")).all())

    before = failures()
    started = time.perf_counter()
    with pytest.raises(AuthenticationError):
        site.env.services.accounts.authenticate("11010519491231002X", "whatever-it-is")
    with pytest.raises(AuthenticationError):
        site.app.state.staff.login("nobody", "whatever-it-is")
    assert time.perf_counter() - started > 0.01  # argon2 ran (about 50 ms each), not a quick "no such account"
    assert failures() == before + 2


def test_unreadable_rows_after_the_first_chunk_are_reported(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cert_authority.issuing.batch_jobs.CHUNK_ROWS", 2)
    codes = [demo_uscc("350105", 900 + n) for n in range(3)]
    body = _batch_csv(codes) + b'"too","few"\n'
    market = staff_client(site.app, "market")
    sent = market.post("/console/batch", data={"type_code": FOOD_TYPE}, files={"file": ("s.csv", body)},
                       follow_redirects=False)
    page = _wait_for(market, sent.headers["location"])
    assert re.search(r'id="issued">3<', page) and re.search(r'id="rejected">1<', page), page
    assert "该行有 2 列" in page


def test_access_log_leaves_out_query_strings() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/console?holder_code=11010519491231002X", "1.1", 200), None)
    WithoutQuery().filter(record)
    assert "11010519491231002X" not in record.getMessage() and "/console" in record.getMessage()


def test_access_log_leaves_out_annotated_copy_links() -> None:
    """Attack: the link token of an annotated copy (a bearer secret for 10 minutes) was in the access log."""
    token = "Zm9vYmFyLXNlY3JldC1saW5rLXRva2Vu"
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", f"/api/v1/shared/{token}", "1.1", 200), None)
    WithoutQuery().filter(record)
    assert token not in record.getMessage() and "/api/v1/shared/…" in record.getMessage()


def test_security_headers_on_pages_api_answers_and_refusals(site: Site) -> None:
    """Pages carry a CSP with no inline script and no framing; pages and API answers with personal
    data are not stored by the browser (Back after logout at a shared counter showed the last
    verdict); static files and public PKI documents stay cacheable."""
    client = holder_client(site.app, HOLDER)
    page = client.get(f"/wallet/licences/{site.food}")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in page.text and "javascript:" not in page.text
    api = TestClient(site.app).get("/api/v1/licences")  # refused without a key: headers all the same
    assert api.status_code == 401 and api.headers["cache-control"] == "no-store"
    assert api.headers["x-content-type-options"] == "nosniff"
    error = browser(site.app).get("/wallet/no-such-page")
    assert error.status_code == 404 and "content-security-policy" in error.headers
    assert "javascript:" not in error.text
    static = TestClient(site.app).get("/static/app.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get("cache-control", "")
