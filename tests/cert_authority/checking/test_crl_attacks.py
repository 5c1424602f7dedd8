"""Attacks on CRL publication: a revocation, once on record or in a signed CRL, is in every CRL
published after it, whatever the race between workers or the rows an attacker deletes, rewinds or
plants; and no planted row stops verification (the next CRL is numbered above every stored one)."""

from __future__ import annotations

import datetime as dt
from typing import Any

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


# --- CRL -----------------------------------------------------------------------------------------
def test_a_crl_begun_before_a_revocation_never_drops_it(licence_env: LicenceEnv) -> None:
    """A publisher (any worker's verification at half the CRL's life, or one that saw a gap) and a
    revocation by another worker at once: the revocations are read after the number is taken, so
    the CRL numbered last, the newest, lists the revoked seal."""
    env = licence_env
    env.services.issuance.timestamps = None  # without a timestamp a revoked seal certificate is never VALID
    licence = issue_example(env, FOOD_TYPE, now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=2)).licence
    pdf = _warm(env, licence.identifier)
    other = open_licence_env(env.settings, env.registry.fonts)  # worker B, sharing only the database
    try:
        registry: Any = other.pki.branch_ca.registry
        take_turn = registry.publish_crl

        def revoked_meanwhile(make: Any, floor: int = 0) -> Any:
            # Worker B has read the revocations on record and waits for the counter; meanwhile
            # worker A revokes the seal (and publishes CRL n+1 with it). B's CRL is n+2.
            env.services.seals.revoke(CLI_ACTOR, licence.seal.seal_id)
            return take_turn(make, floor)

        registry.publish_crl = revoked_meanwhile
        other.pki.branch_ca.publish_crl(dt.datetime.now(dt.timezone.utc))
    finally:
        other.engine.dispose()
    with env.engine.connect() as connection:
        serial = int(
            connection.execute(
                text("SELECT cert_serial FROM seal WHERE id = :i"), {"i": licence.seal.seal_id}
            ).scalar_one(),
            16,
        )
        (newest, newest_der), (_, revoking_der) = connection.execute(
            text("SELECT number, der FROM crl ORDER BY number DESC LIMIT 2")
        ).all()
    assert Crl.load(bytes(revoking_der)).entry(serial) is not None  # A's CRL n+1 lists the seal
    _assert_revoked(env, licence.identifier, pdf)
    assert Crl.load(bytes(newest_der)).entry(serial) is not None, f"CRL {newest}, the newest, lacks the seal"


def test_deleting_the_newest_crl_and_the_counter_never_brings_back_a_remembered_valid(
    licence_env: LicenceEnv,
) -> None:
    """The newest CRL and the counter's row deleted (only deletions: no key, no forged bytes): the
    CRL before the revocation, signed and current, is never served again."""
    env = licence_env
    identifier, pdf = _revoked_seal_licence(env)
    _assert_revoked(env, identifier, pdf)
    with env.engine.begin() as connection:
        connection.execute(text("DELETE FROM crl WHERE number = (SELECT max(number) FROM crl)"))
        connection.execute(text("DELETE FROM counter WHERE name = 'crl_number'"))
    _assert_revoked(env, identifier, pdf)


def test_deleting_the_newest_crl_and_rewinding_the_counter_never_brings_back_a_remembered_valid(
    licence_env: LicenceEnv,
) -> None:
    """The same with the counter set back by one (an edit instead of a deletion): this process
    served a higher number, so the older CRL is not the latest."""
    env = licence_env
    identifier, pdf = _revoked_seal_licence(env)
    _assert_revoked(env, identifier, pdf)
    with env.engine.begin() as connection:
        connection.execute(text("DELETE FROM crl WHERE number = (SELECT max(number) FROM crl)"))
        connection.execute(text("UPDATE counter SET value = value - 1 WHERE name = 'crl_number'"))
    _assert_revoked(env, identifier, pdf)


def test_a_revocation_unset_in_its_row_is_never_dropped_from_the_next_crl(licence_env: LicenceEnv) -> None:
    """The revocation cleared in its row and the newest CRL deleted: the re-issue keeps every entry
    of the signed CRL this process served last (and of the newest stored one), so the seal stays
    revoked."""
    env = licence_env
    identifier, pdf = _revoked_seal_licence(env)
    _assert_revoked(env, identifier, pdf)
    with env.engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE issued_certificate SET revoked_at = NULL, revocation_reason = NULL WHERE revoked_at IS NOT NULL"
            )
        )
        connection.execute(text("DELETE FROM crl WHERE number = (SELECT max(number) FROM crl)"))
    _assert_revoked(env, identifier, pdf)


def test_a_planted_crl_row_does_not_stop_verification(licence_env: LicenceEnv) -> None:
    """One row planted in `crl` above the counter, its DER an older genuine CRL: it is not served
    (its DER carries another number), and the re-issue is numbered above it instead of failing on
    the primary key at every verification."""
    env = licence_env
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    _warm(env, identifier)
    with env.engine.begin() as connection:
        newest, der = connection.execute(text("SELECT number, der FROM crl ORDER BY number DESC LIMIT 1")).one()
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
    with env.engine.begin() as connection:
        serial = int(
            connection.execute(
                text("SELECT cert_serial FROM seal WHERE id = :i"), {"i": licence.seal.seal_id}
            ).scalar_one(),
            16,
        )
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
        number, der = connection.execute(text("SELECT number, der FROM crl ORDER BY number DESC LIMIT 1")).one()
    assert number == newest + 2 and Crl.load(bytes(der)).entry(serial) is None
