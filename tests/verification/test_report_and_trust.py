"""verification.report: the verdict follows the worst check; verification.trust: chains and CRLs
with times chosen around a revocation (a real test PKI, no mocks)."""

from __future__ import annotations

import datetime as dt

from cert_authority.actors import CLI_ACTOR
from keys.crl import Crl
from keys.x509 import Certificate
from tests.conftest import FOOD_TYPE, LicenceEnv, issue_example
from verification.report import Check, Report, Status
from verification.trust import TrustAnchors, check_chain, check_revocation


def test_report_verdict_follows_the_worst_check() -> None:
    ok, unknown = Check.ok("a", "好"), Check.unknown("b", "revocation_unknown", "不知道")
    bad = Check.invalid("c", "digest_mismatch", "坏")
    assert Report((ok,)).result is Status.VALID and Report((ok,)).reason == "ok"
    assert Report((ok, unknown)).result is Status.INDETERMINATE
    assert (Report((unknown, bad, ok)).result, Report((unknown, bad)).reason) == (Status.INVALID, "digest_mismatch")
    assert Report(()).result is Status.INDETERMINATE  # nothing checked is never VALID
    assert Report((bad,), face_data={"x": "y"}).to_dict()["face_data"] is None


def test_chain_and_revocation_around_the_revocation_time(licence_env: LicenceEnv) -> None:
    env = licence_env
    licence = issue_example(env, FOOD_TYPE).licence
    seal = env.services.seals.get(CLI_ACTOR, licence.seal.seal_id)
    signer: Certificate = env.pki.certificate(int(seal.cert_serial, 16)).certificate
    root, branch = env.pki.root_certificate(), env.pki.branch_certificate()
    now = dt.datetime.now(dt.timezone.utc)

    def anchors(at: dt.datetime) -> TrustAnchors:
        return TrustAnchors((root,), (branch,), (Crl.load(env.pki.current_crl(at)),))

    signed = signer.not_before + dt.timedelta(seconds=30)
    assert check_chain(signer, anchors(now), signed).status is Status.VALID
    assert check_chain(signer, anchors(now), signer.not_after + dt.timedelta(days=1)).reason == "certificate_expired"
    assert check_chain(signer, TrustAnchors((root,), ()), signed).reason == "untrusted_signer"
    assert check_revocation(signer, anchors(now), signed, now).status is Status.VALID
    assert check_revocation(signer, TrustAnchors((root,), (branch,)), signed, now).reason == "revocation_unknown"

    revoked_at = signed + dt.timedelta(seconds=60)
    env.pki.revoke(signer.serial, "keyCompromise", revoked_at)
    later = anchors(now)
    assert check_revocation(signer, later, signed, now).reason == "revoked_after_signing"
    after = check_revocation(signer, later, revoked_at + dt.timedelta(seconds=1), now)
    assert (after.status, after.reason) == (Status.INVALID, "certificate_revoked")
    stale = now + dt.timedelta(days=30)
    assert check_revocation(signer, later, signed, stale).reason == "crl_expired"
