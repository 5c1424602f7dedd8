"""Reading licences: one by identifier, lists with filters and pages (holder codes masked), the
sealed files, and the status history of all versions of a licence.

Who reads what: admins and auditors everything, an issuer its own department's licences. Using
departments (role user) read nothing here: they go through `sharing`, with a use cause and the holder's
authorisation (see `actors.ensure_may_read_for`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable, Iterator

from sqlalchemy import and_, func, or_, tuple_
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from cert_authority.actors import Actor, ensure_may_read_for, readable_department
from cert_authority.errors import InvalidRequestError, NotFoundError
from cert_authority.issuing.images import LicenceImages
from cert_authority.issuing.personal import open_licence
from cert_authority.issuing.records import find_licence, licence_public, licence_summary
from cert_authority.issuing.schemas import (
    FILE_FORMATS,
    LICENCE_STATUSES,
    LicenceEventPublic,
    LicencePage,
    LicencePublic,
)
from cert_authority.store.filestore import FileStore
from cert_authority.store.models import LicenceEventRow, LicenceRow
from cert_authority.store.packing import PackedFiles
from cert_authority.store.personal import PersonalData
from cert_authority.timeutil import BEIJING, aware, local_date, utc_now

MAX_PAGE_SIZE = 200
MAX_TEXT = 120  # characters of a search's text: a whole identifier fits (the column's length)


class LicenceQueryService:
    def __init__(
        self,
        engine: Engine,
        filestore: FileStore,
        images: LicenceImages,
        personal: PersonalData,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.filestore = filestore
        self.packed = PackedFiles(filestore, engine)  # licence files may be stored packed
        self.images = images
        self.personal = personal
        self.clock = clock

    def get(self, actor: Actor, identifier: str) -> LicencePublic:
        with Session(self.engine) as session:
            row = find_licence(session, identifier)
        ensure_may_read_for(actor, row.issuer_code, f"证照 {identifier} ")
        return licence_public(open_licence(self.personal, row), self._today())

    def search(
        self,
        actor: Actor,
        *,
        type_code: str | None = None,
        status: str | None = None,
        holder_code: str | None = None,
        issuer: str | None = None,
        text: str | None = None,
        page: int = 1,
        page_size: int = 20,
        cursor: str | None = None,
        before: str | None = None,
    ) -> LicencePage:
        """A page of licence versions, newest first, with the total that match; `text` is any part
        of the licence number or the identifier, or a holder's whole code (within the caller's
        scope). Holders' codes and names are stored sealed, found only whole through their blind
        index: a partial match would need an index that gives away region and birth date
        (docs/personal-data.md).

        Pages by key (keyset): `cursor` (a page's `next_cursor`) gives the versions after it,
        `before` (a page's `prev_cursor`) those before it, each found through the index on
        (created_at, id) however deep in the list, and each version exactly once even while
        licences are issued between pages (they are newer than any cursor). `page` (by offset) is
        kept for old clients: its cost grows with the page number."""
        if status is not None and status not in LICENCE_STATUSES:
            raise InvalidRequestError(f"status：未知状态 {status!r}，可选：{'、'.join(LICENCE_STATUSES)}")
        if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidRequestError(f"page 从 1 开始，page_size 在 1–{MAX_PAGE_SIZE} 之间")
        if (cursor is not None) + (before is not None) + (page > 1) > 1:
            raise InvalidRequestError("cursor、before 与 page 只能使用其中一个")
        scope = readable_department(actor, issuer)
        today = self._today()
        conditions = []
        if scope is not None:
            conditions.append(col(LicenceRow.issuer_code) == scope)
        if type_code:
            conditions.append(col(LicenceRow.type_code) == type_code)
        if holder_code:
            conditions.append(col(LicenceRow.holder_code_index) == self.personal.index(holder_code.strip().upper()))
        if status is not None:
            conditions.append(_status_condition(status, today))
        if text and text.strip():
            conditions.append(_text_condition(text.strip()[:MAX_TEXT], self.personal.index(text.strip().upper())))
        newest_first = (col(LicenceRow.created_at).desc(), col(LicenceRow.id).desc())
        query = select(LicenceRow).where(*conditions)
        if cursor is not None:
            query = query.where(_older_than(*_decode_cursor(cursor, "cursor"))).order_by(*newest_first)
        elif before is not None:
            query = query.where(_newer_than(*_decode_cursor(before, "before")))
            query = query.order_by(col(LicenceRow.created_at), col(LicenceRow.id))
        else:
            query = query.order_by(*newest_first).offset((page - 1) * page_size)
        with Session(self.engine) as session:
            total = session.exec(select(func.count()).select_from(LicenceRow).where(*conditions)).one()
            rows = list(session.exec(query.limit(page_size + 1)).all())  # one more: is there a next page?
        more = len(rows) > page_size
        rows = rows[:page_size]
        if before is not None:
            rows.reverse()
            newer, older = more, True  # `before` came from a page after these
        else:
            newer, older = cursor is not None or page > 1, more
        items = [licence_summary(open_licence(self.personal, r), today) for r in rows]
        return LicencePage(
            total=int(total),
            page=page,
            page_size=page_size,
            items=items,
            next_cursor=_encode_cursor(rows[-1]) if rows and older else None,
            prev_cursor=_encode_cursor(rows[0]) if rows and newer else None,
        )

    def search_all(
        self,
        actor: Actor,
        *,
        type_code: str | None = None,
        status: str | None = None,
        holder_code: str | None = None,
        issuer: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[LicencePage]:
        """Every page of a search, by key (an export: each version once, however many there are)."""
        cursor: str | None = None
        while True:
            found = self.search(
                actor,
                type_code=type_code,
                status=status,
                holder_code=holder_code,
                issuer=issuer,
                page_size=page_size,
                cursor=cursor,
            )
            yield found
            if found.next_cursor is None:
                return
            cursor = found.next_cursor

    def file(self, actor: Actor, identifier: str, fmt: str) -> bytes:
        """The sealed PDF or OFD, or the PNG (rendered on first request), checked against its recorded SM3."""
        if fmt not in FILE_FORMATS:
            raise InvalidRequestError(f"不支持的格式 {fmt!r}，可选：{'、'.join(FILE_FORMATS)}")
        with Session(self.engine) as session:
            row = find_licence(session, identifier)
        ensure_may_read_for(actor, row.issuer_code, f"证照 {identifier} ")
        if fmt == "png":
            return self.images.png(open_licence(self.personal, row))
        return self.packed.get(row.pdf_sm3 if fmt == "pdf" else row.ofd_sm3)

    def holder_licence(self, holder_code: str, identifier: str) -> LicencePublic:
        """One of the holder's own licences (NotFoundError for anyone else's: no hint that it exists)."""
        return licence_public(self._holders_row(holder_code, identifier), self._today())

    def holder_file(self, holder_code: str, identifier: str, fmt: str) -> bytes:
        row = self._holders_row(holder_code, identifier)
        if fmt == "png":
            return self.images.png(row)
        if fmt not in FILE_FORMATS:
            raise InvalidRequestError(f"不支持的格式 {fmt!r}，可选：{'、'.join(FILE_FORMATS)}")
        return self.packed.get(row.pdf_sm3 if fmt == "pdf" else row.ofd_sm3)

    def _holders_row(self, holder_code: str, identifier: str) -> LicenceRow:
        with Session(self.engine) as session:
            row = session.exec(select(LicenceRow).where(col(LicenceRow.identifier) == identifier)).first()
        if row is None or row.holder_code_index != self.personal.index(holder_code):
            raise NotFoundError(f"您名下没有证照 {identifier}")
        return open_licence(self.personal, row)

    def history(self, actor: Actor, identifier: str) -> list[LicenceEventPublic]:
        """Every status event of every version of this licence (same serial), oldest first, with
        the expiry a reader would see derived from the validity dates."""
        today = self._today()
        with Session(self.engine) as session:
            row = find_licence(session, identifier)
            ensure_may_read_for(actor, row.issuer_code, f"证照 {identifier} ")
            versions = session.exec(
                select(LicenceRow)
                .where(col(LicenceRow.type_code) == row.type_code)
                .where(col(LicenceRow.issuer_code) == row.issuer_code)
                .where(col(LicenceRow.serial) == row.serial)
            ).all()
            events = session.exec(
                select(LicenceEventRow)
                .where(col(LicenceEventRow.licence_id).in_([v.id for v in versions]))
                .order_by(col(LicenceEventRow.at), col(LicenceEventRow.id))
            ).all()
        history = [
            LicenceEventPublic(
                identifier=e.identifier,
                action=e.action,
                previous_status=e.previous_status,
                status=e.status,
                reason=e.reason,
                at=aware(e.at),
                actor=e.actor,
            )
            for e in events
        ]
        for version in versions:
            if version.status == "issued" and version.valid_until is not None and today > version.valid_until:
                expired_at = dt.datetime.combine(version.valid_until + dt.timedelta(days=1), dt.time(0), BEIJING)
                history.append(
                    LicenceEventPublic(
                        identifier=version.identifier,
                        action="expire",
                        previous_status="issued",
                        status="expired",
                        reason=f"有效期于 {version.valid_until} 届满",
                        at=expired_at.astimezone(dt.timezone.utc),
                        actor="system",
                        derived=True,
                    )
                )
        return sorted(history, key=lambda e: e.at)

    def _today(self) -> dt.date:
        return local_date(self.clock())


def _encode_cursor(row: LicenceRow) -> str:
    """A position in the newest-first order: the version's creation time (UTC) and row id."""
    created = aware(row.created_at).astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%f")
    return base64.urlsafe_b64encode(f"{created}~{row.id}".encode()).decode().rstrip("=")


def _decode_cursor(text: str, name: str) -> tuple[dt.datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        created, _, row_id = raw.partition("~")
        when = dt.datetime.strptime(created, "%Y%m%dT%H%M%S.%f").replace(tzinfo=dt.timezone.utc)
        position = int(row_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidRequestError(f"{name} 无效：应为上一次列表结果中的 next_cursor 或 prev_cursor") from None
    return when, position


def _older_than(created: dt.datetime, row_id: int) -> ColumnElement[bool]:
    # A row-value comparison, which PostgreSQL (and SQLite) answer as one range of the index on
    # (created_at, id); the equivalent OR of two conditions is a filter over a scan from the top.
    return tuple_(col(LicenceRow.created_at), col(LicenceRow.id)) < tuple_(created, row_id)


def _newer_than(created: dt.datetime, row_id: int) -> ColumnElement[bool]:
    return tuple_(col(LicenceRow.created_at), col(LicenceRow.id)) > tuple_(created, row_id)


def _status_condition(status: str, today: dt.date) -> ColumnElement[bool]:
    """Expired is not stored: a licence still 'issued' whose end date has passed."""
    not_expired = or_(col(LicenceRow.valid_until).is_(None), col(LicenceRow.valid_until) >= today)
    if status == "issued":
        return and_(col(LicenceRow.status) == "issued", not_expired)
    if status == "expired":
        return and_(col(LicenceRow.status) == "issued", col(LicenceRow.valid_until) < today)
    return col(LicenceRow.status) == status


def _text_condition(text: str, holder_index: str) -> ColumnElement[bool]:
    """Part of a licence number or an identifier, or a whole holder code (its blind index)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    return or_(
        col(LicenceRow.holder_code_index) == holder_index,
        col(LicenceRow.licence_number).like(pattern, escape="\\"),
        col(LicenceRow.identifier).like(pattern.upper(), escape="\\"),
    )
