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
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import inspect
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.boundary import classify
from cert_authority.cli.main import app as cli
from cert_authority.data_encryption import encrypt_existing
from cert_authority.demo import demo_photo
from cert_authority.errors import ServiceError
from cert_authority.eseals.schemas import SealCreate, SealPublic
from cert_authority.http.app import create_app
from cert_authority.issuing.personal import open_licence
from cert_authority.store.db import MIGRATIONS, migrate
from cert_authority.store.models import AuditEventRow, LicenceRow
from cert_authority.timeutil import BEIJING
from keys.signer import Signer
from keys.sm2 import SM2PrivateKey, sm3
from keys.uscc import uscc_check_character
from keys.x509 import Certificate, build_certificate, make_name
from seals.picture import generate_round_seal
from seals.ses import make_seal, parse_seal
from tests.conftest import (
    FOOD_TYPE,
    ISSUER_USCC,
    NOW,
    OTHER_ISSUER_USCC,
    USER_USCC,
    VOCATIONAL_TYPE,
    LicenceEnv,
    add_department,
    department_seal_picture,
    example_data,
    issue_example,
    make_test_pki,
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
    seal = parse_seal(env.registry.filestore.get(filed.seal_sm3))  # type: ignore[index]
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


# --- seals made by the provincial seal platform ---------------------------------------------------
HRSS_SEAL = f"{HRSS_NAME}电子证照专用章"


def _provincial_seal(maker: Signer, signer: bytes, *, name: str = HRSS_SEAL, es_id: str = "3500009900000001",
                     picture: bytes | None = None) -> bytes:
    """An SES_Seal as the provincial platform makes it: its own maker key, our department's certificate."""
    return make_seal(
        maker, es_id=es_id, name=name, seal_type=1, signer_certificates=[signer],
        picture_png=picture or department_seal_picture(HRSS_NAME), width_mm=40, height_mm=40,
        valid_start=NOW - dt.timedelta(days=1), valid_end=NOW + dt.timedelta(days=365), created=NOW,
    )


def _import_body(seal_der: bytes, chain: bytes | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"department_uscc": OTHER_ISSUER_USCC, "legal_representative": "林华",
                            "seal": base64.b64encode(seal_der).decode()}
    if chain is not None:
        body["maker_chain"] = chain.decode()
    return body


def _flip(data: bytes, inside: bytes) -> bytes:
    at = data.index(inside) + len(inside) // 2
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def test_import_a_seal_made_by_the_provincial_platform(licence_env: LicenceEnv, tmp_path: Path) -> None:
    env = licence_env
    province = make_test_pki(NOW)  # the provincial platform's own CA: root → maker (a CA) → its end entity
    roots = tmp_path / "province-roots.pem"
    roots.write_bytes(province.root.pem)
    app = create_app(env.settings.model_copy(update={"seal_maker_roots": roots}))
    keys = app.state.api_keys
    hrss = _bearer(keys.create("issuer", OTHER_ISSUER_USCC).key)
    admin = _bearer(keys.create("admin", None).key)
    counter = _bearer(keys.create("user", ISSUER_USCC).key)
    ours = env.pki.issue_seal_certificate(name=HRSS_NAME, uscc=OTHER_ISSUER_USCC, now=NOW)
    seal_der = _provincial_seal(province.branch_signer, ours.der)
    env.services.timestamps.document_stamper()  # the TSA certificate, issued on first use, not counted below
    # The service certificate too: the app's log sequencer (every second) signs a head with it, and
    # under load a tick fell inside the counted window (failed once in the fast lane on SQLite).
    env.pki.service_signer(NOW)
    before = table_counts(env.engine)

    with TestClient(app) as client:
        def submit(body: dict[str, Any], status: int, code: str | None = None, message: str = "") -> Any:
            answer = client.post("/api/v1/seals/import", headers=hrss, json=body)
            assert answer.status_code == status, answer.text
            if code is not None:
                assert answer.json()["error"] == code and message in answer.json()["message"], answer.text
            return answer.json()

        # Refused: tampered (the maker's signature no longer holds), not an SES_Seal at all, a maker
        # no trusted root certifies, an end-entity maker without the CA between it and the root.
        picture = department_seal_picture(HRSS_NAME)
        submit(_import_body(_flip(seal_der, picture[200:240])), 422, "invalid_seal_import", "制章签名无效")
        submit(_import_body(_flip(seal_der, HRSS_SEAL.encode())), 422, "invalid_seal_import", "制章签名无效")
        submit(_import_body(b"\x30\x03\x02\x01\x04"), 422, "invalid_seal_input", "无法解析")
        stranger = make_test_pki(NOW)
        submit(_import_body(_provincial_seal(stranger.branch_signer, ours.der)), 422, "invalid_seal_import",
               "不能链接到信任的根CA")
        below = _provincial_seal(province.seal_signer, ours.der, es_id="3500009900000002")
        submit(_import_body(below), 422, "invalid_seal_import", "不能链接到信任的根CA")
        # Refused: the certificates it lists are another department's, or not ours to sign with.
        market = env.pki.issue_seal_certificate(name=MARKET_NAME, uscc=ISSUER_USCC, now=NOW)
        submit(_import_body(_provincial_seal(province.branch_signer, market.der)), 422, "invalid_seal_import",
               "不属于本部门")
        foreign = build_certificate(
            subject=make_name(HRSS_NAME, serial_number=OTHER_ISSUER_USCC),
            public_key=SM2PrivateKey.generate().public_key, serial=0x4004,
            not_before=NOW - dt.timedelta(days=1), not_after=NOW + dt.timedelta(days=365),
            issuer_signer=province.branch_signer, issuer=province.branch, ca=False,
            key_usage={"digital_signature", "non_repudiation"}, uscc=OTHER_ISSUER_USCC,
        )
        submit(_import_body(_provincial_seal(province.branch_signer, foreign.der)), 422, "invalid_seal_import",
               "私钥由本系统保管")
        # Refused by the same rules as any seal: another department's name or picture.
        submit(_import_body(_provincial_seal(province.branch_signer, ours.der, name=VICTIM_SEAL_NAME)), 422,
               "invalid_seal_name", "须以本部门登记名称")
        copied = _provincial_seal(province.branch_signer, ours.der, picture=_market_picture(env))
        submit(_import_body(copied), 409, "seal_picture_resembles", MARKET_NAME)
        after_refusals = table_counts(env.engine)
        assert {k: after_refusals[k] - before[k] for k in ("seal", "issued_certificate")} == {
            "seal": 0, "issued_certificate": 1}  # only the market bureau's certificate made above

        # Accepted: checked, then waiting for approval like any application.
        applied = submit(_import_body(seal_der), 201)
        assert (applied["status"], applied["origin"], applied["es_id"], applied["cert_serial"]) == (
            "applied", "imported", None, None)
        assert (applied["purpose"], applied["legal_representative"]) == ("电子证照专用章", "林华")
        with_chain = submit(_import_body(below, province.branch.pem), 201)  # the CA between maker and root given
        assert client.post(f"/api/v1/seals/{applied['id']}/approve", headers=hrss).status_code == 403
        filed = client.post(f"/api/v1/seals/{applied['id']}/approve", headers=admin)
        assert filed.status_code == 200, filed.text
        assert (filed.json()["status"], filed.json()["es_id"], filed.json()["cert_serial"]) == (
            "active", "3500009900000001", ours.serial_hex)
        # The other one lists the same certificate: one certificate, one seal.
        clash = client.post(f"/api/v1/seals/{with_chain['id']}/approve", headers=admin)
        assert (clash.status_code, clash.json()["error"]) == (409, "conflict"), clash.text
        submit(_import_body(seal_der), 409, "conflict", "已备案")

        # Licences now go out under the imported seal, and the counter sees its name, VALID.
        identifier = _issue_vocational(client, hrss)
        assert env.services.queries.get(CLI_ACTOR, identifier).seal.seal_id == applied["id"]
        ofd = client.get(f"/api/v1/licences/{identifier}/files/ofd", headers=hrss).content
        assert _seal_names_at_the_counter(client, ofd, counter) == ("VALID", {HRSS_SEAL})
    assert [a for a, _ in _audit(env, applied["id"])] == ["seal_import", "seal_approve"]


def test_filing_export(licence_env: LicenceEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = licence_env
    seals = env.services.seals
    suspended = seals.register(CLI_ACTOR, SealCreate(department_uscc=USER_USCC, name="演示市城市管理局合同专用章",
                                                     legal_representative="郑军", purpose="合同专用章"))
    seals.suspend(CLI_ACTOR, suspended.id, "年度检查")
    _apply(env, ISSUER, f"{MARKET_NAME}合同专用章")  # applied: not filed yet
    active = {s.es_id: s for s in seals.list(CLI_ACTOR) if s.status == "active"}
    assert len(active) == 3

    app = create_app(env.settings)
    keys = app.state.api_keys
    with TestClient(app) as client:
        for role, uscc in (("issuer", ISSUER_USCC), ("user", USER_USCC)):
            refused = client.get("/api/v1/seals/filing", headers=_bearer(keys.create(role, uscc).key))
            assert refused.status_code == 403
        answer = client.get("/api/v1/seals/filing", headers=_bearer(keys.create("auditor", USER_USCC).key))
    assert answer.status_code == 200, answer.text
    filing = answer.json()
    assert filing["format"] == "ecas-seal-filing/1" and filing["authority_uscc"] == env.settings.authority_uscc
    assert {e["es_id"] for e in filing["seals"]} == set(active)
    for entry in filing["seals"]:
        seal = active[entry["es_id"]]
        certificate = env.pki.certificate(int(seal.cert_serial, 16)).certificate  # type: ignore[arg-type]
        assert (entry["name"], entry["department_uscc"], entry["legal_representative"]) == (
            seal.name, seal.department_uscc, seal.legal_representative)
        assert entry["certificate"]["serial"] == certificate.serial_hex == seal.cert_serial
        assert entry["certificate"]["sm3"] == sm3(certificate.der).hex()
        assert dt.datetime.fromisoformat(entry["certificate"]["not_after"]) == certificate.not_after
        assert dt.datetime.fromisoformat(entry["valid_end"]) == seal.valid_end
        picture = base64.b64decode(entry["picture_png"])
        assert sm3(picture).hex() == entry["picture_sm3"] == seal.picture_sm3 and picture.startswith(b"\x89PNG")
        assert entry["maker"] == env.pki.branch_certificate().subject_text

    # The same from the command line, as files the province takes: filing.json and the PNGs.
    monkeypatch.setenv("ECAS_DATA_DIR", str(env.settings.data_dir))
    monkeypatch.setenv("ECAS_DATABASE_URL", env.settings.effective_database_url)
    monkeypatch.setenv("ECAS_KEK", "test-passphrase")
    out = tmp_path / "filing"
    result = CliRunner().invoke(cli, ["seals", "export-filing", str(out)])
    assert result.exit_code == 0 and "3 枚有效印章" in result.output, result.output
    exported = json.loads((out / "filing.json").read_text(encoding="utf-8"))
    assert [e["es_id"] for e in exported["seals"]] == [e["es_id"] for e in filing["seals"]]
    for entry in exported["seals"]:
        assert "picture_png" not in entry
        assert sm3((out / entry["picture_file"]).read_bytes()).hex() == entry["picture_sm3"]
        assert sm3((out / entry["seal_file"]).read_bytes()).hex() == entry["seal_sm3"]
    with Session(env.engine) as session:
        exports = session.exec(select(AuditEventRow).where(col(AuditEventRow.action) == "seal_filing_export")).all()
    assert [(e.actor_role, e.actor.split(":")[0]) for e in exports] == [("auditor", "apikey"), ("admin", "cli")]


# --- the command line ------------------------------------------------------------------------------
def test_governance_from_the_command_line(licence_env: LicenceEnv, monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    env = licence_env
    monkeypatch.setenv("ECAS_DATA_DIR", str(env.settings.data_dir))
    monkeypatch.setenv("ECAS_DATABASE_URL", env.settings.effective_database_url)
    monkeypatch.setenv("ECAS_KEK", "test-passphrase")
    runner = CliRunner()

    def ecas(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, list(args))
        assert result.exit_code == code and "Traceback" not in result.output, result.output
        return result.output

    application = ("--uscc", ISSUER_USCC, "--legal-representative", REPRESENTATIVE)
    out = ecas("seals", "apply", *application, "--name", f"{MARKET_NAME}合同专用章", "--purpose", "合同专用章")
    seal_id = out.split("申请 ")[1].split("：")[0]
    assert "待审批" in out
    listed = {s["id"]: s for s in json.loads(ecas("seals", "list", "--json"))}
    assert listed[int(seal_id)]["status"] == "applied"
    assert "已备案印章" in ecas("seals", "approve", seal_id)
    assert "已暂停使用" in ecas("seals", "suspend", seal_id, "--reason", "年度检查")
    assert "已恢复使用" in ecas("seals", "resume", seal_id)
    other = ecas("seals", "apply", *application, "--name", f"{MARKET_NAME}财务专用章").split("申请 ")[1].split("：")[0]
    assert "已驳回" in ecas("seals", "reject", other, "--reason", "电子证照不用财务章")
    assert "已驳回" in ecas("seals", "approve", other, code=1)
    assert "须以本部门登记名称" in ecas("seals", "apply", *application, "--name", f"{HRSS_NAME}合同专用章", code=1)

    # A seal made elsewhere: here the maker is our own branch CA (it chains to our root).
    ours = env.pki.issue_seal_certificate(name=MARKET_NAME, uscc=ISSUER_USCC, now=NOW)
    made = make_seal(
        env.pki.branch_ca.signer, es_id="3500009900000009", name=MARKET_SEAL, seal_type=1,
        signer_certificates=[ours.der], picture_png=_market_picture(env), width_mm=42, height_mm=42,
        valid_start=NOW, valid_end=NOW + dt.timedelta(days=30), created=NOW,
    )
    (tmp_path / "seal.der").write_bytes(made)
    out = ecas("seals", "import", str(tmp_path / "seal.der"), *application)
    imported = out.split("申请 ")[1].split("：")[0]
    assert "已备案印章" in ecas("seals", "approve", imported) and "3500009900000009" in ecas("seals", "list")
    (tmp_path / "bad.der").write_bytes(_flip(made, MARKET_SEAL.encode()))
    assert "制章签名无效" in ecas("seals", "import", str(tmp_path / "bad.der"), *application, code=1)


# --- the migration ---------------------------------------------------------------------------------
def test_migration_keeps_filed_seals_and_the_licences_sealed_with_them(licence_env: LicenceEnv) -> None:
    env = licence_env
    licence = issue_example(env, FOOD_TYPE).licence
    pending = _apply(env, ISSUER, f"{MARKET_NAME}合同专用章")
    filed = {s.id: s for s in env.services.seals.list(CLI_ACTOR) if s.status == "active"}
    # Down to the revision before governance and up again, with licences pointing at the seals. The
    # schema below 0016 keeps personal data in plain text: open it first (the 0016 downgrade
    # refuses sealed rows), seal it again afterwards as `ecas data encrypt` does.
    _unseal_licences(env)
    with env.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:  # as migrate() does: SQLite copies the seal table to change it
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        with connection.begin():
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.downgrade(config, "0009_show_token_once")
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
    with env.engine.connect() as connection:
        columns = {c["name"] for c in inspect(connection).get_columns("seal")}
    assert "legal_representative" not in columns
    migrate(env.engine)
    encrypt_existing(env.engine, env.services.personal)

    seals = {s.id: s for s in env.services.seals.list(CLI_ACTOR)}
    assert pending.id not in seals  # an application could not be kept by the older schema
    for seal_id, before in filed.items():
        after = seals[seal_id]
        assert (after.status, after.cert_serial, after.es_id) == ("active", before.cert_serial, before.es_id)
        assert after.decided_by == before.created_by and after.origin == "made"
    assert env.services.queries.get(CLI_ACTOR, licence.identifier).seal.seal_id == licence.seal.seal_id
    assert issue_example(env, FOOD_TYPE).licence.seal.seal_id == licence.seal.seal_id
    if env.engine.dialect.name == "sqlite":
        with env.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    # Pictures filed before governance have no fingerprint yet: it is computed when first needed.
    _refused(lambda: _apply(env, Actor("apikey:2", "issuer", OTHER_ISSUER_USCC), HRSS_SEAL, OTHER_ISSUER_USCC,
                            _market_picture(env)), 409, "seal_picture_resembles", MARKET_NAME)


def _unseal_licences(env: LicenceEnv) -> None:
    """Every licence's personal data back in the plain columns, the sealed ones emptied."""
    with Session(env.engine) as session:
        for row in session.exec(select(LicenceRow)).all():
            opened = open_licence(env.services.personal, row)
            row.holder_name, row.holder_code, row.face_json = opened.holder_name, opened.holder_code, opened.face_json
            row.personal_sealed = row.face_sealed = row.holder_code_index = None
            session.add(row)
        session.commit()
