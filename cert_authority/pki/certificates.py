"""The branch CA's `CertificateRegistry` on the database (SQLite or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from sqlalchemy import literal_column, text, update
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import Label
from sqlmodel import Session, col, select

from cert_authority.store.models import CrlRow, IssuedCertificateRow
from cert_authority.store.reading import reader
from keys.ca import CrlDraft, CrlNumbers, IssuedCertificate, StoredCrl, serial_on_record
from keys.crl import RevokedEntry
from keys.errors import CAError
from keys.x509 import Certificate

log = logging.getLogger("ecas.ca")
_CRL = CrlRow.__table__  # type: ignore[attr-defined]
_ISSUED = IssuedCertificateRow.__table__  # type: ignore[attr-defined]
_ALLOCATED_SQL = "(SELECT value FROM counter WHERE name = 'crl_number')"  # the last CRL number allocated
_ALLOCATED: Label[int] = literal_column(_ALLOCATED_SQL).label("allocated")
# How many certificates are revoked on record, and the one revoked last: the CRL served must list
# as many, and that one (an index on (revoked_at, serial) answers both).
_REVOKED_SQL = "(SELECT count(*) FROM issued_certificate WHERE revoked_at IS NOT NULL)"
_LAST_REVOKED_SQL = (
    "(SELECT serial FROM issued_certificate WHERE revoked_at IS NOT NULL ORDER BY revoked_at DESC, serial DESC LIMIT 1)"
)
_REVOKED: Label[int] = literal_column(_REVOKED_SQL).label("revoked")
_LAST_REVOKED: Label[str] = literal_column(_LAST_REVOKED_SQL).label("last_revoked")
# What a caller adds to a statement of its own to learn whether the CRL read last is still the
# newest and complete (`latest_crl(read=...)`): a verification reads them with the licence row.
CRL_NUMBERS: tuple[Label[int], Label[int], Label[int], Label[str]] = (
    literal_column("(SELECT max(number) FROM crl)").label("crl_newest"),
    literal_column(_ALLOCATED_SQL).label("crl_allocated"),
    literal_column(_REVOKED_SQL).label("crl_revoked"),
    literal_column(_LAST_REVOKED_SQL).label("crl_last_revoked"),
)


def _entries(rows: Iterable[Any]) -> list[RevokedEntry]:
    """The revocations on record as CRL entries. A row no CRL can carry (a serial that is not one,
    a reason that is not a CRLReason: edited in the database) must not stop every other revocation
    from being published: it is left out, or listed as unspecified, and logged."""
    entries = []
    for serial_text, at, reason in rows:
        serial = serial_on_record(serial_text)
        if serial is None:
            log.warning("revoked certificate %r on record is not a serial a CRL can list: left out", serial_text)
            continue
        try:
            entries.append(RevokedEntry(serial, _aware(at), reason or "unspecified"))
        except ValueError:
            log.warning("revoked certificate %X on record has reason %r: listed as unspecified", serial, reason)
            entries.append(RevokedEntry(serial, _aware(at), "unspecified"))
    return entries


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite returns naive datetimes; everything we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _record(row: IssuedCertificateRow) -> IssuedCertificate:
    return IssuedCertificate(
        certificate=Certificate.load(row.der),
        key_label=row.key_label,
        revoked_at=_aware(row.revoked_at) if row.revoked_at else None,
        reason=row.revocation_reason,
    )


class SqlCertificateRegistry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._latest: StoredCrl | None = None  # the newest CRL as last read

    def record_issued(self, certificate: Certificate, key_label: str | None) -> None:
        with Session(self.engine) as session:
            session.add(
                IssuedCertificateRow(
                    serial=certificate.serial_hex,
                    subject=certificate.subject_text,
                    uscc=certificate.uscc,
                    not_before=certificate.not_before,
                    not_after=certificate.not_after,
                    der=certificate.der,
                    key_label=key_label,
                )
            )
            session.commit()

    def find(self, serial: int) -> IssuedCertificate | None:
        with Session(self.engine) as session:
            row = session.get(IssuedCertificateRow, format(serial, "X"))
            return _record(row) if row else None

    def list_issued(self) -> list[IssuedCertificate]:
        with Session(self.engine) as session:
            rows = session.exec(select(IssuedCertificateRow).order_by(col(IssuedCertificateRow.not_before)))
            return [_record(row) for row in rows]

    def mark_revoked(self, serial: int, reason: str, when: dt.datetime) -> IssuedCertificate:
        key = format(serial, "X")
        with Session(self.engine) as session:
            # One conditional UPDATE: two concurrent revocations cannot both succeed.
            result = session.exec(
                update(IssuedCertificateRow)
                .where(col(IssuedCertificateRow.serial) == key)
                .where(col(IssuedCertificateRow.revoked_at).is_(None))
                .values(revoked_at=when, revocation_reason=reason)
            )
            session.commit()
            row = session.get(IssuedCertificateRow, key)
            if row is None:
                raise CAError(f"本分中心未签发序列号为 {key} 的证书")
            if result.rowcount != 1:
                raise CAError(f"证书 {key} 已于 {_aware(row.revoked_at).isoformat()} 吊销")  # type: ignore[arg-type]
            return _record(row)

    def latest_crl(self, read: CrlNumbers | None = None) -> StoredCrl | None:
        # Asked on every verification: the newest number (and the last one allocated) is read each
        # time, its DER only when it is not the one read last (a CRL of many revocations is large;
        # a stored CRL never changes, and its signature is checked by whoever uses it). When the
        # caller read the numbers (`read`, CRL_NUMBERS) and the newest is the one read last, no
        # statement at all.
        known = self._latest
        if read is not None and known is not None and read.newest == known.number:
            return replace(known, allocated=read.allocated, revoked=read.revoked, last_revoked=read.last_revoked)
        with reader(self.engine).connect() as connection:
            newest = connection.execute(
                sql_select(_CRL.c.number, _CRL.c.this_update, _CRL.c.next_update, _ALLOCATED, _REVOKED, _LAST_REVOKED)
                .order_by(_CRL.c.number.desc())
                .limit(1)
            ).first()
            if newest is None:
                return None
            known = self._latest
            if known is None or known.number != newest.number:
                der = connection.execute(sql_select(_CRL.c.der).where(_CRL.c.number == newest.number)).scalar_one()
                known = self._latest = StoredCrl(
                    number=newest.number,
                    this_update=_aware(newest.this_update),
                    next_update=_aware(newest.next_update),
                    der=der,
                )
            return replace(known, allocated=newest.allocated, revoked=newest.revoked, last_revoked=newest.last_revoked)

    def publish_crl(self, make: Callable[[CrlDraft], StoredCrl | None], floor: int = 0) -> StoredCrl:
        # The counter's row stays locked from the UPDATE to the commit: publishers take turns, and
        # what one reads after its UPDATE includes every revocation committed before it.
        with self.engine.begin() as connection:
            connection.execute(
                text("INSERT INTO counter (name, value) VALUES ('crl_number', 0) ON CONFLICT (name) DO NOTHING")
            )
            # UPDATE ... RETURNING is atomic on SQLite (>= 3.35) and PostgreSQL alike.
            taken = connection.execute(
                text("UPDATE counter SET value = value + 1 WHERE name = 'crl_number' RETURNING value")
            ).scalar_one()
            newest = connection.execute(
                sql_select(_CRL.c.number, _CRL.c.this_update, _CRL.c.next_update, _CRL.c.der)
                .order_by(_CRL.c.number.desc())
                .limit(1)
            ).first()
            number = max(int(taken), floor + 1, newest.number + 1 if newest else 1)
            if number != taken:  # a row planted above the counter, or the counter rewound or removed
                log.warning(
                    "CRL number %d was next, but CRL %d is stored or served: numbered %d", taken, number - 1, number
                )
                connection.execute(text("UPDATE counter SET value = :n WHERE name = 'crl_number'"), {"n": number})
            revoked = connection.execute(
                sql_select(_ISSUED.c.serial, _ISSUED.c.revoked_at, _ISSUED.c.revocation_reason).where(
                    _ISSUED.c.revoked_at.is_not(None)
                )
            )
            stored = None
            if newest is not None:
                stored = StoredCrl(newest.number, _aware(newest.this_update), _aware(newest.next_update), newest.der)
            crl = make(CrlDraft(number, _entries(revoked), stored))
            if crl is None:  # the newest will do: nothing allocated (a counter removed or rewound is mended)
                assert stored is not None
                connection.execute(
                    text("UPDATE counter SET value = :n WHERE name = 'crl_number'"), {"n": stored.number}
                )
                return stored
            row = {"number": crl.number, "this_update": crl.this_update, "next_update": crl.next_update, "der": crl.der}
            connection.execute(_CRL.insert().values(**row))
        return crl
