"""Verifying a licence for anyone who holds it: an uploaded sealed PDF or OFD, or an identifier.

`verification` checks the file itself and the trust chain (with this authority's root, branch CA
and current CRL as anchors); here the registry adds what only it knows:

- status: the licence is current, or superseded (变更), revoked (吊销), cancelled (注销), expired;
- record: the record is the one sealed into the OFD (its digest, `issuing.binding`) and the face
  data are exactly what the sealed page shows, so a record edited in the database is caught too;
- log: the record is what the transparency log recorded, under a signed head (`checking.logged`);
- a file that verifies but is not a licence issued here (a department's own sealed document, or a
  licence re-sealed after a change of its content) is INDETERMINATE: not a registered licence;
  a reuse receipt (材料复用清单) this authority sealed when closing a case is VALID, as what it is.

Face data are returned with a VALID file (whoever uploads the file sees them anyway); for an
identifier only to those who may read the licence (admins, auditors, its issuer): others get the
verdict, which is what a counter needs before asking the holder to share the data.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Select, bindparam, or_, true
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine, Row

from cert_authority.actors import Actor
from cert_authority.checking.issued_documents import annotated_copy, reuse_receipt
from cert_authority.checking.logged import ENDINGS, log_check
from cert_authority.checking.verdicts import Remembered
from cert_authority.errors import SealedDataError, StoredFileError
from cert_authority.issuing.binding import RecordBinding
from cert_authority.issuing.layouts import LicenceLayouts
from cert_authority.issuing.personal import open_licence
from cert_authority.issuing.records import StatusFields, effective_status
from cert_authority.pki.certificates import CRL_NUMBERS
from cert_authority.pki.service import PkiService
from cert_authority.store.filestore import FileStore
from cert_authority.store.models import LicenceRow, PackedFileRow
from cert_authority.store.packing import PackedFiles
from cert_authority.store.personal import PersonalData
from cert_authority.store.reading import reader
from cert_authority.timeutil import local_date, utc_now
from cert_authority.transparency.log import LATEST_HEAD, TransparencyLog, log_state_of
from keys.ca import CrlNumbers
from keys.crl import Crl
from keys.errors import CheckCharacterError, InvalidCodeError
from keys.sm2 import sm3
from templates.identifier import LicenceIdentifier, mask_holder_code
from verification.report import Check, Report, Status
from verification.sealed_file import verify_sealed_file
from verification.trust import TrustAnchors

log = logging.getLogger("ecas.verification")

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
_STATUS_MESSAGES = {
    "superseded": "证照已变更，此版本已被 {superseded_by} 取代",
    "revoked": "证照已被吊销：{reason}",
    "cancelled": "证照已注销：{reason}",
    "expired": "证照已超过有效期（至 {valid_until}）",
}


UNREADABLE_RECORD = Check.invalid("record", "record_mismatch", "登记记录中的加密个人信息无法解密：登记记录可能被篡改")


class VerificationService:
    def __init__(
        self,
        engine: Engine,
        filestore: FileStore,
        pki: PkiService,
        layouts: LicenceLayouts,
        log: TransparencyLog,
        personal: PersonalData,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.filestore = filestore
        self.packed = PackedFiles(filestore, engine)  # licence files may be stored packed
        self.pki = pki
        self.layouts = layouts
        self.log = log
        self.personal = personal
        self.clock = clock
        self.binding = RecordBinding(filestore, layouts)
        # The expensive, deterministic parts of a verification, keyed on all their inputs (see
        # checking.verdicts): a sealed file's checks by (file SM3, anchors), a record's opened
        # (decrypted) row by the stored row's columns, its log check by those and the log's state.
        self._anchors: Remembered[TrustAnchors] = Remembered()
        self._file_checks: Remembered[Report] = Remembered()
        self._records: Remembered[LicenceRow] = Remembered()
        self._logged: Remembered[Check] = Remembered()

    def anchors(self, now: dt.datetime) -> TrustAnchors:
        return self._anchors_keyed(now)[1]

    def _anchors_keyed(self, now: dt.datetime, crl_read: CrlNumbers | None = None) -> tuple[bytes, TrustAnchors]:
        """The trust anchors and a key naming them: the SM3 of root, branch CA and current CRL as
        stored (read every time, the CRL's numbers possibly with the caller's row: `crl_read`;
        parsed once per distinct set)."""
        crl = self.pki.current_crl(now, crl_read)
        root, branch = self.pki.root_path.read_bytes(), self.pki.branch_path.read_bytes()
        key = sm3(b"".join(sm3(part) for part in (root, branch, crl)))
        anchors = self._anchors.get(key)
        if anchors is None:
            anchors = TrustAnchors((self.pki.root_certificate(),), (self.pki.branch_certificate(),), (Crl.load(crl),))
            self._anchors.put(key, anchors)
        return key, anchors

    def _sealed_file(
        self,
        digest: str,
        now: dt.datetime,
        data: bytes | None = None,
        *,
        intact: bool = False,
        crl_read: CrlNumbers | None = None,
    ) -> Report:
        """verify_sealed_file, remembered while VALID for the same file and anchors; the report's
        time is this check's. Without `data` the file is the stored one: checked intact in the store
        every time (`intact`: the caller just did), read whole only when its report is not
        remembered (StoredFileError if missing or damaged)."""
        anchors_key, anchors = self._anchors_keyed(now, crl_read)
        key = (digest, anchors_key)
        report = self._file_checks.get(key)
        if report is not None:
            if data is None and not intact:
                self.packed.check_intact(digest)
            return Report(report.checks, dict(report.subject), checked_at=now)
        if data is None:
            data = self.packed.get(digest)  # the store checked the bytes are that SM3
        report, _ = verify_sealed_file(data, anchors, now)
        if report.result is Status.VALID:
            self._file_checks.put(key, report)
        return report

    # --- a file -------------------------------------------------------------------------------
    def verify_file(self, data: bytes) -> Report:
        now = self.clock()
        if len(data) > MAX_UPLOAD_BYTES:
            too_large = Check.invalid("file", "file_too_large", f"文件过大（上限 {MAX_UPLOAD_BYTES // 1048576} MB）")
            return Report((too_large,), {"kind": "file"}, checked_at=now)
        digest = sm3(data).hex()
        row = self._stored_row(_BY_FILE, {"digest": digest})
        report = self._sealed_file(digest, now, data, crl_read=None if row is None else _crl_read(row))
        if report.result is Status.INVALID:
            return report
        if row is None:
            receipt = reuse_receipt(self.engine, digest)
            if receipt is not None:
                return report.with_checks([receipt[0]], subject=receipt[1])
            copy = annotated_copy(self.engine, digest)
            if copy is not None:
                check, subject, licence = copy
                status = (
                    Check.invalid("status", "not_found", f"本机构已没有证照 {subject['identifier']}")
                    if licence is None
                    else licence_status_check(licence, now)
                )
                return report.with_checks([check, status], subject=subject)
            unknown = Check.unknown(
                "status",
                "not_in_registry",
                "签章有效，但不是本机构登记的证照文件（可能是其他盖章文件，或内容改动后重新盖章）",
            )
            return report.with_checks([unknown])
        return self._with_record(report, row, now, show_face=True, intact=self._intact(row, [row.ofd_sm3]))

    # --- an identifier ------------------------------------------------------------------------
    def verify_identifier(self, actor: Actor, text: str) -> Report:
        now = self.clock()
        subject = {"kind": "identifier", "identifier": text}
        try:
            LicenceIdentifier.parse(text)
        except CheckCharacterError as exc:
            return Report((Check.invalid("identifier", "bad_check_character", str(exc)),), subject, checked_at=now)
        except InvalidCodeError as exc:
            return Report((Check.invalid("identifier", "malformed_identifier", str(exc)),), subject, checked_at=now)
        row = self._stored_row(_BY_IDENTIFIER, {"identifier": text})
        if row is None:
            missing = Check.invalid("identifier", "not_found", f"证照标识格式正确，但本机构没有证照 {text}")
            return Report((missing,), subject, checked_at=now)
        intact = self._intact(row, [row.pdf_sm3, row.ofd_sm3])
        try:
            report = self._sealed_file(row.pdf_sm3, now, intact=intact, crl_read=_crl_read(row))
        except StoredFileError as exc:
            return Report((Check.invalid("record", "stored_file_damaged", str(exc)),), subject, checked_at=now)
        report = Report(
            (Check.ok("identifier", "证照标识格式与校验位正确"), *report.checks),
            report.subject | subject,
            checked_at=now,
        )
        return self._with_record(report, row, now, show_face=_may_see_face(actor, row), intact=intact)

    # --- what the registry adds ---------------------------------------------------------------
    def _stored_row(self, query: Select[Any], parameters: dict[str, str]) -> Row[Any] | None:
        """The licence row as stored, every column, its files' manifest names and the CRL's numbers
        (`CRL_NUMBERS`), in one query without the ORM: a remembered record needs only its columns
        as a key."""
        with reader(self.engine).connect() as connection:
            return connection.execute(query, parameters).first()

    def _intact(self, row: Row[Any], digests: list[str]) -> bool:
        """Whether these stored files of the licence are there and undamaged, checked in one read
        (their manifests, named in the row). If not, each file's own check says which and how."""
        manifests = {row.pdf_sm3: row.pdf_manifest, row.ofd_sm3: row.ofd_manifest}
        try:
            self.packed.check_all_intact(digests, {digest: manifests[digest] for digest in digests})
        except StoredFileError:
            return False
        return True

    def _with_record(
        self, report: Report, stored: Row[Any], now: dt.datetime, show_face: bool, *, intact: bool = False
    ) -> Report:
        key = tuple(stored[:_KEYED_COLUMNS])  # the row as stored, every column, its files' manifest names
        row = self._records.get(key)
        if row is None:
            try:
                columns = {name: stored._mapping[name] for name in _LICENCE_COLUMNS}
                row = open_licence(self.personal, LicenceRow(**columns))
            except SealedDataError as exc:  # edited or moved in the database: the record binds nothing
                log.error("licence %s: %s", stored.identifier, exc)
                return report.with_checks([licence_status_check(stored, now), UNREADABLE_RECORD])
            self._records.put(key, row)
        # The binding reads the stored OFD and checks its digest every time, unless the caller just
        # did (`intact`; its comparison with the record is remembered per record content).
        bound = self.binding.check(row, intact=intact)
        checks = [licence_status_check(row, now), bound, self._log_check(key, stored, row, now)]
        subject = {
            "identifier": row.identifier,
            "name": row.name,
            "issuer_name": row.issuer_name,
            "issue_date": row.issue_date.isoformat(),
            "valid_until": row.valid_until.isoformat() if row.valid_until else None,
            "status": effective_status(row, local_date(now)),
        }
        if row.origin != "new":  # a converted paper licence prints its own issuer and dates
            subject |= {"origin": row.origin, "original_issuer_name": row.original_issuer_name}
        if show_face:  # who holds it is personal data too: not for anyone who can guess an identifier
            subject |= {
                "licence_number": row.licence_number,
                "holder_name": row.holder_name,
                "holder_code": mask_holder_code(row.holder_code),
            }
        face = json.loads(row.face_json) if show_face else None
        verified = report.with_checks(checks, subject=subject, face_data=face)
        log.info("verified %s: %s (%s)", row.identifier, verified.result.value, verified.reason)
        return verified

    def _log_check(self, key: tuple[Any, ...], stored: Row[Any], row: LicenceRow, now: dt.datetime) -> Check:
        """The log check, remembered while VALID under the stored row and the log's state for it
        (`log_state_of`, read with the row): a new event, head or edited head is a new key. Kept
        under the state the check itself read, not the one read with the row: the log may change
        between the two reads (and the check may sequence the licence's queued leaves)."""
        logged = self._logged.get((key, tuple(stored._mapping[name] for name in _LOG_STATE)))
        if logged is None:
            logged, read = log_check(self.log, row, now, self.personal)
            if logged.status is Status.VALID:
                self._logged.put((key, read), logged)
        return logged


_LICENCE = LicenceRow.__table__  # type: ignore[attr-defined]
_LICENCE_COLUMNS = tuple(column.name for column in _LICENCE.columns)
_KEYED_COLUMNS = len(_LICENCE_COLUMNS) + 2  # with the manifest names; not the CRL's numbers or the log's state
_PDF_PACKED = PackedFileRow.__table__.alias("pdf_packed")  # type: ignore[attr-defined]
_OFD_PACKED = PackedFileRow.__table__.alias("ofd_packed")  # type: ignore[attr-defined]
_LOG_STATE_COLUMNS = log_state_of(_LICENCE.c.identifier, ENDINGS)
_LOG_STATE = tuple(column.name for column in _LOG_STATE_COLUMNS)
_STORED_ROW: Select[Any] = sql_select(
    _LICENCE,
    _PDF_PACKED.c.manifest_sm3.label("pdf_manifest"),
    _OFD_PACKED.c.manifest_sm3.label("ofd_manifest"),
    *CRL_NUMBERS,
    *_LOG_STATE_COLUMNS,
).select_from(
    _LICENCE.outerjoin(_PDF_PACKED, _PDF_PACKED.c.sm3 == _LICENCE.c.pdf_sm3)
    .outerjoin(_OFD_PACKED, _OFD_PACKED.c.sm3 == _LICENCE.c.ofd_sm3)
    .outerjoin(LATEST_HEAD, true())
)

# Built once with bound parameters: a statement built per call paid for its expressions and for
# walking it to find its cache key, on every verification.
_BY_IDENTIFIER = _STORED_ROW.where(_LICENCE.c.identifier == bindparam("identifier"))
_BY_FILE = _STORED_ROW.where(or_(_LICENCE.c.pdf_sm3 == bindparam("digest"), _LICENCE.c.ofd_sm3 == bindparam("digest")))


def _crl_read(row: Row[Any]) -> CrlNumbers:
    return CrlNumbers(row.crl_newest, row.crl_allocated, row.crl_revoked, row.crl_last_revoked)


def licence_status_check(row: StatusFields, now: dt.datetime) -> Check:
    """The licence's status in the registry on the issuer's calendar day."""
    status = effective_status(row, local_date(now))
    if status == "issued":
        return Check.ok("status", "证照在有效期内，状态正常")
    message = _STATUS_MESSAGES[status].format(
        superseded_by=row.superseded_by, reason=row.status_reason or "未说明原因", valid_until=row.valid_until
    )
    return Check.invalid("status", status, message)


def _may_see_face(actor: Actor, row: Row[Any]) -> bool:
    if actor.role in ("admin", "auditor"):
        return True
    return actor.role == "issuer" and actor.department_uscc == row.issuer_code
