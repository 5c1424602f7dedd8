"""The record a licence's sealed file binds (issue 21, part 3).

At issue, the SM3 of the record's canonical form (every field the licence shows, and every field
that decides who may show or use it: the holder's name and code above all) is sealed into the OFD
as a DocInfo CustomData. Whoever edits the record in the database afterwards (a holder code, a
name, a key added to the face data) cannot make it match the sealed digest again. The check also
compares the texts of the sealed page with the record laid out again, so a record from before the
digest existed is still checked as far as its page shows it.

The outcome is remembered per record content (reading the OFD and laying the page out again are
most of a verification's CPU): any change to the record is a new key and is checked afresh."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Any

from cert_authority.errors import RecordMismatchError, StoredFileError
from cert_authority.issuing.layouts import LicenceLayouts
from cert_authority.store.filestore import FileStore
from cert_authority.store.models import LicenceRow
from cert_authority.store.packing import NOT_READ, NotRead, PackedFiles
from keys.sm2 import sm3
from verification.ofd_file import inspect_ofd
from verification.report import Check, Status

log = logging.getLogger("ecas.records")
RECORD_SM3 = "ECAS.RecordSM3"  # the CustomData's name in OFD.xml
BOUND_FIELDS = (
    "identifier",
    "type_code",
    "serial",
    "version",
    "name",
    "licence_number",
    "issuer_name",
    "issuer_code",
    "issuer_level",
    "issue_date",
    "holder_name",
    "holder_code",
    "holder_code_type",
    "valid_from",
    "valid_until",
    "seal_name",
    "sealed_by",
    "template_version",
    "face_json",
    "photo_sm3",
)
# Bound since stock conversion (存量) came: in the canonical form only when not their default, so
# the digests sealed into licences issued before stay right, and an edit either way (a new
# licence marked stock, a stock licence marked new, an original issuer added) changes it.
BOUND_UNLESS_DEFAULT = {"origin": "new", "original_issuer_name": None}
CHECKS_KEPT = 10_000


def record_digest(row: LicenceRow) -> str:
    """SM3 (hex) of the bound fields as canonical JSON: sorted keys, dates in ISO form, face data
    as the object it stores (not its text, so key order or spacing do not matter)."""
    bound: dict[str, Any] = {name: getattr(row, name) for name in BOUND_FIELDS}
    bound |= {name: value for name, default in BOUND_UNLESS_DEFAULT.items() if (value := getattr(row, name)) != default}
    bound["face_json"] = json.loads(row.face_json)
    canonical = json.dumps(bound, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=_iso)
    return sm3(canonical.encode()).hex()


def sealed_custom_data(row: LicenceRow) -> Mapping[str, str]:
    """What issuance seals into the OFD for `row`."""
    return {RECORD_SM3: record_digest(row)}


def _iso(value: object) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


class RecordBinding:
    def __init__(self, filestore: FileStore, layouts: LicenceLayouts) -> None:
        self.filestore = filestore
        self.packed = PackedFiles(filestore, layouts.registry.engine)  # licence files may be stored packed
        self.layouts = layouts
        self._checks: dict[str, Check] = {}  # the record as JSON -> outcome of _compare

    def check(self, row: LicenceRow, manifest: str | NotRead | None = NOT_READ, *, intact: bool = False) -> Check:
        """The record against its stored, sealed OFD: `record` VALID, or INVALID record_mismatch
        (or stored_file_damaged). The stored OFD is checked to be intact every time, unless the
        caller just did (`intact`), and read whole only when this record has not been compared
        with it yet; `manifest`: the name of the OFD's manifest, if the caller read it with the
        record (`PackedFiles.check_intact`)."""
        key = json.dumps(row.model_dump(mode="json"), sort_keys=True)
        check = self._checks.get(key)
        try:
            if check is not None:
                if not intact:
                    self.packed.check_intact(row.ofd_sm3, manifest)
                return check
            ofd = self.packed.get(row.ofd_sm3)
        except StoredFileError as exc:
            return Check.invalid("record", "stored_file_damaged", str(exc))
        check = self._compare(row, ofd)
        if len(self._checks) >= CHECKS_KEPT:
            self._checks.clear()  # simply start again: a bound, not an eviction policy
        self._checks[key] = check
        return check

    def ensure(self, row: LicenceRow, manifest: str | NotRead | None = NOT_READ) -> None:
        """Raise RecordMismatchError unless the record is the one its file binds (before a licence
        is shown or handed out: a holder code edited in the database must not let another show it)."""
        check = self.check(row, manifest=manifest)
        if check.status is not Status.VALID:
            log.error("licence %s: %s (%s)", row.identifier, check.reason, check.message)
            raise RecordMismatchError("证照登记记录与盖章文件不一致，暂不能使用，请联系发证部门核查")

    def _compare(self, row: LicenceRow, ofd: bytes) -> Check:
        try:
            sealed = inspect_ofd(ofd)
            expected = tuple(run.text for run in self.layouts.of_record(row).runs)
        except StoredFileError as exc:
            return Check.invalid("record", "stored_file_damaged", str(exc))
        if any(c.status is not Status.VALID for c in sealed.checks):
            return Check.invalid("record", "stored_file_damaged", "存档的 OFD 文件无法通过校验")
        mismatch = Check.invalid("record", "record_mismatch", "登记的证照信息与盖章文件不一致：登记记录可能被篡改")
        sealed_digest = sealed.custom_data.get(RECORD_SM3)
        if sealed_digest is not None and sealed_digest != record_digest(row):
            return mismatch
        if sealed.texts != expected:
            return mismatch
        if sealed_digest is None:  # issued before records were sealed: only what the page shows
            return Check.ok("record", "登记的照面信息与盖章文件一致（早期证照：核对了照面文字）")
        return Check.ok("record", "登记的证照信息与盖章文件一致（记录摘要与照面文字均相符）")
