"""Files this authority sealed that are not licences, recognised by their SM3 when a verified file
is no licence in the registry: a reuse receipt (材料复用清单) of a closed case, and an annotated copy
(加注件) made for a department's use of a licence. The same bytes are the document it issued; the
seal on them is checked by the caller as on any file."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from cert_authority.store.models import CaseRow, LicenceRow, SharedFileRow
from cert_authority.store.reading import reader
from cert_authority.timeutil import BEIJING, aware
from verification.report import Check


def reuse_receipt(engine: Engine, digest: str) -> tuple[Check, dict[str, Any]] | None:
    """The closed case whose receipt these bytes are: the case keeps the receipt's SM3."""
    with Session(reader(engine)) as session:
        case = session.exec(select(CaseRow).where(col(CaseRow.receipt_sm3) == digest)).first()
    if case is None or case.closed_at is None:
        return None
    subject: dict[str, Any] = {
        "kind": "reuse_receipt",
        "case": case.id,
        "matter": case.matter_code,
        "department": case.department_uscc,
        "case_number": case.case_number,
        "closed_at": aware(case.closed_at).isoformat(),
    }
    return Check.ok("status", f"本机构出具的材料复用清单（办件 {case.id}，事项 {case.matter_code}）"), subject


def annotated_copy(engine: Engine, digest: str) -> tuple[Check, dict[str, Any], LicenceRow | None] | None:
    """The use whose annotated copy these bytes are (the link keeps the copy's SM3 once made), and
    the licence copied as it is now (None if gone from the registry): the caller adds its status,
    for a copy is relied on as the licence."""
    with Session(reader(engine)) as session:
        shared = session.exec(select(SharedFileRow).where(col(SharedFileRow.file_sm3) == digest)).first()
        if shared is None:
            return None
        licence = session.exec(select(LicenceRow).where(col(LicenceRow.identifier) == shared.identifier)).first()
    used_at = aware(shared.used_at) if shared.used_at is not None else None
    subject: dict[str, Any] = {
        "kind": "annotated_copy",
        "identifier": shared.identifier,
        "name": licence.name if licence is not None else None,
        "department": shared.department_uscc,
        "cause": shared.cause,
        "used_at": used_at.isoformat() if used_at is not None else None,
    }
    when = f"，{used_at.astimezone(BEIJING):%Y-%m-%d %H:%M} 出具" if used_at else ""
    check = Check.ok("record", f"本机构出具的证照加注件：供部门 {shared.department_uscc} 用于「{shared.cause}」{when}")
    return check, subject, licence
