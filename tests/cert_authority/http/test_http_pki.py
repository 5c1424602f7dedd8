"""The PKI publication endpoints over real HTTP, queried with the OpenSSL CLI."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from asn1crypto import ocsp

from cert_authority.http.app import create_app
from cert_authority.pki.service import PkiService
from cert_authority.settings import Settings
from keys.crl import Crl
from tests.conftest import DEPT_USCC, NOW, gmssl_verify, openssl


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(settings: Settings, pki_service: PkiService) -> Iterator[tuple[str, PkiService]]:
    """The real app under uvicorn on a free loopback port, for the length of one test."""
    pki_service.init(NOW)
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=_free_port(), log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not instance.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{config.port}", pki_service
    instance.should_exit = True
    thread.join(timeout=10)


def test_ocsp_and_crl_over_http(server: tuple[str, PkiService], tmp_path: Path) -> None:
    base, pki = server
    good = pki.issue_seal_certificate(name="测试市市场监督管理局", uscc=DEPT_USCC, now=NOW)
    bad = pki.issue_seal_certificate(name="测试市人社局", uscc=DEPT_USCC, now=NOW)
    pki.revoke(bad.serial, "keyCompromise", NOW + dt.timedelta(minutes=1))

    branch_pem = tmp_path / "branch.pem"
    branch_pem.write_bytes(httpx.get(f"{base}/pki/branch.pem").content)
    assert httpx.get(f"{base}/pki/branch.cer").content == pki.branch_certificate().der
    for name, cert in (("good", good), ("bad", bad)):
        (tmp_path / f"{name}.pem").write_bytes(cert.pem)

    # POST, as openssl ocsp sends it (with a nonce, which the responder must echo).
    def ask(name: str) -> str:
        result = openssl(
            "ocsp", "-issuer", str(branch_pem), "-cert", str(tmp_path / f"{name}.pem"),
            "-url", f"{base}/pki/ocsp", "-noverify", "-respout", str(tmp_path / f"{name}.ocsp"),
        )
        return (result.stdout + result.stderr).decode()

    out = ask("good")
    assert ": good" in out and "nonce" not in out.lower()
    out = ask("bad")
    assert ": revoked" in out and "Reason: keyCompromise" in out

    # The response is SM2-signed by the branch: check with gmssl (OpenSSL 3.0 lacks the SM2 ID here).
    response = ocsp.OCSPResponse.load((tmp_path / "bad.ocsp").read_bytes())
    basic = response["response_bytes"]["response"].parsed
    assert gmssl_verify(
        pki.branch_certificate().public_key, basic["signature"].native, basic["tbs_response_data"].dump()
    )

    # GET (RFC 6960 A.1): base64 of the DER request, URL-encoded, in the path.
    request = tmp_path / "req.der"
    openssl("ocsp", "-issuer", str(branch_pem), "-cert", str(tmp_path / "good.pem"), "-reqout", str(request))
    encoded = quote(base64.b64encode(request.read_bytes()).decode(), safe="")
    reply = httpx.get(f"{base}/pki/ocsp/{encoded}")
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/ocsp-response"
    (tmp_path / "get.ocsp").write_bytes(reply.content)
    text = openssl(
        "ocsp", "-respin", str(tmp_path / "get.ocsp"), "-issuer", str(branch_pem),
        "-cert", str(tmp_path / "good.pem"), "-noverify",
    ).stdout.decode()
    assert ": good" in text

    # Garbage gets an OCSP malformedRequest answer, not an HTTP error page.
    for reply in (httpx.post(f"{base}/pki/ocsp", content=b"\x30\x03junk"), httpx.get(f"{base}/pki/ocsp/%%%")):
        assert reply.status_code == 200
        assert ocsp.OCSPResponse.load(reply.content)["response_status"].native == "malformed_request"

    crl_reply = httpx.get(f"{base}/pki/crl")
    assert crl_reply.headers["content-type"] == "application/pkix-crl"
    crl = Crl.load(crl_reply.content)
    assert [entry.serial for entry in crl.entries] == [bad.serial]
    assert gmssl_verify(
        pki.branch_certificate().public_key, crl.asn1["signature"].native, crl.asn1["tbs_cert_list"].dump()
    )
    root_crl = Crl.load(httpx.get(f"{base}/pki/root.crl").content)
    assert root_crl.entries == [] and root_crl.signature_valid(pki.root_certificate().public_key)


def test_errors_are_clear_json_without_traces(settings: Settings, pki_service: PkiService) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(create_app(settings))
    reply = client.get("/pki/crl")
    assert reply.status_code == 409
    body = reply.json()
    assert body["error"] == "not_initialised" and "ecas pki init" in body["message"]
    assert "Traceback" not in reply.text
    assert client.get("/healthz").json() == {"status": "ok"}


def test_an_unexpected_fault_is_a_500_with_an_error_id_and_no_internals(
    settings: Settings, pki_service: PkiService, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug (a bare ValueError or any other exception) is no 422 and tells nothing of the code:
    the caller gets an error id, the log gets the same id with the trace."""
    from fastapi.testclient import TestClient

    app = create_app(settings)

    def broken() -> None:
        raise ValueError("secret internal detail in /srv/ecas/issuing.py")

    app.add_api_route("/api/v1/broken", broken)
    client = TestClient(app, raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="ecas"):
        reply = client.get("/api/v1/broken")
    assert reply.status_code == 500
    body = reply.json()
    assert body["error"] == "internal_error" and body["error_id"] in body["message"]
    assert "secret" not in reply.text and "Traceback" not in reply.text and "ValueError" not in reply.text
    logged = [r for r in caplog.records if body["error_id"] in r.getMessage()]
    assert logged and logged[0].exc_info is not None and "secret internal detail" in str(logged[0].exc_info[1])


def test_an_ocsp_request_body_is_limited_before_it_is_read(settings: Settings, pki_service: PkiService) -> None:
    """POST /pki/ocsp is public: a huge body is refused with 413 before the route reads it
    (it used to read 400 MB into memory)."""
    from fastapi.testclient import TestClient

    client = TestClient(create_app(settings))
    declared = client.post(
        "/pki/ocsp", content=b"0", headers={"Content-Type": "application/ocsp-request", "Content-Length": "400000000"}
    )
    assert declared.status_code == 413 and declared.json()["error"] == "payload_too_large"
    sent = client.post("/pki/ocsp", content=b"\x30" * (65 * 1024), headers={"Content-Type": "application/ocsp-request"})
    assert sent.status_code == 413
    # Anything else that is not under /api/ is limited too (1 MB by default).
    assert client.post("/pki/anything", content=b"x" * (2 * 1024 * 1024)).status_code == 413
