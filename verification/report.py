"""Verification results as values (as pyHanko and EU DSS report them): an overall status with a
machine-readable reason, and the list of checks behind it. "Could not check" is INDETERMINATE,
never VALID and never INVALID."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Check", "Report", "Status", "shown_time"]

CHINA = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")  # one zone for the whole country


def shown_time(when: dt.datetime, seconds: bool = True) -> str:
    """A time in a message for people: Beijing time, to the second (a clerk read 19:31Z as wrong)."""
    return when.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


class Status(StrEnum):
    VALID = "VALID"
    INVALID = "INVALID"
    INDETERMINATE = "INDETERMINATE"


@dataclass(frozen=True)
class Check:
    name: str  # integrity, signature, seal, timestamp, chain, revocation, status, record, log, identifier, file
    status: Status
    reason: str  # machine-readable: "ok" when VALID, otherwise what went wrong
    message: str  # for people, in Chinese

    @classmethod
    def ok(cls, name: str, message: str) -> Check:
        return cls(name, Status.VALID, "ok", message)

    @classmethod
    def invalid(cls, name: str, reason: str, message: str) -> Check:
        return cls(name, Status.INVALID, reason, message)

    @classmethod
    def unknown(cls, name: str, reason: str, message: str) -> Check:
        return cls(name, Status.INDETERMINATE, reason, message)

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "reason": self.reason, "message": self.message}


@dataclass(frozen=True)
class Report:
    """The verdict on one file or identifier: INVALID if any check failed, else INDETERMINATE if
    any could not be made, else VALID; `reason` and `message` come from the deciding check."""

    checks: tuple[Check, ...]
    subject: dict[str, Any] = field(default_factory=dict)  # what was checked: format, identifier, signer…
    face_data: dict[str, str] | None = None  # only when VALID
    checked_at: dt.datetime | None = None

    @property
    def deciding(self) -> Check | None:
        for status in (Status.INVALID, Status.INDETERMINATE):
            found = next((c for c in self.checks if c.status is status), None)
            if found is not None:
                return found
        return None

    @property
    def result(self) -> Status:
        if not self.checks:
            return Status.INDETERMINATE
        deciding = self.deciding
        return deciding.status if deciding is not None else Status.VALID

    @property
    def reason(self) -> str:
        deciding = self.deciding
        return deciding.reason if deciding is not None else ("ok" if self.checks else "nothing_checked")

    @property
    def message(self) -> str:
        deciding = self.deciding
        if deciding is not None:
            return deciding.message
        return "验证通过" if self.checks else "未能进行任何检查"

    def with_checks(self, checks: Iterable[Check], **changes: Any) -> Report:
        return Report(
            checks=(*self.checks, *checks),
            subject={**self.subject, **changes.pop("subject", {})},
            face_data=changes.pop("face_data", self.face_data),
            checked_at=changes.pop("checked_at", self.checked_at),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.result.value,
            "reason": self.reason,
            "message": self.message,
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
            "subject": self.subject,
            "face_data": self.face_data if self.result is Status.VALID else None,
            "checks": [c.to_dict() for c in self.checks],
        }
