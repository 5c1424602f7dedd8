"""The change feed: every licence, seal and type event in the outbox, written with the change (or
not at all), numbered in commit order, readable only with an exchange key."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import update
from sqlmodel import Session, select
from starlette.testclient import TestClient

from cert_authority.actors import CLI_ACTOR
from cert_authority.errors import LicenceDataError, SealedDataError
from cert_authority.exchange.feed import ChangeFeed
from cert_authority.http.app import create_app
from cert_authority.issuing.binding import record_digest
from cert_authority.issuing.personal import open_licence
from cert_authority.store.models import ExchangeEventRow, LicenceRow
from cert_authority.timeutil import utc_now
from tests.conftest import DRAINAGE_TYPE, FOOD_TYPE, ISSUER_USCC, USER_USCC, LicenceEnv, issue_example
from verification.show_token import make_token


def all_events(env: LicenceEnv) -> list:
    return ChangeFeed(env.engine, env.services.personal).events(0, 1000)


def test_setup_events_are_in_the_feed(licence_env: LicenceEnv) -> None:
    events = all_events(licence_env)
    kinds = [event.kind for event in events]
    assert kinds.count("type.registered") == 4
    assert kinds.count("seal.approve") == 3
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    registered = next(event for event in events if event.kind == "type.registered")
    assert registered.payload["spec"]["code"] == registered.payload["code"]


def test_issue_revoke_change_each_write_an_event(licence_env: LicenceEnv) -> None:
    before = ChangeFeed(licence_env.engine, licence_env.services.personal).events(0, 1000)[-1].seq
    issued = issue_example(licence_env, FOOD_TYPE).licence
    other = issue_example(licence_env, FOOD_TYPE).licence
    licence_env.services.lifecycle.revoke(CLI_ACTOR, issued.identifier, "违法经营")
    changed = licence_env.services.issuance.change_licence(
        CLI_ACTOR, other.identifier, {"premises": "演示市鼓楼区新址路1号"}, reason="地址变更"
    )
    events = ChangeFeed(licence_env.engine, licence_env.services.personal).events(before, 100)
    assert [(e.kind, e.subject) for e in events] == [
        ("licence.issued", issued.identifier),
        ("licence.issued", other.identifier),
        ("licence.revoked", issued.identifier),
        ("licence.superseded", other.identifier),
        ("licence.changed", changed.identifier),
    ]
    first = events[0].payload
    with Session(licence_env.engine) as session:
        row = open_licence(
            licence_env.services.personal,
            session.exec(select(LicenceRow).where(LicenceRow.identifier == issued.identifier)).one(),
        )
    assert first["metadata"]["ZZBS"] == issued.identifier
    assert first["metadata"]["ZZBFJGDM"] == ISSUER_USCC
    assert first["status"] == "issued" and events[2].payload["status"] == "revoked"
    assert events[2].payload["status_reason"] == "违法经营"
    assert first["files"]["pdf_sm3"] == row.pdf_sm3 and first["files"]["ofd_sm3"] == row.ofd_sm3
    assert first["face_data"] == json.loads(row.face_json)
    assert events[3].payload["superseded_by"] == changed.identifier


def test_a_refused_issue_writes_no_event(licence_env: LicenceEnv) -> None:
    feed = ChangeFeed(licence_env.engine, licence_env.services.personal)
    before = feed.events(0, 1000)
    with pytest.raises(LicenceDataError):
        issue_example(licence_env, FOOD_TYPE, {"holder_name": "x"})
    assert feed.events(0, 1000) == before


def test_batch_issue_writes_one_event_per_licence(licence_env: LicenceEnv) -> None:
    from cert_authority.issuing.issuance import IssueRequest
    from tests.conftest import example_data

    feed = ChangeFeed(licence_env.engine, licence_env.services.personal)
    latest = feed.events(0, 1000)[-1].seq
    requests = [IssueRequest(example_data(FOOD_TYPE)) for _ in range(5)]
    outcomes = licence_env.services.issuance.issue_many(CLI_ACTOR, FOOD_TYPE, requests, issuer_uscc=ISSUER_USCC)
    events = feed.events(latest, 100)
    assert [e.subject for e in events] == [o.result.licence.identifier for o in outcomes if o.result]
    assert [e.seq for e in events] == list(range(latest + 1, latest + 6))


def test_expiry_is_recorded_once_when_the_end_date_passes(licence_env: LicenceEnv) -> None:
    licence = issue_example(licence_env, DRAINAGE_TYPE).licence
    feed = ChangeFeed(licence_env.engine, licence_env.services.personal)
    after = dt.datetime(2031, 1, 2, tzinfo=dt.timezone.utc)  # valid until 2030-12-31
    assert feed.refresh(after) >= 1
    feed.refresh(after)
    expired = [e for e in feed.events(0, 1000) if e.kind == "licence.expired"]
    assert [e.subject for e in expired] == [licence.identifier]
    assert expired[0].payload["status"] == "expired" and expired[0].day == dt.date(2031, 1, 2)


def test_payload_carries_every_field_the_sealed_file_binds(licence_env: LicenceEnv) -> None:
    """The province checks the pushed record against the OFD's sealed digest: it must be able to
    rebuild the record from the payload alone."""
    from cert_authority.exchange.province import _record_row, sealed_licence_values
    from cert_authority.store.models import ProvinceLicenceRow

    personal = licence_env.services.personal
    licence = issue_example(licence_env, FOOD_TYPE).licence
    event = all_events(licence_env)[-1]
    with Session(licence_env.engine) as session:
        row = open_licence(
            licence_env.services.personal,
            session.exec(select(LicenceRow).where(LicenceRow.identifier == licence.identifier)).one(),
        )
    pushed = ProvinceLicenceRow(
        identifier=licence.identifier,
        city_uscc="x",
        type_code=FOOD_TYPE,
        issuer_code=ISSUER_USCC,
        status="issued",
        pdf_sm3=row.pdf_sm3,
        ofd_sm3=row.ofd_sm3,
        updated_seq=event.seq,
        **sealed_licence_values(personal, licence.identifier, event.payload),
    )
    assert record_digest(_record_row(pushed, personal)) == record_digest(row)


def test_feed_over_http_needs_an_exchange_key(licence_env: LicenceEnv) -> None:
    keys = licence_env  # the API key service on the same database
    from cert_authority.access.apikeys import ApiKeyService

    service = ApiKeyService(keys.engine)
    exchange = service.create("exchange", None).key
    issuer = service.create("issuer", ISSUER_USCC).key
    admin = service.create("admin", None).key
    with TestClient(create_app(licence_env.settings)) as client:
        assert client.get("/api/v1/feed").status_code == 401
        for key in (issuer, admin):
            refused = client.get("/api/v1/feed", headers={"Authorization": f"Bearer {key}"})
            assert refused.status_code == 403, refused.text
        answer = client.get("/api/v1/feed?after=2&limit=3", headers={"Authorization": f"Bearer {exchange}"})
        assert answer.status_code == 200
        body = answer.json()
        assert [e["seq"] for e in body["events"]] == [3, 4, 5]
        assert body["next_after"] == 5 and body["latest"] >= 5
        bad = client.get("/api/v1/feed?limit=0", headers={"Authorization": f"Bearer {exchange}"})
        assert bad.status_code == 422


def test_an_exchange_key_reads_the_feed_and_nothing_else(licence_env: LicenceEnv) -> None:
    """A key for the province link (no department) is refused by every other route: it must not
    check (and so spend) a holder's show token at the counter's expense, nor read verdicts or lists."""
    from cert_authority.access.apikeys import ApiKeyService

    food = issue_example(licence_env, FOOD_TYPE).licence
    signer = licence_env.pki.service_signer(utc_now())
    token, _ = make_token(signer, food.identifier, {"name": food.name}, utc_now(), dt.timedelta(minutes=5))
    exchange = {"Authorization": f"Bearer {ApiKeyService(licence_env.engine).create('exchange', None).key}"}
    with TestClient(create_app(licence_env.settings)) as client:
        assert client.get("/api/v1/feed", headers=exchange).status_code == 200  # remembered from here on
        for _ in range(2):  # the second time through the show-token lane's remembered key
            refused = client.post("/api/v1/show-tokens/verify", json={"token": token}, headers=exchange)
            assert refused.status_code == 403 and "数据交换密钥" in refused.json()["message"], refused.text
        for path in (
            "/api/v1/departments",
            "/api/v1/licence-types",
            "/api/v1/matters",
            f"/api/v1/verify/{food.identifier}",
        ):
            assert client.get(path, headers=exchange).status_code == 403, path
        user = ApiKeyService(licence_env.engine).create("user", USER_USCC).key
        first = client.post(
            "/api/v1/show-tokens/verify", json={"token": token}, headers={"Authorization": f"Bearer {user}"}
        )
        assert first.json()["result"] == "VALID", first.text  # the refused checks spent nothing


def test_licence_payloads_are_sealed_at_rest_and_bound_to_their_event(licence_env: LicenceEnv) -> None:
    """A licence event's payload (holder, face data) is stored sealed with SM4-GCM: no holder code
    in the outbox table, and a sealed payload moved to another event does not open."""
    first = issue_example(licence_env, FOOD_TYPE).licence
    second = issue_example(licence_env, DRAINAGE_TYPE).licence
    holder = all_events(licence_env)[-2].payload["metadata"]
    table = ExchangeEventRow.__table__  # type: ignore[attr-defined]
    with licence_env.engine.begin() as connection:
        rows = {
            row.subject: row
            for row in connection.execute(select(table.c.id, table.c.subject, table.c.payload_json)).all()
            if row.subject in (first.identifier, second.identifier)
        }
        stored = " ".join(row.payload_json for row in rows.values())
        assert first.holder.code not in stored and second.holder.code not in stored
        assert json.dumps(holder, ensure_ascii=False) not in stored
        a, b = rows[first.identifier], rows[second.identifier]
        connection.execute(update(table).where(table.c.id == a.id).values(payload_json=b.payload_json))
    with pytest.raises(SealedDataError):
        all_events(licence_env)
