"""Seals that carry a trusted timestamp (PDF: PAdES B-T's signature-time-stamp unsigned attribute;
OFD: the SES_Signature timeStamp of GB/T 38540), checked by OpenSSL and a pyasn1 spec written apart
from ours, and verified at the timestamp's time: revoked after it VALID with a note, revoked before
it INVALID, no timestamp as before. And the attacks: a token moved from another signature, a token
by a certificate that is not a TSA's, a TSA under another root, a re-dated token."""

from __future__ import annotations

import datetime as dt
import subprocess
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from asn1crypto import cms, tsp
from pyasn1.codec.der import decoder

from keys.crl import Crl, RevokedEntry, build_crl
from keys.signer import SoftwareSigner
from keys.sm2 import SM2PrivateKey, sm3
from keys.x509 import Certificate, build_certificate, make_name
from seals.box import SealBox
from seals.licence_files import SealedLicence, seal_licence, seal_page_pdf
from seals.timestamp import StampRequest, make_tokens, parse_token
from templates.backgrounds import prepare_background
from templates.fonts import FontSet
from templates.layout import build_layout, sample_face
from templates.spec import LicenceTypeSpec, parse_model
from tests.conftest import NOW, PkiHierarchy, gmssl_verify, openssl
from tests.seals import ses_asn1
from verification.report import Status, shown_time
from verification.sealed_file import verify_sealed_file
from verification.trust import TrustAnchors

FOOD = Path(__file__).resolve().parents[2] / "examples" / "types" / "food-business-licence.yaml"
STAMPED = NOW + dt.timedelta(minutes=1)  # the TSA's time, after the seal's claimed signing time
POLICY = "2.25.7"


def _tsa_signer(
    issuer: SoftwareSigner,
    issuer_cert: Certificate,
    chain_tail: tuple[Certificate, ...],
    eku: tuple[str, ...] = ("time_stamping",),
) -> SoftwareSigner:
    key = SM2PrivateKey.generate()
    certificate = build_certificate(
        subject=make_name("测试时间戳服务"),
        public_key=key.public_key,
        serial=int.from_bytes(key.public_key.key_identifier[:8], "big") | 1,
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=365),
        issuer_signer=issuer,
        issuer=issuer_cert,
        ca=False,
        key_usage={"digital_signature", "non_repudiation"},
        extended_key_usage=eku,
    )
    return SoftwareSigner(key, (certificate, *chain_tail))


def _stamper(tsa: SoftwareSigner, when: dt.datetime = STAMPED) -> Callable[[Sequence[bytes]], list[bytes]]:
    def stamp(values: Sequence[bytes]) -> list[bytes]:
        requests = [StampRequest.sm3_of(v) for v in values]
        return make_tokens(
            tsa, requests, first_serial=1000, gen_time=when, policy=POLICY, accuracy=dt.timedelta(seconds=1)
        )

    return stamp


@dataclass(frozen=True)
class Setup:
    pki: PkiHierarchy
    tsa: SoftwareSigner
    seal: Callable[..., SealedLicence]
    layout: Any
    fonts: FontSet
    eseal: bytes
    picture: bytes

    def anchors(self, revoked_at: dt.datetime | None = None, serial: int | None = None) -> TrustAnchors:
        entries = (
            [] if revoked_at is None else [RevokedEntry(serial or self.pki.seal.serial, revoked_at, "key_compromise")]
        )
        crl = build_crl(
            issuer_signer=self.pki.branch_signer,
            issuer=self.pki.branch,
            entries=entries,
            crl_number=1,
            this_update=NOW + dt.timedelta(days=2),
            next_update=NOW + dt.timedelta(days=9),
        )
        return TrustAnchors((self.pki.root,), (self.pki.branch,), (Crl.load(crl),))


@pytest.fixture(scope="module")
def setup(pki: PkiHierarchy, eseal: bytes, seal_picture: bytes, fonts: FontSet) -> Setup:
    spec = parse_model(LicenceTypeSpec, yaml.safe_load(FOOD.read_text(encoding="utf-8")))
    assert spec.template is not None
    layout = build_layout(
        spec, spec.template, prepare_background(spec.template, {}), sample_face(spec, today=NOW.date()), fonts
    )
    tsa = _tsa_signer(pki.branch_signer, pki.branch, (pki.branch, pki.root))

    honest = _stamper(tsa)

    def seal(timestamper: Callable[[Sequence[bytes]], Sequence[bytes]] | None = honest) -> SealedLicence:
        return seal_licence(
            layout, fonts, pki.seal_signer, eseal, seal_picture, NOW, timestamper=timestamper, timestamp_room=3000
        )

    return Setup(pki, tsa, seal, layout, fonts, eseal, seal_picture)


@pytest.fixture(scope="module")
def stamped(setup: Setup) -> SealedLicence:
    return setup.seal()


LATER = NOW + dt.timedelta(days=3)


@pytest.mark.parametrize("fmt", ["pdf", "ofd"])
def test_timestamped_seal_verifies_at_the_timestamp(setup: Setup, stamped: SealedLicence, fmt: str) -> None:
    report, _ = verify_sealed_file(getattr(stamped, fmt), setup.anchors(), LATER)
    assert report.result is Status.VALID, report.to_dict()
    [timestamp] = [c for c in report.checks if c.name == "timestamp"]
    assert "可信时间戳" in timestamp.message and shown_time(STAMPED) in timestamp.message
    beijing = dt.timezone(dt.timedelta(hours=8))
    assert f"{STAMPED.astimezone(beijing):%Y-%m-%d %H:%M}" in timestamp.message  # as clerks read it
    assert report.subject["signatures"][0]["timestamped"]


def test_a_page_written_already_sealed_carries_its_timestamp(setup: Setup) -> None:
    """Annotated copies and reuse receipts are written sealed in one pass (`seal_page_pdf`), not
    through pyHanko: their seal is timestamped all the same, and verified at the stamp's time."""
    stamp_all = _stamper(setup.tsa)
    box = SealBox(x=10, y=10, w=38, h=38)
    pdf = seal_page_pdf(
        setup.layout,
        setup.fonts,
        setup.pki.seal_signer,
        setup.picture,
        box,
        NOW,
        title="加注件",
        reason="加注件：检查",
        timestamper=lambda value: stamp_all([value])[0],
        timestamp_room=3000,
    )
    report, _ = verify_sealed_file(pdf, setup.anchors(STAMPED + dt.timedelta(hours=1)), LATER)
    assert report.result is Status.VALID, report.to_dict()
    [timestamp] = [c for c in report.checks if c.name == "timestamp"]
    assert timestamp.status is Status.VALID and shown_time(STAMPED) in timestamp.message
    # Revoked before the stamp: the timestamp does not save it.
    report, _ = verify_sealed_file(pdf, setup.anchors(NOW - dt.timedelta(hours=1)), LATER)
    assert report.result is Status.INVALID, report.to_dict()


@pytest.mark.parametrize("fmt", ["pdf", "ofd"])
def test_revoked_after_the_timestamp_stays_valid_with_a_note(setup: Setup, stamped: SealedLicence, fmt: str) -> None:
    report, _ = verify_sealed_file(getattr(stamped, fmt), setup.anchors(STAMPED + dt.timedelta(hours=1)), LATER)
    assert report.result is Status.VALID, report.to_dict()
    [revocation] = [c for c in report.checks if c.name == "revocation"]
    assert "时间戳之后被吊销" in revocation.message


@pytest.mark.parametrize("fmt", ["pdf", "ofd"])
def test_revoked_before_the_timestamp_is_invalid(setup: Setup, stamped: SealedLicence, fmt: str) -> None:
    # Revoked between the claimed signing time and the timestamp: the claim does not help.
    report, _ = verify_sealed_file(getattr(stamped, fmt), setup.anchors(NOW + dt.timedelta(seconds=30)), LATER)
    assert (report.result, report.reason) == (Status.INVALID, "certificate_revoked")


@pytest.mark.parametrize("fmt", ["pdf", "ofd"])
def test_without_timestamp_revoked_after_signing_stays_indeterminate(setup: Setup, fmt: str) -> None:
    plain = setup.seal(None)
    report, _ = verify_sealed_file(getattr(plain, fmt), setup.anchors(STAMPED + dt.timedelta(hours=1)), LATER)
    assert (report.result, report.reason) == (Status.INDETERMINATE, "revoked_after_signing")
    assert not any(c.name == "timestamp" for c in report.checks)


def _pdf_signer_info(pdf: bytes) -> cms.SignerInfo:
    start = pdf.rindex(b"/Contents <") + len(b"/Contents <")
    contents = bytes.fromhex(pdf[start : pdf.index(b">", start)].decode())
    return cms.ContentInfo.load(contents)["content"]["signer_infos"][0]


def test_pdf_token_is_read_by_openssl_and_checked_by_gmssl(
    setup: Setup, stamped: SealedLicence, tmp_path: Path
) -> None:
    signer_info = _pdf_signer_info(stamped.pdf)
    [attribute] = signer_info["unsigned_attrs"]
    assert attribute["type"].dotted == "1.2.840.113549.1.9.16.2.14"
    token_der = attribute["values"][0].dump()
    (tmp_path / "token.der").write_bytes(token_der)
    text = openssl("ts", "-reply", "-in", str(tmp_path / "token.der"), "-token_in", "-text").stdout.decode()
    assert f"Policy OID: {POLICY}" in text
    # The imprint is the SM3 of the signature value as the SignerInfo carries it.
    assert sm3(bytes(signer_info["signature"].native)).hex(" ").upper()[:20] in text.upper()
    token = parse_token(token_der)
    assert gmssl_verify(setup.tsa.public_key, token.signature, token.signed_attributes_der)
    # OpenSSL parses the whole CMS with the unsigned attribute in place.
    start = stamped.pdf.rindex(b"/Contents <") + len(b"/Contents <")
    (tmp_path / "cms.der").write_bytes(
        bytes.fromhex(stamped.pdf[start : stamped.pdf.index(b">", start)].decode()).rstrip(b"\0")
    )
    printed = openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", str(tmp_path / "cms.der")).stdout.decode()
    assert "id-smime-aa-timeStampToken" in printed


def test_pdf_still_passes_qpdf(stamped: SealedLicence, tmp_path: Path) -> None:
    (tmp_path / "l.pdf").write_bytes(stamped.pdf)
    result = subprocess.run(["qpdf", "--check", str(tmp_path / "l.pdf")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ofd_timestamp_field_as_gbt_38540_defines_it(setup: Setup, stamped: SealedLicence) -> None:
    with zipfile.ZipFile(__import__("io").BytesIO(stamped.ofd)) as package:
        value = package.read("Doc_0/Signs/Sign_0/SignedValue.dat")
    parsed, rest = decoder.decode(value, asn1Spec=ses_asn1.SESSignature())
    assert rest == b""
    token_der = parsed["timeStamp"].asOctets()
    signature = parsed["signature"].asOctets()
    token = parse_token(token_der)
    assert token.hashed_message == sm3(signature)
    assert gmssl_verify(setup.tsa.public_key, token.signature, token.signed_attributes_der)


# --- attacks -------------------------------------------------------------------------------------


def _report(setup: Setup, timestamper: Callable[[Sequence[bytes]], Sequence[bytes]], fmt: str) -> tuple[Status, str]:
    report, _ = verify_sealed_file(getattr(setup.seal(timestamper), fmt), setup.anchors(), LATER)
    return report.result, report.reason


@pytest.mark.parametrize("fmt", ["pdf", "ofd"])
def test_token_over_another_signature_is_invalid(setup: Setup, fmt: str) -> None:
    other = _stamper(setup.tsa)
    assert _report(setup, lambda values: other([b"another signature"] * 2), fmt) == (
        Status.INVALID,
        "timestamp_mismatch",
    )


@pytest.mark.parametrize("fmt", ["pdf", "ofd"])
def test_token_by_a_certificate_that_is_not_a_tsa_is_invalid(setup: Setup, fmt: str) -> None:
    # The department's own seal key stamping its own seal, with any time it likes.
    fake = _tsa_signer(setup.pki.branch_signer, setup.pki.branch, (setup.pki.branch, setup.pki.root), eku=())
    assert _report(setup, _stamper(fake, NOW - dt.timedelta(days=1)), fmt) == (Status.INVALID, "not_a_tsa")


@pytest.mark.parametrize("fmt", ["pdf", "ofd"])
def test_tsa_under_another_root_is_not_trusted(setup: Setup, fmt: str) -> None:
    other_root_key = SoftwareSigner(SM2PrivateKey.generate())
    other_root = build_certificate(
        subject=make_name("测试市电子证照分中心CA", organization="测试市电子认证分中心"),  # the same name
        public_key=other_root_key.public_key,
        serial=99,
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=900),
        issuer_signer=other_root_key,
        issuer=None,
        ca=True,
        key_usage={"key_cert_sign", "crl_sign"},
    )
    foreign = _tsa_signer(other_root_key, other_root, (other_root,))
    assert _report(setup, _stamper(foreign), fmt) == (Status.INDETERMINATE, "untrusted_tsa")


@pytest.mark.parametrize("fmt", ["pdf", "ofd"])
def test_redated_token_is_invalid(setup: Setup, fmt: str) -> None:
    honest = _stamper(setup.tsa)

    def redate(values: Sequence[bytes]) -> list[bytes]:
        out = []
        for der in honest(values):
            content = cms.ContentInfo.load(der)
            signed = content["content"]
            info = tsp.TSTInfo.load(signed["encap_content_info"]["content"].contents)
            info["gen_time"] = NOW - dt.timedelta(days=1)  # before a revocation, say
            signed["encap_content_info"]["content"] = cms.ParsableOctetString(info.dump())
            out.append(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump(force=True))
        return out

    assert _report(setup, redate, fmt) == (Status.INVALID, "bad_timestamp")


def test_revoked_tsa_before_its_token_is_invalid(setup: Setup, stamped: SealedLicence) -> None:
    tsa_serial = setup.tsa.certificate_chain[0].serial
    report, _ = verify_sealed_file(stamped.pdf, setup.anchors(NOW, serial=tsa_serial), LATER)
    assert (report.result, report.reason) == (Status.INVALID, "tsa_revoked")


# --- long-term validation ------------------------------------------------------------------------

AFTER_EXPIRY_DAYS = 800  # the test seal certificate is valid for 730 days


def _resigned(response_der: bytes, signer: SoftwareSigner) -> bytes:
    from asn1crypto import ocsp

    response = ocsp.OCSPResponse.load(response_der)
    basic = response["response_bytes"]["response"].parsed
    basic["signature"] = signer.sign(basic["tbs_response_data"].dump())
    response["response_bytes"]["response"] = basic
    return bytes(response.dump(force=True))


def _ocsp(setup: Setup, taken: dt.datetime, signer: SoftwareSigner | None = None, state: str = "good") -> bytes:
    from keys.ocsp import CertStatus, ocsp_request, respond_ocsp

    status = CertStatus(state) if state == "good" else CertStatus("revoked", revoked_at=NOW, reason="key_compromise")
    return respond_ocsp(
        ocsp_request(setup.pki.seal, setup.pki.branch),
        issuer=setup.pki.branch,
        responder_signer=signer or setup.pki.branch_signer,
        status_of=lambda serial: status,
        now=taken,
    )


def _expired_anchors(setup: Setup) -> TrustAnchors:
    """The anchors an offline verifier holds years later: its bundle's CRL long past next update."""
    return setup.anchors()


def _sealed_with_evidence(setup: Setup, evidence: bytes) -> SealedLicence:
    return seal_licence(
        setup.layout,
        setup.fonts,
        setup.pki.seal_signer,
        setup.eseal,
        setup.picture,
        NOW,
        timestamper=_stamper(setup.tsa),
        timestamp_room=3000,
        revocation_evidence=evidence,
    )


@pytest.mark.parametrize("fmt", ["pdf", "ofd"])
def test_expired_certificate_verifies_with_embedded_evidence(setup: Setup, fmt: str) -> None:
    later = setup.pki.seal.not_after + dt.timedelta(days=AFTER_EXPIRY_DAYS - 730)
    sealed = _sealed_with_evidence(setup, _ocsp(setup, NOW))
    report, _ = verify_sealed_file(getattr(sealed, fmt), _expired_anchors(setup), later)
    assert report.result is Status.VALID, report.to_dict()
    [revocation] = [c for c in report.checks if c.name == "revocation"]
    assert "文件内嵌的签章时吊销状态" in revocation.message
    # Without the evidence the same file is INDETERMINATE offline (the CRL has expired).
    bare = setup.seal()
    report, _ = verify_sealed_file(getattr(bare, fmt), _expired_anchors(setup), later)
    assert (report.result, report.reason) == (Status.INDETERMINATE, "crl_expired")


@pytest.mark.parametrize("fmt", ["pdf", "ofd"])
def test_evidence_that_proves_nothing_is_ignored(setup: Setup, fmt: str) -> None:
    later = setup.pki.seal.not_after + dt.timedelta(days=1)
    forged = _resigned(_ocsp(setup, NOW), setup.pki.seal_signer)  # "good", signed by another key than the CA's
    stale = _ocsp(setup, NOW - dt.timedelta(hours=2))  # taken long before the timestamp
    for evidence in (forged, stale):
        report, _ = verify_sealed_file(
            getattr(_sealed_with_evidence(setup, evidence), fmt), _expired_anchors(setup), later
        )
        assert (report.result, report.reason) == (Status.INDETERMINATE, "crl_expired"), report.to_dict()
    revoked = _ocsp(setup, NOW, state="revoked")
    report, _ = verify_sealed_file(getattr(_sealed_with_evidence(setup, revoked), fmt), _expired_anchors(setup), later)
    assert (report.result, report.reason) == (Status.INVALID, "certificate_revoked")


def test_pdf_evidence_is_in_the_document_security_store(setup: Setup, tmp_path: Path) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader

    evidence = _ocsp(setup, NOW)
    sealed = _sealed_with_evidence(setup, evidence)
    reader = PdfFileReader(__import__("io").BytesIO(sealed.pdf))
    [stream] = reader.root["/DSS"]["/OCSPs"]
    assert stream.get_object().data == evidence
    (tmp_path / "ocsp.der").write_bytes(evidence)
    text = openssl("ocsp", "-respin", str(tmp_path / "ocsp.der"), "-resp_text", "-noverify").stdout.decode()
    assert "Cert Status: good" in text


def test_offline_verifier_after_the_certificate_expired(setup: Setup, tmp_path: Path) -> None:
    """examples/offline_verifier.py, no network, years later: VALID from what the file carries."""
    import base64
    import json
    import os
    import sys

    from keys.sm2 import sm3 as sm3_of
    from seals.signed_data import signed_attributes, signed_data
    from verification.trust_bundle import BUNDLE_FORMAT, canonical

    later = setup.pki.seal.not_after + dt.timedelta(days=30)
    service_key = SoftwareSigner(SM2PrivateKey.generate())
    uscc = "11350100MB0000000Y"
    service = build_certificate(
        subject=make_name("电子证照共享服务", serial_number=uscc),
        public_key=service_key.public_key,
        serial=0x5005,
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=1500),
        issuer_signer=setup.pki.branch_signer,
        issuer=setup.pki.branch,
        ca=False,
        key_usage={"digital_signature"},
        uscc=uscc,
    )
    crl = setup.anchors().crls[0]
    body = {
        "format": BUNDLE_FORMAT,
        "issued_at": NOW.isoformat(),
        "base_url": "http://127.0.0.1:8000",
        "root": setup.pki.root.pem.decode(),
        "branch": setup.pki.branch.pem.decode(),
        "service": service.pem.decode(),
        "crl": base64.b64encode(crl.der).decode(),
        "crl_next_update": crl.next_update.isoformat(),  # type: ignore[union-attr]
    }
    chain = (service, setup.pki.branch, setup.pki.root)
    attributes = signed_attributes(sm3_of(canonical(body)), NOW, service.der)
    body["signature"] = base64.b64encode(signed_data(chain, attributes, service_key.sign(attributes))).decode()
    (tmp_path / "bundle.json").write_text(json.dumps(body), encoding="utf-8")
    (tmp_path / "root.pem").write_bytes(setup.pki.root.pem)
    sealed = _sealed_with_evidence(setup, _ocsp(setup, NOW))
    for fmt in ("pdf", "ofd"):
        (tmp_path / f"licence.{fmt}").write_bytes(getattr(sealed, fmt))
        script = Path(__file__).resolve().parents[2] / "examples" / "offline_verifier.py"
        result = subprocess.run(
            [
                sys.executable,
                str(script),
                "--root",
                str(tmp_path / "root.pem"),
                "--authority",
                uscc,
                "--bundle",
                str(tmp_path / "bundle.json"),
                "--now",
                later.isoformat(),
                str(tmp_path / f"licence.{fmt}"),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(script.parents[1])},
        )
        assert result.returncode == 0 and result.stdout.startswith("VALID"), result.stdout + result.stderr
        assert "文件内嵌的签章时吊销状态" in result.stdout
