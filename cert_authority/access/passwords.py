"""Password logins shared by holders and department staff: argon2id hashes, and a throttle on
repeated failures, counted from the audit log (so it holds across workers).

The throttle is per account and client address: after FREE_FAILURES wrong passwords from one
address, that address waits 2, 4, 8... seconds (up to MAX_DELAY) between tries at that account.
Nobody can lock another person out by guessing from elsewhere, as a plain lockout after five
failures allowed (of any account, the administrator's included). An administrator can clear the
count (`ecas staff unlock`, `ecas holders unlock`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from cert_authority.actors import Actor
from cert_authority.errors import InvalidRequestError, TooManyAttemptsError
from cert_authority.store.audit import audit_row
from cert_authority.store.models import AuditEventRow
from cert_authority.timeutil import aware

MIN_PASSWORD = 8
FREE_FAILURES = 3  # per account and client address within WINDOW, before any wait
MAX_DELAY = dt.timedelta(minutes=15)
WINDOW = dt.timedelta(hours=1)


class PasswordGate:
    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime]) -> None:
        self.engine = engine
        self.clock = clock
        # OWASP's argon2id setting (19 MiB, 2 passes): the default 64 MiB lets a burst of logins
        # take gigabytes.
        self.hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        if len(password) < MIN_PASSWORD:
            raise InvalidRequestError(f"密码至少 {MIN_PASSWORD} 位")
        return self.hasher.hash(password)

    def check(
        self,
        actor: Actor,
        login: str,
        stored_hash: str | None,
        password: str,
        holder_code: str | None = None,
        client: str = "unknown",
    ) -> bool:
        """True when `password` matches. A failure is audited as login_failed against a hash of
        `login` (no ID number in the audit target), with the client address as the actor; while
        this address must wait, TooManyAttemptsError (audited as login_throttled)."""
        target = login_target(login)
        now = self.clock()
        tried_by = Actor(label=client[:40], role=actor.role)
        wait = self._wait(target, tried_by.label, now)
        if wait is not None:
            with Session(self.engine) as session:
                session.add(audit_row(tried_by, "login_throttled", target, now, holder_code=holder_code))
                session.commit()
            raise TooManyAttemptsError(f"密码错误次数过多，请 {_seconds(wait)} 秒后再试")
        try:
            # Without an account, hash anyway: the answer takes as long either way.
            self.hasher.verify(stored_hash or self._dummy, password)
            matched = stored_hash is not None
        except (VerificationError, InvalidHashError):
            matched = False
        if not matched:
            with Session(self.engine) as session:
                session.add(audit_row(tried_by, "login_failed", target, now, holder_code=holder_code))
                session.commit()
        return matched

    def unlock(self, actor: Actor, login: str) -> None:
        """Clear the failure count of `login` from every address (an administrator's decision)."""
        with Session(self.engine) as session:
            session.add(audit_row(actor, "login_unlocked", login_target(login), self.clock()))
            session.commit()

    def _wait(self, target: str, client: str, now: dt.datetime) -> dt.timedelta | None:
        """How long `client` must still wait before trying `target` again; None: it may try now."""
        with Session(self.engine) as session:
            unlocked = session.exec(
                select(func.max(AuditEventRow.at))
                .where(col(AuditEventRow.action) == "login_unlocked")
                .where(col(AuditEventRow.target) == target)
            ).one()
            since = max(now - WINDOW, aware(unlocked)) if unlocked else now - WINDOW
            count, last = session.exec(
                select(func.count(), func.max(AuditEventRow.at))
                .where(col(AuditEventRow.action) == "login_failed")
                .where(col(AuditEventRow.target) == target)
                .where(col(AuditEventRow.actor) == client)
                .where(col(AuditEventRow.at) > since)
            ).one()
        if count < FREE_FAILURES or last is None:
            return None
        delay = min(dt.timedelta(seconds=2 ** (count - FREE_FAILURES + 1)), MAX_DELAY)
        remaining = aware(last) + delay - now
        return remaining if remaining > dt.timedelta(0) else None


def login_target(login: str) -> str:
    return "login:" + hashlib.sha256(login.encode()).hexdigest()[:32]


def _seconds(wait: dt.timedelta) -> int:
    return max(1, int(wait.total_seconds() + 0.999))
