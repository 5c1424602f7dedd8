"""SM2 X.509 certificates and PKCS#10 requests (keys.x509), cross-checked with OpenSSL and gmssl."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from asn1crypto import pem
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys.errors import InvalidCertificateError
from keys.oids import GMT0015_ORG_CODE
from keys.signer import SoftwareSigner
from keys.sm2 import SM2PrivateKey
from keys.x509 import Certificate, CertificationRequest, build_certificate, make_name
from tests.conftest import DEPT_USCC, NOW, SM2_ID_OPT, gmssl_verify_certificate, openssl
from tests.conftest import PkiHierarchy as PKI  # aliased: pytest would try to collect "Test*"


@pytest.fixture(scope="module")
def pems(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return pki.write(tmp_path_factory.mktemp("pki"))


def _text(path: Path) -> str:
    return openssl("x509", "-in", str(path), "-text", "-noout").stdout.decode()


def _flip(data: bytes, position: int) -> bytes:
    out = bytearray(data)
    out[position] ^= 0x01
    return bytes(out)


def _seal_like(pki: PKI, **overrides: object) -> Certificate:
    kwargs: dict[str, object] = {
        "subject": make_name("某局", serial_number=DEPT_USCC),
        "public_key": SM2PrivateKey.generate().public_key,
        "serial": 77,
        "not_before": NOW - dt.timedelta(days=1),
        "not_after": NOW + dt.timedelta(days=30),
        "issuer_signer": pki.branch_signer,
        "issuer": pki.branch,
        "ca": False,
        "key_usage": {"digital_signature", "non_repudiation"},
        "uscc": DEPT_USCC,
    }
    kwargs.update(overrides)
    return build_certificate(**kwargs)  # type: ignore[arg-type]


# --- OpenSSL and gmssl cross-checks --------------------------------------------------------------


def test_openssl_verifies_each_link(pems: dict[str, Path]) -> None:
    """Each certificate's signature verifies with OpenSSL, given the SM2 ID.

    Why there is no one-shot `openssl verify -CAfile root.pem -untrusted branch.pem seal.pem`:
    OpenSSL 3.0.19's `verify` applies `-vfyopt distid:...` only to the target certificate; the
    intermediate (depth 1) is then checked with an empty ID and fails with "certificate
    signature failure" for any chain signed the standard way (default ID 1234567812345678).
    So we check every link on its own: root self-signature, root→branch, branch→seal
    (`-partial_chain` lets the branch act as trust anchor).
    """
    root, branch, seal = (str(pems[n]) for n in ("root", "branch", "seal"))
    assert b"OK" in openssl("verify", "-vfyopt", SM2_ID_OPT, "-CAfile", root, root).stdout
    assert b"OK" in openssl("verify", "-vfyopt", SM2_ID_OPT, "-CAfile", root, branch).stdout
    result = openssl("verify", "-vfyopt", SM2_ID_OPT, "-partial_chain", "-CAfile", branch, seal)
    assert result.stdout.strip().endswith(b"OK")


def test_openssl_without_sm2_id_reports_signature_failure(pems: dict[str, Path]) -> None:
    """Without the default ID OpenSSL hashes a different Z: shows the ID is bound into signatures."""
    result = openssl("verify", "-CAfile", str(pems["root"]), str(pems["branch"]), check=False)
    assert result.returncode != 0
    assert b"signature failure" in result.stdout + result.stderr
    other_id = openssl(
        "verify", "-vfyopt", "distid:0000000000000000", "-CAfile", str(pems["root"]), str(pems["branch"]),
        check=False,
    )  # fmt: skip
    assert other_id.returncode != 0


def test_openssl_rejects_link_with_wrong_issuer(pems: dict[str, Path]) -> None:
    result = openssl(
        "verify", "-vfyopt", SM2_ID_OPT, "-partial_chain", "-CAfile", str(pems["root"]), str(pems["seal"]),
        check=False,
    )  # fmt: skip
    assert result.returncode != 0


def test_gmssl_verifies_every_certificate_signature(pki: PKI) -> None:
    assert gmssl_verify_certificate(pki.root, pki.root.public_key)
    assert gmssl_verify_certificate(pki.branch, pki.root.public_key)
    assert gmssl_verify_certificate(pki.seal, pki.branch.public_key)
    assert not gmssl_verify_certificate(pki.seal, pki.root.public_key)


def test_openssl_text_of_seal_certificate(pki: PKI, pems: dict[str, Path]) -> None:
    text = _text(pems["seal"])
    assert "Version: 3 (0x2)" in text
    assert text.count("Signature Algorithm: SM2-with-SM3") == 2
    assert "ASN1 OID: SM2" in text
    assert "X509v3 Basic Constraints: critical\n                CA:FALSE" in text
    assert "X509v3 Key Usage: critical\n                Digital Signature, Non Repudiation\n" in text
    assert "X509v3 Subject Key Identifier" in text
    assert "X509v3 Authority Key Identifier" in text
    assert pki.seal.key_identifier.hex(":").upper() in text
    assert pki.branch.key_identifier.hex(":").upper() in text
    assert "X509v3 CRL Distribution Points" in text
    assert "URI:http://127.0.0.1:8000/pki/crl" in text
    assert "Authority Information Access" in text
    assert "OCSP - URI:http://127.0.0.1:8000/pki/ocsp" in text
    assert "CA Issuers - URI:http://127.0.0.1:8000/pki/branch.cer" in text
    assert f"serialNumber = {DEPT_USCC}" in text
    assert f"{GMT0015_ORG_CODE}:" in text
    extension = text.split(f"{GMT0015_ORG_CODE}:", 1)[1]
    assert DEPT_USCC in extension.split("Signature Algorithm", 1)[0]
    assert f"Serial Number: {pki.seal.serial}" in text


def test_openssl_text_of_branch_and_root(pems: dict[str, Path]) -> None:
    branch = _text(pems["branch"])
    assert "Version: 3 (0x2)" in branch
    assert "X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0" in branch
    key_usage = branch.split("X509v3 Key Usage: critical\n", 1)[1].splitlines()[0]
    assert "Certificate Sign" in key_usage
    assert "CRL Sign" in key_usage
    assert "URI:http://127.0.0.1:8000/pki/root.crl" in branch
    root = _text(pems["root"])
    assert "CA:TRUE" in root
    assert "pathlen" not in root
    assert "Signature Algorithm: SM2-with-SM3" in root


def test_openssl_der_matches_ours(pki: PKI, pems: dict[str, Path]) -> None:
    der = openssl("x509", "-in", str(pems["seal"]), "-outform", "DER").stdout
    assert der == pki.seal.der


# --- our Certificate API -------------------------------------------------------------------------


def test_certificate_properties(pki: PKI) -> None:
    seal = pki.seal
    assert seal.uscc == DEPT_USCC
    assert seal.crl_urls == ["http://127.0.0.1:8000/pki/crl"]
    assert seal.ocsp_urls == ["http://127.0.0.1:8000/pki/ocsp"]
    assert seal.serial == 0x3003ABCDEF
    assert seal.serial_hex == "3003ABCDEF"
    assert seal.common_name == "测试市市场监督管理局"
    assert not seal.is_ca
    assert seal.key_usage == {"digital_signature", "non_repudiation"}
    assert seal.authority_key_identifier == pki.branch.key_identifier
    assert seal.key_identifier == seal.public_key.key_identifier
    assert seal.public_key == pki.seal_signer.public_key
    assert len(seal.sm3_fingerprint) == 64
    assert pki.branch.is_ca
    assert {"key_cert_sign", "crl_sign"} <= pki.branch.key_usage
    assert pki.branch.crl_urls == ["http://127.0.0.1:8000/pki/root.crl"]
    assert pki.branch.ocsp_urls == []
    assert pki.root.uscc is None
    assert pki.root.authority_key_identifier == pki.root.key_identifier


def test_load_pem_der_and_bundle(pki: PKI) -> None:
    assert Certificate.load(pki.seal.pem).der == pki.seal.der
    assert Certificate.load(pki.seal.der).der == pki.seal.der
    bundle = pki.seal.pem + pki.branch.pem + pki.root.pem
    assert [c.der for c in Certificate.load_all(bundle)] == [pki.seal.der, pki.branch.der, pki.root.der]
    assert [c.der for c in Certificate.load_all(pki.root.der)] == [pki.root.der]


def test_check_issued_by_accepts_the_chain(pki: PKI) -> None:
    pki.root.check_issued_by(pki.root, NOW)
    pki.branch.check_issued_by(pki.root, NOW)
    pki.seal.check_issued_by(pki.branch, NOW)
    assert pki.seal.signature_valid(pki.branch.public_key)
    assert not pki.seal.signature_valid(pki.branch.public_key, signer_id=b"other")


def test_check_issued_by_rejects_wrong_issuer(pki: PKI) -> None:
    with pytest.raises(InvalidCertificateError, match="issuer"):
        pki.seal.check_issued_by(pki.root, NOW)
    with pytest.raises(InvalidCertificateError):
        pki.branch.check_issued_by(pki.branch, NOW)


def test_check_issued_by_rejects_impostor_with_same_name(pki: PKI) -> None:
    """Same subject name as the branch CA, different key: the signature decides."""
    impostor_signer = SoftwareSigner(SM2PrivateKey.generate())
    impostor = build_certificate(
        subject=pki.branch.subject,
        public_key=impostor_signer.public_key,
        serial=0x2002,
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=100),
        issuer_signer=impostor_signer,
        issuer=None,
        ca=True,
        key_usage={"key_cert_sign", "crl_sign"},
    )
    with pytest.raises(InvalidCertificateError, match="does not verify"):
        pki.seal.check_issued_by(impostor, NOW)


def test_check_issued_by_rejects_non_ca_issuer(pki: PKI) -> None:
    child = build_certificate(
        subject=make_name("child"),
        public_key=SM2PrivateKey.generate().public_key,
        serial=9,
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=10),
        issuer_signer=pki.seal_signer,
        issuer=pki.seal,
        ca=False,
        key_usage={"digital_signature"},
    )
    with pytest.raises(InvalidCertificateError, match="not a CA"):
        child.check_issued_by(pki.seal, NOW)


def test_check_issued_by_rejects_expired_and_not_yet_valid(pki: PKI) -> None:
    seal = pki.seal
    with pytest.raises(InvalidCertificateError, match="expired") as expired:
        seal.check_issued_by(pki.branch, seal.not_after + dt.timedelta(seconds=1))
    assert seal.not_after.isoformat() in str(expired.value)
    with pytest.raises(InvalidCertificateError, match="not valid before") as early:
        seal.check_issued_by(pki.branch, seal.not_before - dt.timedelta(seconds=1))
    assert seal.not_before.isoformat() in str(early.value)
    # The bounds themselves are inside the validity period (RFC 5280 §4.1.2.5).
    seal.check_issued_by(pki.branch, seal.not_before)
    seal.check_issued_by(pki.branch, seal.not_after)
    with pytest.raises(ValueError, match="naive"):
        seal.check_valid_at(dt.datetime(2026, 11, 22))


def test_check_issued_by_rejects_expired_issuer(pki: PKI) -> None:
    long_lived = _seal_like(pki, not_after=pki.branch.not_after + dt.timedelta(days=10))
    when = pki.branch.not_after + dt.timedelta(days=1)
    with pytest.raises(InvalidCertificateError, match="expired") as info:
        long_lived.check_issued_by(pki.branch, when)
    assert pki.branch.not_after.isoformat() in str(info.value)


def test_tampered_signature_detected(pki: PKI) -> None:
    der = pki.seal.der
    for position in (len(der) - 1, len(der) - 10, len(der) - 40):
        try:
            tampered = Certificate.load(_flip(der, position))
        except InvalidCertificateError:
            continue
        with pytest.raises(InvalidCertificateError, match="does not verify"):
            tampered.check_issued_by(pki.branch, NOW)


def test_tampered_tbs_detected(pki: PKI) -> None:
    der = pki.seal.der
    position = der.index(DEPT_USCC.encode()) + 3  # inside the subject serialNumber
    tampered = Certificate.load(_flip(der, position))
    assert tampered.uscc == DEPT_USCC  # the extension still says the real one...
    with pytest.raises(InvalidCertificateError, match="does not verify"):
        tampered.check_issued_by(pki.branch, NOW)  # ...but the signature catches the change


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_tampered_byte_fails_load_or_check(pki: PKI, data: st.DataObject) -> None:
    der = pki.seal.der
    position = data.draw(st.integers(0, len(der) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != der[position]))
    tampered = bytearray(der)
    tampered[position] = value
    with pytest.raises(InvalidCertificateError):
        Certificate.load(bytes(tampered)).check_issued_by(pki.branch, NOW)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"\x30\x03\x02\x01\x00",
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nMIIB\n",
    ],
)
def test_load_rejects_garbage(data: bytes) -> None:
    with pytest.raises(InvalidCertificateError):
        Certificate.load(data)


def test_load_rejects_truncated_der(pki: PKI) -> None:
    der = pki.seal.der
    for cut in range(0, len(der), 13):
        with pytest.raises(InvalidCertificateError):
            Certificate.load(der[:cut])
    with pytest.raises(InvalidCertificateError):
        Certificate.load(der + b"\x00")


def test_load_rejects_pem_of_another_type(pki: PKI) -> None:
    with pytest.raises(InvalidCertificateError, match="PUBLIC KEY"):
        Certificate.load(pki.seal.public_key.to_pem())
    with pytest.raises(InvalidCertificateError, match="CERTIFICATE REQUEST"):
        Certificate.load(pem.armor("CERTIFICATE REQUEST", pki.seal.der))


def test_load_rejects_p256_certificate(tmp_path: Path) -> None:
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=x",
        "-keyout", str(key), "-out", str(cert),
    )  # fmt: skip
    with pytest.raises(InvalidCertificateError, match=r"secp256r1|prime256v1|P-256"):
        Certificate.load(cert.read_bytes())


def test_malformed_uscc_extension_raises_certificate_error(pki: PKI) -> None:
    der = pki.seal.der
    position = der.rindex(b"\x13\x12" + DEPT_USCC.encode())  # the extension comes after the subject
    tampered = bytearray(der)
    tampered[position] = 0x04  # OCTET STRING: not a PrintableString
    cert = Certificate.load(bytes(tampered))
    with pytest.raises(InvalidCertificateError, match="GM/T 0015"):
        cert.uscc  # noqa: B018


# --- build_certificate ---------------------------------------------------------------------------


def test_build_rejects_invalid_uscc(pki: PKI) -> None:
    with pytest.raises(ValueError, match="校验位"):
        _seal_like(pki, uscc="91350100M000100Y44")
    with pytest.raises(ValueError):
        _seal_like(pki, uscc="91350100M000100Y4")


@pytest.mark.parametrize("serial", [0, -1, 2**159])
def test_build_rejects_bad_serial(pki: PKI, serial: int) -> None:
    with pytest.raises(ValueError, match="serial"):
        _seal_like(pki, serial=serial)


def test_build_accepts_largest_serial(pki: PKI) -> None:
    assert _seal_like(pki, serial=2**159 - 1).serial == 2**159 - 1


@pytest.mark.parametrize("delta", [dt.timedelta(0), dt.timedelta(seconds=-1), dt.timedelta(days=-10)])
def test_build_rejects_empty_validity(pki: PKI, delta: dt.timedelta) -> None:
    with pytest.raises(ValueError, match="not_after"):
        _seal_like(pki, not_before=NOW, not_after=NOW + delta)


def test_build_rejects_naive_datetimes(pki: PKI) -> None:
    with pytest.raises(ValueError, match="naive"):
        _seal_like(pki, not_before=dt.datetime(2026, 1, 1))


def test_build_rejects_mismatched_issuer_key(pki: PKI) -> None:
    with pytest.raises(ValueError, match="issuer"):
        _seal_like(pki, issuer_signer=pki.root_signer)
    with pytest.raises(ValueError, match="self-signed"):
        _seal_like(pki, issuer=None)


def test_generalized_time_from_2050(pki: PKI, tmp_path: Path) -> None:
    far = dt.datetime(2051, 6, 1, tzinfo=dt.UTC)
    root_signer = SoftwareSigner(SM2PrivateKey.generate())
    cert = build_certificate(
        subject=make_name("long root"),
        public_key=root_signer.public_key,
        serial=1,
        not_before=NOW,
        not_after=far,
        issuer_signer=root_signer,
        issuer=None,
        ca=True,
        key_usage={"key_cert_sign"},
    )
    assert cert.tbs["validity"]["not_before"].name == "utc_time"
    assert cert.tbs["validity"]["not_after"].name == "general_time"
    assert cert.not_after == far
    (tmp_path / "long.pem").write_bytes(cert.pem)
    assert "Jun  1 00:00:00 2051 GMT" in _text(tmp_path / "long.pem")


# --- certification requests ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def request_pem(pki: PKI) -> bytes:
    subject = make_name("测试市电子证照分中心CA", organization="测试市电子认证分中心")
    return CertificationRequest.build(subject, pki.branch_signer).pem


def test_csr_verifies_with_openssl(request_pem: bytes, tmp_path: Path) -> None:
    path = tmp_path / "req.pem"
    path.write_bytes(request_pem)
    result = openssl("req", "-in", str(path), "-verify", "-vfyopt", SM2_ID_OPT, "-noout")
    assert b"verify OK" in result.stdout + result.stderr
    text = openssl("req", "-in", str(path), "-text", "-noout").stdout.decode()
    assert "SM2-with-SM3" in text
    assert "ASN1 OID: SM2" in text


def test_csr_round_trip(pki: PKI, request_pem: bytes) -> None:
    request = CertificationRequest.load(request_pem)
    assert request.public_key == pki.branch_signer.public_key
    assert request.signature_valid()
    assert request.subject.native["common_name"] == "测试市电子证照分中心CA"
    assert CertificationRequest.load(request.der).der == request.der


def test_csr_load_rejects_tampering(request_pem: bytes) -> None:
    der = pem.unarmor(request_pem)[2]
    subject_pos = der.index("测试".encode())
    for position in (subject_pos, len(der) - 1, len(der) - 20):
        with pytest.raises(InvalidCertificateError):
            CertificationRequest.load(_flip(der, position))
    with pytest.raises(InvalidCertificateError):
        CertificationRequest.load(der[:-5])
    with pytest.raises(InvalidCertificateError):
        CertificationRequest.load(b"garbage")
    with pytest.raises(InvalidCertificateError, match="CERTIFICATE"):
        CertificationRequest.load(pem.armor("CERTIFICATE", der))


def test_openssl_csr_loads_only_with_the_sm2_id(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    openssl("genpkey", "-algorithm", "SM2", "-out", str(key))
    with_id, without_id = tmp_path / "with.pem", tmp_path / "without.pem"
    openssl("req", "-new", "-key", str(key), "-subj", "/CN=x", "-sm3", "-sigopt", SM2_ID_OPT, "-out", str(with_id))
    openssl("req", "-new", "-key", str(key), "-subj", "/CN=x", "-sm3", "-out", str(without_id))
    assert CertificationRequest.load(with_id.read_bytes()).signature_valid()
    # Without -sigopt OpenSSL 3.0 signs with an empty ID: a different Z, not a standard signature.
    with pytest.raises(InvalidCertificateError, match="does not verify"):
        CertificationRequest.load(without_id.read_bytes())
