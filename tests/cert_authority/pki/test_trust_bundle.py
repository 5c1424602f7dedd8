"""The signed trust bundle: served at /pki/trust-bundle.json without a key; an offline verifier that
pins the root loads it and verifies a licence with no registry; the bundle's signature verifies with
gmssl and the service certificate's chain with the OpenSSL CLI; any change to it is refused."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from asn1crypto import cms
from fastapi.testclient import TestClient

from cert_authority.actors import CLI_ACTOR
from cert_authority.http.app import create_app
from cert_authority.pki.trust_bundle import trust_bundle
from keys.x509 import Certificate
from tests.conftest import FOOD_TYPE, SM2_ID_OPT, LicenceEnv, gmssl_verify, issue_example, openssl
from verification.report import Status
from verification.sealed_file import verify_sealed_file
from verification.trust_bundle import TrustBundleError, canonical, load_trust_bundle


def test_offline_verification_with_the_bundle(licence_env: LicenceEnv, tmp_path: Path) -> None:
    env = licence_env
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    pdf = env.services.queries.file(CLI_ACTOR, identifier, "pdf")
    with TestClient(create_app(env.settings)) as client:
        response = client.get("/pki/trust-bundle.json")  # public: no API key
        root_pem = client.get("/pki/root.pem").content
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    now = dt.datetime.now(dt.timezone.utc)
    authority = env.settings.authority_uscc
    bundle = load_trust_bundle(response.content, Certificate.load(root_pem), authority, now)
    report, _ = verify_sealed_file(pdf, bundle.anchors, now)
    assert report.result is Status.VALID, report.to_dict()

    # Independent checks: gmssl over the CMS signed attributes, OpenSSL on the service chain.
    body = json.loads(response.content)
    signer_info = cms.ContentInfo.load(base64.b64decode(body["signature"]))["content"]["signer_infos"][0]
    attributes = b"\x31" + signer_info["signed_attrs"].dump()[1:]
    assert gmssl_verify(bundle.service.public_key, bytes(signer_info["signature"].native), attributes)
    for name in ("root", "branch", "service"):
        (tmp_path / f"{name}.pem").write_text(body[name])
    # Link by link: OpenSSL 3.0 applies the SM2 ID to the target only (see tests/keys/test_x509.py).
    openssl("verify", "-vfyopt", SM2_ID_OPT, "-CAfile", str(tmp_path / "root.pem"), str(tmp_path / "branch.pem"))
    openssl(
        "verify",
        "-vfyopt",
        SM2_ID_OPT,
        "-partial_chain",
        "-CAfile",
        str(tmp_path / "branch.pem"),
        str(tmp_path / "service.pem"),
    )

    # Every signed field matters; another root is refused.
    for field, value in (
        ("base_url", "https://evil.example"),
        ("issued_at", "2020-01-01T00:00:00+00:00"),
        ("crl_next_update", None),
    ):
        changed = {**body, field: value}
        assert canonical(changed) != canonical(body)
        with pytest.raises(TrustBundleError):
            load_trust_bundle(json.dumps(changed).encode(), Certificate.load(root_pem), authority, now)
    with pytest.raises(TrustBundleError, match="根证书"):
        load_trust_bundle(response.content, bundle.service, authority, now)
    with pytest.raises(TrustBundleError, match="格式"):
        load_trust_bundle(b"{}", Certificate.load(root_pem), authority, now)
    with pytest.raises(TrustBundleError, match="不属于预置的机构"):
        load_trust_bundle(response.content, Certificate.load(root_pem), "91350100MA00070007", now)


def test_one_service_certificate_per_authority(licence_env: LicenceEnv) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    first = licence_env.pki.service_signer(now).certificate_chain[0]
    assert licence_env.pki.service_signer(now).certificate_chain[0].der == first.der
    assert first.uscc == licence_env.settings.authority_uscc


def test_the_offline_example_verifier(licence_env: LicenceEnv, tmp_path: Path) -> None:
    """examples/offline_verifier.py, run as a counter would run it, with no service in reach."""
    import subprocess
    import sys

    from verification.show_token import make_token

    env = licence_env
    now = dt.datetime.now(dt.timezone.utc)
    licence = issue_example(env, FOOD_TYPE).licence
    (tmp_path / "root.pem").write_bytes(env.pki.root_certificate().pem)
    (tmp_path / "bundle.json").write_bytes(trust_bundle(env.pki, now))
    (tmp_path / "licence.ofd").write_bytes(env.services.queries.file(CLI_ACTOR, licence.identifier, "ofd"))
    token, _ = make_token(
        env.pki.service_signer(now), licence.identifier, {"operator_name": "好味道"}, now, dt.timedelta(seconds=60)
    )
    script = Path(__file__).resolve().parents[3] / "examples" / "offline_verifier.py"

    def run(target: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                str(script),
                "--root",
                str(tmp_path / "root.pem"),
                "--authority",
                env.settings.authority_uscc,
                "--bundle",
                str(tmp_path / "bundle.json"),
                target,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=Path(__file__).resolve().parents[3],
        )

    shown = run(token)
    assert shown.returncode == 0 and "VALID（ok）" in shown.stdout and "好味道" in shown.stdout, shown.stderr
    sealed = run(str(tmp_path / "licence.ofd"))
    assert sealed.returncode == 0 and sealed.stdout.startswith("VALID"), sealed.stdout + sealed.stderr
    tampered = run(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
    assert tampered.returncode == 1
