"""Where a licence comes from: new (新办), a paper licence converted (存量证照转换), or a paper licence
issued together with its e-licence (纸质证照同步制发).

A new licence is numbered and dated by the authority: its number from the issuer's counter, its
issue date today, its validity from the type's policy; a caller who gives any of them is refused.
Only under an explicit origin may the caller give them:

- stock: the paper licence's own number, issue date and validity (past dates allowed) and, when a
  department since merged issued it, that department's name, printed instead of today's. The issue
  date may not be in the future, the validity may not end before it starts, and a licence already
  expired is refused unless `include_expired` imports it (it then reads as expired). The record's
  created_at and sealed_at (ZZQZSJ) keep the conversion time.
- paper_twin: the department's own number for the paper licence, kept on the e-licence; dated today,
  validity from the type's policy as for a new licence.

The identifier (GB/T 36904) of a converted licence is made as for a new one: type code, the issuer
code of the department that holds and seals the record, a serial from the counter, version 001. The
original number is the licence number (ZZBH), not the serial: it may hold characters a serial may
not (〔〕, 号, hyphens), and a serial of our counter can never collide with another licence's.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass

from sqlalchemy import sql
from sqlalchemy.engine import Connection

from cert_authority.errors import LicenceDataError
from cert_authority.issuing.dates import Validity, add_months, validity_for
from cert_authority.store.models import LicenceRow
from templates.fonts import FontSet
from templates.layout_spec import TemplateSpec
from templates.spec import ValidityPolicy

ORIGINS = ("new", "stock", "paper_twin")
ORIGIN_NAMES = {"new": "新办", "stock": "存量转换", "paper_twin": "纸质证照同步制发"}
ORIGIN_FIELDS = ("licence_number", "issue_date", "original_issuer_name")  # given only under an origin
NUMBER_MAX = 40  # licence.licence_number
ISSUER_NAME_MAX = 100  # licence.original_issuer_name
STOCK_HINT = "存量证照请以 stock 方式（ecas issue-batch --mode stock，或 API 的 origin: stock）给出原证照编号与日期"


@dataclass(frozen=True)
class OriginalLicence:
    """What the caller says about the paper licence behind an e-licence of origin stock or paper_twin."""

    origin: str
    licence_number: str | None = None
    issue_date: dt.date | None = None
    original_issuer_name: str | None = None
    include_expired: bool = False


@dataclass(frozen=True)
class Provenance:
    """The checked origin of a licence to issue: the number (None: from the counter), dates, names."""

    origin: str
    licence_number: str | None
    issue_date: dt.date
    validity: Validity
    original_issuer_name: str | None


def original_licence(
    origin: str,
    licence_number: str | None = None,
    issue_date: dt.date | None = None,
    original_issuer_name: str | None = None,
    include_expired: bool = False,
) -> OriginalLicence | None:
    """What a request says of its origin; None for a new licence. LicenceDataError (422) when a new
    licence comes with fields only a stock or paper-twin licence takes, naming them."""
    if origin not in ORIGINS:
        raise LicenceDataError([f"origin：取值无效 {origin!r}，可选：{'、'.join(ORIGINS)}"])
    if origin != "new":
        return OriginalLicence(origin, licence_number, issue_date, original_issuer_name, include_expired)
    values = (licence_number, issue_date, original_issuer_name, include_expired)
    given = [name for name, value in zip((*ORIGIN_FIELDS, "include_expired"), values, strict=True) if value]
    if given:
        raise LicenceDataError(
            [f"{'、'.join(given)}：新办证照的编号、颁证日期和颁证单位由系统生成，不能另行给出；{STOCK_HINT}"]
        )
    return None


def check_provenance(
    policy: ValidityPolicy,
    original: OriginalLicence,
    valid_from: dt.date | None,
    valid_until: dt.date | None,
    today: dt.date,
    department_name: str,
) -> tuple[Provenance | None, list[str]]:
    """The provenance of a stock or paper-twin licence, or every problem with what was given."""
    problems: list[str] = []
    if original.origin not in ("stock", "paper_twin"):
        return None, [f"origin：取值无效 {original.origin!r}，可选：{'、'.join(ORIGINS)}"]
    number = _licence_number(original.licence_number, problems)
    if original.origin == "paper_twin":
        name = ORIGIN_NAMES["paper_twin"]
        for field in ("issue_date", "original_issuer_name"):
            if getattr(original, field) is not None:
                problems.append(f"{field}：{name}的证照当日颁发，只能给出本部门的证照编号 licence_number")
        if original.include_expired:
            problems.append(f"include_expired：只适用于存量证照，不适用于{name}")
        validity, more = validity_for(policy, today, valid_from, valid_until)  # as for a new licence
        problems += more
        if problems or validity is None:
            return None, problems
        return Provenance("paper_twin", number, today, validity, None), []

    if original.issue_date is None:
        problems.append("issue_date：存量证照须给出原证颁证日期（YYYY-MM-DD）")
    elif original.issue_date > today:
        problems.append(f"issue_date：原证颁证日期 {original.issue_date} 晚于今天 {today}，不能是将来的日期")
    issuer_name = _issuer_name(original.original_issuer_name, department_name, problems)
    if problems:
        return None, problems
    assert original.issue_date is not None and number is not None
    validity = _policy_validity(policy, original.issue_date, valid_from, valid_until, problems)
    expired = validity is not None and validity.valid_until is not None and validity.valid_until < today
    if expired and not original.include_expired:
        assert validity is not None
        problems.append(
            f"valid_until：原证有效期已于 {validity.valid_until} 届满；如需将已过期的证照一并转换入库"
            "（状态为已过期），请加 --include-expired（API：include_expired: true）"
        )
    if problems or validity is None:
        return None, problems
    return Provenance("stock", number, original.issue_date, validity, issuer_name), []


def _policy_validity(
    policy: ValidityPolicy,
    start: dt.date,
    valid_from: dt.date | None,
    valid_until: dt.date | None,
    problems: list[str],
) -> Validity | None:
    """The paper licence's validity: the dates given (both for a type whose validity is given at
    issue; for others the start alone, or both), else the type's policy counted from `start`."""
    if valid_from is None and valid_until is not None and policy.kind != "given_at_issue":
        valid_from = start
    if policy.kind == "given_at_issue" and (valid_from is None or valid_until is None):
        if valid_from is None:
            problems.append("valid_from：该证照类型的有效期在颁证时给出，缺少有效期起始日期")
        if valid_until is None:
            problems.append("valid_until：该证照类型的有效期在颁证时给出，缺少有效期截止日期")
        return None
    begin = valid_from or start
    if valid_until is None:
        if policy.kind == "long_term":
            return Validity(begin, None)
        try:
            end = add_months(begin, policy.years * 12 + policy.months) - dt.timedelta(days=1)
        except ValueError:  # past year 9999
            problems.append(f"valid_from：有效期起始日期 {begin} 按类型规定推算的截止日期超出日期范围")
            return None
        return Validity(begin, end)
    if valid_until < begin:
        problems.append(f"valid_until：有效期截止日期 {valid_until} 早于起始日期 {begin}")
        return None
    return Validity(begin, valid_until)


def _licence_number(value: str | None, problems: list[str]) -> str | None:
    text = (value or "").strip()
    if not text:
        problems.append("licence_number：须给出纸质证照上印制的证照编号")
        return None
    if len(text) > NUMBER_MAX:
        problems.append(f"licence_number：证照编号最多 {NUMBER_MAX} 个字符，收到 {len(text)} 个")
    elif any(unicodedata.category(c).startswith("C") or (c.isspace() and c != " ") for c in text):
        problems.append("licence_number：证照编号含控制字符或换行")
    return text


def _issuer_name(value: str | None, department_name: str, problems: list[str]) -> str | None:
    """The original issuer's name, kept only where it differs from the department's own."""
    text = (value or "").strip()
    if not text or text == department_name:
        return None
    if len(text) > ISSUER_NAME_MAX:
        problems.append(f"original_issuer_name：原颁证单位名称最多 {ISSUER_NAME_MAX} 个字符，收到 {len(text)} 个")
    elif any(unicodedata.category(c).startswith("C") for c in text):
        problems.append("original_issuer_name：原颁证单位名称含控制字符或换行")
    return text


_LICENCES = LicenceRow.__table__  # type: ignore[attr-defined]


def numbers_taken(connection: Connection, type_code: str, issuer: str, numbers: list[str]) -> dict[str, str]:
    """Which of `numbers` a licence of this type and issuer already has: number → its identifier."""
    taken: dict[str, str] = {}
    for start in range(0, len(numbers), 500):  # bounded IN lists
        rows = connection.execute(
            sql.select(_LICENCES.c.licence_number, _LICENCES.c.identifier)
            .where(_LICENCES.c.type_code == type_code)
            .where(_LICENCES.c.issuer_code == issuer)
            .where(_LICENCES.c.licence_number.in_(numbers[start : start + 500]))
        )
        taken.update({number: identifier for number, identifier in rows})
    return taken


def printed_issuer(row: LicenceRow) -> str:
    """The issuer a licence prints: the original one of a converted licence, else the department."""
    return row.original_issuer_name or row.issuer_name


def check_printed_meta(template: TemplateSpec, provenance: Provenance, fonts: FontSet) -> None:
    """FontError when a number or issuer name the caller gave has a character the font lacks,
    found before a serial is taken (numbers and names the authority makes always print)."""
    given = {"licence_number": provenance.licence_number, "issuer_name": provenance.original_issuer_name}
    labels = {"licence_number": "证照编号", "issuer_name": "原颁证单位名称"}
    for placement in template.fields:
        text = given.get(placement.meta or "")
        if text:
            fonts.get(placement.font).check(text, labels[placement.meta or ""])
