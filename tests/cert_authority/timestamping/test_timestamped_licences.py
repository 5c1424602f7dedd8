"""Issued licences carry timestamps from the authority's TSA: verification relies on them (a seal
certificate revoked after the timestamp leaves the licence VALID with a note), and a TSA that
refuses (clock unsynchronised) leaves licences as they were before timestamps."""

from __future__ import annotations

import datetime as dt

from cert_authority.actors import CLI_ACTOR
from cert_authority.timestamping.clock import ClockStatus
from tests.conftest import FOOD_TYPE, LicenceEnv, issue_example
from verification.report import Status


def _files(env: LicenceEnv, identifier: str) -> tuple[bytes, bytes]:
    queries = env.services.queries
    return queries.file(CLI_ACTOR, identifier, "pdf"), queries.file(CLI_ACTOR, identifier, "ofd")


def test_licence_revoked_after_its_timestamp_stays_valid(licence_env: LicenceEnv) -> None:
    env = licence_env
    sealed_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=2)
    env.services.timestamps.clock = lambda: sealed_at  # the TSA's time: before the revocation below
    licence = issue_example(env, FOOD_TYPE, now=sealed_at).licence
    pdf, ofd = _files(env, licence.identifier)
    for data in (pdf, ofd):
        report = env.services.verification.verify_file(data)
        assert report.result is Status.VALID, report.to_dict()
        assert any(c.name == "timestamp" and c.status is Status.VALID for c in report.checks)
    env.services.seals.revoke(CLI_ACTOR, licence.seal.seal_id)
    for data in (pdf, ofd):
        report = env.services.verification.verify_file(data)
        assert report.result is Status.VALID, report.to_dict()
        [revocation] = [c for c in report.checks if c.name == "revocation"]
        assert "时间戳之后被吊销" in revocation.message


def test_unsynchronised_tsa_leaves_licences_without_timestamps(licence_env: LicenceEnv) -> None:
    env = licence_env
    env.services.timestamps.clock_check = lambda: ClockStatus(False, dt.timedelta(seconds=16), "test")
    licence = issue_example(env, FOOD_TYPE).licence
    for data in _files(env, licence.identifier):
        report = env.services.verification.verify_file(data)
        assert report.result is Status.VALID
        assert not any(c.name == "timestamp" for c in report.checks)


def test_licences_carry_their_revocation_evidence(licence_env: LicenceEnv) -> None:
    """Long-term validation: years later, offline, with the bundle's CRL long expired and the seal
    certificate expired, the files verify from the timestamp and the OCSP response they carry."""
    import io
    import zipfile

    from keys.crl import Crl
    from verification.sealed_file import verify_sealed_file
    from verification.trust import TrustAnchors

    env = licence_env
    licence = issue_example(env, FOOD_TYPE).licence
    pdf, ofd = _files(env, licence.identifier)
    assert b"/DSS" in pdf
    with zipfile.ZipFile(io.BytesIO(ofd)) as package:
        assert "Doc_0/Signs/Sign_0/OCSP.der" in package.namelist()
    now = dt.datetime.now(dt.timezone.utc)
    anchors = TrustAnchors(
        (env.pki.root_certificate(),), (env.pki.branch_certificate(),), (Crl.load(env.pki.current_crl(now)),)
    )
    serial = verify_sealed_file(pdf, anchors, now)[0].subject["signatures"][0]["certificate_serial"]
    years_later = env.pki.certificate(int(serial, 16)).certificate.not_after + dt.timedelta(days=30)
    for data in (pdf, ofd):
        report, _ = verify_sealed_file(data, anchors, years_later)
        assert report.result is Status.VALID, report.to_dict()
