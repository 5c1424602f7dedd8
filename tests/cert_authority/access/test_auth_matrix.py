"""Authentication and authorisation, endpoint by endpoint and caller by caller: no key, a revoked
key, a holder's session where a department's key belongs, and each role, for its own department
and another's. A refused caller gets 401 or 403, an allowed one a 2xx, and every refusal is in
the audit log."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from cert_authority.actors import CLI_ACTOR
from cert_authority.eseals.schemas import SealCreate
from cert_authority.http.app import create_app
from cert_authority.store.models import AuditEventRow
from keys.uscc import uscc_check_character
from seals.ses import make_seal
from tests.cert_authority.eseals.test_seal_documents import department_pdf
from tests.conftest import (
    FOOD_TYPE,
    ISSUER_USCC,
    NOW,
    OTHER_ISSUER_USCC,
    USER_USCC,
    LicenceEnv,
    example_data,
    issue_example,
)

ANY = frozenset({"admin", "issuer", "other_issuer", "user", "auditor"})
READERS = frozenset({"admin", "auditor", "issuer"})  # a licence of the issuer's own department
WRITERS = frozenset({"admin", "issuer"})
ADMIN = frozenset({"admin"})
Request = tuple[str, str, dict[str, Any]]  # method, path, httpx keyword arguments


@dataclass(frozen=True)
class Endpoint:
    name: str
    request: Callable[[str], Request]  # for a caller: fresh resources where the call changes them
    allowed: frozenset[str]


def endpoints(
    env: LicenceEnv, seal_id: int, pdf: bytes, document: bytes, token: Callable[[], str]
) -> list[Endpoint]:
    food = issue_example(env, FOOD_TYPE).licence.identifier
    counter = iter(range(10_000))

    def fresh() -> str:
        return issue_example(env, FOOD_TYPE).licence.identifier

    def department(_: str) -> Request:
        first17 = f"11350100MB{next(counter) + 9000:07d}"
        body = {"name": "演示市测试局", "uscc": first17 + uscc_check_character(first17), "area_code": "350100",
                "level": "city", "roles": ["user"]}
        return "POST", "/api/v1/departments", {"json": body}

    def issue(caller: str) -> Request:
        data = {**example_data(FOOD_TYPE), "operator_name": f"测试{next(counter)}号餐饮有限公司"}
        return "POST", "/api/v1/licences", {"json": {"type_code": FOOD_TYPE, "data": data, "issuer_uscc": ISSUER_USCC}}

    seals = env.services.seals
    market = next(s for s in seals.list(CLI_ACTOR) if s.department_uscc == ISSUER_USCC)
    picture = seals.picture(CLI_ACTOR, market.id)  # the department's own: a new seal may reuse it
    application = {"department_uscc": ISSUER_USCC, "name": market.name, "legal_representative": "陈明"}

    def applied(_: str) -> int:
        return seals.apply(CLI_ACTOR, SealCreate(**application), picture).id

    def filed(_: str) -> int:
        return seals.approve(CLI_ACTOR, applied(_)).id

    def suspended(_: str) -> int:
        return seals.suspend(CLI_ACTOR, filed(_), "测试").id

    signer = env.pki.issue_seal_certificate(name="演示市市场监督管理局", uscc=ISSUER_USCC, now=NOW)
    made_elsewhere = make_seal(
        env.pki.branch_ca.signer, es_id="3500009900000077", name=market.name, seal_type=1,
        signer_certificates=[signer.der], picture_png=picture, width_mm=42, height_mm=42,
        valid_start=NOW, valid_end=NOW + dt.timedelta(days=30), created=NOW,
    )
    imported = {"department_uscc": ISSUER_USCC, "legal_representative": "陈明",
                "seal": base64.b64encode(made_elsewhere).decode()}
    governance = [
        Endpoint("apply for a seal", lambda _: ("POST", "/api/v1/seals", {
            "json": {**application, "picture": base64.b64encode(picture).decode()}}), WRITERS),
        Endpoint("import a seal", lambda _: ("POST", "/api/v1/seals/import", {"json": imported}), WRITERS),
        Endpoint("approve a seal", lambda c: ("POST", f"/api/v1/seals/{applied(c)}/approve", {}), ADMIN),
        Endpoint("reject a seal", lambda c: ("POST", f"/api/v1/seals/{applied(c)}/reject",
                                             {"json": {"reason": "测试驳回"}}), ADMIN),
        Endpoint("suspend a seal", lambda c: ("POST", f"/api/v1/seals/{filed(c)}/suspend",
                                              {"json": {"reason": "测试暂停"}}), ADMIN),
        Endpoint("resume a seal", lambda c: ("POST", f"/api/v1/seals/{suspended(c)}/resume", {}), ADMIN),
        Endpoint("seal filing", lambda _: ("GET", "/api/v1/seals/filing", {}), frozenset({"admin", "auditor"})),
    ]

    return [
        Endpoint("list departments", lambda _: ("GET", "/api/v1/departments", {}), ANY),
        Endpoint("add department", department, frozenset({"admin"})),
        Endpoint("list types", lambda _: ("GET", "/api/v1/licence-types", {}), ANY),
        Endpoint("one type", lambda _: ("GET", f"/api/v1/licence-types/{FOOD_TYPE}", {}), ANY),
        Endpoint("list seals", lambda _: ("GET", "/api/v1/seals", {}), READERS | {"other_issuer"}),
        Endpoint("one seal", lambda _: ("GET", f"/api/v1/seals/{seal_id}", {}), READERS),
        Endpoint("seal a document", lambda _: ("POST", f"/api/v1/seals/{seal_id}/sign", {
            "content": document, "params": {"x": 10, "y": 10}, "headers": {"Content-Type": "application/pdf"}}),
            WRITERS),
        Endpoint("issue", issue, WRITERS),
        Endpoint("list licences", lambda _: ("GET", "/api/v1/licences", {}), READERS | {"other_issuer"}),
        Endpoint("one licence", lambda _: ("GET", f"/api/v1/licences/{food}", {}), READERS),
        Endpoint("licence file", lambda _: ("GET", f"/api/v1/licences/{food}/files/pdf", {}), READERS),
        Endpoint("history", lambda _: ("GET", f"/api/v1/licences/{food}/history", {}), READERS),
        Endpoint("change", lambda _: ("POST", f"/api/v1/licences/{fresh()}/change",
                                      {"json": {"data": {"premises": "演示市鼓楼区五四路102号"}}}), WRITERS),
        Endpoint("revoke", lambda _: ("POST", f"/api/v1/licences/{fresh()}/revoke", {"json": {"reason": "测试"}}),
                 WRITERS),
        Endpoint("cancel", lambda _: ("POST", f"/api/v1/licences/{fresh()}/cancel", {"json": {"reason": "测试"}}),
                 WRITERS),
        Endpoint("verify identifier", lambda _: ("GET", f"/api/v1/verify/{food}", {}), ANY),
        Endpoint("log proof", lambda _: ("GET", f"/api/v1/licences/{food}/proof", {}), ANY),
        Endpoint("verify file", lambda _: ("POST", "/api/v1/verify",
                                           {"content": pdf, "headers": {"Content-Type": "application/pdf"}}), ANY),
        Endpoint("verify show token", lambda _: ("POST", "/api/v1/show-tokens/verify", {"json": {"token": token()}}),
                 ANY),
        Endpoint("grant a duty rule", lambda _: ("POST", "/api/v1/duty-rules",
                                                 {"json": {"department_uscc": USER_USCC, "type_code": FOOD_TYPE}}),
                 frozenset({"admin"})),
        *governance,
    ]


def test_every_caller_against_every_endpoint(licence_env: LicenceEnv) -> None:
    env = licence_env
    app = create_app(env.settings)
    keys = app.state.api_keys
    revoked = keys.create("issuer", ISSUER_USCC)
    keys.revoke(revoked.prefix)
    env.services.accounts.create(example_data(FOOD_TYPE)["operator_code"], "好味道", "holder-password-1")
    holder = env.services.accounts.authenticate(example_data(FOOD_TYPE)["operator_code"], "holder-password-1")
    session_token, _, _ = env.services.holders.login(holder.holder_code, "holder-password-1")
    callers = {
        "none": {},
        "revoked": {"Authorization": f"Bearer {revoked.key}"},
        "holder session": {"Authorization": f"Bearer {session_token}"},
        "admin": {"Authorization": f"Bearer {keys.create('admin', None).key}"},
        "issuer": {"Authorization": f"Bearer {keys.create('issuer', ISSUER_USCC).key}"},
        "other_issuer": {"Authorization": f"Bearer {keys.create('issuer', OTHER_ISSUER_USCC).key}"},
        "user": {"Authorization": f"Bearer {keys.create('user', USER_USCC).key}"},
        "auditor": {"Authorization": f"Bearer {keys.create('auditor', USER_USCC).key}"},
    }
    seal_id = next(s.id for s in env.services.seals.list(CLI_ACTOR) if s.department_uscc == ISSUER_USCC)
    food_for_tokens = issue_example(env, FOOD_TYPE).licence.identifier
    pdf = env.services.queries.file(CLI_ACTOR, food_for_tokens, "pdf")

    def token() -> str:
        return env.services.holders.show_token(holder, food_for_tokens)[0]

    wrong: list[str] = []
    denied = 0
    with TestClient(app) as client:
        for endpoint in endpoints(env, seal_id, pdf, department_pdf(), token):
            for caller, headers in callers.items():
                method, path, options = endpoint.request(caller)
                options = {**options, "headers": {**options.get("headers", {}), **headers}}
                status = client.request(method, path, **options).status_code
                if caller in endpoint.allowed:
                    ok = 200 <= status < 300
                else:
                    ok = status == (403 if caller in ANY else 401)
                    denied += 1
                if not ok:
                    wrong.append(f"{endpoint.name:20} {caller:15} {method} {path[:60]} → {status}")
    assert not wrong, "\n".join(wrong)
    with Session(env.engine) as session:
        audited = session.exec(
            select(func.count()).select_from(AuditEventRow).where(col(AuditEventRow.action) == "denied")
        ).one()
    assert audited == denied
