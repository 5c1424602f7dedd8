"""Audit events: who did what to which licence or seal, and when. Rows are added inside the same
transaction as the change they record, so there is never a change without its audit event (or the
reverse). Holder codes are personal data: only their masked form is ever written here or logged."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cert_authority.actors import Actor
from cert_authority.store.models import AuditEventRow
from templates.identifier import mask_holder_code


def audit_row(
    actor: Actor,
    action: str,
    target: str,
    at: dt.datetime,
    *,
    holder_code: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEventRow:
    return AuditEventRow(**audit_values(actor, action, target, at, holder_code=holder_code, detail=detail))


def audit_values(
    actor: Actor,
    action: str,
    target: str,
    at: dt.datetime,
    *,
    holder_code: str | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An audit row's columns but its id, chain columns empty, for a Core INSERT (no ORM object:
    the show-token check, the busiest path, writes one per call)."""
    return {
        "at": at,
        "actor": actor.label,
        "actor_role": actor.role,
        "actor_department": actor.department_uscc,
        "action": action,
        "target": target,
        "holder_code_masked": mask_holder_code(holder_code) if holder_code else None,
        "detail_json": json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else None,
        "chain_partition": None,
        "chain_seq": None,
        "chain_prev": None,
        "chain_mac": None,
    }
