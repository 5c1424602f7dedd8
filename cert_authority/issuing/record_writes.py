"""Writing an issued licence's records: its row, first status event, audit event, transparency-log
leaf, change-feed event and (when the request had one) Idempotency-Key record, all or none.

Two ways, the same rows: `insert_issues` puts any number of licences in with one INSERT per table,
inside the caller's transaction (any database); `insert_issue_at_once` puts one licence in with one
PostgreSQL statement (data-modifying CTEs), atomic without a transaction block: one round trip
instead of six, on the API's busiest write.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import LargeBinary, Select, Table, bindparam, insert, sql
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from cert_authority.actors import Actor
from cert_authority.issuing.feed_payload import licence_outbox_values
from cert_authority.issuing.log_leaves import licence_leaf, log_licence_events
from cert_authority.store.audit import audit_row
from cert_authority.store.chain import chain_link
from cert_authority.store.models import (
    AuditEventRow,
    ExchangeEventRow,
    IdempotencyRow,
    LicenceEventRow,
    LicenceRow,
    LogEntryRow,
)
from cert_authority.store.personal import PersonalData

_LICENCES: Table = LicenceRow.__table__  # type: ignore[attr-defined]
_EVENTS: Table = LicenceEventRow.__table__  # type: ignore[attr-defined]
_AUDIT: Table = AuditEventRow.__table__  # type: ignore[attr-defined]
_KEYS: Table = IdempotencyRow.__table__  # type: ignore[attr-defined]
_OUTBOX: Table = ExchangeEventRow.__table__  # type: ignore[attr-defined]
_LOG: Table = LogEntryRow.__table__  # type: ignore[attr-defined]
# What the first status event and the key record share with the licence (see _event, _key).
_CHAIN_COLUMNS = ("chain_partition", "chain_seq", "chain_prev", "chain_mac")
_SHARED = ("id", "identifier", "status", "issuer_code", "created_at", "created_by")
# One multi-row INSERT ... RETURNING for a batch, the ids in the order of the rows given.
_INSERT_LICENCES = insert(_LICENCES).returning(_LICENCES.c.id, sort_by_parameter_order=True)


@dataclass(frozen=True)
class NewIssue:
    licence: LicenceRow  # complete but for its id, which is set here; personal data in plain
    sealed: dict[str, Any]  # the columns that replace it in the database (issuing.personal.sealed_columns)
    holder_code: str  # for the audit event, which keeps only its masked form
    idempotency_key: str | None
    request_sm3: str  # the request's fingerprint, kept with its key


def insert_issues(
    connection: Connection, issues: Sequence[NewIssue], actor: Actor, now: dt.datetime, personal: PersonalData
) -> None:
    """Every licence's four records, one INSERT per table, in the caller's transaction."""
    ids = connection.execute(_INSERT_LICENCES, [_licence(issue) for issue in issues]).scalars().all()
    for issue, licence_id in zip(issues, ids, strict=True):
        issue.licence.id = licence_id
    events = [_event(issue, actor, now) | _of(issue) for issue in issues]
    audits = [_audit(issue, actor, now) for issue in issues]
    with chain_link(connection) as link:
        if link is not None:
            events = [link.seal("licence_event", row) for row in events]
            audits = [link.seal("audit_event", row) for row in audits]
        connection.execute(insert(_EVENTS), events)
        connection.execute(insert(_AUDIT), audits)
    connection.execute(insert(_OUTBOX), [_outbox(issue, now, personal) for issue in issues])
    log_licence_events(connection, [(issue.licence, "issue", now) for issue in issues], now, personal)
    keys = [_key(issue, now) | _of(issue) for issue in issues if issue.idempotency_key is not None]
    if keys:
        connection.execute(insert(_KEYS), keys)


def insert_issue_at_once(
    connection: Connection, issue: NewIssue, actor: Actor, now: dt.datetime, personal: PersonalData
) -> None:
    """One licence's five records in one PostgreSQL statement (on an autocommit connection)."""
    with_key = issue.idempotency_key is not None
    with chain_link(connection) as link:
        audit = _audit(issue, actor, now)
        event_mac = None
        if link is not None:
            # The status event follows the audit row in the partition (see _at_once).
            audit = link.seal("audit_event", audit)
            event_mac = link.seal("licence_event", _event(issue, actor, now))["chain_mac"]
        parameters = _prefixed("licence", _licence(issue)) | _prefixed("audit", audit) | {"event_chain_mac": event_mac}
        parameters["log_leaf"] = licence_leaf(issue.licence, "issue", now, personal).encode()
        outbox = _outbox(issue, now, personal)
        parameters |= {f"outbox_{name}": outbox[name] for name in ("event_id", "day", "payload_json")}
        if with_key:
            parameters |= {"key": issue.idempotency_key, "request_sm3": issue.request_sm3}
        issue.licence.id = connection.execute(_at_once(with_key), parameters).scalar_one()


@functools.lru_cache(maxsize=2)
def _at_once(with_key: bool) -> Select[int]:
    """WITH new_licence AS (INSERT ... RETURNING ...), new_event AS (INSERT ... SELECT ... FROM
    new_licence), new_audit AS (INSERT ...), new_log_entry AS (INSERT ... SELECT ... FROM
    new_licence)[, new_key AS (INSERT ... SELECT ... FROM new_licence)]
    SELECT id FROM new_licence. The event and the key take what they share with the licence from
    it (its id, identifier, status, issuer, time and author), which keeps the statement under
    psycopg's 50 parameters, beyond which it is neither cached nor prepared."""
    licence = (
        insert(_LICENCES)
        .values(_bound(_LICENCES, "licence"))
        .returning(*(_LICENCES.c[name] for name in _SHARED))
        .cte("new_licence")
    )
    # Its chain place is the audit row's next: the same partition, seq + 1, the audit row's MAC as
    # its predecessor (bound once, so the statement stays under 50 parameters).
    shared = ("chain_partition", "chain_seq", "chain_mac")
    audit_chain = {name: bindparam(f"audit_{name}", type_=_AUDIT.c[name].type) for name in shared}
    first_event = sql.select(
        licence.c.id,
        licence.c.identifier,
        licence.c.status,
        sql.literal_column("'issue'"),
        licence.c.created_at,
        licence.c.created_by,
        audit_chain["chain_partition"],
        audit_chain["chain_seq"] + 1,
        audit_chain["chain_mac"],
        bindparam("event_chain_mac", type_=_EVENTS.c.chain_mac.type),
    )
    event_columns = ["licence_id", "identifier", "status", "action", "at", "actor", *_CHAIN_COLUMNS]
    parts = [
        insert(_EVENTS).from_select(event_columns, first_event),
        insert(_AUDIT).values(_bound(_AUDIT, "audit")),
        insert(_OUTBOX).from_select(
            ["event_id", "kind", "subject", "at", "day", "payload_json"],
            sql.select(
                bindparam("outbox_event_id", type_=_OUTBOX.c.event_id.type),
                sql.literal_column("'licence.issued'"),
                licence.c.identifier,
                licence.c.created_at,
                bindparam("outbox_day", type_=_OUTBOX.c.day.type),
                bindparam("outbox_payload_json", type_=_OUTBOX.c.payload_json.type),
            ),
        ),
        insert(_LOG).from_select(
            ["identifier", "event", "leaf", "created_at"],
            sql.select(
                licence.c.identifier,
                sql.literal_column("'issue'"),
                bindparam("log_leaf", type_=LargeBinary),
                licence.c.created_at,
            ),
        ),
    ]
    if with_key:
        key = sql.select(
            licence.c.issuer_code,
            bindparam("key", type_=_KEYS.c.key.type),
            bindparam("request_sm3", type_=_KEYS.c.request_sm3.type),
            licence.c.id,
            licence.c.created_at,
        )
        parts.append(insert(_KEYS).from_select(["scope", "key", "request_sm3", "licence_id", "created_at"], key))
    return sql.select(licence.c.id).add_cte(*(part.cte(f"new_{part.table.name}") for part in parts))


def _bound(table: Table, prefix: str) -> dict[str, ColumnElement[Any]]:
    """Each column but the generated id as a bound parameter of its type, named <prefix>_<column>."""
    return {
        column.name: bindparam(f"{prefix}_{column.name}", type_=column.type)
        for column in table.c
        if column.name != "id"
    }


def _prefixed(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}_{name}": value for name, value in values.items()}


def _of(issue: NewIssue) -> dict[str, Any]:
    return {"licence_id": issue.licence.id}


def _licence(issue: NewIssue) -> dict[str, Any]:
    return issue.licence.model_dump(exclude={"id"}) | issue.sealed


def _event(issue: NewIssue, actor: Actor, now: dt.datetime) -> dict[str, Any]:
    """The licence's first status event, but for its licence_id (as _at_once writes it)."""
    licence = issue.licence
    return {
        "identifier": licence.identifier,
        "previous_status": None,
        "status": licence.status,
        "action": "issue",
        "reason": None,
        "at": now,
        "actor": actor.label,
    }


def _audit(issue: NewIssue, actor: Actor, now: dt.datetime) -> dict[str, Any]:
    licence = issue.licence
    detail = {"type_code": licence.type_code, "licence_number": licence.licence_number}
    row = audit_row(actor, "issue", licence.identifier, now, holder_code=issue.holder_code, detail=detail)
    return row.model_dump(exclude={"id"})


def _outbox(issue: NewIssue, now: dt.datetime, personal: PersonalData) -> dict[str, Any]:
    """The change feed's event for the new licence (`store.outbox`)."""
    return licence_outbox_values("licence.issued", issue.licence, now, personal)


def _key(issue: NewIssue, now: dt.datetime) -> dict[str, Any]:
    """The Idempotency-Key record, but for its licence_id (as _at_once writes it)."""
    return {
        "scope": issue.licence.issuer_code,
        "key": issue.idempotency_key,
        "request_sm3": issue.request_sm3,
        "created_at": now,
    }
