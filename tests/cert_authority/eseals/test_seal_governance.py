"""Seal governance (印章备案), over HTTP on SQLite and PostgreSQL.

The attack found against the demo: the issuer key of 演示市人力资源和社会保障局 registered a seal named
after 演示市市场监督管理局, with that bureau's very picture; the branch CA signed it, it became the
attacker's active seal, and the counter page showed the market bureau's seal name on a VALID
licence the attacker issued. Here that request is refused, so are its variants, and an issuer's key
never gets an active seal without an administrator's approval.
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi.testclient import TestClient

from cert_authority.actors import CLI_ACTOR
from cert_authority.demo import demo_photo
from cert_authority.http.app import create_app
from tests.conftest import ISSUER_USCC, OTHER_ISSUER_USCC, VOCATIONAL_TYPE, LicenceEnv, example_data, table_counts

MARKET_NAME = "演示市市场监督管理局"  # ISSUER_USCC, the victim
HRSS_NAME = "演示市人力资源和社会保障局"  # OTHER_ISSUER_USCC, the attacker
VICTIM_SEAL_NAME = f"{MARKET_NAME}电子证照专用章"


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
