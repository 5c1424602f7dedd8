"""City and province in process: push, verify at the province, revocations, and the attacks (a
batch signed by another key, an unregistered city, a changed body, a gap) changing nothing."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import text
from sqlmodel import Session

from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.exchange.feed import ChangeFeed
from cert_authority.exchange.province import open_licence_payload
from cert_authority.exchange.pusher import BATCHES_PATH, PushError, backoff_delay
from cert_authority.exchange.reconcile import reconcile
from cert_authority.exchange.signing import SIGNATURE_HEADER, sign_body
from cert_authority.exchange.wire import encode_batch
from cert_authority.store.models import DepartmentRow
from cert_authority.store.packing import PackedFiles
from cert_authority.timeutil import utc_now
from keys.sm2 import sm3
from tests.cert_authority.exchange.conftest import Province, pusher_for, register
from tests.conftest import FOOD_TYPE, VOCATIONAL_TYPE, LicenceEnv, gmssl_verify, issue_example

PROVINCE_TABLES = ("province_event", "province_licence")


def counts(province: Province) -> dict[str, int]:
    return {table: province.count(table) for table in PROVINCE_TABLES}


def province_department(province: Province) -> str:
    """A department of the province's own, with the role of a using department."""
    uscc = "11350100MB00000302"
    with Session(province.engine) as session:
        session.add(
            DepartmentRow(
                name="省某厅", uscc=uscc, area_code="350000", level="province", roles="user", created_at=utc_now()
            )
        )
        session.commit()
    return uscc


def test_push_then_the_province_verifies_and_hears_the_revocation(licence_env: LicenceEnv, province: Province) -> None:
    register(licence_env, province)
    food = issue_example(licence_env, FOOD_TYPE).licence
    person = issue_example(licence_env, VOCATIONAL_TYPE).licence
    pusher = pusher_for(licence_env, province)
    result = pusher.push_once()
    latest = ChangeFeed(licence_env.engine, licence_env.services.personal).latest()
    assert result.to_dict() == {"files_sent": 4, "sent": latest, "acked": latest, "pending": 0}
    assert province.count("province_event") == latest  # seal and type events too

    report = province.library.verify_identifier(CLI_ACTOR, food.identifier)
    assert report is not None and report.result.value == "VALID", report.to_dict()
    assert {c.name for c in report.checks} >= {"signature", "chain", "revocation", "status", "record"}
    assert report.face_data is not None and report.subject["city"] == licence_env.settings.authority_uscc
    counter = Actor("apikey:9", "user", "11350100MB0000020X")
    assert province.library.verify_identifier(counter, person.identifier).face_data is None  # the province's rule

    licence_env.services.lifecycle.revoke(CLI_ACTOR, food.identifier, "以欺骗手段取得")
    assert pusher.push_once().to_dict() == {"sent": 1, "acked": latest + 1, "pending": 0, "files_sent": 0}
    revoked = province.library.verify_identifier(CLI_ACTOR, food.identifier)
    assert revoked is not None and revoked.result.value == "INVALID" and revoked.reason == "revoked"
    assert "以欺骗手段取得" in revoked.message
    # and the sealed file can be had from the province by its administrators and auditors: it
    # carries every face field, which the province's other keys do not get from a verification
    from cert_authority.access.apikeys import ApiKeyService

    keys = ApiKeyService(province.engine)
    path = f"/api/v1/province/licences/{person.identifier}/files/pdf"
    assert province.client.get(path).status_code == 401
    department = province_department(province)
    for key in (keys.create("exchange", None).key, keys.create("user", department).key):
        refused = province.client.get(path, headers={"Authorization": f"Bearer {key}"})
        assert refused.status_code == 403, refused.text
    auditor = keys.create("auditor", department).key
    assert province.client.get(path, headers={"Authorization": f"Bearer {auditor}"}).status_code == 200
    key = keys.create("admin", None).key
    download = province.client.get(path, headers={"Authorization": f"Bearer {key}"})
    assert download.status_code == 200 and download.content.startswith(b"%PDF")
    assert (
        sm3(download.content).hex()
        == open_licence_payload(province.library.personal, province.library.find(person.identifier)[0])["files"][
            "pdf_sm3"
        ]
    )


def test_a_stock_licence_verifies_at_the_province_with_its_marker(licence_env: LicenceEnv, province: Province) -> None:
    """A converted paper licence (存量) binds its origin and original issuer into the sealed digest:
    the province rebuilds them from the metadata (KZ_ZZLY, KZ_YBZJG), or its record check fails."""
    import datetime as dt

    from cert_authority.issuing.origin import OriginalLicence

    register(licence_env, province)
    original = OriginalLicence(
        "stock",
        licence_number="JY13501020012345",
        issue_date=dt.date(2022, 3, 1),
        original_issuer_name="演示市原食品药品监督管理局",
    )
    licence = issue_example(licence_env, FOOD_TYPE, original=original).licence
    pusher_for(licence_env, province).push_once()
    report = province.library.verify_identifier(CLI_ACTOR, licence.identifier)
    assert report is not None and report.result.value == "VALID", report.to_dict()
    pushed = open_licence_payload(province.library.personal, province.library.find(licence.identifier)[0])[
        "metadata"
    ]
    assert (pushed["KZ_ZZLY"], pushed["KZ_YBZJG"], pushed["ZZBFRQ"]) == (
        "stock",
        original.original_issuer_name,
        "2022-03-01",
    )


def test_the_same_batch_twice_is_stored_once(licence_env: LicenceEnv, province: Province) -> None:
    register(licence_env, province)
    issue_example(licence_env, FOOD_TYPE)
    feed = ChangeFeed(licence_env.engine, licence_env.services.personal)
    events = feed.events(0, 1000)
    body, signature = signed_batch(licence_env, events)
    first = post(province, body, signature)
    again = post(province, body, signature)
    assert first.status_code == again.status_code == 200
    assert first.json() == {"accepted": len(events), "duplicates": 0, "acked": events[-1].seq, "missing_files": []}
    assert again.json() == {"accepted": 0, "duplicates": len(events), "acked": events[-1].seq, "missing_files": []}
    assert province.count("province_event") == len(events)


def test_a_batch_signed_by_another_key_changes_nothing(licence_env: LicenceEnv, province: Province) -> None:
    register(licence_env, province)
    issue_example(licence_env, FOOD_TYPE)
    events = ChangeFeed(licence_env.engine, licence_env.services.personal).events(0, 1000)
    before = counts(province)
    # The department's seal key: issued by the same branch, but not the registered service key.
    seal_signer = licence_env.services.seals.active_seal("11350100MB00000100", utc_now()).signer
    body = encode_batch(
        licence_env.settings.authority_uscc, utc_now(), events, {}, licence_env.pki.current_crl(utc_now())
    )
    refused = post(province, body, sign_body(seal_signer, body, utc_now()))
    assert refused.status_code == 422 and refused.json()["error"] == "bad_signature"
    # A body changed after signing, and no signature at all.
    body, signature = signed_batch(licence_env, events)
    changed = body.replace(b'"licence.issued"', b'"licence.revoked"', 1)
    assert post(province, changed, signature).json()["error"] == "bad_signature"
    assert post(province, body, None).status_code == 422
    assert counts(province) == before and province.library.acked(licence_env.settings.authority_uscc) == 0


def test_a_batch_from_an_unregistered_city_is_refused(licence_env: LicenceEnv, province: Province) -> None:
    issue_example(licence_env, FOOD_TYPE)
    events = ChangeFeed(licence_env.engine, licence_env.services.personal).events(0, 1000)
    body, signature = signed_batch(licence_env, events)
    refused = post(province, body, signature)
    assert refused.status_code == 403 and refused.json()["error"] == "city_not_registered"
    assert counts(province) == {table: 0 for table in PROVINCE_TABLES}
    pusher = pusher_for(licence_env, province)
    with pytest.raises(PushError, match="403"):
        pusher.push_once()
    status = pusher.status()
    assert status["failures"] == 1 and status["acked"] == 0 and "403" in status["last_error"]


def test_registration_needs_a_chain_to_the_pinned_root(licence_env: LicenceEnv, province: Province) -> None:
    from cert_authority.errors import InvalidRequestError
    from tests.conftest import make_test_pki

    other_root = make_test_pki().root
    with pytest.raises(InvalidRequestError, match="省级根证书"):
        province.library.register_city(licence_env.settings.authority_uscc, "演示市", chain(licence_env), other_root)
    with pytest.raises(InvalidRequestError, match="服务证书"):
        province.library.register_city(
            "91350100M000100Y43", "演示市", chain(licence_env), licence_env.pki.root_certificate()
        )


def test_a_gap_is_refused_with_what_was_acknowledged(licence_env: LicenceEnv, province: Province) -> None:
    register(licence_env, province)
    events = ChangeFeed(licence_env.engine, licence_env.services.personal).events(0, 1000)
    body, signature = signed_batch(licence_env, events[2:])
    refused = post(province, body, signature)
    assert refused.status_code == 409 and refused.json()["acked"] == 0
    assert province.count("province_event") == 0
    # The pusher, told it is ahead, goes back to what the province acknowledged.
    licence_env.settings.province_url = "http://province.test"
    pusher = pusher_for(licence_env, province)
    with licence_env.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO exchange_push (target, acked_seq, sent_events, failures, total_failures) "
                "VALUES ('http://province.test', 2, 0, 0, 0)"
            )
        )
    result = pusher.push_once()
    assert result.acked == len(events) and province.count("province_event") == len(events)


def test_reconcile_finds_and_resends_a_lost_event(licence_env: LicenceEnv, province: Province) -> None:
    register(licence_env, province)
    issued = [issue_example(licence_env, FOOD_TYPE).licence for _ in range(3)]
    pusher = pusher_for(licence_env, province)
    pusher.push_once()
    clean = reconcile(pusher)
    assert all(day["match"] for day in clean["days"]) and clean["resent"] == 0
    with province.engine.begin() as connection:  # the province loses one event
        connection.execute(text("DELETE FROM province_event WHERE subject = :s"), {"s": issued[1].identifier})
    found = reconcile(pusher)
    assert found["resent"] == 1 and not all(day["match"] for day in found["days"])
    assert len(found["differences"]) == 1
    assert all(day["match"] for day in reconcile(pusher)["days"])


def test_batches_are_cut_and_the_province_down_is_a_recorded_failure(
    licence_env: LicenceEnv, province: Province
) -> None:
    register(licence_env, province)
    pusher = pusher_for(licence_env, province, batch_events=3)
    latest = ChangeFeed(licence_env.engine, licence_env.services.personal).events(0, 1000)[-1].seq
    assert pusher.push_once().acked == latest
    issue_example(licence_env, FOOD_TYPE)
    import httpx

    pusher.client = httpx.Client(base_url="http://127.0.0.1:9", timeout=0.5)  # nothing listens there
    with pytest.raises(PushError, match="无法连接"):
        pusher.push_once()
    status = pusher.status()
    assert status["pending"] == 1 and status["lag_events"] == 1 and status["failures"] == 1
    pusher.client = province.client
    assert pusher.push_once().to_dict() == {"sent": 1, "acked": latest + 1, "pending": 0, "files_sent": 2}
    assert pusher.status()["failures"] == 0


def test_files_follow_the_events_and_a_lost_upload_is_resent(licence_env: LicenceEnv, province: Province) -> None:
    register(licence_env, province)
    licence = issue_example(licence_env, FOOD_TYPE).licence
    pusher = pusher_for(licence_env, province)

    def cut(names: list[str]) -> int:
        raise PushError("connection lost")

    pusher.send_files = cut  # type: ignore[method-assign]  # the pusher dies between events and files
    with pytest.raises(PushError):
        pusher.push_once()
    pending = province.library.verify_identifier(CLI_ACTOR, licence.identifier)
    assert pending is not None and pending.result.value == "INDETERMINATE" and pending.reason == "files_pending"
    del pusher.send_files
    result = pusher.push_once()
    assert result.sent == 0 and result.files_sent == 2  # the province's status named them
    report = province.library.verify_identifier(CLI_ACTOR, licence.identifier)
    assert report is not None and report.result.value == "VALID"


def test_the_province_takes_only_files_its_licences_name(licence_env: LicenceEnv, province: Province) -> None:
    from cert_authority.exchange.pusher import FILES_PATH

    register(licence_env, province)
    pusher = pusher_for(licence_env, province)
    pusher.push_once()
    stray = b"not a licence file"
    with pytest.raises(PushError, match="422"):
        pusher.ask(FILES_PATH, files={sm3(stray).hex(): base64.b64encode(stray).decode()})
    with pytest.raises(PushError, match="422"):  # a name that is not the content's SM3
        pusher.ask(FILES_PATH, files={"00" * 32: base64.b64encode(stray).decode()})
    assert not province.library.filestore.exists(sm3(stray).hex())


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    assert [backoff_delay(n, lambda: 1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_delay(3, lambda: 0.0) == 2.0  # half of the ceiling at least
    assert backoff_delay(30, lambda: 1.0) == 60.0


def test_batch_signature_checks_with_an_independent_sm2(licence_env: LicenceEnv) -> None:
    """The header is a CMS SignedData whose SM2 signature gmssl (pure Python) accepts."""
    from asn1crypto import cms

    events = ChangeFeed(licence_env.engine, licence_env.services.personal).events(0, 5)
    body, signature = signed_batch(licence_env, events)
    signed = cms.ContentInfo.load(base64.b64decode(signature))["content"]
    [info] = signed["signer_infos"]
    attributes = b"\x31" + info["signed_attrs"].dump()[1:]
    digest = next(a["values"][0].native for a in info["signed_attrs"] if a["type"].native == "message_digest")
    assert digest == sm3(body)
    service = licence_env.pki.service_signer(utc_now()).certificate_chain[0]
    assert gmssl_verify(service.public_key, bytes(info["signature"].native), attributes)


# --- helpers ------------------------------------------------------------------------------------


def chain(city: LicenceEnv) -> bytes:
    service, branch, _root = city.pki.service_signer(utc_now()).certificate_chain
    return service.pem + branch.pem


def signed_batch(city: LicenceEnv, events: list) -> tuple[bytes, str]:
    now = utc_now()
    files = {}
    for event in events:
        if event.kind == "licence.issued":
            for name in (event.payload["files"]["pdf_sm3"], event.payload["files"]["ofd_sm3"]):
                files[name] = PackedFiles(city.registry.filestore, city.engine).get(name)
    body = encode_batch(city.settings.authority_uscc, now, events, files, city.pki.current_crl(now))
    return body, sign_body(city.pki.service_signer(now), body, now)


def post(province: Province, body: bytes, signature: str | None):  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "application/json"} | ({SIGNATURE_HEADER: signature} if signature else {})
    return province.client.post(BATCHES_PATH, content=body, headers=headers)


def test_a_city_cannot_file_another_citys_licences_first(licence_env: LicenceEnv, province: Province) -> None:
    """Found by an attacker review: identifiers are predictable (issuer code and a counter), and a
    registered city could push another city's next licence under itself first, with any status;
    the real city's every later batch was then refused. A city now pushes licences of issuers in
    its own areas only (its code's prefecture by default, or `issuer_areas`), and an event's issuer
    code must be the identifier's."""
    import copy

    from tests.conftest import DEPT_USCC, make_test_pki

    register(licence_env, province)  # the city whose licences these are: area 3501, by default
    attacker = make_test_pki()  # another city, its departments in 3502
    province.library.register_city(
        DEPT_USCC, "另一市", attacker.seal.pem + attacker.branch.pem, attacker.root, issuer_areas=["3502"]
    )
    assert province.library.list_cities()[0].issuer_areas == ("3501",)
    food = issue_example(licence_env, FOOD_TYPE).licence  # not yet pushed
    events = ChangeFeed(licence_env.engine, licence_env.services.personal).events(0, 1000)
    forged = copy.deepcopy(next(e for e in events if e.kind == "licence.issued" and e.subject == food.identifier))
    forged.payload["status"], forged.payload["status_reason"] = "revoked", "伪造"
    object.__setattr__(forged, "seq", 1)
    object.__setattr__(forged, "event_id", "attacker-1")
    before = counts(province)
    now = utc_now()
    body = encode_batch(DEPT_USCC, now, [forged], {}, b"")
    refused = post(province, body, sign_body(attacker.seal_signer, body, now))
    assert refused.status_code == 422 and "不在城市" in refused.json()["message"], refused.text
    assert counts(province) == before and province.library.find(food.identifier) is None
    # An issuer code in the metadata that is not the identifier's is refused as well.
    forged.payload["metadata"]["ZZBFJGDM"] = "11350200MB0000010X"
    body = encode_batch(DEPT_USCC, now, [forged], {}, b"")
    refused = post(province, body, sign_body(attacker.seal_signer, body, now))
    assert refused.status_code == 422 and "ZZBFJGDM" in refused.json()["message"], refused.text
    # The city the licence belongs to pushes it as usual.
    assert pusher_for(licence_env, province).push_once().pending == 0
    row, city = province.library.find(food.identifier)  # type: ignore[misc]
    assert city.uscc == licence_env.settings.authority_uscc and row.status == "issued"
