"""Attacks on the remembered verdicts (checking.verdicts): a verification whose parts were kept after
a VALID answer must never answer VALID again once any input changed: the licence revoked (here or
through another worker's services), its row edited in the database without the data key or with
it, a new CRL revoking the seal certificate, the licence's validity run out, a stored file damaged.
Each test warms the cache first (two VALID answers), so the second answer is a remembered one."""

from __future__ import annotations

import datetime as dt
import json
import struct
import zlib
from functools import partial
from typing import Any

from sqlalchemy import event, text
from sqlmodel import Session, col, select, update

from cert_authority.actors import CLI_ACTOR
from cert_authority.checking.verdicts import Remembered
from cert_authority.issuing.personal import open_licence, sealed_columns
from cert_authority.store import packing
from cert_authority.store.models import LicenceRow, PackedFileRow
from tests.conftest import (
    FOOD_TYPE,
    LicenceEnv,
    flip_stored_bit,
    issue_example,
    open_licence_env,
    overwrite_stored,
    raw_stored,
    remove_stored,
    stored_name,
)
from verification.report import Status


def _warm(env: LicenceEnv, identifier: str) -> bytes:
    """Two VALID verdicts by identifier and two by file: the parts are remembered now."""
    verification = env.services.verification
    pdf = env.services.queries.file(CLI_ACTOR, identifier, "pdf")
    for _ in range(2):
        assert verification.verify_identifier(CLI_ACTOR, identifier).result is Status.VALID
        assert verification.verify_file(pdf).result is Status.VALID
    assert len(verification._file_checks) >= 1 and len(verification._records) >= 1
    return pdf


def _warmed_licence(env: LicenceEnv) -> tuple[str, tuple[str, str]]:
    """A new licence, its verdicts remembered, and the SM3 of its stored PDF and OFD."""
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    _warm(env, identifier)
    with Session(env.engine) as session:
        row = session.exec(select(LicenceRow).where(col(LicenceRow.identifier) == identifier)).one()
    return identifier, (row.pdf_sm3, row.ofd_sm3)


def test_a_revoked_licence_is_never_served_a_remembered_valid(licence_env: LicenceEnv) -> None:
    env = licence_env
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    pdf = _warm(env, identifier)
    # Revoked through another process's services (another worker): only the database is shared.
    other = open_licence_env(env.settings, env.registry.fonts)
    other.services.lifecycle.revoke(CLI_ACTOR, identifier, "违法经营")
    report = env.services.verification.verify_identifier(CLI_ACTOR, identifier)
    assert (report.result, report.reason, report.to_dict()["face_data"]) == (Status.INVALID, "revoked", None)
    assert env.services.verification.verify_file(pdf).reason == "revoked"


def test_an_edited_row_is_never_served_a_remembered_valid(licence_env: LicenceEnv) -> None:
    env = licence_env
    first = issue_example(env, FOOD_TYPE).licence.identifier
    second = issue_example(env, FOOD_TYPE).licence.identifier
    _warm(env, first)
    _warm(env, second)
    verification = env.services.verification
    # Without the data key: a plain column edited (the licence number on the row).
    with Session(env.engine) as session:
        session.exec(update(LicenceRow).where(col(LicenceRow.identifier) == first).values(licence_number="JY9"))
        session.commit()
    assert verification.verify_identifier(CLI_ACTOR, first).reason == "record_mismatch"
    # With the data key: the holder's name sealed anew, every other column as it was.
    personal = env.services.queries.personal
    with Session(env.engine) as session:
        row = open_licence(personal, session.exec(select(LicenceRow).where(col(LicenceRow.identifier) == second)).one())
        face = json.loads(row.face_json) | {"operator_name": "冒名顶替餐饮有限公司"}
        row.face_json = json.dumps(face, ensure_ascii=False)
        session.exec(
            update(LicenceRow).where(col(LicenceRow.identifier) == second).values(**sealed_columns(personal, row))
        )
        session.commit()
    assert verification.verify_identifier(CLI_ACTOR, second).reason == "record_mismatch"


def test_a_new_crl_is_never_served_a_remembered_valid(licence_env: LicenceEnv) -> None:
    env = licence_env
    identifier, pdf = _revoked_seal_licence(env)
    verification = env.services.verification
    for report in (verification.verify_identifier(CLI_ACTOR, identifier), verification.verify_file(pdf)):
        assert (report.result, report.reason) == (Status.INDETERMINATE, "revoked_after_signing")


def test_a_crl_another_worker_published_is_seen_in_the_licence_row(licence_env: LicenceEnv) -> None:
    """Verification by identifier reads the CRL's numbers with the licence row and reads no CRL
    when the newest is the one it read last: a worker that did not publish the new CRL must still
    notice it there."""
    env = licence_env
    other = open_licence_env(env.settings, env.registry.fonts)
    try:
        identifier, _ = _revoked_seal_licence(env, revoked_by=other)  # publishes a new CRL there
    finally:
        other.engine.dispose()
    report = env.services.verification.verify_identifier(CLI_ACTOR, identifier)
    assert (report.result, report.reason) == (Status.INDETERMINATE, "revoked_after_signing")


def test_a_remembered_verification_reads_the_crl_with_the_licence_row(licence_env: LicenceEnv) -> None:
    env = licence_env
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    pdf = _warm(env, identifier)
    verification = env.services.verification
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(env.engine, "before_cursor_execute", count)
    try:
        for verify in (
            partial(verification.verify_identifier, CLI_ACTOR, identifier),
            partial(verification.verify_file, pdf),
        ):
            statements.clear()
            assert verify().result is Status.VALID
            crl = [s for s in statements if "FROM crl" in s]
            assert crl == [s for s in statements if "AS crl_newest" in s], statements
            assert len(statements) <= 3, statements  # the row (with the CRL's numbers), the stored files, the log
    finally:
        event.remove(env.engine, "before_cursor_execute", count)


def _revoked_seal_licence(env: LicenceEnv, revoked_by: LicenceEnv | None = None) -> tuple[str, bytes]:
    """A licence sealed without a timestamp, verified VALID (remembered), then its seal revoked
    (through `revoked_by`'s services: another worker's, if given)."""
    env.services.issuance.timestamps = None  # without a timestamp a revoked seal certificate is never VALID
    sealed_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=2)
    licence = issue_example(env, FOOD_TYPE, now=sealed_at).licence
    pdf = _warm(env, licence.identifier)
    (revoked_by or env).services.seals.revoke(CLI_ACTOR, licence.seal.seal_id)  # publishes a new CRL
    return licence.identifier, pdf


def _assert_revoked(env: LicenceEnv, identifier: str, pdf: bytes) -> None:
    verification = env.services.verification
    for report in (verification.verify_identifier(CLI_ACTOR, identifier), verification.verify_file(pdf)):
        assert (report.result, report.reason) == (Status.INDETERMINATE, "revoked_after_signing")


def test_deleting_the_newest_crl_never_brings_back_a_remembered_valid(licence_env: LicenceEnv) -> None:
    """The CRL before the revocation is still signed and current: served again, it would give the
    revoked seal's licence its remembered VALID. The newest CRL is the last number allocated, so its
    removal is seen and a new CRL issued from the revocations on record."""
    env = licence_env
    identifier, pdf = _revoked_seal_licence(env)
    _assert_revoked(env, identifier, pdf)
    with env.engine.begin() as connection:
        connection.execute(text("DELETE FROM crl WHERE number = (SELECT max(number) FROM crl)"))
    _assert_revoked(env, identifier, pdf)


def test_an_older_crl_put_in_the_newest_row_never_brings_back_a_remembered_valid(licence_env: LicenceEnv) -> None:
    env = licence_env
    identifier, pdf = _revoked_seal_licence(env)
    with env.engine.begin() as connection:
        newest = connection.execute(text("SELECT max(number) FROM crl")).scalar_one()
        older = connection.execute(text("SELECT der FROM crl WHERE number = :n"), {"n": newest - 1}).scalar_one()
        connection.execute(text("UPDATE crl SET der = :der WHERE number = :n"), {"der": older, "n": newest})
    # A worker that has not read the newest CRL yet (this one keeps the DER it read, by number).
    env.services.verification.pki.branch_ca.registry._latest = None
    _assert_revoked(env, identifier, pdf)


def test_time_running_out_is_never_served_a_remembered_valid(licence_env: LicenceEnv) -> None:
    env = licence_env
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    _warm(env, identifier)
    verification = env.services.verification
    verification.clock = lambda: dt.datetime(2040, 1, 1, tzinfo=dt.timezone.utc)
    report = verification.verify_identifier(CLI_ACTOR, identifier)
    assert report.result is Status.INVALID and "status" in [c.name for c in report.checks if c.status is Status.INVALID]


def test_a_damaged_stored_file_is_caught_with_its_checks_remembered(licence_env: LicenceEnv) -> None:
    env = licence_env
    identifier, digests = _warmed_licence(env)
    store = env.registry.filestore
    for digest in digests:
        manifest = stored_name(env, digest)  # what the store keeps: the packed file's manifest
        original = flip_stored_bit(store, manifest)
        report = env.services.verification.verify_identifier(CLI_ACTOR, identifier)
        assert (report.result, report.reason) == (Status.INVALID, "stored_file_damaged")
        overwrite_stored(store, manifest, original)
    assert env.services.verification.verify_identifier(CLI_ACTOR, identifier).result is Status.VALID


def test_an_uploaded_licence_whose_stored_ofd_is_damaged_is_caught_with_its_checks_remembered(
    licence_env: LicenceEnv,
) -> None:
    """An uploaded PDF is checked against the record and the stored OFD: the OFD's manifest, named
    in the licence query, is read and checked every time, damaged or pointed elsewhere."""
    env = licence_env
    identifier, (_, ofd) = _warmed_licence(env)
    pdf = env.services.queries.file(CLI_ACTOR, identifier, "pdf")
    store = env.registry.filestore
    manifest = stored_name(env, ofd)
    original = flip_stored_bit(store, manifest)
    report = env.services.verification.verify_file(pdf)
    assert (report.result, report.reason) == (Status.INVALID, "stored_file_damaged")
    overwrite_stored(store, manifest, original)
    _point(env, ofd, stored_name(env, _warmed_licence(env)[1][1]))  # another licence's OFD manifest
    report = env.services.verification.verify_file(pdf)
    assert (report.result, report.reason) == (Status.INVALID, "stored_file_damaged")
    _point(env, ofd, manifest)
    assert env.services.verification.verify_file(pdf).result is Status.VALID


def test_deleted_shared_parts_are_caught_with_its_checks_remembered(licence_env: LicenceEnv) -> None:
    """A shared part (a constant, a font file) removed after this process rebuilt the files is
    still found: the parts a remembered manifest names are looked up with it, in the same read."""
    env = licence_env
    identifier, digests = _warmed_licence(env)
    store = env.registry.filestore
    files = packing.PackedFiles(store, env.engine)
    parts = files.shared_parts(digests[0]) | files.shared_parts(digests[1])
    saved = {part: raw_stored(store, part) for part in parts}
    for part in parts:
        remove_stored(store, part)
    try:
        report = env.services.verification.verify_identifier(CLI_ACTOR, identifier)
    finally:
        for part, value in saved.items():
            overwrite_stored(store, part, value)
    assert (report.result, report.reason) == (Status.INVALID, "stored_file_damaged")


def test_a_damaged_shared_part_is_caught_with_its_checks_remembered(licence_env: LicenceEnv) -> None:
    """A constant damaged in the store after this process checked it: a remembered check looks the
    shared parts up, and reads them whole again (in the same read) once PART_RECHECK_SECONDS have
    passed since it last did, so it says stored_file_damaged then, as a fresh process does at once,
    and keeps saying it."""
    env = licence_env
    identifier, digests = _warmed_licence(env)  # the second check read the parts whole
    store = env.registry.filestore
    files = packing.PackedFiles(store, env.engine)
    fonts = {name for name, _ in packing._FONTS.values()}
    constants = sorted((files.shared_parts(digests[0]) | files.shared_parts(digests[1])) - fonts)
    assert constants and all(name in packing._PARTS_READ for name in constants)
    saved = {name: flip_stored_bit(store, name) for name in constants}
    try:
        for name in constants:  # the time passes
            packing._PARTS_READ[name] -= packing.PART_RECHECK_SECONDS
        remembered = [env.services.verification.verify_identifier(CLI_ACTOR, identifier) for _ in range(2)]
        # What a process that has not checked this manifest yet answers (module caches dropped).
        packing._INTACT.clear()
        packing._CONSTANTS.clear()
        packing._CONSTANTS_SIZE[0] = 0
        fresh = env.services.verification.verify_identifier(CLI_ACTOR, identifier)
    finally:
        for name, value in saved.items():
            overwrite_stored(store, name, value)
    assert (fresh.result, fresh.reason) == (Status.INVALID, "stored_file_damaged")
    for report in remembered:
        assert (report.result, report.reason) == (Status.INVALID, "stored_file_damaged")
    assert env.services.verification.verify_identifier(CLI_ACTOR, identifier).result is Status.VALID  # repaired


def test_a_deleted_stored_file_is_caught_with_its_checks_remembered(licence_env: LicenceEnv) -> None:
    """Both stored files are checked in one read: either one gone is still found, and named."""
    env = licence_env
    identifier, digests = _warmed_licence(env)
    store = env.registry.filestore
    for digest in digests:
        manifest = stored_name(env, digest)
        original = raw_stored(store, manifest)
        remove_stored(store, manifest)
        report = env.services.verification.verify_identifier(CLI_ACTOR, identifier)
        assert (report.result, report.reason) == (Status.INVALID, "stored_file_damaged")
        assert manifest in " ".join(c.message for c in report.checks)
        overwrite_stored(store, manifest, original)
    assert env.services.verification.verify_identifier(CLI_ACTOR, identifier).result is Status.VALID


def test_a_forged_manifest_is_caught_with_its_checks_remembered(licence_env: LicenceEnv) -> None:
    """Only the manifest is read on a remembered check: a manifest put in its place (its own SM3
    intact, one literal byte changed) must still be rebuilt and refused."""
    env = licence_env
    identifier, digests = _warmed_licence(env)
    store = env.registry.filestore
    for digest in digests:
        original = stored_name(env, digest)
        header, literals = packing._read_manifest(digest, store.get(original))
        body = json.dumps(header).encode()
        forged = packing.MAGIC + zlib.compress(
            struct.pack(">I", len(body)) + body + literals[:-1] + bytes([literals[-1] ^ 1])
        )
        _point(env, digest, store.put(forged))
        report = env.services.verification.verify_identifier(CLI_ACTOR, identifier)
        assert (report.result, report.reason) == (Status.INVALID, "stored_file_damaged")
        _point(env, digest, original)
    assert env.services.verification.verify_identifier(CLI_ACTOR, identifier).result is Status.VALID


def _point(env: LicenceEnv, digest: str, manifest: str) -> None:
    table = PackedFileRow.__table__  # type: ignore[attr-defined]
    with env.engine.begin() as connection:
        connection.execute(table.update().where(table.c.sm3 == digest).values(manifest_sm3=manifest))


def test_remembered_entries_expire_and_are_bounded() -> None:
    now = [0.0]
    remembered: Remembered[str] = Remembered(lifetime=10, kept=2, clock=lambda: now[0])
    remembered.put("a", "A")
    remembered.put("b", "B")
    assert remembered.get("a") == "A"  # now the most recently used
    remembered.put("c", "C")
    assert (remembered.get("a"), remembered.get("b"), remembered.get("c")) == ("A", None, "C")
    now[0] = 10.0
    assert remembered.get("a") is None and len(remembered) == 1
