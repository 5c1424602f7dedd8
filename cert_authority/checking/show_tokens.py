"""Checking a show token online (亮证核验): its signature and time window (`verification.show_token`),
the licence's live status, and replay: a token is accepted once, by the first department that
checks it, settled by the primary key of show_token_use, so it holds across workers. (Once per
department let a clerk who received a token replay it at every other department for its life.) Each check is
audited against the licence, where its holder can see who checked it."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col

from cert_authority.actors import Actor
from cert_authority.checking.licences import UNREADABLE_RECORD, licence_status_check
from cert_authority.checking.verdicts import Remembered
from cert_authority.errors import SealedDataError
from cert_authority.issuing.personal import open_holder
from cert_authority.pki.service import PkiService
from cert_authority.store.audit import audit_values
from cert_authority.store.chain import chain_link
from cert_authority.store.models import AuditEventRow, LicenceRow, ShowTokenUseRow
from cert_authority.store.personal import PersonalData
from cert_authority.timeutil import utc_now
from verification.report import Check, Report, Status
from verification.show_token import read_token

log = logging.getLogger("ecas.show")
CLEANUP_EVERY = dt.timedelta(minutes=1)
SWEEP_MARGIN = dt.timedelta(minutes=10)


_LICENCE = LicenceRow.__table__  # type: ignore[attr-defined]
_AUDIT = AuditEventRow.__table__  # type: ignore[attr-defined]
_USES = ShowTokenUseRow.__table__  # type: ignore[attr-defined]
# Only the columns a check reads, without the ORM: this is the busiest path of all.
_COLUMNS = (
    "identifier",
    "name",
    "personal_sealed",
    "holder_code_index",
    "status",
    "valid_until",
    "superseded_by",
    "status_reason",
)
_LOOKUP = select(*(_LICENCE.c[name] for name in _COLUMNS)).where(_LICENCE.c.identifier == bindparam("identifier"))
# PostgreSQL: the replay record and the audit row in one statement (a data-modifying CTE), so both or
# neither are written without a transaction block, in one round trip; the audit row says which it was.
_USE_AND_AUDIT = text(
    "WITH used AS (INSERT INTO show_token_use (nonce, verifier, identifier, expires_at) "
    "VALUES (:nonce, :verifier, :identifier, :expires_at) ON CONFLICT DO NOTHING RETURNING 1) "
    "INSERT INTO audit_event (at, actor, actor_role, actor_department, action, target, holder_code_masked, "
    "detail_json, chain_partition, chain_seq, chain_prev, chain_mac) "
    "SELECT :at, :actor, :actor_role, :actor_department, :action, :target, :holder_code_masked, "
    "CASE WHEN EXISTS (SELECT 1 FROM used) THEN :detail_json ELSE :replay_detail_json END, "
    ":chain_partition, :chain_seq, :chain_prev, "
    "CASE WHEN EXISTS (SELECT 1 FROM used) THEN :chain_mac ELSE :replay_chain_mac END "
    "RETURNING EXISTS (SELECT 1 FROM used)"
)
FIRST_USE = Check.ok("replay", "首次核验此亮证码")
REPLAYED = Check.invalid("replay", "replayed", "此亮证码已被核验过（每个亮证码只能核验一次），请持证人刷新后重新出示")


class ShowTokenVerifier:
    def __init__(
        self, engine: Engine, pki: PkiService, personal: PersonalData, clock: Callable[[], dt.datetime] = utc_now
    ) -> None:
        self.engine = engine
        self.pki = pki
        self.personal = personal
        self.clock = clock
        self._next_cleanup = clock()
        self._postgresql = engine.dialect.name == "postgresql"
        # PostgreSQL: each statement atomic on its own; SQLite: the lookup and both rows in one transaction.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._holders: Remembered[Mapping[str, str | None]] = Remembered()

    def verify(self, actor: Actor, shown: str) -> Report:
        now = self.clock()
        service = self.pki.service_signer(now).certificate_chain[0]
        token, check = read_token(shown, [service], now)
        checks = [check]
        subject: dict[str, object] = {"kind": "show_token"}
        if token is not None:
            subject |= {"identifier": token.identifier, "expires_at": token.expires_at.isoformat()}
        if token is None or check.status is not Status.VALID:
            return Report(tuple(checks), subject, checked_at=now)
        with self._autocommit.connect() if self._postgresql else self.engine.begin() as connection:
            row = connection.execute(_LOOKUP, {"identifier": token.identifier}).first()
            if row is None:
                checks.append(Check.invalid("status", "not_found", f"本机构没有证照 {token.identifier}"))
                return Report(tuple(checks), subject, checked_at=now)
            checks.append(licence_status_check(row, now))
            holder: Mapping[str, str | None]
            try:
                holder = self._holder(row)
            except SealedDataError as exc:
                log.error("show token for %s: %s", row.identifier, exc)
                holder = {"holder_name": None, "holder_code": None}
                checks.append(UNREADABLE_RECORD)
            subject |= {"name": row.name, "holder_name": holder["holder_name"]}

            def report_and_audit(*last: Check) -> tuple[Report, dict[str, object]]:
                report = Report((*checks, *last), subject, face_data=token.fields, checked_at=now)
                detail = {"result": report.result.value, "reason": report.reason, "fields": sorted(token.fields)}
                code = holder["holder_code"]
                return report, audit_values(actor, "show_verify", row.identifier, now, holder_code=code, detail=detail)

            if checks[-1].status is not Status.VALID:
                report, audit = report_and_audit()
                with chain_link(connection) as link:
                    connection.execute(insert(_AUDIT).values(**(link.seal("audit_event", audit) if link else audit)))
            else:
                first, first_audit = report_and_audit(FIRST_USE)
                replay, replay_audit = report_and_audit(REPLAYED)
                use = {
                    "nonce": token.nonce,
                    "verifier": actor.department_uscc or actor.label,
                    "identifier": token.identifier,
                    "expires_at": token.expires_at,
                }
                is_first = self._record_use(connection, use, first_audit, replay_audit)
                report = first if is_first else replay
        self._forget_expired(now)
        log.info("show token for %s checked by %s: %s", row.identifier, actor.label, report.reason)
        return report

    def _holder(self, row: Row[Any]) -> Mapping[str, str | None]:
        """The holder's name and code opened from the row's sealed values, remembered per process
        under those values as stored (checking.verdicts): an edited or moved value is a new key,
        opened (and refused) afresh."""
        key = (row.identifier, row.personal_sealed, row.holder_code_index)
        holder = self._holders.get(key)
        if holder is None:
            holder = open_holder(self.personal, row.identifier, row.personal_sealed, row.holder_code_index)
            self._holders.put(key, holder)
        return holder

    def _record_use(
        self, connection: Connection, use: dict[str, object], first: dict[str, object], replay: dict[str, object]
    ) -> bool:
        """Record the token as accepted (the primary key makes a second record fail, whichever worker
        or department tries) with the audit row for the outcome; true if this was the first use."""
        with chain_link(connection) as link:
            if self._postgresql:
                # Which of the two audit rows the statement writes is known after it: both are made
                # for the same place in the chain, and the one written is accepted.
                if link is not None:
                    first, replay = link.candidate("audit_event", first), link.candidate("audit_event", replay)
                extra = {"replay_detail_json": replay["detail_json"], "replay_chain_mac": replay["chain_mac"]}
                is_first = bool(connection.execute(_USE_AND_AUDIT, use | first | extra).scalar_one())
                if link is not None:
                    link.accept(first if is_first else replay)
                return is_first
            statement = sqlite_insert(_USES).values(**use).on_conflict_do_nothing().returning(_USES.c.nonce)
            inserted = connection.execute(statement)
            is_first = inserted.first() is not None
            audit = first if is_first else replay
            connection.execute(insert(_AUDIT).values(**(link.seal("audit_event", audit) if link else audit)))
            return is_first

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
