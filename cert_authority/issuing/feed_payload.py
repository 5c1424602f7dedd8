"""What the change feed says about a licence version (the payload of its outbox event): the
GB/T 36903 metadata under its element codes, the status, the face data, and the SM3 digests of the
sealed files. The province keeps this as its record of the licence and checks it against the
sealed OFD (`issuing.binding.record_digest`), so it carries every bound field.

One function, so that anything the feed must add about a licence (a stock licence's marker, say)
is added here once, for every event."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cert_authority.issuing.records import metadata_36903
from cert_authority.store.models import ExchangeEventRow, LicenceRow
from cert_authority.store.outbox import outbox_values
from cert_authority.store.personal import PersonalData
from cert_authority.timeutil import aware


def licence_event_payload(row: LicenceRow, status: str | None = None) -> dict[str, Any]:
    """`row` with its personal data opened (issuing.personal.open_licence), or not yet sealed."""
    return {
        "metadata": metadata_36903(row, status or row.status),
        "serial": row.serial,
        "version": row.version,
        "template_version": row.template_version,
        "status": status or row.status,
        "status_reason": row.status_reason,
        "status_changed_at": aware(row.status_changed_at).isoformat(),
        "superseded_by": row.superseded_by,
        "face_data": json.loads(row.face_json),
        "files": {"pdf_sm3": row.pdf_sm3, "ofd_sm3": row.ofd_sm3, "photo_sm3": row.photo_sm3},
    }


def licence_outbox_values(kind: str, row: LicenceRow, at: dt.datetime, personal: PersonalData) -> dict[str, Any]:
    """The outbox row for a licence event (`kind`: licence.issued, .changed, .revoked, .cancelled),
    its payload sealed: it carries the holder and the face data."""
    return outbox_values(kind, row.identifier, licence_event_payload(row), at, personal=personal)


def licence_outbox_event(kind: str, row: LicenceRow, at: dt.datetime, personal: PersonalData) -> ExchangeEventRow:
    """The same, as a row for `session.add`."""
    return ExchangeEventRow(**licence_outbox_values(kind, row, at, personal))
