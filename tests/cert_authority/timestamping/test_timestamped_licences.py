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
