"""The licence lifecycle after issue: which steps each status allows, revoke (吊销) and cancel (注销).
Change (变更) issues a new version and lives with issuance (`IssuanceService.change_licence`), but
its rule is here too.

    issued ──change──► superseded (the new version is issued)
    issued ──revoke──► revoked
    issued / expired ──cancel──► cancelled   (an expired licence is cancelled, 依法注销)
    expired: derived from valid_until when reading; superseded, revoked, cancelled are final.

Every step is one conditional UPDATE (WHERE status = 'issued'), so two concurrent steps on one
licence cannot both succeed; the loser gets 409 with the status it found. Each step adds a status
event, an audit event, a transparency-log leaf and a change-feed event (`store.outbox`) in the same
transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from cert_authority.actors import Actor, ensure_may_write_for
from cert_authority.errors import IllegalTransitionError, InvalidRequestError
from cert_authority.issuing.feed_payload import licence_outbox_event
from cert_authority.issuing.log_leaves import log_licence_events
from cert_authority.issuing.personal import open_licence
from cert_authority.issuing.records import effective_status, find_licence, licence_public
from cert_authority.issuing.schemas import STATUS_NAMES, LicencePublic
from cert_authority.store.audit import audit_row
from cert_authority.store.models import LicenceEventRow, LicenceRow
from cert_authority.store.personal import PersonalData
from cert_authority.timeutil import aware, local_date, utc_now
from templates.identifier import mask_holder_code

log = logging.getLogger("ecas.licences")

ACTION_NAMES = {"issue": "颁发", "change": "变更", "revoke": "吊销", "cancel": "注销"}
ALLOWED_FROM = {"change": {"issued"}, "revoke": {"issued"}, "cancel": {"issued", "expired"}}
RESULT = {"change": "superseded", "revoke": "revoked", "cancel": "cancelled"}


def check_transition(row: LicenceRow, action: str, today: dt.date) -> None:
    """IllegalTransitionError (409), in words a clerk understands, unless `action` is allowed."""
    status = effective_status(row, today)
    if status in ALLOWED_FROM[action]:
        return
    detail = ""
    if status == "superseded":
        detail = f"（已变更为新版本 {row.superseded_by}，请对新版本办理）"
    elif status in ("revoked", "cancelled"):
        when = aware(row.status_changed_at).astimezone(dt.timezone(dt.timedelta(hours=8)))
        detail = f"（{when:%Y-%m-%d}，原因：{row.status_reason or '未说明'}）"
    elif status == "expired":
        detail = f"（有效期已于 {row.valid_until} 届满，只能注销）"
    raise IllegalTransitionError(
        f"证照 {row.identifier} {STATUS_NAMES[status]}{detail}，不能{ACTION_NAMES[action]}"
    )


def status_event(
    row: LicenceRow, previous: str | None, action: str, reason: str | None, at: dt.datetime, actor: Actor
) -> LicenceEventRow:
    assert row.id is not None
    return LicenceEventRow(
        licence_id=row.id,
        identifier=row.identifier,
        previous_status=previous,
        status=row.status,
        action=action,
        reason=reason,
        at=at,
        actor=actor.label,
    )


class LifecycleService:
    def __init__(
        self, engine: Engine, personal: PersonalData, clock: Callable[[], dt.datetime] = utc_now
    ) -> None:
        self.engine = engine
        self.personal = personal
        self.clock = clock

    def revoke(self, actor: Actor, identifier: str, reason: str, now: dt.datetime | None = None) -> LicencePublic:
        """吊销: the issuer withdraws a valid licence (a sanction); the reason is required."""
        return self._transition(actor, identifier, "revoke", reason, now or self.clock())

    def cancel(self, actor: Actor, identifier: str, reason: str, now: dt.datetime | None = None) -> LicencePublic:
        """注销: the licence ends (the holder gave it up, closed down, or it expired); reason required."""
        return self._transition(actor, identifier, "cancel", reason, now or self.clock())

    def _transition(self, actor: Actor, identifier: str, action: str, reason: str, now: dt.datetime) -> LicencePublic:
        now = now.astimezone(dt.timezone.utc)  # stored as UTC (SQLite keeps no offset)
        reason = (reason or "").strip()
        if not reason:
            raise InvalidRequestError(f"reason：{ACTION_NAMES[action]}证照须说明原因")
        today = local_date(now)
        with Session(self.engine) as session:
            row = find_licence(session, identifier)
            ensure_may_write_for(actor, row.issuer_code, f"证照 {identifier} ")
            check_transition(row, action, today)
            previous = effective_status(row, today)
            query = update(LicenceRow).where(col(LicenceRow.id) == row.id).where(col(LicenceRow.status) == "issued")
            if "expired" not in ALLOWED_FROM[action]:
                query = query.where(or_(col(LicenceRow.valid_until).is_(None), col(LicenceRow.valid_until) >= today))
            result = session.exec(
                query.values(status=RESULT[action], status_reason=reason, status_changed_at=now)
            )
            if result.rowcount != 1:
                # Someone else changed it meanwhile: report what it is now.
                session.rollback()
                session.refresh(row)
                check_transition(row, action, today)
                raise IllegalTransitionError(f"证照 {identifier} 正在被同时办理，请稍后重试")
            session.refresh(row)
            opened = open_licence(self.personal, row)
            session.add(status_event(row, previous, action, reason, now, actor))
            log_licence_events(session.connection(), [(opened, action, now)], now, self.personal)
            session.add(
                audit_row(actor, action, identifier, now, holder_code=opened.holder_code, detail={"reason": reason})
            )
            session.add(licence_outbox_event(f"licence.{RESULT[action]}", opened, now, self.personal))
            session.commit()
            session.refresh(row)
            log.info("licence %s %s (holder %s)", identifier, action, mask_holder_code(opened.holder_code))
            return licence_public(open_licence(self.personal, row), today)
