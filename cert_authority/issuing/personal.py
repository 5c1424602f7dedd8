"""A licence's personal data (holder name and code, face data) between its plain form, which
rendering, the record check and the API use, and its stored form (sealed, with a blind index of
the holder code; see store.personal). The associated data is the licence identifier, which never
changes and is unique, so a sealed value moved to another licence row does not open.

The holder's name and code (`personal_sealed`) and the face data (`face_sealed`) are sealed apart:
the show-token check, the busiest path, needs only the first, and SM4-GCM costs by the byte."""

from __future__ import annotations

from typing import Any

from cert_authority.errors import SealedDataError
from cert_authority.store.models import LicenceRow
from cert_authority.store.personal import PersonalData

TABLE = "licence"
FACE = "licence.face"  # the face data's "table" in the associated data: not interchangeable with the holder's


def sealed_columns(personal: PersonalData, row: LicenceRow) -> dict[str, Any]:
    """The columns a licence with plain personal data is stored with: sealed, indexed, no plain text."""
    return sealed_values(personal, row.identifier, row.holder_name, row.holder_code, row.face_json)


def sealed_values(
    personal: PersonalData, identifier: str, holder_name: str, holder_code: str, face_json: str
) -> dict[str, Any]:
    """As sealed_columns, from the values themselves (a row of a table, not an ORM object)."""
    return {
        "holder_name": None,
        "holder_code": None,
        "face_json": None,
        "personal_sealed": personal.seal(
            {"holder_name": holder_name, "holder_code": holder_code}, table=TABLE, row=identifier
        ),
        "face_sealed": personal.seal({"face_json": face_json}, table=FACE, row=identifier),
        "holder_code_index": personal.index(holder_code),
    }


def stored_licence(personal: PersonalData, row: LicenceRow) -> LicenceRow:
    """A new LicenceRow to add to a session in place of `row`: its personal data sealed."""
    return LicenceRow(**(row.model_dump() | sealed_columns(personal, row)))


def open_holder(personal: PersonalData, identifier: str, sealed: str | None, index: str | None) -> dict[str, str]:
    """The holder's name and code of a licence; SealedDataError when they were edited, come from
    another licence, or the holder code's index is not the sealed code's (the index moved)."""
    values: dict[str, str] = personal.open(sealed, table=TABLE, row=identifier)
    if personal.index(values["holder_code"]) != index:
        raise SealedDataError(f"{TABLE} {identifier}：持证主体代码的索引与加密记录不符，记录可能被篡改")
    return values


def open_licence(personal: PersonalData, row: LicenceRow) -> LicenceRow:
    """A copy of a stored row (never added to a session) with its personal data opened (see
    open_holder; the face data likewise)."""
    holder = open_holder(personal, row.identifier, row.personal_sealed, row.holder_code_index)
    face = personal.open(row.face_sealed, table=FACE, row=row.identifier)
    return LicenceRow(**(row.model_dump() | holder | face))
