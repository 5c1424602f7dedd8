"""Province mode (省级电子证照库): the same software, its own data directory and database, holding the
licences every registered city pushes, and answering verification for any of them.

Receiving a batch, in this order, storing nothing unless every step passes:
    the city is registered here (403 city_not_registered) ─► the body's signature is by the city's
    registered service certificate (422 bad_signature) ─► the batch is well formed, every licence
    event complete (422) ─► the events follow on from what was acknowledged (409 sequence_gap,
    with `acked`) ─► ONE transaction: the events (the primary key (city, event_id) refuses a
    second copy: at-least-once delivery becomes exactly once), the licences they describe (an
    older event never overwrites a newer one), the city's CRL and `acked_seq`.

The sealed files follow the events (`receive_files`, signed the same way, by SM3, only files this
city's licences name): the receipt and the status list what is missing, so a pusher that died
between the two sends them on its next run. Until both files are here, verifying that licence is
INDETERMINATE (files_pending). Why not in the batch: docs/exchange.md (measured).

Personal data at rest, as in the city's own tables (issue 25, item 2; store.personal): a licence
event's payload carries the holder's name and code and the face data, so the province keeps it
only sealed with its own data key (SM4-GCM; the associated data names the table and the row's
identity: the city and event id for `province_event`, the identifier for `province_licence`), and
the holder code only as its blind index (HMAC-SM3) for equality look-ups. Seal and type events
carry nothing personal and stay plain JSON. A sealed payload that does not open, or whose holder
code does not match the row's index, makes verification INVALID (record_mismatch), never a guess.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from cert_authority.actors import Actor
from cert_authority.checking.licences import licence_status_check
from cert_authority.errors import (
    BatchSignatureError,
    CityNotRegisteredError,
    ConfigError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    SealedDataError,
    SequenceGapError,
    StoredFileError,
)
from cert_authority.exchange.feed import DaySummary, summarise_days
from cert_authority.exchange.signing import SignatureInvalid, check_body_signature
from cert_authority.exchange.wire import (
    KINDS,
    Batch,
    WireError,
    check_request,
    decode_batch,
    payload_text,
    peek_city,
)
from cert_authority.issuing.binding import RECORD_SM3, record_digest
from cert_authority.store.filestore import FileStore
from cert_authority.store.models import LicenceRow, ProvinceCityRow, ProvinceEventRow, ProvinceLicenceRow
from cert_authority.store.packing import PackedFiles
from cert_authority.store.personal import PersonalData
from cert_authority.timeutil import aware, utc_now
from keys.crl import Crl
from keys.errors import KeysError
from keys.sm2 import sm3
from keys.x509 import Certificate
from templates.identifier import LicenceIdentifier, mask_holder_code
from verification.ofd_file import inspect_ofd
from verification.report import Check, Report
from verification.sealed_file import verify_sealed_file
from verification.trust import TrustAnchors

log = logging.getLogger("ecas.province")

_EVENTS = ProvinceEventRow.__table__  # type: ignore[attr-defined]
_LICENCES = ProvinceLicenceRow.__table__  # type: ignore[attr-defined]
_CITIES = ProvinceCityRow.__table__  # type: ignore[attr-defined]
# Plain executemany (psycopg pipelines it): measured faster here than a multi-row VALUES statement
# (compiled afresh each time) or RETURNING's insertmanyvalues: 507 events in 0.39-0.46 s, against
# 2.6 s and 0.57-0.61 s.
_INSERT_EVENTS = insert(_EVENTS)
_INSERT_LICENCES = insert(_LICENCES)
EVENT_TABLE = "province_event"  # the tables named in a sealed payload's associated data
LICENCE_TABLE = "province_licence"


@dataclass(frozen=True)
class CityPublic:
    uscc: str
    name: str
    certificate_serial: str
    certificate_subject: str
    acked_seq: int
    registered_at: dt.datetime
    last_batch_at: dt.datetime | None
    issuer_areas: tuple[str, ...]  # the area-code prefixes of the issuers it may push licences for

    def to_dict(self) -> dict[str, Any]:
        return {
            "uscc": self.uscc,
            "name": self.name,
            "issuer_areas": list(self.issuer_areas),
            "certificate_serial": self.certificate_serial,
            "certificate_subject": self.certificate_subject,
            "acked_seq": self.acked_seq,
            "registered_at": self.registered_at.isoformat(),
            "last_batch_at": self.last_batch_at.isoformat() if self.last_batch_at else None,
        }


@dataclass(frozen=True)
class Receipt:
    accepted: int
    duplicates: int
    acked: int
    missing_files: list[str]  # SM3 names of sealed files the batch's licences need and the store lacks

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "acked": self.acked,
            "missing_files": self.missing_files,
        }


class ProvinceLibrary:
    def __init__(
        self,
        engine: Engine,
        filestore: FileStore,
        personal: PersonalData | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.filestore = filestore
        self.packed = PackedFiles(filestore, engine)  # a city sharing this store may have packed them
        self._personal_codec = personal  # None: only cities are registered or listed (no data key needed)
        self.clock = clock

    @property
    def personal(self) -> PersonalData:
        if self._personal_codec is None:
            raise ConfigError("省级库收存或核验证照需要个人信息数据密钥（ECAS_KEK）")
        return self._personal_codec

    # --- cities ---------------------------------------------------------------------------------
    def register_city(
        self, uscc: str, name: str, chain_pem: bytes, root: Certificate, issuer_areas: Sequence[str] = ()
    ) -> CityPublic:
        """`ecas cities add`: the city authority's service certificate and its branch CA (PEM, in
        one file), checked against the pinned provincial root and the city's code; `issuer_areas`:
        the area-code prefixes of the departments whose licences it may push (default: its own
        code's first four digits, the prefecture-level city)."""
        now = self.clock()
        areas = [area.strip() for area in issuer_areas if area.strip()]
        for area in areas:
            if not (area.isdigit() and len(area) in (2, 4, 6)):
                raise InvalidRequestError(f"行政区划代码前缀应为 2、4 或 6 位数字（省、市、县），收到 {area!r}")
        try:
            certificates = Certificate.load_all(chain_pem)
        except KeysError as exc:
            raise InvalidRequestError(f"证书文件无法读取：{exc}") from None
        service = next((c for c in certificates if c.uscc == uscc), None)
        if service is None:
            raise InvalidRequestError(f"证书文件中没有统一社会信用代码为 {uscc} 的服务证书")
        branch = next((c for c in certificates if c is not service and _issued(service, c, now)), None)
        if branch is None:
            raise InvalidRequestError("证书文件中缺少签发服务证书的分中心CA证书（请把两张证书放在同一个 PEM 文件中）")
        if not _issued(branch, root, now):
            raise InvalidRequestError("城市的分中心CA证书不是预置的省级根证书签发的（或已过期）")
        row = ProvinceCityRow(
            uscc=uscc,
            name=name,
            certificate_der=service.der,
            branch_der=branch.der,
            root_der=root.der,
            registered_at=now,
            issuer_areas=",".join(areas) or None,
        )
        with Session(self.engine) as session:
            if session.get(ProvinceCityRow, uscc) is not None:
                raise ConflictError(f"城市 {uscc} 已登记")
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                raise ConflictError(f"城市 {uscc} 已登记") from None
            session.refresh(row)
        log.info("city %s (%s) registered, service certificate %s", uscc, name, service.serial_hex)
        return _city_public(row)

    def list_cities(self) -> list[CityPublic]:
        with Session(self.engine) as session:
            rows = session.scalars(select(ProvinceCityRow).order_by(col(ProvinceCityRow.uscc))).all()
            return [_city_public(row) for row in rows]

    def _authenticate(self, body: bytes, signature: str | None) -> tuple[dict[str, Any], ProvinceCityRow]:
        """The request's JSON and its city, if registered (403) and the signature is its key's (422)."""
        try:
            value, city = peek_city(body)
        except WireError as exc:
            raise InvalidRequestError(str(exc)) from None
        with Session(self.engine) as session:
            row = session.get(ProvinceCityRow, city[:18])
        if row is None or row.uscc != city:
            log.warning("refused a request from unregistered city %s", city[:18])
            raise CityNotRegisteredError(f"城市 {city[:18]} 未在省级库登记，拒收")
        try:
            check_body_signature(signature, body, Certificate.load(row.certificate_der))
        except SignatureInvalid as exc:
            log.warning("refused a request from city %s: %s", city, exc)
            raise BatchSignatureError(str(exc)) from None
        return value, row

    # --- receiving ------------------------------------------------------------------------------
    def receive(self, body: bytes, signature: str | None) -> Receipt:
        value, city = self._authenticate(body, signature)
        try:
            batch = decode_batch(value)
        except WireError as exc:
            raise InvalidRequestError(str(exc)) from None
        crl = self._checked_crl(batch, city)
        fresh, duplicates = self._split(batch, city)
        states = _licence_states(city.uscc, fresh, issuer_areas(city))
        # Files first: an unreferenced file is harmless, a record without its file is not.
        if batch.files:
            self.filestore.put_many([(data, None) for data in batch.files.values()])
        missing = set()
        for values in states.values():
            absent = {name for name in (values["pdf_sm3"], values["ofd_sm3"]) if not self.packed.exists(name)}
            values["files_complete"] = not absent
            missing |= absent
        now = self.clock()
        acked = self._record(city, fresh, states, crl, now)
        log.info("city %s: %d events stored, %d duplicates, acked %d", city.uscc, len(fresh), duplicates, acked)
        return Receipt(len(fresh), duplicates, acked, sorted(missing))

    def receive_files(self, body: bytes, signature: str | None) -> dict[str, Any]:
        """Sealed files the city sends after their events, by SM3: only files this city's licences
        name are taken (the province stores nothing else), each checked against its name."""
        value, city = self._authenticate(body, signature)
        self._check_request(value)
        try:
            files = {name: base64.b64decode(data, validate=True) for name, data in dict(value["files"]).items()}
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise InvalidRequestError("files 应为 {SM3: base64} 对象") from None
        if any(sm3(data).hex() != name for name, data in files.items()):
            raise InvalidRequestError("文件内容与其 SM3 不符")
        names = list(files)
        with self.engine.connect() as connection:
            waiting = connection.execute(
                select(_LICENCES.c.identifier, _LICENCES.c.pdf_sm3, _LICENCES.c.ofd_sm3).where(
                    _LICENCES.c.city_uscc == city.uscc,
                    ~_LICENCES.c.files_complete,
                    or_(_LICENCES.c.pdf_sm3.in_(names), _LICENCES.c.ofd_sm3.in_(names)),
                )
            ).all()
        named = {row.pdf_sm3 for row in waiting} | {row.ofd_sm3 for row in waiting}
        unknown = set(names) - named
        if unknown:
            raise InvalidRequestError(f"{len(unknown)} 个文件不属于该城市待补文件的证照，拒收")
        self.filestore.put_many([(files[name], None) for name in names])
        complete = [
            row.identifier
            for row in waiting
            if self.packed.exists(row.pdf_sm3) and self.packed.exists(row.ofd_sm3)
        ]
        if complete:
            with self.engine.begin() as connection:
                connection.execute(
                    update(_LICENCES).where(_LICENCES.c.identifier.in_(complete)).values(files_complete=True)
                )
        return {"stored": len(names), "licences_complete": len(complete)}

    def missing_files(self, uscc: str, limit: int = 2000) -> list[str]:
        """SM3 names of sealed files this city's licences need and the store lacks."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(_LICENCES.c.pdf_sm3, _LICENCES.c.ofd_sm3)
                .where(_LICENCES.c.city_uscc == uscc, ~_LICENCES.c.files_complete)
                .limit(limit)
            ).all()
        return sorted({name for row in rows for name in row if not self.packed.exists(name)})

    def _checked_crl(self, batch: Batch, city: ProvinceCityRow) -> bytes | None:
        if batch.crl is None:
            return None
        try:
            crl = Crl.load(batch.crl)
        except KeysError as exc:
            raise InvalidRequestError(f"CRL 无法读取：{exc}") from None
        if not crl.signature_valid(Certificate.load(city.branch_der).public_key):
            raise BatchSignatureError("批次中的 CRL 不是该城市分中心CA签发的")
        if city.crl_der is not None and Crl.load(city.crl_der).this_update > crl.this_update:
            return None  # older than the one kept
        return batch.crl

    def _split(self, batch: Batch, city: ProvinceCityRow) -> tuple[list[Any], int]:
        """The events not yet here; a gap after what was acknowledged is a 409 with `acked`."""
        ids = [event.event_id for event in batch.events]
        with self.engine.connect() as connection:
            known = set(
                connection.execute(
                    select(_EVENTS.c.event_id).where(_EVENTS.c.city_uscc == city.uscc, _EVENTS.c.event_id.in_(ids))
                ).scalars()
            )
        fresh = [event for event in batch.events if event.event_id not in known]
        expected = city.acked_seq + 1
        for event in fresh:
            if event.seq > city.acked_seq:
                if event.seq != expected:
                    raise SequenceGapError(
                        f"批次不连续：省级库已确认到 {city.acked_seq}，收到 {event.seq}", city.acked_seq
                    )
                expected += 1
        return fresh, len(batch.events) - len(fresh)

    def _record(
        self,
        city: ProvinceCityRow,
        events: list[Any],
        states: dict[str, dict[str, Any]],
        crl: bytes | None,
        now: dt.datetime,
    ) -> int:
        acked = max([city.acked_seq, *(event.seq for event in events)])
        try:
            with self.engine.begin() as connection:
                moved = connection.execute(
                    update(_CITIES)
                    .where(_CITIES.c.uscc == city.uscc, _CITIES.c.acked_seq == city.acked_seq)
                    .values(acked_seq=acked, last_batch_at=now, **({"crl_der": crl} if crl else {}))
                ).rowcount
                if moved != 1:  # another delivery of this city moved on meanwhile: the city retries
                    raise _Moved()
                if events:
                    rows = [_event_row(self.personal, city.uscc, event, now) for event in events]
                    connection.execute(_INSERT_EVENTS, rows)
                _apply(connection, self.personal, city.uscc, states)
        except (_Moved, IntegrityError):
            current = self.acked(city.uscc)
            raise SequenceGapError(
                f"同一城市的另一批次刚被接收，省级库已确认到 {current}，请从此继续", current
            ) from None
        return acked

    def acked(self, uscc: str) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(_CITIES.c.acked_seq).where(_CITIES.c.uscc == uscc)).scalar_one())

    # --- signed reads -----------------------------------------------------------------------------
    def status(self, body: bytes, signature: str | None) -> dict[str, Any]:
        value, city = self._authenticate(body, signature)
        self._check_request(value)
        with self.engine.connect() as connection:
            count = connection.execute(
                select(func.count()).select_from(_EVENTS).where(_EVENTS.c.city_uscc == city.uscc)
            ).scalar_one()
        return {
            "city": city.uscc,
            "acked": city.acked_seq,
            "events": int(count),
            "missing_files": self.missing_files(city.uscc),
        }

    def days(self, body: bytes, signature: str | None) -> dict[str, Any]:
        """Per day the city's events' count and SM3; with `"events_of": DAY`, that day's event ids too."""
        value, city = self._authenticate(body, signature)
        self._check_request(value)
        try:
            first, last = dt.date.fromisoformat(value["from"]), dt.date.fromisoformat(value["to"])
        except (KeyError, TypeError, ValueError):
            raise InvalidRequestError("from、to 应为 YYYY-MM-DD 格式的日期") from None
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(
                    _EVENTS.c.day,
                    _EVENTS.c.seq,
                    _EVENTS.c.event_id,
                    _EVENTS.c.kind,
                    _EVENTS.c.subject,
                    _EVENTS.c.payload_json,
                )
                .where(_EVENTS.c.city_uscc == city.uscc, _EVENTS.c.day >= first, _EVENTS.c.day <= last)
                .order_by(_EVENTS.c.day, _EVENTS.c.seq)
            ).all()
        summaries: list[DaySummary] = summarise_days(
            [
                (row.day, row.seq, row.event_id, row.kind, row.subject, self._event_payload_text(city.uscc, row))
                for row in rows
            ]
        )
        answer: dict[str, Any] = {"city": city.uscc, "days": [s.to_dict() for s in summaries]}
        wanted = set(value.get("event_ids_of") or [])
        if wanted:
            answer["event_ids"] = {
                day: [row.event_id for row in rows if row.day.isoformat() == day] for day in sorted(wanted)
            }
        return answer

    def _event_payload_text(self, city: str, row: Any) -> str:
        """A stored event's payload as canonical JSON (what the day digests cover), opened if sealed."""
        if row.payload_json.startswith("{"):
            return str(row.payload_json)
        return payload_text(self.personal.open(row.payload_json, table=EVENT_TABLE, row=f"{city}/{row.event_id}"))

    def _check_request(self, value: dict[str, Any]) -> None:
        try:
            check_request(value, self.clock())
        except WireError as exc:
            raise InvalidRequestError(str(exc)) from None

    # --- verification -----------------------------------------------------------------------------
    def find(self, identifier: str) -> tuple[ProvinceLicenceRow, ProvinceCityRow] | None:
        with Session(self.engine) as session:
            row = session.get(ProvinceLicenceRow, identifier)
            if row is None:
                return None
            city = session.get(ProvinceCityRow, row.city_uscc)
            assert city is not None
            return row, city

    def verify_identifier(self, actor: Actor, text: str) -> Report | None:
        """The report for a licence some city pushed here, or None if no city did."""
        found = self.find(text)
        if found is None:
            return None
        row, city = found
        now = self.clock()
        subject: dict[str, Any] = {"kind": "identifier", "identifier": text, "source": "province", "city": city.uscc}
        if not row.files_complete:
            pending = Check.unknown(
                "record", "files_pending", "省级库已收到证照信息，盖章文件尚未从城市送达，暂无法核验"
            )
            return Report((pending, licence_status_check(row, now)), subject, checked_at=now)
        try:
            pdf = self.packed.get(row.pdf_sm3)
        except StoredFileError as exc:
            return Report((Check.invalid("record", "stored_file_damaged", str(exc)),), subject, checked_at=now)
        report, _ = verify_sealed_file(pdf, _anchors(city), now)
        try:
            record = _record_row(row, self.personal)
        except SealedDataError as exc:
            return Report((Check.invalid("record", "record_mismatch", str(exc)),), subject, checked_at=now)
        checks = [licence_status_check(row, now), self._binding(record, row)]
        subject |= {
            "name": record.name,
            "issuer_name": record.issuer_name,
            "issue_date": record.issue_date.isoformat(),
            "valid_until": record.valid_until.isoformat() if record.valid_until else None,
            "status": checks[0].reason if checks[0].reason != "ok" else "issued",
        }
        show_face = actor.role in ("admin", "auditor")  # the province's rule: its own staff
        if show_face:
            subject |= {
                "licence_number": record.licence_number,
                "holder_name": record.holder_name,
                "holder_code": mask_holder_code(record.holder_code),
            }
        report = Report(
            (Check.ok("identifier", "证照标识格式与校验位正确"), *report.checks),
            report.subject | subject,
            checked_at=now,
        )
        return report.with_checks(
            checks, subject=subject, face_data=json.loads(record.face_json) if show_face else None
        )

    def _binding(self, record: LicenceRow, row: ProvinceLicenceRow) -> Check:
        """The record the city pushed is the one sealed into the OFD (`issuing.binding`)."""
        try:
            inspection = inspect_ofd(self.packed.get(row.ofd_sm3))
        except StoredFileError as exc:
            return Check.invalid("record", "stored_file_damaged", str(exc))
        sealed = inspection.custom_data.get(RECORD_SM3)
        if sealed != record_digest(record):
            return Check.invalid("record", "record_mismatch", "省级库收到的登记信息与盖章文件中封存的摘要不符")
        return Check.ok("record", "登记信息与盖章文件一致")

    def licence_file(self, identifier: str, kind: str) -> bytes:
        found = self.find(identifier)
        if found is None:
            raise NotFoundError(f"省级库没有证照 {identifier}")
        row, _ = found
        if not row.files_complete:
            raise NotFoundError(f"证照 {identifier} 的盖章文件尚未从城市送达省级库")
        return self.packed.get(row.pdf_sm3 if kind == "pdf" else row.ofd_sm3)


class _Moved(Exception):
    pass


def _issued(certificate: Certificate, issuer: Certificate, now: dt.datetime) -> bool:
    try:
        certificate.check_issued_by(issuer, now)
    except KeysError:
        return False
    return True


def _city_public(row: ProvinceCityRow) -> CityPublic:
    certificate = Certificate.load(row.certificate_der)
    return CityPublic(
        row.uscc,
        row.name,
        certificate.serial_hex,
        certificate.subject_text,
        row.acked_seq,
        aware(row.registered_at),
        aware(row.last_batch_at) if row.last_batch_at else None,
        issuer_areas(row),
    )


def _anchors(city: ProvinceCityRow) -> TrustAnchors:
    crls = (Crl.load(city.crl_der),) if city.crl_der else ()
    return TrustAnchors((Certificate.load(city.root_der),), (Certificate.load(city.branch_der),), crls)


def _event_row(personal: PersonalData, city: str, event: Any, now: dt.datetime) -> dict[str, Any]:
    return {
        "city_uscc": city,
        "event_id": event.event_id,
        "seq": event.seq,
        "kind": event.kind,
        "subject": event.subject,
        "at": event.at.astimezone(dt.timezone.utc),
        "day": event.day,
        "payload_json": (
            personal.seal(event.payload, table=EVENT_TABLE, row=f"{city}/{event.event_id}")
            if event.kind in KINDS
            else payload_text(event.payload)
        ),
        "received_at": now,
    }


def issuer_areas(city: ProvinceCityRow) -> tuple[str, ...]:
    """The area-code prefixes the city's licence issuers must be registered in."""
    return tuple(city.issuer_areas.split(",")) if city.issuer_areas else (city.uscc[2:6],)


def _issuer_area(issuer_code: str) -> str:
    """Where an issuer is registered: digits 3-8 of its USCC, or the area code an issuer has instead."""
    return issuer_code if len(issuer_code) == 6 else issuer_code[2:8]


def _licence_states(city: str, events: list[Any], areas: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per licence version the state its latest licence event in `events` describes (checked here,
    before anything is stored: an incomplete event, or one for an issuer outside the city's areas,
    refuses the whole batch)."""
    states: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.kind not in KINDS:
            continue
        payload = event.payload
        try:
            metadata = payload["metadata"]
            identifier = metadata["ZZBS"]
            issuer = LicenceIdentifier.parse(identifier).issuer_code
            values = {
                "city_uscc": city,
                "type_code": metadata["ZZLXDM"],
                "issuer_code": metadata["ZZBFJGDM"],
                "holder_code": metadata["CZZTDM"],  # checked here; stored only as its blind index (_apply)
                "status": payload["status"],
                "status_reason": payload.get("status_reason"),
                "superseded_by": payload.get("superseded_by"),
                "valid_until": dt.date.fromisoformat(metadata["ZZYXQJZRQ"]) if metadata.get("ZZYXQJZRQ") else None,
                "pdf_sm3": payload["files"]["pdf_sm3"],
                "ofd_sm3": payload["files"]["ofd_sm3"],
                "payload": payload,
                "updated_seq": event.seq,
            }
        except (KeyError, TypeError, ValueError, KeysError) as exc:
            message = f"事件 {event.seq}（{event.kind}）的证照信息不完整：{type(exc).__name__} {exc}"
            raise InvalidRequestError(message) from None
        if identifier != event.subject:
            raise InvalidRequestError(f"事件 {event.seq} 的 subject 与证照标识不符")
        if values["issuer_code"] != issuer:
            raise InvalidRequestError(f"事件 {event.seq}：颁证单位代码 ZZBFJGDM 与证照标识中的颁证单位不符")
        if not _issuer_area(issuer).startswith(areas):
            raise InvalidRequestError(
                f"事件 {event.seq}：证照 {identifier} 的颁证单位 {issuer} 不在城市 {city} 登记的行政区划"
                f"（{'、'.join(areas)}）内，拒收"
            )
        if identifier not in states or states[identifier]["updated_seq"] < event.seq:
            states[identifier] = values
    return states


def sealed_licence_values(personal: PersonalData, identifier: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a licence's payload: sealed to its identifier, the holder code only as
    its blind index."""
    return {
        "holder_code": None,
        "holder_code_index": personal.index(payload["metadata"]["CZZTDM"]),
        "payload_json": personal.seal(payload, table=LICENCE_TABLE, row=identifier),
    }


def open_licence_payload(personal: PersonalData, row: Any) -> dict[str, Any]:
    """A stored licence's payload; SealedDataError when it was edited, moved from another licence,
    or its holder code is not the one the row's blind index names (the index moved)."""
    if row.holder_code is not None:  # from before 0017: `ecas data encrypt` has not sealed it yet
        raise SealedDataError(f"{LICENCE_TABLE} {row.identifier}：个人信息尚未加密，请先运行 ecas data encrypt")
    payload = personal.open(row.payload_json, table=LICENCE_TABLE, row=row.identifier)
    if personal.index(payload["metadata"]["CZZTDM"]) != row.holder_code_index:
        raise SealedDataError(f"{LICENCE_TABLE} {row.identifier}：持证主体代码的索引与加密记录不符，记录可能被篡改")
    return payload


def _apply(connection: Connection, personal: PersonalData, city: str, states: dict[str, dict[str, Any]]) -> None:
    """The licences as the events describe them, unless a later event described them already:
    one read, one multi-row INSERT and one batched UPDATE for the whole batch."""
    identifiers = list(states)
    current: dict[str, Any] = {}
    for start in range(0, len(identifiers), 500):
        rows = connection.execute(
            select(_LICENCES.c.identifier, _LICENCES.c.city_uscc, _LICENCES.c.updated_seq).where(
                _LICENCES.c.identifier.in_(identifiers[start : start + 500])
            )
        ).all()
        current.update({row.identifier: row for row in rows})
    new, changed = [], []
    for identifier, state in states.items():
        known = current.get(identifier)
        if known is not None and known.city_uscc != city:
            raise InvalidRequestError(f"证照 {identifier} 已由另一城市报送")
        if known is not None and known.updated_seq >= state["updated_seq"]:
            continue
        values = {k: v for k, v in state.items() if k != "payload"}
        values |= sealed_licence_values(personal, identifier, state["payload"])
        if known is None:
            new.append({"identifier": identifier, **values})
        else:
            changed.append({"key": identifier, **values})
    if new:
        connection.execute(_INSERT_LICENCES, new)
    if changed:
        connection.execute(update(_LICENCES).where(_LICENCES.c.identifier == bindparam("key")), changed)


def _record_row(row: ProvinceLicenceRow, personal: PersonalData) -> LicenceRow:
    """The pushed record as a (transient) LicenceRow: what `issuing.binding` digests and the status
    check reads."""
    payload = open_licence_payload(personal, row)
    metadata = payload["metadata"]
    return LicenceRow(
        identifier=metadata["ZZBS"],
        type_code=metadata["ZZLXDM"],
        serial=payload["serial"],
        version=payload["version"],
        name=metadata["ZZMC"],
        licence_number=metadata["ZZBH"],
        issuer_name=metadata["ZZBFJG"],
        issuer_code=metadata["ZZBFJGDM"],
        issuer_level=metadata["ZZBFJGJB"],
        department_id=0,
        issue_date=dt.date.fromisoformat(metadata["ZZBFRQ"]),
        holder_name=metadata["CZZT"],
        holder_code=metadata["CZZTDM"],
        holder_code_type=metadata["CZZTDMLX"],
        valid_from=dt.date.fromisoformat(metadata["ZZYXQQSRQ"]),
        valid_until=dt.date.fromisoformat(metadata["ZZYXQJZRQ"]) if metadata.get("ZZYXQJZRQ") else None,
        seal_id=0,
        seal_name=metadata["ZZQZMC"],
        sealed_by=metadata["ZZQZR"],
        sealed_at=dt.datetime.fromisoformat(metadata["ZZQZSJ"]),
        template_version=payload["template_version"],
        face_json=json.dumps(payload["face_data"], ensure_ascii=False, sort_keys=True),
        photo_sm3=payload["files"].get("photo_sm3"),
        origin=metadata.get("KZ_ZZLY") or "new",  # stock conversion (存量) marks; bound when not the default
        original_issuer_name=metadata.get("KZ_YBZJG"),
        pdf_sm3=row.pdf_sm3,
        ofd_sm3=row.ofd_sm3,
        status=row.status,
        status_reason=row.status_reason,
        status_changed_at=dt.datetime.fromisoformat(payload["status_changed_at"]),
        superseded_by=row.superseded_by,
        created_at=dt.datetime.fromisoformat(payload["status_changed_at"]),
        created_by="province",
    )
