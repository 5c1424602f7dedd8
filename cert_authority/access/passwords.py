"""Password logins shared by holders and department staff: argon2id hashes, and a lockout after
repeated failures, counted from the audit log (so it holds across workers)."""

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

MIN_PASSWORD = 8
MAX_FAILED_LOGINS = 5  # per login name within LOCKOUT_WINDOW
LOCKOUT_WINDOW = dt.timedelta(minutes=15)


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
        self, actor: Actor, login: str, stored_hash: str | None, password: str, holder_code: str | None = None
    ) -> bool:
        """True when `password` matches. A failure is audited as login_failed against a hash of
        `login` (no ID number in the audit target); too many failures raise TooManyAttemptsError."""
        target = "login:" + hashlib.sha256(login.encode()).hexdigest()[:32]
        now = self.clock()
        with Session(self.engine) as session:
            failures = session.exec(
                select(func.count())
                .select_from(AuditEventRow)
                .where(col(AuditEventRow.action) == "login_failed")
                .where(col(AuditEventRow.target) == target)
                .where(col(AuditEventRow.at) >= now - LOCKOUT_WINDOW)
            ).one()
        if failures >= MAX_FAILED_LOGINS:
            raise TooManyAttemptsError(f"登录失败次数过多，请 {LOCKOUT_WINDOW.seconds // 60} 分钟后再试")
        try:
            # Without an account, hash anyway: the answer takes as long either way.
            self.hasher.verify(stored_hash or self._dummy, password)
            matched = stored_hash is not None
        except (VerificationError, InvalidHashError):
            matched = False
        if not matched:
            with Session(self.engine) as session:
                session.add(audit_row(actor, "login_failed", target, now, holder_code=holder_code))
                session.commit()
        return matched
