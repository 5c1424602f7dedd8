"""Reconciliation (对账): the city and the province compare, per day (China's calendar), the number of
events and an SM3 over them (`wire.day_digest`); for each day that differs, the province lists its
event ids, and the city sends again those it has that the province lacks (the province takes an
event it is missing even below what it acknowledged; one it has is a duplicate, ignored)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cert_authority.exchange.pusher import DAYS_PATH, Pusher
from cert_authority.timeutil import local_date


def reconcile(pusher: Pusher, first: dt.date | None = None, last: dt.date | None = None) -> dict[str, Any]:
    feed = pusher.feed
    feed.refresh()
    last = last or local_date(pusher.clock())
    mine = {summary.day: summary for summary in feed.days(first or dt.date(2000, 1, 1), last)}
    first = first or min(mine, default=last)
    theirs_answer = pusher.ask(DAYS_PATH, **{"from": first.isoformat(), "to": last.isoformat()})
    theirs = {dt.date.fromisoformat(d["day"]): d for d in theirs_answer.get("days", [])}
    acked = int(pusher.ask("/api/v1/exchange/status").get("acked", 0))
    days = []
    differing = []
    for day in sorted(set(mine) | set(theirs)):
        city, province = mine.get(day), theirs.get(day)
        same = city is not None and province is not None and city.sm3 == province["sm3"]
        days.append(
            {
                "day": day.isoformat(),
                "city_count": city.count if city else 0,
                "province_count": province["count"] if province else 0,
                "city_sm3": city.sm3 if city else None,
                "province_sm3": province["sm3"] if province else None,
                "match": same,
            }
        )
        if not same:
            differing.append(day)
    resent = 0
    differences = []
    if differing:
        listed = pusher.ask(
            DAYS_PATH,
            **{"from": first.isoformat(), "to": last.isoformat(), "event_ids_of": [d.isoformat() for d in differing]},
        )
        known = {day: set(ids) for day, ids in (listed.get("event_ids") or {}).items()}
        for day in differing:
            events = [e for e in feed.events_on(day) if e.event_id not in known.get(day.isoformat(), set())]
            missing = [e for e in events if e.seq <= acked]
            differences.append(
                {
                    "day": day.isoformat(),
                    "missing_at_province": [e.seq for e in missing],
                    "not_yet_pushed": [e.seq for e in events if e.seq > acked],
                }
            )
            for start in range(0, len(missing), pusher.batch_events):
                answer = pusher.post_batch(missing[start : start + pusher.batch_events])
                pusher.send_files(answer.get("missing_files") or [])
                resent += len(missing[start : start + pusher.batch_events])
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "acked": acked,
        "days": days,
        "differences": differences,
        "resent": resent,
    }
