"""A licence event as a transparency-log leaf (`verification.transparency.LogLeaf`), queued in the
transaction that records the event: issue, change, revoke, cancel each call `log_licence_events`
beside their status and audit rows, so an event is logged exactly when it is recorded."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.engine import Connection

from cert_authority.issuing.binding import record_digest
from cert_authority.store.models import LicenceRow
from cert_authority.transparency.log import queue_leaves
from verification.transparency import LogLeaf


def creation_event(row: LicenceRow) -> str:
    """The event that made this version: issue (version 1) or change (every later version)."""
    return "issue" if row.version == 1 else "change"


def licence_leaf(row: LicenceRow, event: str, at: dt.datetime) -> LogLeaf:
    files = (("pdf", bytes.fromhex(row.pdf_sm3)), ("ofd", bytes.fromhex(row.ofd_sm3)))
    return LogLeaf(row.identifier, row.version, event, at, files, bytes.fromhex(record_digest(row)))


def log_licence_events(
    connection: Connection, events: Sequence[tuple[LicenceRow, str, dt.datetime]], now: dt.datetime
) -> None:
    """Queue one leaf per (licence version, event, time) in the caller's transaction."""
    queue_leaves(connection, [licence_leaf(row, event, at) for row, event, at in events], now)
