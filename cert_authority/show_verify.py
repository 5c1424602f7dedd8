"""Checking a show token online (亮证核验): its signature and time window (`verification.show_token`),
the licence's live status, and replay: a token is accepted once per verifier (department) within
its life, settled by the primary key of show_token_use, so it holds across workers. Each check is
audited against the licence, where its holder can see who checked it."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from cert_authority.actors import Actor
from cert_authority.audit import audit_row
from cert_authority.models import LicenceRow, ShowTokenUseRow
from cert_authority.pki import PkiService
from cert_authority.timeutil import utc_now
from cert_authority.verifying import licence_status_check
from verification.report import Check, Report, Status
from verification.show_token import read_token

log = logging.getLogger("ecas.show")
CLEANUP_EVERY = dt.timedelta(minutes=1)
SWEEP_MARGIN = dt.timedelta(minutes=10)


class ShowTokenVerifier:
    def __init__(self, engine: Engine, pki: PkiService, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.engine = engine
        self.pki = pki
        self.clock = clock
        self._next_cleanup = clock()

    def verify(self, actor: Actor, text: str) -> Report:
        now = self.clock()
        service = self.pki.service_signer(now).certificate_chain[0]
        token, check = read_token(text, [service], now)
        checks = [check]
        subject: dict[str, object] = {"kind": "show_token"}
        if token is not None:
            subject |= {"identifier": token.identifier, "expires_at": token.expires_at.isoformat()}
        if token is None or check.status is not Status.VALID:
            return Report(tuple(checks), subject, checked_at=now)
        # One transaction for the lookup, the replay record and the audit: one commit per check.
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.exec(select(LicenceRow).where(col(LicenceRow.identifier) == token.identifier)).first()
            if row is None:
                checks.append(Check.invalid("status", "not_found", f"本机构没有证照 {token.identifier}"))
                return Report(tuple(checks), subject, checked_at=now)
            checks.append(licence_status_check(row, now))
            if checks[-1].status is Status.VALID:
                checks.append(self._first_use(session, actor, token.nonce, token.identifier, token.expires_at))
            report = Report(
                tuple(checks),
                subject | {"name": row.name, "holder_name": row.holder_name},
                face_data=token.fields,
                checked_at=now,
            )
            detail = {"result": report.result.value, "reason": report.reason, "fields": sorted(token.fields)}
            session.add(
                audit_row(actor, "show_verify", row.identifier, now, holder_code=row.holder_code, detail=detail)
            )
            session.commit()
        self._forget_expired(now)
        log.info("show token for %s checked by %s: %s", row.identifier, actor.label, report.reason)
        return report

    def _first_use(self, session: Session, actor: Actor, nonce: str, identifier: str, expires: dt.datetime) -> Check:
        """Record the token as accepted by this verifier; a row already there means a replay. One
        INSERT … ON CONFLICT DO NOTHING RETURNING (psycopg reports no rowcount for it): no exception,
        so the audit goes on in the same transaction."""
        values = {
            "nonce": nonce,
            "verifier": actor.department_uscc or actor.label,
            "identifier": identifier,
            "expires_at": expires,
        }
        insert = sqlite_insert if self.engine.dialect.name == "sqlite" else postgresql_insert
        table = ShowTokenUseRow.__table__  # type: ignore[attr-defined]
        statement = insert(table).values(**values).on_conflict_do_nothing().returning(table.c.nonce)
        if session.connection().execute(statement).first() is None:  # nothing inserted: it was there
            return Check.invalid("replay", "replayed", "此亮证码已被本单位核验过，请持证人刷新后重新出示")
        return Check.ok("replay", "本单位首次核验此亮证码")

    def _forget_expired(self, now: dt.datetime) -> None:
        """Drop accepted tokens past their expiry (they can no longer be replayed), once a minute per worker."""
        if now < self._next_cleanup:
            return
        self._next_cleanup = now + CLEANUP_EVERY
        try:
            with Session(self.engine) as session:
                # With a margin: a check that read the clock just before expiry (or another host whose
                # clock runs ahead) must still find the row that makes a second use a replay.
                session.exec(delete(ShowTokenUseRow).where(col(ShowTokenUseRow.expires_at) < now - SWEEP_MARGIN))
                session.commit()
        except SQLAlchemyError as exc:  # the check itself is recorded; the sweep can wait a minute
            log.warning("could not sweep expired show-token uses: %s", type(exc).__name__)
