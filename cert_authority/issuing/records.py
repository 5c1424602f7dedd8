"""Licence rows as the API shows them: the effective status (expiry is derived from the validity
dates when reading, never stored), the public model, the GB/T 36903 metadata, the masked summary."""

from __future__ import annotations

import datetime as dt
import json
from typing import Protocol

from sqlmodel import Session, col, select

from cert_authority.errors import NotFoundError
from cert_authority.issuing.schemas import (
    HolderPublic,
    IssuerPublic,
    LicenceFilesPublic,
    LicencePublic,
    LicenceSummary,
    SealingPublic,
)
from cert_authority.store.models import LicenceRow
from cert_authority.timeutil import aware
from templates.identifier import LicenceIdentifier, mask_holder_code


class StatusFields(Protocol):
    """What a licence's status is read from: a LicenceRow, or just these columns of it."""

    @property
    def status(self) -> str: ...
    @property
    def valid_until(self) -> dt.date | None: ...
    @property
    def superseded_by(self) -> str | None: ...
    @property
    def status_reason(self) -> str | None: ...


def effective_status(row: StatusFields, today: dt.date) -> str:
    """The stored status, except that a valid licence past its end date reads as expired."""
    if row.status == "issued" and row.valid_until is not None and today > row.valid_until:
        return "expired"
    return row.status


def metadata_36903(row: LicenceRow, status: str) -> dict[str, str | None]:
    """The licence's metadata under the GB/T 36903 element codes provincial platforms exchange."""
    return {
        "ZZMC": row.name,
        "ZZLXDM": row.type_code,
        "ZZBH": row.licence_number,
        "ZZBS": row.identifier,
        "ZZBFJG": row.issuer_name,
        "ZZBFJGDM": row.issuer_code,
        "ZZBFJGJB": row.issuer_level,
        "ZZBFRQ": row.issue_date.isoformat(),
        "CZZT": row.holder_name,
        "CZZTDM": row.holder_code,
        "CZZTDMLX": row.holder_code_type,
        "ZZYXQQSRQ": row.valid_from.isoformat(),
        "ZZYXQJZRQ": row.valid_until.isoformat() if row.valid_until else None,
        "ZZQZR": row.sealed_by,
        "ZZQZSJ": aware(row.sealed_at).isoformat(),
        "ZZQZMC": row.seal_name,
        "ZZZT": status,
        # ECAS extensions (not GB/T 36903 elements): where the licence comes from (new, stock,
        # paper_twin) and, for a converted licence from a merged department, the issuer it prints.
        "KZ_ZZLY": row.origin,
        "KZ_YBZJG": row.original_issuer_name,
    }


def licence_public(row: LicenceRow, today: dt.date) -> LicencePublic:
    status = effective_status(row, today)
    return LicencePublic(
        identifier=row.identifier,
        name=row.name,
        type_code=row.type_code,
        licence_number=row.licence_number,
        version=row.version,
        issuer=IssuerPublic(name=row.issuer_name, code=row.issuer_code, level=row.issuer_level),
        issue_date=row.issue_date,
        holder=HolderPublic(name=row.holder_name, code=row.holder_code, code_type=row.holder_code_type),
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        status=status,
        status_reason=row.status_reason,
        status_changed_at=aware(row.status_changed_at),
        superseded_by=row.superseded_by,
        seal=SealingPublic(
            seal_id=row.seal_id, seal_name=row.seal_name, sealed_by=row.sealed_by, sealed_at=aware(row.sealed_at)
        ),
        template_version=row.template_version,
        data=json.loads(row.face_json),
        photo_sm3=row.photo_sm3,
        files=LicenceFilesPublic(pdf=row.pdf_sm3, ofd=row.ofd_sm3, png=row.png_sm3),
        created_at=aware(row.created_at),
        created_by=row.created_by,
        metadata=metadata_36903(row, status),
        origin=row.origin,
        original_issuer_name=row.original_issuer_name,
    )


def licence_summary(row: LicenceRow, today: dt.date) -> LicenceSummary:
    return LicenceSummary(
        identifier=row.identifier,
        name=row.name,
        type_code=row.type_code,
        licence_number=row.licence_number,
        version=row.version,
        issuer_code=row.issuer_code,
        issuer_name=row.issuer_name,
        issue_date=row.issue_date,
        holder_name=row.holder_name,
        holder_code=mask_holder_code(row.holder_code),
        holder_code_type=row.holder_code_type,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        status=effective_status(row, today),
        origin=row.origin,
    )


def find_licence(session: Session, identifier: str) -> LicenceRow:
    """The licence version with this identifier; NotFoundError (404) otherwise, and a clear 422
    when the identifier itself is malformed (wrong check character...)."""
    row = session.exec(select(LicenceRow).where(col(LicenceRow.identifier) == identifier)).first()
    if row is None:
        LicenceIdentifier.parse(identifier)  # a malformed identifier is InvalidCodeError (422), not 404
        raise NotFoundError(f"没有证照标识为 {identifier} 的证照")
    return row
