"""Personal data at rest in the province's copies (issue 25, item 2, migration 0018): after a push
the province's database holds no holder ID number or name in plain text; a sealed payload or a
blind index moved between rows is caught; look-ups, verification and reconciliation still work;
`ecas data encrypt` seals rows a province stored before 0018."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Table, select, update
from sqlmodel import SQLModel

from cert_authority.actors import CLI_ACTOR
from cert_authority.data_encryption import encrypt_existing, plain_rows
from cert_authority.exchange.province import EVENT_TABLE, LICENCE_TABLE
from cert_authority.exchange.pusher import PushError
from cert_authority.exchange.reconcile import reconcile
from cert_authority.exchange.wire import KINDS
from cert_authority.store.models import ProvinceEventRow, ProvinceLicenceRow
from tests.cert_authority.exchange.conftest import Province, pusher_for, register
from tests.cert_authority.store.test_personal_data import (
    COMPANY,
    MASKED,
    PERSON,
    PERSON_NAME,
    _issue_company,
    _issue_person,
)
from tests.conftest import LicenceEnv
from verification.report import Status

LICENCES: Table = ProvinceLicenceRow.__table__  # type: ignore[attr-defined]
EVENTS: Table = ProvinceEventRow.__table__  # type: ignore[attr-defined]


def _pushed(city: LicenceEnv, province: Province) -> tuple[str, str]:
    register(city, province)
    person, company = _issue_person(city), _issue_company(city)
    pusher_for(city, province).push_once()
    return person, company


def _every_value(province: Province) -> str:
    """Every column of every row of every table of the province, as text (a database dump)."""
    out = []
    with province.engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            for row in connection.execute(select(table)):
                out.extend(v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in row)
    return "\n".join(out)


def _raw_database(province: Province) -> bytes:
    """The SQLite file's bytes, its WAL's too (on PostgreSQL the dump above is what there is)."""
    url = province.engine.url
    if url.get_backend_name() != "sqlite" or not url.database:
        return b""
    province.engine.dispose()
    path = Path(url.database)
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def test_after_a_push_the_province_holds_no_holder_code_or_name(licence_env: LicenceEnv, province: Province) -> None:
    person, _company = _pushed(licence_env, province)
    dump = _every_value(province)
    raw = _raw_database(province)
    for secret in (PERSON, PERSON_NAME, COMPANY):
        assert secret not in dump
        assert secret.encode() not in raw
    # ...and what the province does with them still works: verification binds every field,
    report = province.library.verify_identifier(CLI_ACTOR, person)
    assert report is not None and report.result is Status.VALID, report.to_dict()
    assert report.subject["holder_code"] == MASKED and report.subject["holder_name"] == PERSON_NAME
    assert report.face_data is not None
    # the blind index finds a holder's licences by equality,
    index = province.library.personal.index(PERSON)
    with province.engine.connect() as connection:
        found = connection.execute(select(LICENCES.c.identifier).where(LICENCES.c.holder_code_index == index)).all()
    assert [row.identifier for row in found] == [person]
    # and the day digests still match the city's (computed over the opened payloads).
    assert all(day["match"] for day in reconcile(pusher_for(licence_env, province))["days"])


def _swap(province: Province, table: Table, where: dict[str, object], other: dict[str, object], *columns: str) -> None:
    def match(values: dict[str, object]) -> list[object]:
        return [table.c[k] == v for k, v in values.items()]

    with province.engine.begin() as connection:
        a = connection.execute(select(*(table.c[c] for c in columns)).where(*match(where))).one()
        b = connection.execute(select(*(table.c[c] for c in columns)).where(*match(other))).one()
        connection.execute(update(table).where(*match(where)).values(dict(zip(columns, b, strict=True))))
        connection.execute(update(table).where(*match(other)).values(dict(zip(columns, a, strict=True))))


@pytest.mark.parametrize("columns", [("payload_json",), ("holder_code_index",), ("payload_json", "holder_code_index")])
def test_sealed_province_values_swapped_between_licences_are_caught(
    licence_env: LicenceEnv, province: Province, columns: tuple[str, ...]
) -> None:
    """Attack: give one licence's row the other's sealed record (or only the index, so look-ups by
    holder code find the wrong licence): the province must not verify either as it stands."""
    person, company = _pushed(licence_env, province)
    _swap(province, LICENCES, {"identifier": person}, {"identifier": company}, *columns)
    for identifier in (person, company):
        report = province.library.verify_identifier(CLI_ACTOR, identifier)
        assert report is not None and (report.result, report.reason) == (Status.INVALID, "record_mismatch")


def test_sealed_event_payloads_swapped_between_events_are_caught(licence_env: LicenceEnv, province: Province) -> None:
    person, company = _pushed(licence_env, province)
    with province.engine.connect() as connection:
        ids = [
            connection.execute(select(EVENTS.c.city_uscc, EVENTS.c.event_id).where(EVENTS.c.subject == s)).one()
            for s in (person, company)
        ]
    _swap(province, EVENTS, dict(ids[0]._mapping), dict(ids[1]._mapping), "payload_json")
    with pytest.raises(PushError, match="409"):  # the day digests are not computed over a guess
        reconcile(pusher_for(licence_env, province))


def _as_before_0018(province: Province) -> None:
    """Turn the province's sealed rows back into the plain form a database before 0018 holds."""
    personal = province.library.personal
    with province.engine.begin() as connection:
        for row in connection.execute(select(LICENCES)).all():
            payload = personal.open(row.payload_json, table=LICENCE_TABLE, row=row.identifier)
            connection.execute(
                update(LICENCES)
                .where(LICENCES.c.identifier == row.identifier)
                .values(
                    holder_code=payload["metadata"]["CZZTDM"],
                    holder_code_index=None,
                    payload_json=json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
                )
            )
        for row in connection.execute(select(EVENTS).where(EVENTS.c.kind.in_(KINDS))).all():
            payload = personal.open(row.payload_json, table=EVENT_TABLE, row=f"{row.city_uscc}/{row.event_id}")
            connection.execute(
                update(EVENTS)
                .where(EVENTS.c.city_uscc == row.city_uscc, EVENTS.c.event_id == row.event_id)
                .values(payload_json=json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
            )


class Interrupted(Exception):
    pass


def test_data_encrypt_seals_the_province_rows_stored_before_0018(licence_env: LicenceEnv, province: Province) -> None:
    person, company = _pushed(licence_env, province)
    _as_before_0018(province)
    assert PERSON in _every_value(province)
    before = plain_rows(province.engine)
    assert before["province_licence"] == 2 and before["province_event"] == 2
    report = province.library.verify_identifier(CLI_ACTOR, person)  # not read in plain, not skipped
    assert report is not None and (report.result, report.reason) == (Status.INVALID, "record_mismatch")
    assert "ecas data encrypt" in report.message

    calls = []

    def stop_after_first(table: str, done: int, total: int) -> None:
        calls.append((table, done, total))
        if table == "province_licence":
            raise Interrupted

    with pytest.raises(Interrupted):  # one row sealed and committed, then the run dies
        encrypt_existing(province.engine, province.library.personal, batch_size=1, progress=stop_after_first)
    assert plain_rows(province.engine)["province_licence"] == 1
    sealed = encrypt_existing(province.engine, province.library.personal, batch_size=1)
    assert sealed["province_licence"] == 1 and sealed["province_event"] == 2
    assert set(plain_rows(province.engine).values()) == {0}
    assert PERSON not in _every_value(province) and COMPANY not in _every_value(province)
    for identifier in (person, company):
        report = province.library.verify_identifier(CLI_ACTOR, identifier)
        assert report is not None and report.result is Status.VALID, report.to_dict()
    assert all(day["match"] for day in reconcile(pusher_for(licence_env, province))["days"])
