"""Refused API calls (401, 403) in the audit log: who (when known) tried what, and why it was
refused. A failure to write the record never changes the answer the caller gets."""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from cert_authority.actors import Actor
from cert_authority.store.audit import audit_row
from cert_authority.timeutil import utc_now

log = logging.getLogger("ecas.audit")
UNKNOWN_CALLER = Actor(label="anonymous", role="none")


def record_denial(engine: Engine, actor: Actor | None, method: str, path: str, status: int, error: str) -> None:
    target = f"{method} {path}"[:120]  # the path is the caller's: kept short
    row = audit_row(actor or UNKNOWN_CALLER, "denied", target, utc_now(), detail={"status": status, "error": error})
    try:
        with Session(engine) as session:
            session.add(row)
            session.commit()
    except SQLAlchemyError as exc:
        log.error("could not record a refused call to %r: %s", target, type(exc).__name__)
