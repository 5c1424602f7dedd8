"""Attacks on CRL publication: a revocation, once on record or in a signed CRL, is in every CRL
published after it, whatever the race between workers or the rows an attacker deletes, rewinds or
plants; and no planted row stops verification (the next CRL is numbered above every stored one)."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from asn1crypto import core
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from sqlalchemy import text

from cert_authority.actors import CLI_ACTOR
from keys.crl import Crl
from tests.cert_authority.checking.test_remembered_verdicts import (
    _assert_revoked,
    _revoked_seal_licence,
    _warm,
)
from tests.conftest import FOOD_TYPE, LicenceEnv, issue_example, open_licence_env
from verification.report import Status

DELETE_NEWEST = "DELETE FROM crl WHERE number = (SELECT max(number) FROM crl)"
UNSET_REVOCATIONS = (
    "UPDATE issued_certificate SET revoked_at = NULL, revocation_reason = NULL WHERE revoked_at IS NOT NULL"
)
NEWEST = "SELECT number, der FROM crl ORDER BY number DESC LIMIT 1"
COUNTER_EDITS = {
    "deleted": "DELETE FROM counter WHERE name = 'crl_number'",
    "rewound": "UPDATE counter SET value = value - 1 WHERE name = 'crl_number'",
}


def _seal_serial(env: LicenceEnv, seal_id: int) -> int:
    with env.engine.connect() as connection:
        return int(
            connection.execute(text("SELECT cert_serial FROM seal WHERE id = :i"), {"i": seal_id}).scalar_one(), 16
        )


# --- CRL -----------------------------------------------------------------------------------------
def test_a_crl_begun_before_a_revocation_never_drops_it(licence_env: LicenceEnv) -> None:
    """A publisher (any worker's verification at half the CRL's life, or one that saw a gap) and a
    revocation by another worker at once: the revocations are read after the number is taken, so
    what the publisher builds from lists the revoked seal, and so does the newest CRL."""
    env = licence_env
    env.services.issuance.timestamps = None  # without a timestamp a revoked seal certificate is never VALID
    licence = issue_example(env, FOOD_TYPE, now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=2)).licence
    pdf = _warm(env, licence.identifier)
    other = open_licence_env(env.settings, env.registry.fonts)  # worker B, sharing only the database
    drafts: list[Any] = []
    try:
        registry: Any = other.pki.branch_ca.registry
        take_turn = registry.publish_crl

        def revoked_meanwhile(make: Any, floor: int = 0) -> Any:
            # Worker B is about to take its turn; meanwhile worker A revokes the seal (and
            # publishes a CRL with it).
            env.services.seals.revoke(CLI_ACTOR, licence.seal.seal_id)

            def seen(draft: Any) -> Any:
                drafts.append(draft)
                return make(draft)

            return take_turn(seen, floor)

        registry.publish_crl = revoked_meanwhile
        other.pki.branch_ca.publish_crl(dt.datetime.now(dt.timezone.utc))
    finally:
        other.engine.dispose()
    serial = _seal_serial(env, licence.seal.seal_id)
    with env.engine.connect() as connection:
        newest, newest_der = connection.execute(text(NEWEST)).one()
    assert serial in {entry.serial for entry in drafts[0].revoked}  # read after A's revocation
    _assert_revoked(env, licence.identifier, pdf)
    assert Crl.load(bytes(newest_der)).entry(serial) is not None, f"CRL {newest}, the newest, lacks the seal"


@pytest.mark.parametrize(
    ("counter", "worker"), [("deleted", "this"), ("rewound", "this"), ("rewound", "another")], ids=str
)
def test_deleting_the_newest_crl_and_editing_the_counter_never_brings_back_a_valid(
    licence_env: LicenceEnv, counter: str, worker: str
) -> None:
    """The newest CRL deleted and the counter's row deleted or set back by one (no key, no forged
    bytes): the CRL before the revocation, signed and current, is never served again. Not by this
    worker, which served a higher number; not by another (or this one restarted), which never did:
    the revocations on record are read with the CRL's numbers, and the older CRL lacks one."""
    env = licence_env
    identifier, pdf = _revoked_seal_licence(env)
    _assert_revoked(env, identifier, pdf)
    with env.engine.begin() as connection:
        connection.execute(text(DELETE_NEWEST))
        connection.execute(text(COUNTER_EDITS[counter]))
    if worker == "this":
        _assert_revoked(env, identifier, pdf)
        return
    other = open_licence_env(env.settings, env.registry.fonts)
    try:
        _assert_revoked(other, identifier, pdf)
    finally:
        other.engine.dispose()


def test_a_revocation_unset_in_its_row_is_never_dropped_from_the_next_crl(licence_env: LicenceEnv) -> None:
    """The revocation cleared in its row and the newest CRL deleted: the re-issue keeps every entry
    of the signed CRL this process served last (and of the newest stored one), so the seal stays
    revoked."""
    env = licence_env
    identifier, pdf = _revoked_seal_licence(env)
    _assert_revoked(env, identifier, pdf)
    with env.engine.begin() as connection:
        connection.execute(text(UNSET_REVOCATIONS))
        connection.execute(text(DELETE_NEWEST))
    _assert_revoked(env, identifier, pdf)


def test_a_planted_crl_row_does_not_stop_verification(licence_env: LicenceEnv) -> None:
    """One row planted in `crl` above the counter, its DER an older genuine CRL: it is not served
    (its DER carries another number), and the re-issue is numbered above it instead of failing on
    the primary key at every verification."""
    env = licence_env
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    _warm(env, identifier)
    with env.engine.begin() as connection:
        newest, der = connection.execute(text(NEWEST)).one()
        this_update, next_update = connection.execute(
            text("SELECT this_update, next_update FROM crl WHERE number = :n"), {"n": newest}
        ).one()
        connection.execute(
            text("INSERT INTO crl (number, this_update, next_update, der) VALUES (:n, :t, :u, :d)"),
            {"n": newest + 1, "t": this_update, "u": next_update, "d": der},
        )
    report = env.services.verification.verify_identifier(CLI_ACTOR, identifier)
    assert report.result is Status.VALID


def _forged_crl(genuine: bytes, number: int, serial: int) -> bytes:
    """A genuine CRL edited (another number, one more revoked serial) under its old signature."""
    forged = asn1_crl.CertificateList.load(genuine)
    tbs = forged["tbs_cert_list"]
    listed = [(e["user_certificate"], e["revocation_date"]) for e in tbs["revoked_certificates"].native or []]
    tbs["revoked_certificates"] = asn1_crl.RevokedCertificates(
        [
            {"user_certificate": listed_serial, "revocation_date": asn1_x509.Time(name="utc_time", value=when)}
            for listed_serial, when in [*listed, (serial, dt.datetime.now(dt.timezone.utc))]
        ]
    )
    for extension in tbs["crl_extensions"]:
        if extension["extn_id"].native == "crl_number":
            extension["extn_value"] = core.Integer(number)
    return bytes(forged.dump(force=True))


def test_a_forged_crl_row_is_neither_served_nor_carried_into_the_next(licence_env: LicenceEnv) -> None:
    """A row planted above the newest CRL, its DER a genuine CRL edited to carry the row's number and
    one more serial (a valid seal's) under the old signature: not served (the signature fails), its
    entries not taken into the re-issue, so the licence stays VALID (no denial by a planted row)."""
    env = licence_env
    env.services.issuance.timestamps = None  # the CRL decides (no timestamp, no status embedded with it)
    licence = issue_example(env, FOOD_TYPE).licence
    _warm(env, licence.identifier)
    serial = _seal_serial(env, licence.seal.seal_id)
    with env.engine.begin() as connection:
        newest, der, this_update, next_update = connection.execute(
            text("SELECT number, der, this_update, next_update FROM crl ORDER BY number DESC LIMIT 1")
        ).one()
        forged = _forged_crl(bytes(der), newest + 1, serial)
        assert Crl.load(forged).crl_number == newest + 1 and Crl.load(forged).entry(serial) is not None
        connection.execute(
            text("INSERT INTO crl (number, this_update, next_update, der) VALUES (:n, :t, :u, :d)"),
            {"n": newest + 1, "t": this_update, "u": next_update, "d": forged},
        )
    other = open_licence_env(env.settings, env.registry.fonts)  # a worker that never read a CRL
    try:
        for worker in (env, other):
            report = worker.services.verification.verify_identifier(CLI_ACTOR, licence.identifier)
            assert (report.result, report.reason) == (Status.VALID, "ok")
    finally:
        other.engine.dispose()
    with env.engine.connect() as connection:
        number, der = connection.execute(text(NEWEST)).one()
    assert number == newest + 2 and Crl.load(bytes(der)).entry(serial) is None


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE issued_certificate SET revocation_reason = 'bogus' WHERE revoked_at IS NOT NULL",
        # A row inserted (a copy of a revoked one) under a serial that is not hex.
        "INSERT INTO issued_certificate (serial, subject, uscc, not_before, not_after, der, key_label,"
        " revoked_at, revocation_reason) SELECT 'ZZ' || serial, subject, uscc, not_before, not_after, der,"
        " key_label, revoked_at, revocation_reason FROM issued_certificate WHERE revoked_at IS NOT NULL",
    ],
    ids=["reason", "serial"],
)
def test_an_edited_revocation_row_does_not_stop_crl_publication(licence_env: LicenceEnv, edit: str) -> None:
    """One revoked `issued_certificate` row edited (its reason not a CRLReason) or inserted (its
    serial not hex): it is listed as unspecified, or left out, and logged; the other revocations
    are still published when the newest CRL needs re-issuing (deleted here)."""
    env = licence_env
    identifier, pdf = _revoked_seal_licence(env)
    with env.engine.begin() as connection:
        connection.execute(text(edit))
        connection.execute(text(DELETE_NEWEST))
    _assert_revoked(env, identifier, pdf)


def test_a_revocation_unset_in_its_row_is_not_answered_good_by_ocsp(licence_env: LicenceEnv) -> None:
    """A revocation unset in its row: the CRLs keep the seal revoked, and so does the OCSP responder
    (and the evidence put into files sealed with a timestamp): a certificate a CRL of this CA lists
    is never answered good."""
    env = licence_env
    env.services.issuance.timestamps = None
    licence = issue_example(env, FOOD_TYPE, now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=2)).licence
    _warm(env, licence.identifier)
    env.services.seals.revoke(CLI_ACTOR, licence.seal.seal_id)
    serial = _seal_serial(env, licence.seal.seal_id)
    with env.engine.begin() as connection:
        connection.execute(text(UNSET_REVOCATIONS))
    crl = Crl.load(env.pki.current_crl(dt.datetime.now(dt.timezone.utc)))
    assert crl.entry(serial) is not None  # the CRL keeps it (the fix under review)
    assert env.pki.branch_ca.status_of(serial).state == "revoked"  # what /pki/ocsp answers


def test_a_revocation_whose_crl_failed_is_published_when_the_revocation_is_retried(licence_env: LicenceEnv) -> None:
    """Not an attack: the CRL publication after a revocation fails once (a lock timeout, the
    database gone for a moment), after the revocation was committed; the retry finds the
    certificate revoked and does not publish. The next verification finds the revocation made last
    on record missing from the newest CRL and publishes one: the seal is not VALID meanwhile."""
    env = licence_env
    env.services.issuance.timestamps = None
    licence = issue_example(env, FOOD_TYPE, now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=2)).licence
    pdf = _warm(env, licence.identifier)
    registry: Any = env.pki.branch_ca.registry
    publish = registry.publish_crl

    def fails_once(make: Any, floor: int = 0) -> Any:
        registry.publish_crl = publish
        raise OSError("database unavailable for a moment")

    registry.publish_crl = fails_once
    with pytest.raises(OSError):
        env.services.seals.revoke(CLI_ACTOR, licence.seal.seal_id)
    env.services.seals.revoke(CLI_ACTOR, licence.seal.seal_id)  # the operator retries: it succeeds
    _assert_revoked(env, licence.identifier, pdf)


def test_a_crl_rows_this_update_moved_ahead_does_not_let_the_served_crl_expire(licence_env: LicenceEnv) -> None:
    """The newest row's this_update edited to years ahead (its DER untouched, signed, of its number):
    the row's dates must agree with the DER's (the re-issue time is taken from the row), so it is
    re-issued, and the CRL served never runs out."""
    env = licence_env
    env.services.issuance.timestamps = None  # the CRL decides (no timestamp, no status embedded with it)
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    _warm(env, identifier)
    with env.engine.begin() as connection:
        connection.execute(
            text("UPDATE crl SET this_update = :t WHERE number = (SELECT max(number) FROM crl)"),
            {"t": dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3650)},
        )
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)  # past the served CRL's nextUpdate
    env.services.verification.clock = lambda: later
    other = open_licence_env(env.settings, env.registry.fonts)  # this worker, or another, later
    other.services.verification.clock = lambda: later
    try:
        # A worker that reads the row afresh (this one keeps the dates it read, by number).
        for worker in (other, env):
            report = worker.services.verification.verify_identifier(CLI_ACTOR, identifier)
            assert (report.result, report.reason) == (Status.VALID, "ok")
    finally:
        other.engine.dispose()


def test_verifications_finding_the_crl_half_spent_at_once_publish_one_crl(licence_env: LicenceEnv) -> None:
    """Cost, not trust: two verifications find the CRL half spent at once; the second to take its
    turn finds the newest just published, complete and fresh, and keeps it: one CRL, not two (a
    CRL of 10,000 entries took 9 s to build here)."""
    env = licence_env
    env.services.issuance.timestamps = None
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    _warm(env, identifier)
    ca = env.services.verification.pki.branch_ca
    later = dt.datetime.now(dt.timezone.utc) + ca.crl_validity * 0.6
    env.services.verification.clock = lambda: later
    registry: Any = ca.registry
    read = registry.latest_crl
    together = threading.Barrier(2)

    def read_together(*args: Any, **kwargs: Any) -> Any:
        found = read(*args, **kwargs)
        together.wait(timeout=10)  # two requests at once: both have read before either publishes
        return found

    registry.latest_crl = read_together
    with env.engine.connect() as connection:
        before = connection.execute(text("SELECT count(*) FROM crl")).scalar_one()
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: env.services.verification.verify_identifier(CLI_ACTOR, identifier), range(2)))
    assert all(report.result is Status.VALID for report in reports)
    with env.engine.connect() as connection:
        after = connection.execute(text("SELECT count(*) FROM crl")).scalar_one()
    assert after - before == 1, f"{after - before} CRLs published for one half-life"


def test_a_crl_stored_as_pem_is_not_served(licence_env: LicenceEnv) -> None:
    """The newest row's DER rewritten as the PEM of the same genuine CRL: not what this CA stores
    (relying parties fetching /pki/crl expect DER), so a worker reading it re-issues, and serves DER."""
    env = licence_env
    _warm(env, issue_example(env, FOOD_TYPE).licence.identifier)
    with env.engine.begin() as connection:
        number, der = connection.execute(text(NEWEST)).one()
        connection.execute(
            text("UPDATE crl SET der = :pem WHERE number = :n"), {"pem": Crl.load(bytes(der)).pem, "n": number}
        )
    other = open_licence_env(env.settings, env.registry.fonts)  # a worker reading the row afresh
    try:
        served = other.pki.current_crl(dt.datetime.now(dt.timezone.utc))
    finally:
        other.engine.dispose()
    assert served.startswith(b"\x30") and Crl.load(served).der == served and Crl.load(served).crl_number == number + 1
