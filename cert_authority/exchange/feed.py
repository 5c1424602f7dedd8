"""The change feed (city side): events from the outbox, stamped in commit order, read by sequence
number (`GET /api/v1/feed`, and the pusher). Expiry (期满) happens without a write: the feed records
an expiry event for each licence found past its end date whenever it is refreshed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby

from sqlalchemy import Select, and_, exists, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from cert_authority.errors import InvalidRequestError
from cert_authority.exchange.wire import day_digest
from cert_authority.issuing.feed_payload import licence_event_payload
from cert_authority.issuing.personal import open_licence
from cert_authority.store.models import ExchangeEventRow, LicenceRow
from cert_authority.store.outbox import (
    FEED_LIMIT,
    OUTBOX,
    FeedEvent,
    add_expiry_events,
    expiry_event_id,
    latest_seq,
    lock_stamping,
    outbox_values,
    payload_text,
    read_feed,
    stamp_events,
    stored_payload,
)
from cert_authority.store.personal import PersonalData
from cert_authority.timeutil import local_date, utc_now


@dataclass(frozen=True)
class DaySummary:
    day: dt.date
    count: int
    sm3: str

    def to_dict(self) -> dict[str, object]:
        return {"day": self.day.isoformat(), "count": self.count, "sm3": self.sm3}


class ChangeFeed:
    def __init__(self, engine: Engine, personal: PersonalData, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.engine = engine
        self.personal = personal  # an expiry event carries the licence's face data, opened
        self.clock = clock

    def refresh(self, now: dt.datetime | None = None) -> int:
        """Record expiries due and stamp committed events; returns how many were stamped."""
        today = local_date(now or self.clock())
        with self.engine.begin() as connection:
            lock_stamping(connection)
            with Session(bind=connection) as session:
                expired = session.scalars(_expired_query(today)).all()
            at = dt.datetime.combine(today, dt.time(), tzinfo=dt.timezone(dt.timedelta(hours=8)))
            add_expiry_events(
                connection,
                [
                    outbox_values(
                        "licence.expired",
                        row.identifier,
                        licence_event_payload(open_licence(self.personal, row), "expired"),
                        at,
                        event_id=expiry_event_id(row.identifier),
                        personal=self.personal,
                    )
                    for row in expired
                ],
            )
            return stamp_events(connection)

    def events(self, after: int, limit: int = 100) -> list[FeedEvent]:
        if after < 0 or not 1 <= limit <= FEED_LIMIT:
            raise InvalidRequestError(f"after 应为非负整数，limit 应在 1–{FEED_LIMIT} 之间")
        self.refresh()
        with self.engine.connect() as connection:
            return read_feed(connection, self.personal, after, limit)

    def latest(self) -> int:
        with self.engine.connect() as connection:
            return latest_seq(connection)

    def days(self, first: dt.date, last: dt.date) -> list[DaySummary]:
        """Per day (China's calendar) the stamped events' count and SM3 (`wire.day_digest`)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(
                    OUTBOX.c.day,
                    OUTBOX.c.seq,
                    OUTBOX.c.event_id,
                    OUTBOX.c.kind,
                    OUTBOX.c.subject,
                    OUTBOX.c.payload_json,
                )
                .where(OUTBOX.c.seq.is_not(None), OUTBOX.c.day >= first, OUTBOX.c.day <= last)
                .order_by(OUTBOX.c.day, OUTBOX.c.seq)
            ).all()
        return summarise_days(
            [
                (day, seq, event_id, kind, subject, payload_text(stored_payload(text, event_id, self.personal)))
                for day, seq, event_id, kind, subject, text in rows
            ]
        )

    def events_on(self, day: dt.date) -> list[FeedEvent]:
        """The stamped events of one day, in sequence order."""
        with self.engine.connect() as connection:
            seqs = (
                connection.execute(
                    select(OUTBOX.c.seq).where(OUTBOX.c.day == day, OUTBOX.c.seq.is_not(None)).order_by(OUTBOX.c.seq)
                )
                .scalars()
                .all()
            )
            return [event for seq in seqs for event in read_feed(connection, self.personal, seq - 1, 1)]


def _expired_query(today: dt.date) -> Select[LicenceRow]:
    """Licences still `issued` whose end date has passed and whose expiry is not yet in the feed."""
    recorded = exists().where(
        and_(
            col(ExchangeEventRow.subject) == col(LicenceRow.identifier),
            col(ExchangeEventRow.kind) == "licence.expired",
        )
    )
    return (
        select(LicenceRow)
        .where(col(LicenceRow.status) == "issued", col(LicenceRow.valid_until) < today, ~recorded)
        .limit(5000)
    )


def summarise_days(rows: list[tuple[dt.date, int, str, str, str, str]]) -> list[DaySummary]:
    """Rows (day, seq, event_id, kind, subject, payload JSON) ordered by day and seq → one summary a day."""
    summaries = []
    for day, group in groupby(rows, key=lambda row: row[0]):
        lines = [(seq, event_id, kind, subject, payload) for _, seq, event_id, kind, subject, payload in group]
        summaries.append(DaySummary(day, len(lines), day_digest(lines)))
    return summaries
