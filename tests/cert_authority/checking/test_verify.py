"""Verifying licences (cert_authority.checking.licences over verification/): sealed PDF and OFD files with a
tamper matrix, identifiers, the registry's status and record, revoked seal certificates, foreign
seals; `ecas verify` exit codes; /api/v1/verify; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.cli.main import app as cli_app
from cert_authority.http.app import create_app
from cert_authority.issuing.personal import open_licence, sealed_columns
from cert_authority.settings import Settings
from cert_authority.store.models import LicenceRow
from templates.identifier import LicenceIdentifier
from tests.cert_authority.checking.forged_pdf import forge
from tests.conftest import (
    FOOD_TYPE,
    ISSUER_USCC,
    USER_USCC,
    LicenceEnv,
    build_licence_env,
    flip_stored_bit,
    issue_example,
    ofd_vector,
    stored_name,
)
from verification.report import Status

USER = Actor(role="user", department_uscc=USER_USCC, label="user")


def files(env: LicenceEnv, identifier: str) -> tuple[bytes, bytes]:
    queries = env.services.queries
    return queries.file(CLI_ACTOR, identifier, "pdf"), queries.file(CLI_ACTOR, identifier, "ofd")


def verdict(env: LicenceEnv, data: bytes) -> tuple[Status, str]:
    report = env.services.verification.verify_file(data)
    return report.result, report.reason


def repacked(ofd: bytes, name: str, change: int) -> bytes:
    """The OFD with one byte of part `name` flipped, re-zipped so the ZIP itself stays valid."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(ofd)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = bytearray(source.read(info))
            if info.filename == name:
                data[change % len(data)] ^= 0x01
            target.writestr(info, bytes(data))
    return out.getvalue()


@pytest.fixture
def issued(shared_licence_env: LicenceEnv) -> tuple[LicenceEnv, str]:
    return shared_licence_env, issue_example(shared_licence_env, FOOD_TYPE).licence.identifier


def test_issued_files_verify_with_face_data(issued: tuple[LicenceEnv, str]) -> None:
    env, identifier = issued
    pdf, ofd = files(env, identifier)
    for data in (pdf, ofd):
        report = env.services.verification.verify_file(data)
        assert report.result is Status.VALID, report.to_dict()
        names = [c.name for c in report.checks]
        assert {"integrity", "signature", "chain", "revocation", "status", "record"} <= set(names)
        assert report.subject["identifier"] == identifier and report.face_data is not None
        assert report.subject["holder_code"] == "913501********0Y43"  # masked
    assert "seal" in [c.name for c in env.services.verification.verify_file(ofd).checks]


def test_tamper_matrix_pdf(issued: tuple[LicenceEnv, str]) -> None:
    env, identifier = issued
    pdf, _ = files(env, identifier)
    hole_start = pdf.index(b"/Contents <") + len(b"/Contents <")
    positions = {
        "header": 3,
        "page content": pdf.index(b"stream") + 20,
        "background image": len(pdf) // 3,
        "signature value": hole_start + 200,
        "byte range": pdf.index(b"/ByteRange [") + 14,
        "trailer": len(pdf) - 10,
    }
    for where, at in positions.items():
        data = bytearray(pdf)
        data[at] ^= 0x01
        result, reason = verdict(env, bytes(data))
        assert result is Status.INVALID, (where, reason)
    forged = forge(pdf)  # the signed bytes of this licence behind new content
    assert b"FORGED CONTENT" in forged
    assert verdict(env, forged)[0] is Status.INVALID
    appended = pdf + b"\n% appended after signing\n"
    assert verdict(env, appended) == (Status.INVALID, "modified_after_certification")  # a licence permits no change
    assert verdict(env, pdf[: len(pdf) // 2])[0] is Status.INVALID
    assert verdict(env, b"not a licence") == (Status.INVALID, "unknown_format")


def test_tamper_matrix_ofd(issued: tuple[LicenceEnv, str]) -> None:
    env, identifier = issued
    _, ofd = files(env, identifier)
    with zipfile.ZipFile(io.BytesIO(ofd)) as package:
        names = [i.filename for i in package.infolist()]
    assert len(names) >= 10
    for name in names:
        for change in (0, 97):
            result, reason = verdict(env, repacked(ofd, name, change))
            assert result is Status.INVALID, (name, change, reason)
    assert verdict(env, ofd[:-30])[0] is Status.INVALID
    # A package that would unpack to more than 50 MB is refused before it is read.
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("OFD.xml", b"<ofd:OFD xmlns:ofd='http://www.ofdspec.org/2016'/>")
        package.writestr("Doc_0/padding.bin", bytes(60 * 1024 * 1024))
    assert len(bomb.getvalue()) < 200_000
    assert verdict(env, bomb.getvalue()) == (Status.INVALID, "malformed_file")


def test_identifiers(issued: tuple[LicenceEnv, str]) -> None:
    env, identifier = issued
    verification = env.services.verification
    report = verification.verify_identifier(CLI_ACTOR, identifier)
    assert report.result is Status.VALID and report.face_data is not None, report.to_dict()
    # A using department learns the verdict, not the face data (that needs the holder's consent).
    as_user = verification.verify_identifier(USER, identifier)
    assert as_user.result is Status.VALID and as_user.to_dict()["face_data"] is None
    assert "holder_name" not in as_user.subject and "holder_name" in report.subject  # who holds it: not for all

    wrong_check = identifier[:-1] + ("A" if identifier[-1] != "A" else "B")
    assert verification.verify_identifier(CLI_ACTOR, wrong_check).reason == "bad_check_character"
    assert verification.verify_identifier(CLI_ACTOR, "1.2.156.3005.2.x").reason == "malformed_identifier"
    parsed = LicenceIdentifier.parse(identifier)
    unknown = str(LicenceIdentifier(parsed.type_code, parsed.issuer_code, "9" * 10, 1))
    assert verification.verify_identifier(CLI_ACTOR, unknown).reason == "not_found"


def test_status_and_record_come_from_the_registry(issued: tuple[LicenceEnv, str]) -> None:
    env, identifier = issued
    verification = env.services.verification
    lifecycle = env.services.lifecycle
    pdf, _ = files(env, identifier)
    changed = env.services.issuance.change_licence(CLI_ACTOR, identifier, {"premises": "演示市鼓楼区五四路102号"})
    assert verification.verify_identifier(CLI_ACTOR, identifier).reason == "superseded"
    assert verdict(env, pdf) == (Status.INVALID, "superseded")  # the old file, still intact
    assert verification.verify_identifier(CLI_ACTOR, changed.identifier).result is Status.VALID
    lifecycle.revoke(CLI_ACTOR, changed.identifier, "违法经营")
    report = verification.verify_identifier(CLI_ACTOR, changed.identifier)
    assert (report.reason, report.to_dict()["face_data"]) == ("revoked", None) and "违法经营" in report.message

    cancelled = issue_example(env, FOOD_TYPE).licence.identifier
    lifecycle.cancel(CLI_ACTOR, cancelled, "申请注销")
    assert verification.verify_identifier(CLI_ACTOR, cancelled).reason == "cancelled"

    # A record edited in the database no longer matches its sealed file.
    tampered = issue_example(env, FOOD_TYPE).licence.identifier
    assert verification.verify_identifier(CLI_ACTOR, tampered).result is Status.VALID  # the match remembered
    # (The face data is sealed in the row: this attacker has the data key and seals the edit anew.)
    personal = env.services.queries.personal
    with Session(env.registry.engine) as session:
        stored = session.exec(select(LicenceRow).where(col(LicenceRow.identifier) == tampered)).one()
        row = open_licence(personal, stored)
        face = json.loads(row.face_json)
        face["operator_name"] = "冒名顶替餐饮有限公司"
        row.face_json = json.dumps(face, ensure_ascii=False)
        session.exec(
            update(LicenceRow).where(col(LicenceRow.identifier) == tampered).values(**sealed_columns(personal, row))
        )
        session.commit()
    assert verification.verify_identifier(CLI_ACTOR, tampered).reason == "record_mismatch"


def test_expired_licence(shared_licence_env: LicenceEnv) -> None:
    env = shared_licence_env
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    verification = env.services.verification
    original = verification.clock
    verification.clock = lambda: dt.datetime(2040, 1, 1, tzinfo=dt.timezone.utc)
    try:
        report = verification.verify_identifier(CLI_ACTOR, identifier)
    finally:
        verification.clock = original
    assert report.result is Status.INVALID and report.reason in ("expired", "certificate_expired", "crl_expired")
    assert "status" in [c.name for c in report.checks if c.status is Status.INVALID]


def _damage_stored_file(env: LicenceEnv, identifier: str, kind: str) -> None:
    """Flip one bit of the stored PDF or OFD of a licence."""
    with Session(env.registry.engine) as session:
        row = session.exec(LicenceRow.__table__.select().where(LicenceRow.identifier == identifier)).one()
    digest = row.pdf_sm3 if kind == "pdf" else row.ofd_sm3
    flip_stored_bit(env.registry.filestore, stored_name(env, digest))  # the file's manifest (store.packing)


def test_damaged_stored_file(licence_env: LicenceEnv) -> None:
    identifier = issue_example(licence_env, FOOD_TYPE).licence.identifier
    _damage_stored_file(licence_env, identifier, "pdf")
    report = licence_env.services.verification.verify_identifier(CLI_ACTOR, identifier)
    assert (report.result, report.reason) == (Status.INVALID, "stored_file_damaged")


def test_stored_ofd_damaged_after_a_check_is_caught(licence_env: LicenceEnv) -> None:
    identifier = issue_example(licence_env, FOOD_TYPE).licence.identifier
    verification = licence_env.services.verification
    assert verification.verify_identifier(CLI_ACTOR, identifier).result is Status.VALID
    _damage_stored_file(licence_env, identifier, "ofd")
    report = verification.verify_identifier(CLI_ACTOR, identifier)
    assert (report.result, report.reason) == (Status.INVALID, "stored_file_damaged")


def test_revoked_seal_certificate_is_never_valid_without_a_timestamp(licence_env: LicenceEnv) -> None:
    env = licence_env
    env.services.issuance.timestamps = None  # as licences sealed before timestamps (or while the TSA refused)
    sealed_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=2)  # revoked later, not in the same second
    licence = issue_example(env, FOOD_TYPE, now=sealed_at).licence
    pdf, ofd = files(env, licence.identifier)
    env.services.seals.revoke(CLI_ACTOR, licence.seal.seal_id)
    for data in (pdf, ofd):
        result, reason = verdict(env, data)
        assert (result, reason) == (Status.INDETERMINATE, "revoked_after_signing")


def test_seals_of_another_authority_are_not_trusted(
    shared_licence_env: LicenceEnv, tmp_path: Path, fonts: object, seal_picture: bytes
) -> None:
    other = build_licence_env(
        Settings(data_dir=tmp_path / "other", kek="other-passphrase", base_url="http://127.0.0.1:8000"),  # type: ignore[arg-type]
        fonts,  # type: ignore[arg-type]
        seal_picture,
    )
    foreign = issue_example(other, FOOD_TYPE).licence.identifier
    for data in files(other, foreign):
        assert verdict(shared_licence_env, data) == (Status.INVALID, "untrusted_signer")


@pytest.mark.interop
def test_ofdrw_files(shared_licence_env: LicenceEnv) -> None:
    sealed = ofd_vector("allprotected.ofd").read_bytes()
    report = shared_licence_env.services.verification.verify_file(sealed)
    passed = {c.name for c in report.checks if c.status is Status.VALID}
    assert {"integrity", "signature", "seal"} <= passed  # mathematically sound…
    assert (report.result, report.reason) == (Status.INVALID, "untrusted_signer")  # …but not ours
    with zipfile.ZipFile(io.BytesIO(sealed)) as package:
        parts = [i.filename for i in package.infolist() if not i.filename.endswith("/")]
    for name in parts:
        assert verdict(shared_licence_env, repacked(sealed, name, 5))[0] is Status.INVALID, name
    plain = shared_licence_env.services.verification.verify_file(ofd_vector("DigitalSign.ofd").read_bytes())
    assert plain.result is Status.INDETERMINATE


def test_cli_exit_codes(licence_env: LicenceEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = licence_env.settings
    monkeypatch.setenv("ECAS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ECAS_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("ECAS_KEK", "test-passphrase")
    runner = CliRunner()
    licence_env.services.issuance.timestamps = None  # revoked after signing is INDETERMINATE (exit 2) without one
    licence = issue_example(
        licence_env, FOOD_TYPE, now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=2)
    ).licence
    pdf, _ = files(licence_env, licence.identifier)
    (tmp_path / "l.pdf").write_bytes(pdf)
    broken = bytearray(pdf)
    broken[len(pdf) // 2] ^= 1
    (tmp_path / "broken.pdf").write_bytes(bytes(broken))

    result = runner.invoke(cli_app, ["verify", str(tmp_path / "l.pdf")])
    assert result.exit_code == 0 and "有效（VALID）" in result.output, result.output
    result = runner.invoke(cli_app, ["verify", licence.identifier, "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 0 and report["result"] == "VALID" and report["reason"] == "ok"
    result = runner.invoke(cli_app, ["verify", str(tmp_path / "broken.pdf"), "--json"])
    assert result.exit_code == 1 and json.loads(result.output)["reason"] == "digest_mismatch"
    result = runner.invoke(cli_app, ["verify", licence.identifier[:-1] + "0"])
    assert result.exit_code == 1 and "校验位" in result.output
    licence_env.services.seals.revoke(CLI_ACTOR, licence.seal.seal_id)
    result = runner.invoke(cli_app, ["verify", str(tmp_path / "l.pdf")])
    assert result.exit_code == 2 and "无法确认（INDETERMINATE）" in result.output, result.output
    result = runner.invoke(cli_app, ["verify", str(tmp_path / "missing.pdf")])
    # A usage error reaches no verdict: 2, never INVALID's 1 (issue 23).
    assert result.exit_code == 2 and "不存在" in result.output and "Traceback" not in result.output


def test_http(issued: tuple[LicenceEnv, str]) -> None:
    env, identifier = issued
    app = create_app(env.settings)
    key = app.state.api_keys.create("user", USER_USCC).key
    issuer_key = app.state.api_keys.create("issuer", ISSUER_USCC).key
    pdf, ofd = files(env, identifier)
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {key}"}
        for data, media in ((pdf, "application/pdf"), (ofd, "application/ofd")):
            response = client.post("/api/v1/verify", content=data, headers={**auth, "Content-Type": media})
            assert response.status_code == 200 and response.json()["result"] == "VALID", response.text
        tampered = bytearray(ofd)
        tampered[-100] ^= 1
        body = client.post("/api/v1/verify", content=bytes(tampered), headers=auth).json()
        assert body["result"] == "INVALID" and body["face_data"] is None
        as_user = client.get(f"/api/v1/verify/{identifier}", headers=auth).json()
        assert as_user["result"] == "VALID" and as_user["face_data"] is None
        as_issuer = client.get(f"/api/v1/verify/{identifier}", headers={"Authorization": f"Bearer {issuer_key}"})
        assert as_issuer.json()["face_data"]["operator_name"]
        assert client.get(f"/api/v1/verify/{identifier}").status_code == 401
        too_big = client.post("/api/v1/verify", content=b"%PDF-" + b"0" * (21 * 1024 * 1024), headers=auth)
        assert too_big.status_code == 413
        paths = client.get("/openapi.json").json()["paths"]
        assert "/api/v1/verify" in paths and "/api/v1/verify/{identifier}" in paths
