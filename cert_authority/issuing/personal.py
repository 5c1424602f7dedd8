"""A licence's personal data (holder name and code, face data) between its plain form, which
rendering, the record check and the API use, and its stored form (sealed, with a blind index of
the holder code; see store.personal). The associated data is the licence identifier, which never
changes and is unique, so a sealed value moved to another licence row does not open."""

from __future__ import annotations

from typing import Any

from cert_authority.errors import SealedDataError
from cert_authority.store.models import LicenceRow
from cert_authority.store.personal import PersonalData

TABLE = "licence"


def sealed_columns(personal: PersonalData, row: LicenceRow) -> dict[str, Any]:
    """The columns a licence with plain personal data is stored with: sealed, indexed, no plain text."""
    values = {"holder_name": row.holder_name, "holder_code": row.holder_code, "face_json": row.face_json}
    return {
        "holder_name": None,
        "holder_code": None,
        "face_json": None,
        "personal_sealed": personal.seal(values, table=TABLE, row=row.identifier),
        "holder_code_index": personal.index(row.holder_code),
    }


def stored_licence(personal: PersonalData, row: LicenceRow) -> LicenceRow:
    """A new LicenceRow to add to a session in place of `row`: its personal data sealed."""
    return LicenceRow(**(row.model_dump() | sealed_columns(personal, row)))


def open_licence(personal: PersonalData, row: LicenceRow) -> LicenceRow:
    """A copy of a stored row (never added to a session) with its personal data opened;
    SealedDataError when the sealed value was edited or comes from another licence, or the
    holder code's index is not the sealed code's."""
    values = personal.open(row.personal_sealed, table=TABLE, row=row.identifier)
    if personal.index(values["holder_code"]) != row.holder_code_index:  # the index moved, not the value
        raise SealedDataError(f"{TABLE} {row.identifier}：持证主体代码的索引与加密记录不符，记录可能被篡改")
    opened = row.model_dump() | {k: values[k] for k in ("holder_name", "holder_code", "face_json")}
    return LicenceRow(**opened)
