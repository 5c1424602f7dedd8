"""Shared fixtures: independent checkers (OpenSSL CLI, pure-Python gmssl) and a real test PKI."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import algos

from keys.signer import SoftwareSigner
from keys.sm2 import SM2PrivateKey, SM2PublicKey
from keys.x509 import Certificate, build_certificate, make_name

SM2_ID_OPT = "distid:1234567812345678"
NOW = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.timezone.utc)
DEPT_USCC = "91350100M000100Y43"


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required for the cross-checks (apt-get install {name}; .ci/run does this)")
    return path


def openssl(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run the OpenSSL CLI; on failure show what it said."""
    result = subprocess.run([require_tool("openssl"), *args], input=input, capture_output=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{result.stderr.decode(errors='replace')}")
    return result


def gmssl_verify(public_key: SM2PublicKey, signature_der: bytes, message: bytes) -> bool:
    """Verify with the pure-Python gmssl package: an SM2/SM3 implementation we did not write."""
    from gmssl.sm2 import CryptSM2

    sig = algos.DSASignature.load(signature_der)
    raw = sig["r"].native.to_bytes(32, "big") + sig["s"].native.to_bytes(32, "big")
    point = public_key.x.to_bytes(32, "big") + public_key.y.to_bytes(32, "big")
    checker = CryptSM2(private_key=None, public_key=point.hex())
    return bool(checker.verify_with_sm3(raw.hex(), message))


def gmssl_verify_certificate(cert: Certificate, issuer_key: SM2PublicKey) -> bool:
    return gmssl_verify(issuer_key, cert.asn1["signature_value"].native, cert.tbs.dump())


@dataclass
class TestPKI:
    root_signer: SoftwareSigner
    root: Certificate
    branch_signer: SoftwareSigner
    branch: Certificate
    seal_signer: SoftwareSigner
    seal: Certificate

    def write(self, directory: Path) -> dict[str, Path]:
        paths = {}
        for name in ("root", "branch", "seal"):
            path = directory / f"{name}.pem"
            path.write_bytes(getattr(self, name).pem)
            paths[name] = path
        return paths


def make_test_pki(now: dt.datetime = NOW) -> TestPKI:
    root_signer = SoftwareSigner(SM2PrivateKey.generate())
    root = build_certificate(
        subject=make_name("测试省电子政务根CA", organization="测试省电子认证中心"),
        public_key=root_signer.public_key,
        serial=0x1001,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=3650),
        issuer_signer=root_signer,
        issuer=None,
        ca=True,
        key_usage={"key_cert_sign", "crl_sign"},
    )
    branch_signer = SoftwareSigner(SM2PrivateKey.generate())
    branch = build_certificate(
        subject=make_name("测试市电子证照分中心CA", organization="测试市电子认证分中心"),
        public_key=branch_signer.public_key,
        serial=0x2002,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=1825),
        issuer_signer=root_signer,
        issuer=root,
        ca=True,
        path_length=0,
        key_usage={"key_cert_sign", "crl_sign", "digital_signature"},
        crl_url="http://127.0.0.1:8000/pki/root.crl",
    )
    seal_key = SM2PrivateKey.generate()
    seal = build_certificate(
        subject=make_name("测试市市场监督管理局", serial_number=DEPT_USCC),
        public_key=seal_key.public_key,
        serial=0x3003ABCDEF,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=730),
        issuer_signer=branch_signer,
        issuer=branch,
        ca=False,
        key_usage={"digital_signature", "non_repudiation"},
        crl_url="http://127.0.0.1:8000/pki/crl",
        ocsp_url="http://127.0.0.1:8000/pki/ocsp",
        ca_issuers_url="http://127.0.0.1:8000/pki/branch.cer",
        uscc=DEPT_USCC,
    )
    return TestPKI(
        root_signer.with_chain((root,)),
        root,
        branch_signer.with_chain((branch, root)),
        branch,
        SoftwareSigner(seal_key, (seal, branch, root)),
        seal,
    )


@pytest.fixture(scope="session")
def pki() -> TestPKI:
    """One real root → branch → seal hierarchy per test session."""
    return make_test_pki()


@pytest.fixture
def tmp_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ECAS data directory with a test key-encryption passphrase."""
    data = tmp_path / "var"
    monkeypatch.setenv("ECAS_DATA_DIR", str(data))
    monkeypatch.setenv("ECAS_KEK", "test-kek-" + os.urandom(8).hex())
    return data
