"""The PKI service on a real database (SQLite and PostgreSQL), checked with OpenSSL and gmssl."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from cert_authority.errors import (
    AlreadyInitialisedError,
    ConfigError,
    InvalidRequestError,
    NotFoundError,
    NotInitialisedError,
)
from cert_authority.pki.service import PkiService
from cert_authority.settings import Settings
from keys.ca import PublicationUrls, create_branch_certificate
from keys.crl import Crl
from keys.errors import CAError, InvalidCertificateError, InvalidCodeError, WrongPassphraseError
from keys.x509 import build_certificate, make_name
from tests.conftest import DEPT_USCC, NOW, gmssl_verify, gmssl_verify_certificate, make_test_pki, openssl


def test_init_issue_revoke_and_crl(pki_service: PkiService, tmp_path: Path) -> None:
    root, branch = pki_service.init(NOW)
    assert branch.check_issued_by(root, NOW) is None
    seal = pki_service.issue_seal_certificate(name="测试市市场监督管理局", uscc=DEPT_USCC, now=NOW)
    other = pki_service.issue_seal_certificate(name="测试市人社局", uscc="91350100M000100Y43", now=NOW)
    assert seal.uscc == DEPT_USCC and seal.crl_urls == ["http://127.0.0.1:8000/pki/crl"]
    assert gmssl_verify_certificate(seal, branch.public_key)

    paths = {name: tmp_path / f"{name}.pem" for name in ("root", "branch", "seal")}
    for name, cert in (("root", root), ("branch", branch), ("seal", seal)):
        paths[name].write_bytes(cert.pem)
    openssl("verify", "-vfyopt", "distid:1234567812345678", "-CAfile", str(paths["root"]), str(paths["branch"]))
    openssl(
        "verify", "-vfyopt", "distid:1234567812345678", "-partial_chain",
        "-CAfile", str(paths["branch"]), str(paths["seal"]),
    )

    pki_service.revoke(seal.serial, "keyCompromise", NOW + dt.timedelta(hours=1))
    crl_der = pki_service.current_crl(NOW + dt.timedelta(hours=2))
    crl = Crl.load(crl_der)
    assert [entry.serial for entry in crl.entries] == [seal.serial]
    assert crl.entries[0].reason == "key_compromise"
    assert gmssl_verify(branch.public_key, crl.asn1["signature"].native, crl.asn1["tbs_cert_list"].dump())
    text = openssl("crl", "-inform", "DER", "-text", "-noout", input=crl_der).stdout.decode()
    assert seal.serial_hex in text.replace(":", "") and "Key Compromise" in text
    assert other.serial_hex not in text.replace(":", "")

    assert pki_service.branch_ca.status_of(seal.serial).state == "revoked"
    assert pki_service.branch_ca.status_of(other.serial).state == "good"
    assert pki_service.branch_ca.status_of(12345).state == "unknown"
    with pytest.raises(CAError, match="已于"):
        pki_service.revoke(seal.serial, "superseded", NOW)
    with pytest.raises(CAError, match="未签发"):
        pki_service.revoke(0xABCDEF, "superseded", NOW)
    with pytest.raises(InvalidRequestError, match="吊销原因 'stolen' 无效"):
        pki_service.revoke(other.serial, "stolen", NOW)
    assert pki_service.branch_ca.status_of(other.serial).state == "good"


def test_crl_numbers_are_unique_across_concurrent_callers(pki_service: PkiService) -> None:
    pki_service.init(NOW)
    before = pki_service.branch_ca.current_crl(NOW).number
    # Every call builds a CRL (none finds the newest will do): the numbering is what is checked here.
    pki_service.branch_ca._will_do = lambda *_: False  # type: ignore[method-assign]
    with ThreadPoolExecutor(max_workers=8) as pool:
        crls = list(pool.map(lambda _: pki_service.branch_ca.publish_crl(NOW), range(40)))
    numbers = [crl.number for crl in crls]
    assert sorted(numbers) == list(range(before + 1, before + 41))
    assert all(Crl.load(crl.der).crl_number == crl.number for crl in crls)
    assert pki_service.registry.latest_crl().number == before + 40


def test_crl_is_reused_until_half_life(pki_service: PkiService) -> None:
    pki_service.init(NOW)
    first = Crl.load(pki_service.current_crl(NOW))
    again = Crl.load(pki_service.current_crl(NOW + dt.timedelta(hours=1)))
    later = Crl.load(pki_service.current_crl(NOW + dt.timedelta(hours=13)))
    assert first.crl_number == again.crl_number < later.crl_number


@pytest.mark.parametrize("skew", [dt.timedelta(0), dt.timedelta(seconds=-30)], ids=["same_second", "clock_behind"])
def test_a_revocation_whose_crl_failed_is_published_even_when_not_the_last_by_time(
    pki_service: PkiService, skew: dt.timedelta
) -> None:
    """Not an attack: two revocations, the second one's CRL failing to publish after its row was
    committed (a lock timeout, a worker killed during a long build), so its retry finds it revoked
    and does not publish. The next request re-issues, even when the revocation made last by time is
    the other one (both in one second: ties go to the higher serial; or the second made on a host
    whose clock is behind): the CRL held lists fewer certificates than are revoked on record."""
    pki_service.init(NOW)
    low, high = sorted(
        (pki_service.issue_seal_certificate(name=f"印章{i}", uscc=DEPT_USCC, now=NOW) for i in range(2)),
        key=lambda certificate: certificate.serial,
    )
    when = NOW + dt.timedelta(minutes=1)
    pki_service.revoke(high.serial, "keyCompromise", when)  # published
    registry = pki_service.registry
    publish = registry.publish_crl

    def fails_once(make: object, floor: int = 0) -> None:
        registry.publish_crl = publish  # type: ignore[method-assign]
        raise OSError("database unavailable for a moment")

    registry.publish_crl = fails_once  # type: ignore[method-assign]
    with pytest.raises(OSError):
        pki_service.revoke(low.serial, "keyCompromise", when + skew)
    for worker in (pki_service, PkiService(pki_service.settings, pki_service.engine, pki_service.keystore)):
        crl = Crl.load(worker.current_crl(when + dt.timedelta(minutes=1)))
        assert crl.entry(low.serial) is not None, f"CRL {crl.crl_number} served without the revocation"


@pytest.mark.parametrize("worker", ["published_here", "another_worker"])
def test_ocsp_does_not_check_the_crl_signature_on_every_request(
    pki_service: PkiService, monkeypatch: pytest.MonkeyPatch, worker: str
) -> None:
    """Cost: `status_of` (every OCSP request, and issuance once per chunk) looks the serial up in the
    newest CRL too, found genuine once and then held, in the worker that published it and in one
    that never served a CRL alike: not an SM2 check of the whole CRL per request (11 ms with 5,000
    revocations)."""
    pki_service.init(NOW)
    good = pki_service.issue_seal_certificate(name="印章", uscc=DEPT_USCC, now=NOW)
    revoked = pki_service.issue_seal_certificate(name="旧印章", uscc=DEPT_USCC, now=NOW)
    pki_service.revoke(revoked.serial, "superseded", NOW)
    ca = (
        pki_service
        if worker == "published_here"
        else PkiService(pki_service.settings, pki_service.engine, pki_service.keystore)
    ).branch_ca
    checks: list[int] = []
    signature_valid = Crl.signature_valid

    def counted(self: Crl, *args: Any, **kwargs: Any) -> bool:
        checks.append(1)
        return signature_valid(self, *args, **kwargs)

    monkeypatch.setattr(Crl, "signature_valid", counted)
    for _ in range(10):
        assert ca.status_of(good.serial).state == "good"
    assert len(checks) <= 1, f"{len(checks)} CRL signature checks for 10 OCSP answers"


def test_init_refuses_to_replace_an_existing_ca(pki_service: PkiService) -> None:
    pki_service.init(NOW)
    before = pki_service.branch_path.read_bytes()
    with pytest.raises(AlreadyInitialisedError):
        pki_service.init(NOW)
    assert pki_service.branch_path.read_bytes() == before


def test_bad_uscc_leaves_nothing_behind(pki_service: PkiService) -> None:
    pki_service.init(NOW)
    keys_before = set(pki_service.keystore.files.labels())  # the keys/ folder, or stored_key on PostgreSQL
    with pytest.raises(InvalidCodeError, match="校验位"):
        pki_service.issue_seal_certificate(name="某局", uscc="91350100M000100Y44", now=NOW)
    assert set(pki_service.keystore.files.labels()) == keys_before
    assert pki_service.registry.list_issued() == []


def test_seal_signer_signs_with_its_certificate(pki_service: PkiService) -> None:
    pki_service.init(NOW)
    seal = pki_service.issue_seal_certificate(name="某局", uscc=DEPT_USCC, now=NOW)
    signer = pki_service.seal_signer(seal.serial)
    assert signer.certificate_chain[0].der == seal.der
    assert gmssl_verify(seal.public_key, signer.sign(b"licence"), b"licence")
    with pytest.raises(NotFoundError):
        pki_service.seal_signer(0x1234)


def test_uninitialised_and_unconfigured(settings: Settings, pki_service: PkiService) -> None:
    with pytest.raises(NotInitialisedError, match="ecas pki init"):
        pki_service.current_crl(NOW)
    no_kek = PkiService(settings.model_copy(update={"kek": None}), pki_service.registry.engine)
    with pytest.raises(ConfigError, match="ECAS_KEK"):
        no_kek.init(NOW)


def test_wrong_passphrase_is_reported(settings: Settings, pki_service: PkiService) -> None:
    pki_service.init(NOW)
    wrong_kek = settings.model_copy(update={"kek": SecretStr("not-the-passphrase")})
    wrong = PkiService(wrong_kek, pki_service.registry.engine)
    with pytest.raises(WrongPassphraseError):
        wrong.current_crl(NOW)


def test_joining_an_existing_root_with_a_csr(pki_service: PkiService, tmp_path: Path) -> None:
    provincial = make_test_pki()  # stands for the provincial CA, run by someone else
    request = pki_service.make_branch_request(NOW)
    openssl("req", "-verify", "-vfyopt", "distid:1234567812345678", "-noout", input=request.pem)
    urls = PublicationUrls("http://ca.example.gov.cn")

    wrong_key = create_branch_certificate(
        provincial.root_signer, provincial.root, subject=request.subject,
        public_key=provincial.seal.public_key, urls=urls, now=NOW,
    )
    with pytest.raises(InvalidCertificateError, match="another key"):
        pki_service.install_branch(wrong_key.pem, provincial.root.pem, NOW)
    not_a_ca = build_certificate(
        subject=request.subject, public_key=request.public_key, serial=7, not_before=NOW,
        not_after=NOW + dt.timedelta(days=30), issuer_signer=provincial.root_signer,
        issuer=provincial.root, ca=False, key_usage={"digital_signature"},
    )
    with pytest.raises(InvalidCertificateError, match="not a CA"):
        pki_service.install_branch(not_a_ca.pem, provincial.root.pem, NOW)
    assert not pki_service.initialised

    issued = create_branch_certificate(
        provincial.root_signer, provincial.root, subject=request.subject,
        public_key=request.public_key, urls=urls, now=NOW,
    )
    other_root = make_test_pki().root
    with pytest.raises(InvalidCertificateError):
        pki_service.install_branch(issued.pem, other_root.pem, NOW)
    pki_service.install_branch(issued.pem, provincial.root.pem, NOW)
    assert pki_service.initialised and not pki_service.request_path.exists()

    seal = pki_service.issue_seal_certificate(name="某局", uscc=DEPT_USCC, now=NOW)
    seal.check_issued_by(issued, NOW)
    with pytest.raises(NotFoundError):
        pki_service.root_crl()  # the provincial root publishes its own CRL


def test_export_writes_files_for_other_tools(pki_service: PkiService, tmp_path: Path) -> None:
    pki_service.init(NOW)
    seal = pki_service.issue_seal_certificate(name="某局", uscc=DEPT_USCC, now=NOW)
    out = tmp_path / "export"
    names = {path.name for path in pki_service.export(out, NOW)}
    assert {"root.pem", "branch.pem", "crl.der", f"seal-{seal.serial_hex}.pem"} <= names
    openssl(
        "verify", "-vfyopt", "distid:1234567812345678", "-partial_chain",
        "-CAfile", str(out / "branch.pem"), str(out / f"seal-{seal.serial_hex}.pem"),
    )
    openssl("crl", "-inform", "DER", "-in", str(out / "crl.der"), "-noout")


def test_branch_name_in_request(pki_service: PkiService) -> None:
    request = pki_service.make_branch_request(NOW)
    assert request.subject.dump() == make_name(
        "市电子证照分中心CA（演示）", organization="市电子认证分中心"
    ).dump()
