"""The TSA as the service runs it: its certificate from the branch CA (checked by OpenSSL for the
timestamping purpose), serials unique across workers, refusal on an unsynchronised clock, POST /tsa
answering `openssl ts -query` and `ecas tsa stamp`, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from cert_authority.access.apikeys import ApiKeyService
from cert_authority.errors import TimeNotAvailableError
from cert_authority.http.app import create_app
from cert_authority.pki.service import PkiService
from cert_authority.settings import Settings
from cert_authority.store.models import AuditEventRow
from cert_authority.timestamping.authority import TimeStampAuthority
from cert_authority.timestamping.clock import ClockStatus, kernel_clock
from keys.oids import SM3
from seals.timestamp import StampRequest, TimeStampRequestError, parse_reply, parse_token
from tests.cert_authority.cli_runner import fails, ok
from tests.conftest import NOW, SM2_ID_OPT, gmssl_verify, openssl

SYNCED = ClockStatus(True, dt.timedelta(milliseconds=3), "test")


@pytest.fixture
def tsa_pki(pki_service: PkiService) -> PkiService:
    pki_service.init(NOW - dt.timedelta(days=1))
    return pki_service


def _authority(pki: PkiService, status: ClockStatus = SYNCED) -> TimeStampAuthority:
    return TimeStampAuthority(pki, pki.registry.engine, clock=lambda: NOW, clock_check=lambda: status)


def test_certificate_is_for_timestamping_only(tsa_pki: PkiService, tmp_path: Path) -> None:
    certificate = _authority(tsa_pki).certificate(NOW)
    assert certificate.extended_key_usage == ({"1.3.6.1.5.5.7.3.8"}, True)
    (tmp_path / "tsa.pem").write_bytes(certificate.pem)
    (tmp_path / "branch.pem").write_bytes(tsa_pki.branch_certificate().pem)
    text = openssl("x509", "-in", str(tmp_path / "tsa.pem"), "-noout", "-text").stdout.decode()
    assert "X509v3 Extended Key Usage: critical\n                Time Stamping" in text
    # OpenSSL's own rule for a TSA certificate (purpose timestampsign: EKU timeStamping, critical, only).
    openssl(
        "verify",
        "-vfyopt",
        SM2_ID_OPT,
        "-partial_chain",
        "-purpose",
        "timestampsign",
        "-CAfile",
        str(tmp_path / "branch.pem"),
        str(tmp_path / "tsa.pem"),
    )
    # The same certificate is kept: a second authority (another worker) loads it.
    assert _authority(tsa_pki).certificate(NOW).der == certificate.der


def test_token_checks_with_gmssl(tsa_pki: PkiService) -> None:
    tsa = _authority(tsa_pki)
    [der] = tsa.stamp([StampRequest(SM3, bytes(range(32)), nonce=7)])
    token = parse_token(der)
    assert token.gen_time == NOW and token.policy == tsa.policy and token.nonce == 7
    assert token.accuracy == dt.timedelta(seconds=1, milliseconds=3)
    assert token.signer is not None and token.signer.der == tsa.certificate(NOW).der
    assert gmssl_verify(token.signer.public_key, token.signature, token.signed_attributes_der)


def test_serials_never_repeat_across_workers(tsa_pki: PkiService) -> None:
    workers = [_authority(tsa_pki) for _ in range(3)]
    for worker in workers:
        worker.serials.block = 7  # small blocks: many refills, interleaved
        worker.signer(NOW)

    def stamp(index: int) -> list[int]:
        worker = workers[index % 3]
        tokens = worker.stamp([StampRequest(SM3, bytes(32))] * (1 + index % 4))
        return [parse_token(t).serial for t in tokens]

    with ThreadPoolExecutor(4) as pool:
        serials = [s for batch in pool.map(stamp, range(60)) for s in batch]
    assert len(serials) == len(set(serials)) == sum(1 + i % 4 for i in range(60))


def test_refuses_when_clock_not_synchronised(tsa_pki: PkiService) -> None:
    unsynced = _authority(tsa_pki, ClockStatus(False, dt.timedelta(seconds=16), "kernel (adjtimex)"))
    with pytest.raises(TimeNotAvailableError, match="未同步"):
        unsynced.stamp([StampRequest(SM3, bytes(32))])
    drifting = _authority(tsa_pki, ClockStatus(True, dt.timedelta(seconds=5), "kernel (adjtimex)"))
    with pytest.raises(TimeNotAvailableError, match="误差上限"):
        drifting.stamp([StampRequest(SM3, bytes(32))])
    status, reply, serial = unsynced.reply(openssl("ts", "-query", "-digest", "00" * 32, "-sha256").stdout)
    assert (status, serial, parse_reply(reply)) == (503, None, ("rejection", None))


def test_kernel_clock_reads_the_kernel() -> None:
    status = kernel_clock()
    assert status.source == "kernel (adjtimex)" and status.max_error >= dt.timedelta(0)


def test_other_policy_is_refused(tsa_pki: PkiService) -> None:
    with pytest.raises(TimeStampRequestError) as caught:
        _authority(tsa_pki).stamp([StampRequest(SM3, bytes(32), policy="1.2.3.4")])
    assert caught.value.failure == "unaccepted_policy"


@pytest.fixture
def tsa_client(tsa_pki: PkiService, settings: Settings) -> tuple[TestClient, str]:
    app = create_app(settings.model_copy(update={"tsa_clock": "unchecked"}))
    key = ApiKeyService(app.state.pki.registry.engine).create("admin", None).key
    return TestClient(app), key


@pytest.mark.parametrize("digest", ["-sha256", "-sm3"])
def test_http_answers_openssl_queries(tsa_client: tuple[TestClient, str], tmp_path: Path, digest: str) -> None:
    client, key = tsa_client
    (tmp_path / "doc").write_bytes(b"licence")
    query = openssl("ts", "-query", "-data", str(tmp_path / "doc"), digest, "-cert").stdout
    response = client.post(
        "/tsa", content=query, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/timestamp-query"}
    )
    assert response.status_code == 200 and response.headers["content-type"] == "application/timestamp-reply"
    (tmp_path / "reply.tsr").write_bytes(response.content)
    text = openssl("ts", "-reply", "-in", str(tmp_path / "reply.tsr"), "-text").stdout.decode()
    assert "Status: Granted." in text
    _, token = parse_reply(response.content)
    assert token is not None
    serial = parse_token(token).serial
    with Session(client.app.state.pki.registry.engine) as session:  # type: ignore[attr-defined]
        audited = session.exec(select(AuditEventRow).where(col(AuditEventRow.action) == "tsa_stamp")).all()
    assert [row.target for row in audited] == [f"tsa:{serial:X}"]
    pem = client.get("/pki/tsa.pem").content
    (tmp_path / "tsa.pem").write_bytes(pem)
    assert parse_token(token).signer.pem == pem  # type: ignore[union-attr]


def test_http_refusals(tsa_client: tuple[TestClient, str]) -> None:
    client, key = tsa_client
    query = openssl("ts", "-query", "-digest", "00" * 32, "-sha256").stdout
    headers = {"Content-Type": "application/timestamp-query"}
    assert client.post("/tsa", content=query, headers=headers).status_code == 401
    auth = {"Authorization": f"Bearer {key}"}
    assert client.post("/tsa", content=query, headers={**auth, "Content-Type": "application/json"}).status_code == 415
    garbage = client.post("/tsa", content=b"\x30\x02\x01\x00", headers={**auth, **headers})
    assert garbage.status_code == 400 and parse_reply(garbage.content) == ("rejection", None)
    sha1 = openssl("ts", "-query", "-digest", "00" * 20, "-sha1").stdout
    refused = client.post("/tsa", content=sha1, headers={**auth, **headers})
    assert refused.status_code == 400


def test_cli_stamp(tsa_pki: PkiService, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECAS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ECAS_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("ECAS_KEK", settings.require_kek().decode())
    monkeypatch.setenv("ECAS_TSA_CLOCK", "unchecked")
    document = tmp_path / "doc.pdf"
    document.write_bytes(b"%PDF-1.7 a document")
    out = ok("tsa", "stamp", str(document), "-o", str(tmp_path / "doc.tsr"))
    assert "时间戳序列号" in out
    text = openssl("ts", "-reply", "-in", str(tmp_path / "doc.tsr"), "-text").stdout.decode()
    assert "Hash Algorithm: sm3" in text or "Hash Algorithm: 1.2.156.10197.1.401" in text
    ok("tsa", "certificate", "-o", str(tmp_path / "tsa.pem"))
    # OpenSSL checks the imprint against the file (its SM2 signature check needs the ID it cannot take here).
    result = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-in",
            str(tmp_path / "doc.tsr"),
            "-data",
            str(document),
            "-CAfile",
            str(tmp_path / "tsa.pem"),
            "-partial_chain",
        ],
        capture_output=True,
    )
    assert b"message imprint mismatch" not in result.stderr
    assert "不存在" in fails("tsa", "stamp", str(tmp_path / "missing"), "-o", str(tmp_path / "x.tsr"))
    monkeypatch.setenv("ECAS_TSA_CLOCK", "kernel")
    if not kernel_clock().synchronised:
        assert "未同步" in fails("tsa", "stamp", str(document), "-o", str(tmp_path / "y.tsr"))
