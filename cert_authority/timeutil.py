"""Time helpers: UTC for what the database gives back, and the calendar day in China."""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def aware(value: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes; everything we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


BEIJING = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")


def local_date(now: dt.datetime) -> dt.date:
    """The calendar day in China at `now`: licences are dated by the issuer's day, not UTC's."""
    return now.astimezone(BEIJING).date()
