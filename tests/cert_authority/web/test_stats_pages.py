"""The statistics dashboard (/console/stats): administrators and auditors only; totals, bar charts
drawn as inline SVG (no script, no CDN), the table, and the figures as CSV and as XLSX, read back
with openpyxl (XlsxWriter writes it)."""

from __future__ import annotations

import csv
import io
import re

import openpyxl
import pytest

from cert_authority.actors import CLI_ACTOR
from cert_authority.demo import register_example_matters
from cert_authority.http.app import create_app
from cert_authority.web.charts import Series, _nice, bar_chart
from tests.cert_authority.web.web_pages import PASSWORD, staff_client
from tests.conftest import FOOD_TYPE, USER_USCC, LicenceEnv, example_data, issue_example

HOLDER = example_data(FOOD_TYPE)["operator_code"]
CATERING = "drainage-permit-catering"


def test_the_dashboard_shows_downloads_and_refuses(licence_env: LicenceEnv) -> None:
    env = licence_env
    services = env.services
    register_example_matters(services)
    food = issue_example(env, FOOD_TYPE).licence.identifier
    services.duty_rules.add(CLI_ACTOR, USER_USCC, FOOD_TYPE, [CATERING])
    case = services.cases.open(CLI_ACTOR, CATERING, HOLDER, department_uscc=USER_USCC)
    services.cases.reuse(CLI_ACTOR, case.id, food)
    app = create_app(env.settings)
    app.state.staff.create("boss", "王强", "admin", None, PASSWORD)
    app.state.staff.create("audit", "赵云", "auditor", USER_USCC, PASSWORD)
    app.state.staff.create("counter", "李娜", "user", USER_USCC, PASSWORD)

    admin = staff_client(app, "boss")
    page = admin.get("/console/stats?by=matter&period=month")
    assert page.status_code == 200, page.text[:500]
    html = page.text
    assert re.search(r'data-metric="cases">1<', html) and re.search(r'data-metric="materials_reused">1<', html)
    assert 'id="reuse-rate">33.3%<' in html  # 1 of the catering matter's 3 materials
    assert html.count("<svg") == 2 and "<rect" in html and "<script" not in html.split("<svg", 1)[1]
    assert CATERING in html and "按事项" in html
    # CSV and XLSX: the same figures.
    rows = list(csv.reader(io.StringIO(admin.get("/console/stats.csv?by=matter&period=month").text)))
    assert rows[0][:3] == ["period", "matter", "licences_issued"] and rows[-1][0] == "total"
    answer = admin.get("/console/stats.xlsx?by=matter&period=month")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/vnd.openxml")
    assert answer.headers["content-disposition"].startswith("attachment;")
    sheet = openpyxl.load_workbook(io.BytesIO(answer.content)).active
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert cells[0][:3] == ["统计周期（月）", "事项", "颁发证照"] and cells[0][-1] == "复用率"
    catering = next(r for r in cells if r[1] == CATERING)
    assert catering[6:8] == [3, 1] and catering[8] == pytest.approx(0.3333)
    assert sheet.cell(row=cells.index(catering) + 1, column=9).number_format == "0.00%"
    assert cells[-1][0] == "合计" and cells[-1][2] == 1  # one licence issued
    # Auditors see it; a counter's staff do not; bad input is a 422 in Chinese.
    assert staff_client(app, "audit").get("/console/stats").status_code == 200
    assert staff_client(app, "counter").get("/console/stats").status_code == 403
    assert staff_client(app, "counter").get("/console/stats.xlsx").status_code == 403
    bad = admin.get("/console/stats?start=yesterday")
    assert bad.status_code == 422 and "YYYY-MM-DD" in bad.text
    assert admin.get("/console/stats?by=colour").status_code == 422
    assert admin.get("/console/stats?start=2026-02-01&end=2026-01-01").status_code == 422
    assert "统计" in admin.get("/console").text  # the tab


def test_bar_chart_geometry() -> None:
    chart = bar_chart(["a", "b"], [Series("x", (3, 0), "s1"), Series("y", (8, 1), "s2")])
    assert [(b.title, b.h > 0) for b in chart.bars] == [("a x 3", True), ("a y 8", True), ("b x 0", False),
                                                        ("b y 1", True)]
    tallest = max(chart.bars, key=lambda b: b.h)
    assert tallest.title == "a y 8" and tallest.y + tallest.h == chart.baseline  # 8 is the axis maximum
    assert [t.text for t in chart.ticks] == ["0", "2", "4", "6", "8"]
    assert [_nice(v) for v in (0, 1, 4, 5, 9, 21, 399, 401)] == [0, 4, 4, 8, 20, 40, 400, 800]
    assert bar_chart(["a"], [Series("x", (0,), "s1")]).empty
    many = bar_chart([str(n) for n in range(100)], [Series("x", tuple(range(100)), "s1")])
    assert len(many.labels) <= 12 and all(b.x + b.w <= chart.width for b in many.bars)
