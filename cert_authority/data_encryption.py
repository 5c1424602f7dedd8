"""`ecas data encrypt`: seal the personal data of rows written before migrations 0016 (the city's
own tables) and 0017 (the province's copies of every city's licences) (issue 25, item 2), table
by table, in batches.

Each batch is one transaction that seals its rows and empties their plain columns, so an
interrupted run loses nothing and the next run goes on where it stopped (a row is picked only
while it still has its plain values). Run it with the service stopped: until a row is sealed,
the service does not find it by holder code and refuses to show it."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Table, and_, func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from cert_authority.exchange.province import EVENT_TABLE, sealed_licence_values
from cert_authority.exchange.wire import KINDS
from cert_authority.holders.service import ACCOUNT_TABLE
from cert_authority.issuing.personal import sealed_values
from cert_authority.sharing.cases import CASE_TABLE
from cert_authority.store.models import (
    CaseRow,
    HolderAccountRow,
    LicenceRow,
    ProvinceEventRow,
    ProvinceLicenceRow,
    StandingAuthorisationRow,
)
from cert_authority.store.personal import PersonalData

DEFAULT_BATCH = 500
Progress = Callable[[str, int, int], None]  # table, rows sealed so far, rows to seal in all


@dataclass(frozen=True)
class _Plan:
    table: Table
    pending: ColumnElement[bool]  # rows still in plain text
    seal: Callable[[PersonalData, Any], dict[str, Any]]  # a row -> the columns to set
    key: tuple[str, ...] = ("id",)  # the primary key's columns


def _licence(personal: PersonalData, row: Any) -> dict[str, Any]:
    return sealed_values(personal, row.identifier, row.holder_name, row.holder_code, row.face_json)


def _account(personal: PersonalData, row: Any) -> dict[str, Any]:
    values = {"holder_code": row.holder_code, "name": row.name}
    return {
        "holder_code": None,
        "name": None,
        "personal_sealed": personal.seal(values, table=ACCOUNT_TABLE, row=str(row.id)),
        "holder_code_index": personal.index(row.holder_code),
    }


def _authorisation(personal: PersonalData, row: Any) -> dict[str, Any]:
    return {"holder_code": None, "holder_code_index": personal.index(row.holder_code)}


def _case(personal: PersonalData, row: Any) -> dict[str, Any]:
    return {
        "applicant_code": None,
        "applicant_sealed": personal.seal({"applicant_code": row.applicant_code}, table=CASE_TABLE, row=str(row.id)),
        "applicant_index": personal.index(row.applicant_code),
    }


def _province_licence(personal: PersonalData, row: Any) -> dict[str, Any]:
    return sealed_licence_values(personal, row.identifier, json.loads(row.payload_json))


def _province_event(personal: PersonalData, row: Any) -> dict[str, Any]:
    payload = json.loads(row.payload_json)
    return {"payload_json": personal.seal(payload, table=EVENT_TABLE, row=f"{row.city_uscc}/{row.event_id}")}


def _plans() -> Sequence[_Plan]:
    licence: Table = LicenceRow.__table__  # type: ignore[attr-defined]
    account: Table = HolderAccountRow.__table__  # type: ignore[attr-defined]
    authorisation: Table = StandingAuthorisationRow.__table__  # type: ignore[attr-defined]
    case: Table = CaseRow.__table__  # type: ignore[attr-defined]
    province_licence: Table = ProvinceLicenceRow.__table__  # type: ignore[attr-defined]
    province_event: Table = ProvinceEventRow.__table__  # type: ignore[attr-defined]
    return (
        _Plan(licence, licence.c.holder_code.is_not(None), _licence),
        _Plan(account, account.c.holder_code.is_not(None), _account),
        _Plan(authorisation, authorisation.c.holder_code.is_not(None), _authorisation),
        _Plan(case, case.c.applicant_code.is_not(None), _case),
        _Plan(
            province_licence, province_licence.c.holder_code.is_not(None), _province_licence, ("identifier",)
        ),
        _Plan(
            province_event,
            and_(province_event.c.kind.in_(KINDS), province_event.c.payload_json.like("{%")),
            _province_event,
            ("city_uscc", "event_id"),
        ),
    )


def plain_rows(engine: Engine) -> dict[str, int]:
    """Rows per table whose personal data is still in plain text."""
    with engine.connect() as connection:
        count = select(func.count())
        return {
            plan.table.name: connection.execute(count.select_from(plan.table).where(plan.pending)).scalar_one()
            for plan in _plans()
        }


def encrypt_existing(
    engine: Engine, personal: PersonalData, batch_size: int = DEFAULT_BATCH, progress: Progress | None = None
) -> dict[str, int]:
    """Seal every plain row, `batch_size` rows a transaction; the rows sealed, per table."""
    sealed: dict[str, int] = {}
    for plan, total in zip(_plans(), plain_rows(engine).values(), strict=True):
        done = 0
        while True:
            with engine.begin() as connection:
                count = _seal_batch(connection, plan, personal, batch_size)
            if count == 0:
                break
            done += count
            if progress is not None:
                progress(plan.table.name, done, total)
        sealed[plan.table.name] = done
    return sealed


def _seal_batch(connection: Connection, plan: _Plan, personal: PersonalData, batch_size: int) -> int:
    table = plan.table
    key: list[Column[Any]] = [table.c[name] for name in plan.key]
    rows = connection.execute(select(table).where(plan.pending).order_by(*key).limit(batch_size)).all()
    for row in rows:
        this_row = and_(*(column == getattr(row, column.name) for column in key))
        # `pending` again: a row sealed meanwhile by another run is left as it is.
        connection.execute(update(table).where(this_row).where(plan.pending).values(**plan.seal(personal, row)))
    return len(rows)
