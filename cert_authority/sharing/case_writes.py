"""A case's writes as single PostgreSQL statements (data-modifying CTEs) on an autocommit
connection: one round trip instead of a transaction's BEGIN, statements and COMMIT, and no ORM unit
of work. What they write and check is what `cases` writes in a transaction on other databases.

Opening: the case's id is taken from its sequence first (the applicant's code is sealed to the row's
id, and the audit row names it), then the case, its materials and the audit row go in at once.

Closing (inside the close's transaction, which holds the case from its claim to its commit): the
claim (`claim_for_close`, on every database), then the audit row and the receipt's digest on the
case in one statement.

A reuse: lock the case row if it is still open (the same no-op UPDATE as the transaction's, so a
close running at the same time waits for it, or it for the close), claim the material if it is
still free, and only then add the use's audit row and the copy's link. Whether the case was open
and the material claimed comes back; when either did not happen nothing but the lock was written.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import CTE, Insert, Select, Table, Update, bindparam, func, insert, literal_column, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from cert_authority.store.chain import chain_link
from cert_authority.store.models import AuditEventRow, CaseMaterialRow, CaseRow, SharedFileRow

_CASES: Table = CaseRow.__table__  # type: ignore[attr-defined]
_MATERIALS: Table = CaseMaterialRow.__table__  # type: ignore[attr-defined]
_AUDIT: Table = AuditEventRow.__table__  # type: ignore[attr-defined]
_SHARED: Table = SharedFileRow.__table__  # type: ignore[attr-defined]
_OPEN: ColumnElement[str] = literal_column("'open'")  # literals in the SQL: a CTE's anonymous parameters get no values
_NEXT_ID = text("SELECT nextval(pg_get_serial_sequence('service_case', 'id'))")
CLAIM_COLUMNS = ("identifier", "licence_version", "licence_sm3", "basis", "reused_at", "reused_by", "disclosed_fields")


def reuse_at_once(
    connection: Connection,
    case_id: int,
    position: int,
    claim: dict[str, Any],
    shared: dict[str, Any],
    audit: dict[str, Any],
) -> tuple[bool, bool]:
    """(case open, material claimed) after one statement; the audit row and the link are written
    only with the claim. `claim` holds CLAIM_COLUMNS, `shared` the link's row, `audit` the audit
    row (chained here, and its place in the chain kept only if it was written)."""
    with chain_link(connection) as link:
        if link is not None:
            audit = link.candidate("audit_event", audit)
        parameters = (
            {"the_case": case_id, "the_position": position}  # not column names: see below
            | {f"claim_{name}": claim[name] for name in CLAIM_COLUMNS}
            | {f"audit_{name}": value for name, value in audit.items()}
            | {f"shared_{name}": value for name, value in shared.items()}
        )
        still_open, claimed = connection.execute(_reuse_statement(), parameters).one()
        if claimed and link is not None:
            link.accept(audit)
    return bool(still_open), bool(claimed)


@functools.cache
def _reuse_statement() -> Select[Any]:
    """WITH locked AS (UPDATE service_case … RETURNING id), claimed AS (UPDATE case_material … FROM
    locked … RETURNING case_id), INSERT audit_event … FROM claimed, INSERT shared_file … FROM claimed
    SELECT (count of locked), (count of claimed). No parameter is named as a column of a table it
    updates: SQLAlchemy would take it for that column's new value."""
    locked = (
        update(_CASES)
        .where(_CASES.c.id == bindparam("the_case"), _CASES.c.status == _OPEN)
        .values(status=_OPEN)
        .returning(_CASES.c.id)
        .cte("locked")
    )
    claimed = (
        update(_MATERIALS)
        .where(
            _MATERIALS.c.case_id == locked.c.id,
            _MATERIALS.c.position == bindparam("the_position"),
            _MATERIALS.c.identifier.is_(None),
        )
        .values({name: bindparam(f"claim_{name}", type_=_MATERIALS.c[name].type) for name in CLAIM_COLUMNS})
        .returning(_MATERIALS.c.case_id)
        .cte("claimed")
    )
    audit = _audit_insert(claimed)
    shared = insert(_SHARED).from_select(
        [c.name for c in _SHARED.c],
        select(*(bindparam(f"shared_{c.name}", type_=c.type) for c in _SHARED.c)).select_from(claimed),
    )
    counts = select(
        select(func.count()).select_from(locked).scalar_subquery(),
        select(func.count()).select_from(claimed).scalar_subquery(),
    )
    return counts.add_cte(audit.cte("new_audit"), shared.cte("new_link"))


def next_case_id(connection: Connection) -> int:
    """A new case's id, from the sequence its inserts would take it from."""
    return int(connection.execute(_NEXT_ID).scalar_one())


def open_at_once(
    connection: Connection, case: CaseRow, materials: Sequence[CaseMaterialRow], audit: AuditEventRow
) -> None:
    """The case (its id set), its materials and its audit row (chained here) in one statement."""
    with chain_link(connection) as link:
        audit_values = audit.model_dump(exclude={"id"})
        if link is not None:
            audit_values = link.seal("audit_event", audit_values)
        parameters = {f"sc_{name}": value for name, value in case.model_dump().items()}
        parameters |= {f"audit_{name}": value for name, value in audit_values.items()}
        for index, material in enumerate(materials):
            parameters |= {f"m{index}_{name}": getattr(material, name) for name in _MATERIAL_COLUMNS}
        connection.execute(_open_statement(len(materials)), parameters)


_MATERIAL_COLUMNS = ("position", "name", "type_code")


@functools.lru_cache(maxsize=16)
def _open_statement(materials: int) -> Select[Any]:
    """WITH new_case AS (INSERT service_case … RETURNING id), INSERT case_material … (one row per
    material, the case's id from new_case, so they follow it), INSERT audit_event … SELECT id FROM
    new_case. Parameters: sc_<column> (the case), m<n>_<column> (material n), audit_<column>."""
    case = (
        insert(_CASES)
        .values({c.name: bindparam(f"sc_{c.name}", type_=c.type) for c in _CASES.c})
        .returning(_CASES.c.id)
        .cte("new_case")
    )
    parts = [_audit_insert(case)]
    for index in range(materials):
        values = [
            case.c.id,
            *(bindparam(f"m{index}_{name}", type_=_MATERIALS.c[name].type) for name in _MATERIAL_COLUMNS),
        ]
        parts.append(insert(_MATERIALS).from_select(["case_id", *_MATERIAL_COLUMNS], select(*values)))
    return select(case.c.id).add_cte(*(part.cte(f"new_part_{n}") for n, part in enumerate(parts)))


def _audit_insert(source: CTE) -> Insert:
    """INSERT audit_event (every column but id) SELECT audit_<column>… FROM source: one row for
    each of source's rows."""
    columns = [c for c in _AUDIT.c if c.name != "id"]
    values = select(*(bindparam(f"audit_{c.name}", type_=c.type) for c in columns)).select_from(source)
    return insert(_AUDIT).from_select([c.name for c in columns], values)


def claim_for_close(
    connection: Connection, case_id: int, closed_at: dt.datetime, closed_by: str, department: str | None
) -> bool:
    """Mark the case closed if it is still open (and, with `department`, that department's): true if
    this call did. Of two closing at once, one claims; the other waits on the row, then finds it
    closed. A statement built once, run on the table (the ORM copies an UPDATE on every run)."""
    parameters = {"the_case": case_id, "closed_at": closed_at, "closed_by": closed_by}
    if department is None:
        return connection.execute(_CLAIM_ANY, parameters).rowcount == 1
    return connection.execute(_CLAIM_OWN, parameters | {"department": department}).rowcount == 1


_CLAIM_ANY = (
    update(_CASES)
    .where(_CASES.c.id == bindparam("the_case"), _CASES.c.status == "open")
    .values(status="closed", closed_at=bindparam("closed_at"), closed_by=bindparam("closed_by"))
)
_CLAIM_OWN = _CLAIM_ANY.where(_CASES.c.department_uscc == bindparam("department"))


def close_at_once(connection: Connection, case_id: int, receipt_sm3: str, audit: AuditEventRow) -> None:
    """The closed case's receipt digest and its audit row (chained here) in one statement, in the
    caller's transaction."""
    with chain_link(connection) as link:
        values = audit.model_dump(exclude={"id"})
        if link is not None:
            values = link.seal("audit_event", values)
        parameters = {"the_case": case_id, "the_receipt": receipt_sm3}
        parameters |= {f"audit_{name}": value for name, value in values.items()}
        connection.execute(_close_statement(), parameters)


@functools.cache
def _close_statement() -> Update:
    """WITH new_audit AS (INSERT audit_event …) UPDATE service_case SET receipt_sm3 … WHERE id …"""
    columns = [c for c in _AUDIT.c if c.name != "id"]
    audit = insert(_AUDIT).values({c.name: bindparam(f"audit_{c.name}", type_=c.type) for c in columns})
    return (
        update(_CASES)
        .where(_CASES.c.id == bindparam("the_case"))
        .values(receipt_sm3=bindparam("the_receipt", type_=_CASES.c.receipt_sm3.type))
        .add_cte(audit.cte("new_audit"))
    )
