"""The change feed's outbox (transactional outbox): every licence, seal and type event is written
in the same transaction as the change it describes, so there is never a change the province will
not hear of, nor an event for a change that was rolled back.

Writers only insert (`outbox_event` for a Session, `outbox_values` for a Core INSERT): nothing on
the issuing path waits for a lock. Sequence numbers are stamped afterwards by `stamp_events`, under
one lock, on rows already committed, in the order they were written: so the feed never shows seq
N+1 while a transaction that will become seq N is still open (with numbers taken at insert time, a
reader could pass over an event committed late and lose it). An event's `event_id` is what the
receiver deduplicates on; it is random, except for expiries, which are derived from the licence so
that two stampers cannot record one expiry twice.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from cert_authority.store.models import CounterRow, ExchangeEventRow
from cert_authority.store.personal import PersonalData
from cert_authority.timeutil import aware, local_date
from keys.sm2 import sm3

OUTBOX: Table = ExchangeEventRow.__table__  # type: ignore[attr-defined]
_COUNTER: Table = CounterRow.__table__  # type: ignore[attr-defined]
STAMP_LOCK = "exchange_seq"  # the counter row whose lock serialises stampers
FEED_LIMIT = 1000
SEALED_PAYLOADS = "exchange_event"  # the table named in a sealed payload's associated data


@dataclass(frozen=True)
class FeedEvent:
    seq: int
    event_id: str
    kind: str
    subject: str
    at: dt.datetime
    day: dt.date
    payload: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "kind": self.kind,
            "subject": self.subject,
            "at": self.at.isoformat(),
            "day": self.day.isoformat(),
            "payload": self.payload,
        }


def outbox_values(
    kind: str,
    subject: str,
    payload: dict[str, Any],
    at: dt.datetime,
    event_id: str | None = None,
    personal: PersonalData | None = None,
) -> dict[str, Any]:
    """The columns of one outbox row (for a Core INSERT in the caller's transaction). With
    `personal` the payload is stored sealed (SM4-GCM, bound to the event id): a licence event's
    payload carries the holder and the face data, which are never kept in plain text."""
    at = at.astimezone(dt.timezone.utc)
    event_id = event_id or secrets.token_hex(16)
    return {
        "event_id": event_id,
        "seq": None,
        "kind": kind,
        "subject": subject,
        "at": at,
        "day": local_date(at),
        "payload_json": (
            payload_text(payload) if personal is None else personal.seal(payload, table=SEALED_PAYLOADS, row=event_id)
        ),
    }


def payload_text(payload: dict[str, Any]) -> str:
    """A payload as canonical JSON: the form stored in plain, and the one day digests cover."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def stored_payload(text: str, event_id: str, personal: PersonalData) -> dict[str, Any]:
    """An outbox row's payload, opened when it is sealed (a licence event's); SealedDataError when
    the sealed value was edited or moved from another event."""
    if text.startswith("{"):  # plain JSON: a seal or type event, nothing personal in it
        loaded: dict[str, Any] = json.loads(text)
        return loaded
    return personal.open(text, table=SEALED_PAYLOADS, row=event_id)


def outbox_event(kind: str, subject: str, payload: dict[str, Any], at: dt.datetime) -> ExchangeEventRow:
    """One outbox row for `session.add`, beside the change's audit row."""
    return ExchangeEventRow(**outbox_values(kind, subject, payload, at))


def expiry_event_id(identifier: str) -> str:
    return sm3(f"licence.expired:{identifier}".encode()).hex()[:32]


def lock_stamping(connection: Connection) -> None:
    """Take the stampers' lock for the caller's transaction (`engine.begin()`): the lock on the
    counter row is held until it commits, so stampers take turns (on SQLite the write lock does)."""
    locked = connection.execute(
        update(_COUNTER).where(_COUNTER.c.name == STAMP_LOCK).values(value=_COUNTER.c.value + 1)
    ).rowcount
    if locked != 1:
        try:
            with connection.begin_nested():
                connection.execute(insert(_COUNTER).values(name=STAMP_LOCK, value=0))
        except IntegrityError:  # a concurrent first stamper made it
            pass
        lock_stamping(connection)


def stamp_events(connection: Connection, limit: int = 10_000) -> int:
    """Give the committed events without a sequence number the next numbers, in the order they were
    written; returns how many. Call with the lock held (`lock_stamping`)."""
    last = connection.execute(select(func.coalesce(func.max(OUTBOX.c.seq), 0))).scalar_one()
    # One statement (UPDATE ... FROM, PostgreSQL and SQLite >= 3.33): the unstamped rows in the
    # order they were written get last + 1, last + 2, ...
    return connection.execute(_STAMP, {"last": last, "limit": limit}).rowcount


_STAMP = text(
    "UPDATE exchange_event SET seq = :last + numbered.position "
    "FROM (SELECT id, row_number() OVER (ORDER BY id) AS position FROM exchange_event "
    "WHERE seq IS NULL ORDER BY id LIMIT :limit) AS numbered "
    "WHERE exchange_event.id = numbered.id"
)


def add_expiry_events(connection: Connection, events: list[dict[str, Any]]) -> int:
    """Insert expiry events not recorded before (their ids are derived from the licence)."""
    if not events:
        return 0
    known = set(
        connection.execute(
            select(OUTBOX.c.event_id).where(OUTBOX.c.event_id.in_([e["event_id"] for e in events]))
        ).scalars()
    )
    fresh = [e for e in events if e["event_id"] not in known]
    if fresh:  # under the stamp lock (called after `lock_stamping`): no other stamper adds them meanwhile
        connection.execute(insert(OUTBOX), fresh)
    return len(fresh)


def read_feed(connection: Connection, personal: PersonalData, after: int, limit: int = FEED_LIMIT) -> list[FeedEvent]:
    """Stamped events after `after`, in sequence order."""
    rows = connection.execute(
        select(
            OUTBOX.c.seq,
            OUTBOX.c.event_id,
            OUTBOX.c.kind,
            OUTBOX.c.subject,
            OUTBOX.c.at,
            OUTBOX.c.day,
            OUTBOX.c.payload_json,
        )
        .where(OUTBOX.c.seq > after)
        .order_by(OUTBOX.c.seq)
        .limit(max(1, min(limit, FEED_LIMIT * 10)))
    ).all()
    return [
        FeedEvent(
            row.seq,
            row.event_id,
            row.kind,
            row.subject,
            aware(row.at),
            row.day,
            stored_payload(row.payload_json, row.event_id, personal),
        )
        for row in rows
    ]


def latest_seq(connection: Connection) -> int:
    return int(connection.execute(select(func.coalesce(func.max(OUTBOX.c.seq), 0))).scalar_one())

