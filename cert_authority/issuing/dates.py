"""Dates on a licence: the issue date (the issuer's calendar day, Beijing time), the validity period
from the type's policy, and how both are printed."""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from templates.spec import ValidityPolicy, chinese_date

LONG_TERM = "长期"


def add_months(day: dt.date, months: int) -> dt.date:
    """`day` plus `months` calendar months; the 31st becomes the last day of a shorter month."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Validity:
    valid_from: dt.date
    valid_until: dt.date | None  # None: long-term (长期)

    def printed(self) -> dict[str, str]:
        """The validity metadata as templates print it (meta valid_from / valid_until / validity)."""
        start = chinese_date(self.valid_from)
        if self.valid_until is None:
            return {"valid_from": start, "valid_until": LONG_TERM, "validity": f"{start}起长期有效"}
        end = chinese_date(self.valid_until)
        return {"valid_from": start, "valid_until": end, "validity": f"{start}至{end}"}


def validity_for(
    policy: ValidityPolicy, issue_date: dt.date, valid_from: dt.date | None, valid_until: dt.date | None
) -> tuple[Validity | None, list[str]]:
    """The validity period a new licence gets, or the problems with what the caller gave.

    fixed_term: from the issue date for the type's years and months, ending the day before the
    anniversary; long_term: from the issue date, no end; given_at_issue: both dates required."""
    problems: list[str] = []
    if policy.kind != "given_at_issue":
        if valid_from is not None or valid_until is not None:
            problems.append(
                f"valid_from/valid_until：该证照类型的有效期由类型规定（{describe(policy)}），颁证时不能另行给出"
            )
            return None, problems
        if policy.kind == "long_term":
            return Validity(issue_date, None), problems
        end = add_months(issue_date, policy.years * 12 + policy.months) - dt.timedelta(days=1)
        return Validity(issue_date, end), problems
    if valid_from is None:
        problems.append("valid_from：该证照类型的有效期在颁证时给出，缺少有效期起始日期")
    if valid_until is None:
        problems.append("valid_until：该证照类型的有效期在颁证时给出，缺少有效期截止日期")
    if valid_from is None or valid_until is None:
        return None, problems
    if valid_until < valid_from:
        problems.append(f"valid_until：有效期截止日期 {valid_until} 早于起始日期 {valid_from}")
    elif valid_until < issue_date:
        problems.append(f"valid_until：有效期截止日期 {valid_until} 早于颁证日期 {issue_date}，证照颁发即已过期")
    return (None if problems else Validity(valid_from, valid_until)), problems


def describe(policy: ValidityPolicy) -> str:
    if policy.kind == "long_term":
        return "长期有效"
    if policy.kind == "given_at_issue":
        return "颁证时给出"
    parts = [f"{policy.years}年" if policy.years else "", f"{policy.months}个月" if policy.months else ""]
    return "".join(parts)
