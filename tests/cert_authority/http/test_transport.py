"""Behind a TLS/TLCP front (http/middleware/transport.py): with an https base URL, requests that did
not come through the front (plain HTTP, or X-Forwarded-Proto from an untrusted address) are refused;
with a cipher header configured, a suite that is not SM2/SM3/SM4 (or none) is refused too."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cert_authority.http.app import create_app
from cert_authority.settings import Settings


def _client(settings: Settings, base: str, **changes: object) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=changes)), base_url=base)


def test_https_base_url_refuses_plain_http(settings: Settings) -> None:
    client = _client(settings, "http://ecas.example", base_url="https://ecas.example")
    answer = client.get("/api/v1/licence-types")
    assert answer.status_code == 403 and answer.json()["error"] == "insecure_transport"
    assert client.get("/wallet/login").status_code == 403
    # A client that claims HTTPS itself: uvicorn takes X-Forwarded-Proto only from the trusted front,
    # and the test client is not behind one: the scheme stays http.
    assert client.get("/api/v1/licence-types", headers={"X-Forwarded-Proto": "https"}).status_code == 403
    assert client.get("/healthz").status_code == 200  # the probes' way in
    through_front = _client(settings, "https://ecas.example", base_url="https://ecas.example")
    assert through_front.get("/api/v1/licence-types").status_code == 401  # on to the usual checks


def test_cipher_reported_by_the_front_must_be_an_sm_suite(settings: Settings) -> None:
    https = "https://ecas.example"
    client = _client(settings, https, base_url=https, tls_cipher_header="X-TLS-Cipher")
    for suite in ("ECDHE-SM2-SM4-GCM-SM3", "ECC-SM2-SM4-CBC-SM3", "TLS_SM4_GCM_SM3"):
        assert client.get("/api/v1/licence-types", headers={"X-TLS-Cipher": suite}).status_code == 401, suite
    for suite in ("ECDHE-RSA-AES128-GCM-SHA256", "TLS_AES_256_GCM_SHA384", ""):
        answer = client.get("/api/v1/licence-types", headers={"X-TLS-Cipher": suite})
        assert answer.status_code == 403 and answer.json()["error"] == "weak_transport", suite
    assert client.get("/api/v1/licence-types").status_code == 403  # no header: not through the front


def test_http_base_url_checks_nothing(settings: Settings) -> None:
    assert _client(settings, "http://testserver").get("/api/v1/licence-types").status_code == 401
