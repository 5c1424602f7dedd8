"""Seal governance (印章备案), over HTTP on SQLite and PostgreSQL.

The attack found against the demo: the issuer key of 演示市人力资源和社会保障局 registered a seal named
after 演示市市场监督管理局, with that bureau's very picture; the branch CA signed it, it became the
attacker's active seal, and the counter page showed the market bureau's seal name on a VALID
licence the attacker issued. Here that request is refused, so are its variants, and an issuer's key
never gets an active seal without an administrator's approval.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session, col, select

from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.boundary import classify
from cert_authority.demo import demo_photo
from cert_authority.errors import ServiceError
from cert_authority.eseals.schemas import SealCreate, SealPublic
from cert_authority.http.app import create_app
from cert_authority.store.models import AuditEventRow
from cert_authority.timeutil import BEIJING
from keys.uscc import uscc_check_character
from keys.x509 import Certificate
from seals.picture import generate_round_seal
from seals.ses import parse_seal
from tests.conftest import (
    FOOD_TYPE,
    ISSUER_USCC,
    OTHER_ISSUER_USCC,
    USER_USCC,
    VOCATIONAL_TYPE,
    LicenceEnv,
    add_department,
    example_data,
    issue_example,
    stored_files,
    table_counts,
)

MARKET_NAME = "演示市市场监督管理局"  # ISSUER_USCC, the victim
HRSS_NAME = "演示市人力资源和社会保障局"  # OTHER_ISSUER_USCC, the attacker
VICTIM_SEAL_NAME = f"{MARKET_NAME}电子证照专用章"
ISSUER = Actor("apikey:1", "issuer", ISSUER_USCC)
ADMIN = Actor("apikey:100", "admin", None)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _issue_vocational(client: TestClient, headers: dict[str, str]) -> str:
    body = {"type_code": VOCATIONAL_TYPE, "data": example_data(VOCATIONAL_TYPE),
            "photo": base64.b64encode(demo_photo(0)).decode()}
    answer = client.post("/api/v1/licences", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    identifier: str = answer.json()["identifier"]
    return identifier


def _seal_names_at_the_counter(client: TestClient, ofd: bytes, headers: dict[str, str]) -> tuple[str, set[str]]:
    """What the counter shows for a sealed OFD: the verdict and the names of the seals in it."""
    answer = client.post("/api/v1/verify", content=ofd, headers={**headers, "Content-Type": "application/ofd"})
    report: dict[str, Any] = answer.json()
    return report["result"], {s["seal_name"] for s in report["subject"]["signatures"]}


def test_attack_another_departments_seal_name_and_picture_is_refused(licence_env: LicenceEnv) -> None:
    env = licence_env
    app = create_app(env.settings)
    keys = app.state.api_keys
    attacker = _bearer(keys.create("issuer", OTHER_ISSUER_USCC).key)
    counter = _bearer(keys.create("user", ISSUER_USCC).key)
    victim_seal = next(s for s in env.services.seals.list(CLI_ACTOR) if s.department_uscc == ISSUER_USCC)
    # The victim's picture is on every licence it seals: the attacker has it.
    victim_picture = base64.b64encode(env.services.seals.picture(CLI_ACTOR, victim_seal.id)).decode()
    before = table_counts(env.engine)

    with TestClient(app) as client:
        # 1. The request as the attacker sent it: refused, nothing filed, no certificate issued.
        incident = client.post("/api/v1/seals", headers=attacker, json={
            "department_uscc": OTHER_ISSUER_USCC, "name": VICTIM_SEAL_NAME, "picture": victim_picture})
        assert incident.status_code == 422, incident.text
        assert table_counts(env.engine)["seal"] == before["seal"]
        assert table_counts(env.engine)["issued_certificate"] == before["issued_certificate"]

        # 2. With every field an application takes: the name is the reason.
        named = client.post("/api/v1/seals", headers=attacker, json={
            "department_uscc": OTHER_ISSUER_USCC, "name": VICTIM_SEAL_NAME, "legal_representative": "王五",
            "purpose": "电子证照专用章"})
        assert named.status_code == 422, named.text
        assert named.json()["error"] == "invalid_seal_name"
        assert f"须以本部门登记名称「{HRSS_NAME}」开头" in named.json()["message"]

        # 3. Its own name, the victim's picture: the picture is the reason.
        pictured = client.post("/api/v1/seals", headers=attacker, json={
            "department_uscc": OTHER_ISSUER_USCC, "name": f"{HRSS_NAME}电子证照专用章", "legal_representative": "王五",
            "picture": victim_picture})
        assert pictured.status_code == 409, pictured.text
        assert pictured.json()["error"] == "seal_picture_resembles"
        message = pictured.json()["message"]
        assert "另一部门" in message and MARKET_NAME in message and victim_seal.name in message

        # 4. A proper application of its own: filed as applied, not active; its key cannot approve it.
        applied = client.post("/api/v1/seals", headers=attacker, json={
            "department_uscc": OTHER_ISSUER_USCC, "name": f"{HRSS_NAME}合同专用章", "legal_representative": "王五",
            "purpose": "合同专用章"})
        assert applied.status_code == 201, applied.text
        assert applied.json()["status"] == "applied" and applied.json()["cert_serial"] is None
        seal_id = applied.json()["id"]
        approve = client.post(f"/api/v1/seals/{seal_id}/approve", headers=attacker)
        assert approve.status_code == 403, approve.text
        assert client.get(f"/api/v1/seals/{seal_id}", headers=attacker).json()["status"] == "applied"

        # The attacker's licences still carry its own filed seal, and the counter sees that name.
        identifier = _issue_vocational(client, attacker)
        ofd = client.get(f"/api/v1/licences/{identifier}/files/ofd", headers=attacker).content
        result, names = _seal_names_at_the_counter(client, ofd, counter)
        assert result == "VALID" and names == {f"{HRSS_NAME}电子证照专用章"}


# --- the rules -------------------------------------------------------------------------------------
REPRESENTATIVE = "陈明"
MARKET_SEAL = f"{MARKET_NAME}电子证照专用章"


def _apply(env: LicenceEnv, actor: Actor, name: str = MARKET_SEAL, uscc: str = ISSUER_USCC,
           picture: bytes | None = None, **fields: Any) -> SealPublic:
    request = SealCreate(department_uscc=uscc, name=name, legal_representative=REPRESENTATIVE, **fields)
    return env.services.seals.apply(actor, request, picture)


def _refused(call: Callable[[], object], status: int, code: str, message: str) -> str:
    with pytest.raises(ServiceError) as caught:
        call()
    assert classify(caught.value) == (status, code), caught.value
    assert message in str(caught.value), str(caught.value)
    return str(caught.value)


def _market_picture(env: LicenceEnv) -> bytes:
    seal = next(s for s in env.services.seals.list(CLI_ACTOR) if s.department_uscc == ISSUER_USCC)
    return env.services.seals.picture(CLI_ACTOR, seal.id)


def _shifted(png: bytes, dx: int, dy: int) -> bytes:
    image = Image.open(io.BytesIO(png)).convert("RGBA")
    canvas = Image.new("RGBA", (image.width + 30, image.height + 30), (0, 0, 0, 0))
    canvas.paste(image, (15 + dx, 15 + dy))
    out = io.BytesIO()
    canvas.save(out, "PNG")
    return out.getvalue()


def test_the_name_is_the_departments_own_plus_a_purpose(shared_licence_env: LicenceEnv) -> None:
    env = shared_licence_env
    branch_uscc = "11350100MB0000051" + uscc_check_character("11350100MB0000051")
    if branch_uscc not in {d.uscc for d in env.registry.list_departments()}:
        add_department(env.registry, branch_uscc, ("issuer",), name=f"{MARKET_NAME}鼓楼分局")
    counts, files = table_counts(env.engine), stored_files(env.settings)
    cases = [
        (f"{HRSS_NAME}电子证照专用章", {}, f"须以本部门登记名称「{MARKET_NAME}」开头"),
        ("市场监督管理局电子证照专用章", {}, "须以本部门登记名称"),
        (f" {MARKET_NAME}", {}, "之后写明印章用途"),
        (f"{MARKET_NAME}代{HRSS_NAME}专用章", {}, f"含有另一部门「{HRSS_NAME}」"),
        # A longer department name that begins with ours: the seal would name the branch office.
        (f"{MARKET_NAME}鼓楼分局电子证照专用章", {}, f"含有另一部门「{MARKET_NAME}鼓楼分局」"),
        (MARKET_SEAL, {"purpose": "合同专用章"}, f"应为「{MARKET_NAME}合同专用章」"),
    ]
    for name, fields, message in cases:
        _refused(lambda name=name, fields=fields: _apply(env, ISSUER, name, **fields), 422, "invalid_seal_name",
                 message)
    assert (table_counts(env.engine), stored_files(env.settings)) == (counts, files)
    # The branch office itself may file its own seal.
    own = _apply(env, Actor("apikey:9", "issuer", branch_uscc), f"{MARKET_NAME}鼓楼分局电子证照专用章",
                 uscc=branch_uscc)
    assert own.status == "applied" and own.purpose == "电子证照专用章"


def test_a_picture_like_another_departments_is_refused(shared_licence_env: LicenceEnv) -> None:
    env = shared_licence_env
    hrss = Actor("apikey:2", "issuer", OTHER_ISSUER_USCC)
    counts = table_counts(env.engine)
    for copy in (_market_picture(env), _shifted(_market_picture(env), 4, -3)):
        message = _refused(lambda copy=copy: _apply(env, hrss, f"{HRSS_NAME}电子证照专用章", OTHER_ISSUER_USCC, copy),
                           409, "seal_picture_resembles", "另一部门")
        assert f"「{MARKET_NAME}」（{ISSUER_USCC}）已备案的印章「{MARKET_SEAL}」" in message
    assert table_counts(env.engine) == counts
    # Its own department may file the same picture again (a new certificate, the same seal).
    again = _apply(env, ISSUER, picture=_market_picture(env))
    assert again.status == "applied"
    # An application holds its picture too: nobody else may file it meanwhile.
    drawn = generate_round_seal("演示市城市管理局", "合同专用章")
    pending = _apply(env, Actor("apikey:3", "issuer", USER_USCC), "演示市城市管理局合同专用章", USER_USCC, drawn)
    message = _refused(lambda: _apply(env, hrss, f"{HRSS_NAME}合同专用章", OTHER_ISSUER_USCC, drawn), 409,
                       "seal_picture_resembles", "申请备案的印章")
    assert f"编号 {pending.id}" in message


# --- the flow ----------------------------------------------------------------------------------------
def test_apply_approve_reject(licence_env: LicenceEnv) -> None:
    env = licence_env
    seals = env.services.seals
    before = issue_example(env, FOOD_TYPE).licence.seal.seal_id
    applied = _apply(env, ISSUER, purpose="电子证照专用章", valid_end=dt.date.today() + dt.timedelta(days=400))
    assert (applied.status, applied.es_id, applied.cert_serial, applied.seal_sm3, applied.valid_start) == (
        "applied", None, None, None, None)
    assert applied.legal_representative == REPRESENTATIVE and applied.origin == "made"
    # Applied is not active: licences and documents still go out under the filed seal only.
    assert issue_example(env, FOOD_TYPE).licence.seal.seal_id == before
    _refused(lambda: seals.seal_document(ISSUER, applied.id, b"%PDF-", 0, 10, 10), 409, "seal_status_conflict",
             "只有有效（已备案）的印章")
    certificates = table_counts(env.engine)["issued_certificate"]
    for actor in (ISSUER, Actor("apikey:4", "auditor", None), Actor("apikey:5", "user", ISSUER_USCC)):
        _refused(lambda actor=actor: seals.approve(actor, applied.id), 403, "forbidden", "仅限管理员")
        _refused(lambda actor=actor: seals.reject(actor, applied.id, "不予备案"), 403, "forbidden", "仅限管理员")
    assert table_counts(env.engine)["issued_certificate"] == certificates  # nothing signed for them

    filed = seals.approve(ADMIN, applied.id)
    assert filed.status == "active" and filed.es_id and filed.cert_serial and filed.decided_by == "apikey:100"
    assert filed.valid_end is not None and filed.valid_end.astimezone(BEIJING).date() == applied.requested_end
    assert table_counts(env.engine)["issued_certificate"] == certificates + 1
    seal = parse_seal((env.settings.files_dir / filed.seal_sm3[:2] / filed.seal_sm3).read_bytes())  # type: ignore[index]
    assert (seal.name, seal.es_id) == (MARKET_SEAL, filed.es_id)
    assert Certificate.load(seal.maker_certificate).der == env.pki.branch_certificate().der
    assert issue_example(env, FOOD_TYPE).licence.seal.seal_id == filed.id  # filed last, used first
    _refused(lambda: seals.approve(ADMIN, applied.id), 409, "seal_status_conflict", "不是待审批的申请")
    _refused(lambda: seals.reject(ADMIN, applied.id, "迟到的驳回"), 409, "seal_status_conflict", "不能驳回")

    second = _apply(env, ISSUER, f"{MARKET_NAME}合同专用章")
    rejected = seals.reject(ADMIN, second.id, "用途不属于电子证照")
    assert (rejected.status, rejected.decision_note, rejected.cert_serial) == ("rejected", "用途不属于电子证照", None)
    _refused(lambda: seals.approve(ADMIN, second.id), 409, "seal_status_conflict", "已驳回")
    _refused(lambda: seals.revoke(ISSUER, second.id), 409, "seal_status_conflict", "尚未备案")
    assert _audit(env, applied.id) == [("seal_apply", "apikey:1"), ("seal_approve", "apikey:100")]
    assert _audit(env, second.id) == [("seal_apply", "apikey:1"), ("seal_reject", "apikey:100")]


def test_the_cli_operator_registers_in_one_step_audited_as_two(shared_licence_env: LicenceEnv) -> None:
    env = shared_licence_env
    seal = env.services.seals.register(CLI_ACTOR, SealCreate(
        department_uscc=USER_USCC, name="演示市城市管理局电子证照专用章", legal_representative="郑军"))
    assert seal.status == "active"
    assert _audit(env, seal.id) == [("seal_apply", "cli"), ("seal_approve", "cli")]
    _refused(lambda: env.services.seals.register(ISSUER, SealCreate(
        department_uscc=ISSUER_USCC, name=MARKET_SEAL, legal_representative=REPRESENTATIVE)), 403, "forbidden",
        "仅限管理员")


def test_suspended_seal_seals_nothing_until_resumed(licence_env: LicenceEnv) -> None:
    env = licence_env
    app = create_app(env.settings)
    issuer = _bearer(app.state.api_keys.create("issuer", ISSUER_USCC).key)
    admin = _bearer(app.state.api_keys.create("admin", None).key)
    [seal] = env.services.seals.list(ISSUER)
    body = {"type_code": FOOD_TYPE, "data": example_data(FOOD_TYPE)}
    pdf = env.services.queries.file(CLI_ACTOR, issue_example(env, FOOD_TYPE).licence.identifier, "pdf")
    with TestClient(app) as client:
        refused = client.post(f"/api/v1/seals/{seal.id}/suspend", headers=issuer, json={"reason": "印章保管人变更"})
        assert refused.status_code == 403
        suspended = client.post(f"/api/v1/seals/{seal.id}/suspend", headers=admin, json={"reason": "印章保管人变更"})
        assert suspended.status_code == 200 and suspended.json()["status"] == "suspended", suspended.text
        assert suspended.json()["suspension_reason"] == "印章保管人变更"
        issued = client.post("/api/v1/licences", headers=issuer, json=body)
        assert (issued.status_code, issued.json()["error"]) == (409, "no_active_seal"), issued.text
        signed = client.post(f"/api/v1/seals/{seal.id}/sign", params={"x": 10, "y": 10}, content=pdf,
                             headers={**issuer, "Content-Type": "application/pdf"})
        assert (signed.status_code, signed.json()["error"]) == (409, "seal_status_conflict")
        twice = client.post(f"/api/v1/seals/{seal.id}/suspend", headers=admin, json={"reason": "再次暂停"})
        assert (twice.status_code, twice.json()["error"]) == (409, "seal_status_conflict")
        assert client.post(f"/api/v1/seals/{seal.id}/resume", headers=issuer).status_code == 403

        resumed = client.post(f"/api/v1/seals/{seal.id}/resume", headers=admin)
        assert resumed.status_code == 200 and resumed.json()["status"] == "active"
        assert resumed.json()["suspension_reason"] is None
        issued = client.post("/api/v1/licences", headers=issuer, json=body)
        assert issued.status_code == 201 and issued.json()["seal"]["seal_id"] == seal.id, issued.text
        again = client.post(f"/api/v1/seals/{seal.id}/resume", headers=admin)
        assert (again.status_code, again.json()["error"]) == (409, "seal_status_conflict")
        # A suspended seal can still be revoked.
        client.post(f"/api/v1/seals/{seal.id}/suspend", headers=admin, json={"reason": "密钥可能泄露"})
        revoked = client.post(f"/api/v1/seals/{seal.id}/revoke", headers=issuer, json={"reason": "keyCompromise"})
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked", revoked.text
    assert [action for action, _ in _audit(env, seal.id)] == [
        "seal_apply", "seal_approve", "seal_suspend", "seal_resume", "seal_suspend", "seal_revoke"]


def _audit(env: LicenceEnv, seal_id: int) -> list[tuple[str, str]]:
    with Session(env.engine) as session:
        rows = session.exec(
            select(AuditEventRow).where(col(AuditEventRow.target) == f"seal:{seal_id}").order_by(col(AuditEventRow.id))
        ).all()
    return [(r.action, r.actor) for r in rows]
