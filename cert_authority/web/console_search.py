"""Finding a department's licences by the holder's name or part of the holder's code, for the
console. Names and codes are stored sealed (SM4-GCM) and indexed only whole (a partial-match index
would give away region and birth date: docs/personal-data.md), so this opens the newest
`SCAN_LIMIT` versions the clerk's department may read, in memory, and matches there. Staff of that
department see each of these licences in full on its page anyway; the list shows codes masked."""

from __future__ import annotations

from sqlmodel import Session, col, select

from cert_authority.actors import Actor, readable_department
from cert_authority.issuing.personal import open_licence
from cert_authority.issuing.queries import LicenceQueryService
from cert_authority.issuing.records import licence_summary
from cert_authority.issuing.schemas import LicencePage
from cert_authority.store.models import LicenceRow
from cert_authority.timeutil import local_date

SCAN = "scan:"  # the cursor prefix of this search's pages
SCAN_LIMIT = 5000  # versions opened per search: about a second on one core at the most


def holder_scan(
    queries: LicenceQueryService,
    actor: Actor,
    text: str,
    *,
    type_code: str | None,
    status: str | None,
    offset: int,
    page_size: int,
) -> tuple[LicencePage, bool]:
    """Versions whose holder's name contains `text`, or whose holder's code contains it (two
    characters at least); and whether the scan stopped at SCAN_LIMIT before the oldest version."""
    needle = text.strip()
    scope = readable_department(actor, None)
    query = select(LicenceRow)
    if scope is not None:
        query = query.where(col(LicenceRow.issuer_code) == scope)
    if type_code:
        query = query.where(col(LicenceRow.type_code) == type_code)
    query = query.order_by(col(LicenceRow.created_at).desc(), col(LicenceRow.id).desc()).limit(SCAN_LIMIT + 1)
    today = local_date(queries.clock())
    with Session(queries.engine) as session:
        rows = session.exec(query).all()
    more = len(rows) > SCAN_LIMIT
    found = []
    if len(needle) >= 2:
        for row in rows[:SCAN_LIMIT]:
            opened = open_licence(queries.personal, row)
            if needle in (opened.holder_name or "") or needle.upper() in (opened.holder_code or "").upper():
                summary = licence_summary(opened, today)
                if status is None or summary.status == status:
                    found.append(summary)
    start = max(offset, 0)
    page = LicencePage(
        total=len(found), page=start // page_size + 1, page_size=page_size, items=found[start : start + page_size],
        next_cursor=f"{SCAN}{start + page_size}" if start + page_size < len(found) else None,
        prev_cursor=f"{SCAN}{max(start - page_size, 0)}" if start > 0 else None,
    )
    return page, more


def scan_offset(cursor: str) -> int | None:
    """The offset in a "scan:N" cursor; None for any other cursor (the regular search's)."""
    if not cursor.startswith(SCAN):
        return None
    try:
        return min(max(int(cursor[len(SCAN) :]), 0), SCAN_LIMIT)
    except ValueError:
        return 0
