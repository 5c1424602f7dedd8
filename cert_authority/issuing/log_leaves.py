"""A licence event as a transparency-log leaf (`verification.transparency.LogLeaf`), queued in the
transaction that records the event: issue, change, revoke, cancel each call `log_licence_events`
beside their status and audit rows, so an event is logged exactly when it is recorded."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Table
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select

from cert_authority.issuing.binding import record_digest
from cert_authority.issuing.personal import open_licence
from cert_authority.store.models import LicenceRow, LogEntryRow
from cert_authority.store.personal import PersonalData
from cert_authority.transparency.log import queue_leaves
from verification.transparency import COMMITTED_FORMAT, LEAF_FORMAT, LogLeaf, record_commitment

_LOG: Table = LogEntryRow.__table__  # type: ignore[attr-defined]
ENDING_EVENTS = {"revoked": "revoke", "cancelled": "cancel"}  # a final status and the event that set it


def creation_event(row: LicenceRow) -> str:
    """The event that made this version: issue (version 1) or change (every later version)."""
    return "issue" if row.version == 1 else "change"


def licence_leaf(
    row: LicenceRow, event: str, at: dt.datetime, personal: PersonalData, format: int = COMMITTED_FORMAT
) -> LogLeaf:
    """The leaf of a licence event; `row` with its personal data opened. New leaves are format 2:
    they bind a salted commitment to the record SM3, not the SM3 itself (which, the record's
    other fields being public, would let anyone try every ID number against it). Format 1 is
    rebuilt only to compare with leaves logged before format 2."""
    files = (("pdf", bytes.fromhex(row.pdf_sm3)), ("ofd", bytes.fromhex(row.ofd_sm3)))
    record = bytes.fromhex(record_digest(row))
    if format == COMMITTED_FORMAT:
        record = record_commitment(personal.record_salt(row.identifier), record)
    elif format != LEAF_FORMAT:
        raise ValueError(f"unknown leaf format {format}")
    return LogLeaf(row.identifier, row.version, event, at, files, record, format)


def log_licence_events(
    connection: Connection,
    events: Sequence[tuple[LicenceRow, str, dt.datetime]],
    now: dt.datetime,
    personal: PersonalData,
) -> None:
    """Queue one leaf per (licence version, event, time) in the caller's transaction."""
    queue_leaves(connection, [licence_leaf(row, event, at, personal) for row, event, at in events], now)


def backfill_log(engine: Engine, personal: PersonalData, now: dt.datetime, chunk: int = 1000) -> int:
    """Licences recorded before the log existed: queue the leaves their history should have (the
    version's creation, and its revocation or cancellation), with the times the registry kept.
    Only what is missing is queued, so running it again adds nothing. Returns how many."""
    added = 0
    with engine.connect() as connection:
        logged = {
            (identifier, event) for identifier, event in connection.execute(select(_LOG.c.identifier, _LOG.c.event))
        }
    last_id = 0
    while True:
        with Session(engine) as session:
            rows = session.exec(
                select(LicenceRow).where(col(LicenceRow.id) > last_id).order_by(col(LicenceRow.id)).limit(chunk)
            ).all()
            if not rows:
                return added
            last_id = rows[-1].id or last_id
            missing: list[tuple[LicenceRow, str, dt.datetime]] = []
            for stored in rows:
                row = open_licence(personal, stored)  # the leaf binds the record's digest: its plain values
                created = creation_event(row)
                if (row.identifier, created) not in logged:
                    missing.append((row, created, row.created_at))
                ended = ENDING_EVENTS.get(row.status)
                if ended is not None and (row.identifier, ended) not in logged:
                    missing.append((row, ended, row.status_changed_at))
            log_licence_events(session.connection(), missing, now, personal)
            session.commit()
            added += len(missing)
