"""Seal registration (电子印章备案, cert_authority.eseals.service): the branch CA issues the seal
certificate and signs the GB/T 38540 SES_Seal, checked with the independent pyasn1 spec and gmssl;
bad requests store nothing; revoking a seal revokes its certificate (OpenSSL reads the CRL and the
OCSP answer) and stops issuance until a new seal is registered."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from PIL import Image
from sqlmodel import Session, select

from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.boundary import classify
from cert_authority.errors import ConflictError, InvalidRequestError, NoActiveSealError, PermissionDeniedError
from cert_authority.eseals.schemas import SealCreate
from cert_authority.store.models import AuditEventRow, SealRow
from keys.uscc import uscc_check_character
from keys.x509 import Certificate
from tests.conftest import (
    FOOD_TYPE,
    ISSUER_USCC,
    OTHER_ISSUER_USCC,
    LicenceEnv,
    gmssl_verify,
    issue_example,
    openssl,
    ses_asn1,
    stored_files,
    table_counts,
)

ISSUER = Actor("apikey:1", "issuer", ISSUER_USCC)
MARKET_SEAL = "演示市市场监督管理局电子证照专用章"
REPRESENTATIVE = "陈明"
OTHER_ISSUER = Actor("apikey:2", "issuer", OTHER_ISSUER_USCC)


def sm3(data: bytes) -> str:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize().hex()


def scanned_png(width: int = 400, height: int = 300) -> bytes:
    """A seal scanned on white paper: RGB, no alpha."""
    image = Image.new("RGB", (width, height), "white")
    image.paste((220, 20, 20), (100, 50, 300, 250))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_registered_seal_is_made_and_signed_by_the_branch(shared_licence_env: LicenceEnv) -> None:
    env = shared_licence_env
    name = "演示市市场监督管理局电子证照专用章"
    request = SealCreate(department_uscc=ISSUER_USCC, name=name, legal_representative=REPRESENTATIVE,
                         purpose="电子证照专用章", diameter_mm=40)
    applied = env.services.seals.apply(ISSUER, request)  # generated: the round red seal
    seal = env.services.seals.approve(CLI_ACTOR, applied.id)
    assert (seal.status, seal.department_uscc, seal.seal_type, seal.width_mm, seal.height_mm) == (
        "active", ISSUER_USCC, 1, 40, 40)
    assert seal.es_id.startswith("350100") and len(seal.es_id) == 16
    record = env.pki.certificate(int(seal.cert_serial, 16))
    certificate = record.certificate
    assert certificate.uscc == ISSUER_USCC and record.revoked_at is None
    # The validity defaults to the certificate's.
    assert (seal.valid_start, seal.valid_end) == (certificate.not_before, certificate.not_after)

    asn1 = ses_asn1()
    seal_der = env.registry.filestore.get(seal.seal_sm3)
    assert sm3(seal_der) == seal.seal_sm3
    decoded = asn1.decode(seal_der, asn1.SESeal())
    info = decoded["eSealInfo"]
    maker = env.pki.branch_certificate()
    assert bytes(decoded["cert"]) == maker.der
    assert gmssl_verify(maker.public_key, asn1.bits(decoded["signedValue"]), asn1.encode(info))
    assert (str(info["header"]["ID"]), int(info["header"]["version"])) == ("ES", 4)
    assert str(info["esID"]) == seal.es_id
    assert str(info["property"]["name"]) == seal.name and int(info["property"]["type"]) == 1
    listed = asn1.decode(bytes(info["property"]["certList"]), asn1.CertInfoList())
    assert [bytes(c) for c in listed] == [certificate.der]
    picture = bytes(info["picture"]["data"])
    assert str(info["picture"]["type"]) == "PNG" and sm3(picture) == seal.picture_sm3
    assert (int(info["picture"]["width"]), int(info["picture"]["height"])) == (40, 40)
    with Image.open(io.BytesIO(picture)) as image:
        assert image.mode == "RGBA"

    with Session(env.registry.engine) as session:
        events = session.exec(select(AuditEventRow).where(AuditEventRow.target == f"seal:{seal.id}")).all()
    assert [(e.action, e.actor) for e in events] == [("seal_apply", "apikey:1"), ("seal_approve", "cli")]
    # The newest valid seal is the one licences are sealed with.
    assert issue_example(env, FOOD_TYPE).licence.seal.seal_id == seal.id


def test_uploaded_picture_keeps_its_proportions(shared_licence_env: LicenceEnv) -> None:
    request = SealCreate(department_uscc=OTHER_ISSUER_USCC, name="演示市人力资源和社会保障局电子证照专用章",
                         legal_representative=REPRESENTATIVE, diameter_mm=42)
    seal = shared_licence_env.services.seals.register(CLI_ACTOR, request, scanned_png(400, 300))
    assert (seal.width_mm, seal.height_mm) == (42, 32)
    picture = shared_licence_env.services.seals.picture(CLI_ACTOR, seal.id)
    with Image.open(io.BytesIO(picture)) as image:
        assert image.mode == "RGBA" and image.getpixel((10, 10))[3] == 0  # white became transparent


def _user_department(env: LicenceEnv) -> str:
    from tests.conftest import add_department

    first17 = "11350100MB0000040"
    uscc = first17 + uscc_check_character(first17)
    add_department(env.registry, uscc, ("user",), name="演示市某用证部门")
    return uscc


def test_bad_requests_store_nothing(shared_licence_env: LicenceEnv) -> None:
    env = shared_licence_env
    user_department = _user_department(env)
    counts, files = table_counts(env.engine), stored_files(env.settings)
    today = dt.date.today()
    cases = [
        (CLI_ACTOR, {"department_uscc": ISSUER_USCC}, b"GIF89a", 422, "印章图片不是 PNG"),
        (CLI_ACTOR, {"department_uscc": ISSUER_USCC}, scanned_png(4000, 10), 422, "印章图片尺寸"),
        (CLI_ACTOR, {"department_uscc": "91350100M000100Y43"}, None, 404, "尚未登记"),
        (CLI_ACTOR, {"department_uscc": user_department}, None, 422, "没有颁证（issuer）角色"),
        (CLI_ACTOR, {"department_uscc": ISSUER_USCC, "valid_end": today.replace(year=today.year + 10)}, None, 422,
         "晚于印章证书的截止时间"),
        (CLI_ACTOR, {"department_uscc": ISSUER_USCC, "valid_start": today - dt.timedelta(days=2)}, None, 422,
         "早于今天"),
        (CLI_ACTOR, {"department_uscc": ISSUER_USCC, "valid_start": today + dt.timedelta(days=9),
                     "valid_end": today + dt.timedelta(days=3)}, None, 422, "截止须晚于起始"),
        (OTHER_ISSUER, {"department_uscc": ISSUER_USCC}, None, 403, "不能办理"),
        (Actor("apikey:3", "user", ISSUER_USCC), {"department_uscc": ISSUER_USCC}, None, 403, "权限不足"),
    ]
    for actor, fields, picture, status, message in cases:
        request = SealCreate(**{"name": MARKET_SEAL, "legal_representative": REPRESENTATIVE, **fields})  # type: ignore[arg-type]
        with pytest.raises(Exception) as caught:  # each kind has its status
            env.services.seals.apply(actor, request, picture)
        assert classify(caught.value) is not None and classify(caught.value)[0] == status, (fields, caught.value)  # type: ignore[index]
        assert message in str(caught.value), (fields, str(caught.value))
    assert table_counts(env.engine) == counts
    assert stored_files(env.settings) == files


def test_a_failure_after_the_certificate_withdraws_it(
    shared_licence_env: LicenceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cert_authority.eseals.service as seals_service

    env = shared_licence_env
    before = {r.certificate.serial for r in env.pki.registry.list_issued()}

    def broken(*_args: object, **_kwargs: object) -> bytes:
        raise RuntimeError("maker's signing device failed")

    monkeypatch.setattr(seals_service, "make_seal", broken)
    with pytest.raises(RuntimeError, match="signing device"):
        env.services.seals.register(CLI_ACTOR, SealCreate(department_uscc=ISSUER_USCC, name=MARKET_SEAL,
                                                          legal_representative=REPRESENTATIVE))
    [new] = [r for r in env.pki.registry.list_issued() if r.certificate.serial not in before]
    assert new.revoked_at is not None and new.reason == "cessation_of_operation"
    with Session(env.registry.engine) as session:
        assert session.exec(select(SealRow).where(SealRow.cert_serial == new.certificate.serial_hex)).first() is None


def _ocsp_status(env: LicenceEnv, certificate: Certificate, tmp_path: Path) -> str:
    """Ask our responder with a request OpenSSL made; OpenSSL reads the answer."""
    branch, seal = tmp_path / "branch.pem", tmp_path / "seal.pem"
    branch.write_bytes(env.pki.branch_certificate().pem)
    seal.write_bytes(certificate.pem)
    request = tmp_path / "req.der"
    openssl("ocsp", "-issuer", str(branch), "-cert", str(seal), "-no_nonce", "-reqout", str(request))
    response = tmp_path / "resp.der"
    response.write_bytes(env.pki.ocsp_response(request.read_bytes(), dt.datetime.now(dt.timezone.utc)))
    text = openssl("ocsp", "-respin", str(response), "-resp_text", "-noverify").stdout.decode()
    return text.split("Cert Status: ", 1)[1].split()[0]


def test_revoking_a_seal_revokes_its_certificate_and_stops_issuance(licence_env: LicenceEnv, tmp_path: Path) -> None:
    env = licence_env
    earlier = issue_example(env, FOOD_TYPE).licence
    [seal] = env.services.seals.list(ISSUER)
    certificate = env.pki.certificate(int(seal.cert_serial, 16)).certificate
    assert _ocsp_status(env, certificate, tmp_path) == "good"

    with pytest.raises(InvalidRequestError, match="吊销原因 'lost it' 无效"):
        env.services.seals.revoke(ISSUER, seal.id, "lost it")
    with pytest.raises(PermissionDeniedError):
        env.services.seals.revoke(OTHER_ISSUER, seal.id, "keyCompromise")
    revoked = env.services.seals.revoke(ISSUER, seal.id, "keyCompromise", note="印章密钥泄露")
    assert (revoked.status, revoked.revocation_reason, revoked.revocation_note) == (
        "revoked", "keyCompromise", "印章密钥泄露")
    with pytest.raises(ConflictError, match="已于"):
        env.services.seals.revoke(ISSUER, seal.id, "keyCompromise")

    assert _ocsp_status(env, certificate, tmp_path) == "revoked"
    crl = tmp_path / "crl.der"
    crl.write_bytes(env.pki.current_crl(dt.datetime.now(dt.timezone.utc)))
    crl_text = openssl("crl", "-inform", "DER", "-in", str(crl), "-text", "-noout").stdout.decode()
    assert certificate.serial_hex in crl_text.replace(":", "").upper() and "Key Compromise" in crl_text

    with pytest.raises(NoActiveSealError, match="没有有效的电子印章"):
        issue_example(env, FOOD_TYPE)
    # Licences sealed earlier keep their status: their signature predates the revocation.
    assert env.services.queries.get(CLI_ACTOR, earlier.identifier).status == "issued"

    application = SealCreate(department_uscc=ISSUER_USCC, name=MARKET_SEAL, legal_representative=REPRESENTATIVE)
    replacement = env.services.seals.approve(CLI_ACTOR, env.services.seals.apply(ISSUER, application).id)
    assert issue_example(env, FOOD_TYPE).licence.seal.seal_id == replacement.id


def test_a_seal_whose_certificate_was_revoked_directly_is_not_used(licence_env: LicenceEnv) -> None:
    [seal] = licence_env.services.seals.list(ISSUER)
    licence_env.pki.revoke(int(seal.cert_serial, 16), "keyCompromise", dt.datetime.now(dt.timezone.utc))
    with pytest.raises(NoActiveSealError):
        issue_example(licence_env, FOOD_TYPE)
    # Revoking the seal afterwards completes it without revoking the certificate twice.
    assert licence_env.services.seals.revoke(CLI_ACTOR, seal.id, "keyCompromise").status == "revoked"


def test_who_sees_which_seals(shared_licence_env: LicenceEnv) -> None:
    seals = shared_licence_env.services.seals
    mine = seals.list(ISSUER)
    assert mine and {s.department_uscc for s in mine} == {ISSUER_USCC}
    everything = seals.list(Actor("apikey:4", "auditor", OTHER_ISSUER_USCC))
    assert len({s.department_uscc for s in everything}) == 3
    with pytest.raises(PermissionDeniedError):
        seals.list(ISSUER, OTHER_ISSUER_USCC)
    with pytest.raises(PermissionDeniedError):
        seals.get(OTHER_ISSUER, mine[0].id)
    with pytest.raises(PermissionDeniedError):
        seals.list(Actor("apikey:5", "user", ISSUER_USCC))


def test_generated_picture_draws_name_and_purpose(shared_licence_env: LicenceEnv) -> None:
    seal = shared_licence_env.services.seals.register(
        CLI_ACTOR, SealCreate(department_uscc=ISSUER_USCC, name="演示市市场监督管理局合同专用章", purpose="合同专用章",
                              legal_representative=REPRESENTATIVE, diameter_mm=38)
    )
    png = shared_licence_env.services.seals.picture(CLI_ACTOR, seal.id)
    with Image.open(io.BytesIO(png)) as image:
        alpha = image.getchannel("A")
        assert alpha.getbbox() is not None and image.width == 38 * 12
