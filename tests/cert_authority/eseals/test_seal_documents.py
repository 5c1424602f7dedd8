"""Sealing a department's own documents (not our licences) with its registered seal: a PDF that
Pillow wrote and an unsealed OFD, through the service, `ecas seals sign` and the API; verified by our
verifier and by qpdf; permissions, revoked seals and non-documents refused; every use audited."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session, select
from typer.testing import CliRunner

from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.cli.main import app as cli_app
from cert_authority.errors import ConflictError, InvalidRequestError, PermissionDeniedError
from cert_authority.http.app import create_app
from cert_authority.store.models import AuditEventRow
from tests.conftest import FOOD_TYPE, ISSUER_USCC, OTHER_ISSUER_USCC, LicenceEnv, require_tool_or_skip, table_counts
from verification.report import Status


def department_pdf() -> bytes:
    """A one-page A4 PDF written by Pillow: someone else's PDF writer."""
    out = io.BytesIO()
    Image.new("RGB", (1240, 1754), (250, 250, 245)).save(out, "PDF", resolution=150)
    return out.getvalue()


def seal_id(env: LicenceEnv, uscc: str = ISSUER_USCC) -> int:
    return next(s.id for s in env.services.seals.list(CLI_ACTOR, uscc))


def test_sealing_own_documents(licence_env: LicenceEnv, tmp_path: Path) -> None:
    env = licence_env
    seals = env.services.seals
    issuer = Actor(role="issuer", department_uscc=ISSUER_USCC, label="issuer")
    sealed = seals.seal_document(issuer, seal_id(env), department_pdf(), 0, 140.0, 230.0)
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    checked = subprocess.run([require_tool_or_skip("qpdf"), "--check", str(path)], capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout
    report = env.services.verification.verify_file(sealed)
    passed = {c.name for c in report.checks if c.status is Status.VALID}
    assert {"integrity", "signature", "timestamp", "chain", "revocation"} <= passed  # a timestamp on every seal
    # Sound and ours, but not a registered licence.
    assert (report.result, report.reason) == (Status.INDETERMINATE, "not_in_registry")

    unsealed_ofd = render_sample_ofd(env)
    sealed_ofd = seals.seal_document(issuer, seal_id(env), unsealed_ofd, 0, 20.0, 20.0, size_mm=30.0)
    ofd_report = env.services.verification.verify_file(sealed_ofd)
    assert ofd_report.reason == "not_in_registry"
    assert {"seal", "timestamp"} <= {c.name for c in ofd_report.checks if c.status is Status.VALID}

    with Session(env.registry.engine) as session:
        actions = [e.action for e in session.exec(select(AuditEventRow))]
    assert actions.count("seal_document") == 2

    other = Actor(role="issuer", department_uscc=OTHER_ISSUER_USCC, label="other")
    with pytest.raises(PermissionDeniedError):
        seals.seal_document(other, seal_id(env), department_pdf(), 0, 10, 10)
    with pytest.raises(InvalidRequestError, match="PDF 或 OFD"):
        seals.seal_document(issuer, seal_id(env), b"hello", 0, 10, 10)
    seals.revoke(CLI_ACTOR, seal_id(env))
    before = table_counts(env.registry.engine)["audit_event"]
    with pytest.raises(ConflictError, match="已吊销"):
        seals.seal_document(issuer, seal_id(env), department_pdf(), 0, 10, 10)
    assert table_counts(env.registry.engine)["audit_event"] == before


def render_sample_ofd(env: LicenceEnv) -> bytes:
    """An unsealed OFD of a template preview: a document the department holds, not a licence."""
    return env.registry.preview(FOOD_TYPE, None, "ofd")


def test_cli_and_api(licence_env: LicenceEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = licence_env
    settings = env.settings
    monkeypatch.setenv("ECAS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ECAS_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("ECAS_KEK", "test-passphrase")
    (tmp_path / "in.pdf").write_bytes(department_pdf())
    result = CliRunner().invoke(
        cli_app,
        [
            "seals",
            "sign",
            str(seal_id(env)),
            str(tmp_path / "in.pdf"),
            "--x",
            "140",
            "--y",
            "230",
            "-o",
            str(tmp_path / "out.pdf"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert env.services.verification.verify_file((tmp_path / "out.pdf").read_bytes()).reason == "not_in_registry"

    app = create_app(settings)
    key = app.state.api_keys.create("issuer", ISSUER_USCC).key
    other = app.state.api_keys.create("issuer", OTHER_ISSUER_USCC).key
    with TestClient(app) as client:
        url = f"/api/v1/seals/{seal_id(env)}/sign?x=140&y=230"
        response = client.post(url, content=department_pdf(), headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
        assert response.content.startswith(b"%PDF-")
        refused = client.post(url, content=department_pdf(), headers={"Authorization": f"Bearer {other}"})
        assert refused.status_code == 403
        assert client.post(url, content=b"x", headers={"Authorization": f"Bearer {key}"}).status_code == 422
        assert (
            client.post(
                url.replace("x=140&", ""), content=department_pdf(), headers={"Authorization": f"Bearer {key}"}
            ).status_code
            == 422
        )
