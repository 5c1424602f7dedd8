"""OCSP: requests made by the OpenSSL CLI, answered by `respond_ocsp`, read back by OpenSSL;
response signatures checked by pure-Python gmssl (OpenSSL is run with -noverify: it cannot
check SM2 signatures made with the default ID, SPEC.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from asn1crypto import ocsp
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.crl import parse_reason
from keys.errors import CAError, InvalidCertificateError
from keys.ocsp import (
    MAX_CERT_IDS,
    CertStatus,
    ocsp_error_response,
    parse_ocsp_response,
    respond_ocsp,
)
from tests.conftest import NOW, gmssl_verify, openssl

if TYPE_CHECKING:
    from tests.conftest import PkiHierarchy

REVOKED_SERIAL = 0x1234
REVOKED_AT = NOW - dt.timedelta(days=2)


def openssl_time(value: dt.datetime) -> str:
    """A time as OpenSSL prints it (ASN1_TIME_print: day padded with a space)."""
    value = value.astimezone(dt.UTC)
    return f"{value:%b} {value.day:2d} {value:%H:%M:%S %Y} GMT"


@pytest.fixture
def files(pki: PkiHierarchy, tmp_path: Path) -> dict[str, Path]:
    return pki.write(tmp_path)


@pytest.fixture
def now() -> dt.datetime:
    # OpenSSL compares thisUpdate/nextUpdate with the wall clock even under -noverify
    # ("Status times invalid"), so responses read by the CLI are produced at the real time
    # (the session's NOW could be over an hour old in a long run).
    return dt.datetime.now(dt.UTC)


def status_table(pki: PkiHierarchy) -> dict[int, CertStatus]:
    return {
        pki.seal.serial: CertStatus("good"),
        REVOKED_SERIAL: CertStatus("revoked", REVOKED_AT, parse_reason("keyCompromise")),
    }


def make_request(files: dict[str, Path], *options: str, issuer: str = "branch") -> bytes:
    """An OCSPRequest from the OpenSSL CLI for the seal certificate and REVOKED_SERIAL."""
    out = files["branch"].parent / "req.der"
    # A digest option must come before -cert/-serial to apply to their CertIDs.
    openssl(
        "ocsp", "-issuer", str(files[issuer]), *options,
        "-cert", str(files["seal"]), "-serial", hex(REVOKED_SERIAL), "-reqout", str(out),
    )  # fmt: skip
    return out.read_bytes()


def read_response(files: dict[str, Path], response: bytes, *options: str, issuer: str = "branch") -> str:
    """What `openssl ocsp -respin` says about our response (stdout and stderr)."""
    directory = files["branch"].parent
    (directory / "resp.der").write_bytes(response)
    result = openssl(
        "ocsp", "-respin", str(directory / "resp.der"), "-issuer", str(files[issuer]), *options,
        "-cert", str(files["seal"]), "-serial", hex(REVOKED_SERIAL), "-noverify", "-resp_text",
    )  # fmt: skip
    return result.stdout.decode() + result.stderr.decode()


def check_nonce(files: dict[str, Path], response: bytes) -> str:
    """OpenSSL's nonce check of `response` against req.der.

    apps/ocsp.c compares nonces only when it verifies (not under -noverify), and only against
    a request from -reqin when no -cert/-serial makes it build a fresh one (with its own nonce).
    The nonce check runs before the signature check, which OpenSSL 3.0 fails for SM2 anyway.
    """
    directory = files["branch"].parent
    (directory / "resp.der").write_bytes(response)
    result = openssl(
        "ocsp", "-respin", str(directory / "resp.der"), "-reqin", str(directory / "req.der"),
        "-CAfile", str(files["root"]), check=False,
    )  # fmt: skip
    return result.stdout.decode() + result.stderr.decode()


def respond(pki: PkiHierarchy, request: bytes, now: dt.datetime = NOW, **kwargs: object) -> bytes:
    table = status_table(pki)
    return respond_ocsp(
        request,
        issuer=pki.branch,
        responder_signer=pki.branch_signer,
        status_of=lambda serial: table.get(serial, CertStatus("unknown")),
        now=now,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("digest", [(), ("-sha256",), ("-sm3",)], ids=["sha1", "sha256", "sm3"])
@pytest.mark.parametrize("nonce", [False, True], ids=["no-nonce", "nonce"])
def test_openssl_reads_good_and_revoked(
    pki: PkiHierarchy, files: dict[str, Path], now: dt.datetime, digest: tuple[str, ...], nonce: bool
) -> None:
    request = make_request(files, *digest, *(() if nonce else ("-no_nonce",)))
    response = respond(pki, request, now)
    text = read_response(files, response, *digest)
    assert "OCSP Response Status: successful (0x0)" in text
    assert "Signature Algorithm: SM2-with-SM3" in text
    assert f"{files['seal']}: good" in text
    revoked_part = text.split(f"{hex(REVOKED_SERIAL)}: revoked")[1]
    assert "Reason: keyCompromise" in revoked_part
    assert f"Revocation Time: {openssl_time(REVOKED_AT)}" in revoked_part
    # No "WARNING: Status times invalid" or other complaint.
    assert "WARNING" not in text
    assert "rror" not in text
    nonce_check = check_nonce(files, response)
    assert "WARNING: no nonce in response" not in nonce_check
    assert "Nonce Verify error" not in nonce_check
    assert "Response Verify Failure" in nonce_check or "Response verify OK" in nonce_check

    result = parse_ocsp_response(response)
    sent_nonce = ocsp.OCSPRequest.load(request).nonce_value
    assert (sent_nonce is not None) == nonce
    assert result.nonce == (sent_nonce.native if sent_nonce is not None else None)


def test_response_fields_and_gmssl_signature(pki: PkiHierarchy, files: dict[str, Path]) -> None:
    response = respond(pki, make_request(files), validity=dt.timedelta(minutes=30))
    result = parse_ocsp_response(response)
    assert result.status == "successful"
    assert result.statuses == status_table(pki)
    assert result.produced_at == result.this_update == NOW
    assert result.next_update == NOW + dt.timedelta(minutes=30)
    assert result.signature_algorithm == "1.2.156.10197.1.501"
    assert result.certificates == (pki.branch.der, pki.root.der)
    parsed = ocsp.OCSPResponse.load(response)
    assert parsed.response_data["responder_id"].chosen.native == pki.branch.public_key.key_identifier

    assert result.tbs_response_data is not None and result.signature is not None
    assert result.tbs_response_data in response
    assert gmssl_verify(pki.branch.public_key, result.signature, result.tbs_response_data)
    assert not gmssl_verify(pki.root.public_key, result.signature, result.tbs_response_data)


def test_tampered_response_fails_gmssl(pki: PkiHierarchy, files: dict[str, Path]) -> None:
    result = parse_ocsp_response(respond(pki, make_request(files)))
    assert result.tbs_response_data is not None and result.signature is not None
    signature = bytearray(result.signature)
    signature[10] ^= 0x01  # inside r
    assert not gmssl_verify(pki.branch.public_key, bytes(signature), result.tbs_response_data)
    tbs = bytearray(result.tbs_response_data)
    tbs[-5] ^= 0x01  # inside the last nextUpdate
    assert not gmssl_verify(pki.branch.public_key, result.signature, bytes(tbs))


def test_unused_bits_in_signature_are_rejected(pki: PkiHierarchy, files: dict[str, Path]) -> None:
    response = respond(pki, make_request(files))
    signature = parse_ocsp_response(response).signature
    assert signature is not None
    bit_string = b"\x03" + bytes([len(signature) + 1]) + b"\x00" + signature
    assert response.count(bit_string) == 1
    tampered = response.replace(bit_string, bit_string[:2] + b"\x01" + signature)
    with pytest.raises(InvalidCertificateError, match="unused bits"):
        parse_ocsp_response(tampered)


def test_wrong_issuer_is_unknown(pki: PkiHierarchy, files: dict[str, Path], now: dt.datetime) -> None:
    # OpenSSL hashes the root's name and key into the CertIDs: not our issuer.
    request = make_request(files, "-no_nonce", issuer="root")
    asked: list[int] = []

    def status_of(serial: int) -> CertStatus:
        asked.append(serial)
        return CertStatus("good")

    response = respond_ocsp(
        request, issuer=pki.branch, responder_signer=pki.branch_signer, status_of=status_of, now=now
    )
    assert asked == []
    text = read_response(files, response, issuer="root")
    assert f"{files['seal']}: unknown" in text
    assert f"{hex(REVOKED_SERIAL)}: unknown" in text
    assert set(parse_ocsp_response(response).statuses.values()) == {CertStatus("unknown")}


def test_one_flipped_issuer_hash_is_unknown(pki: PkiHierarchy, files: dict[str, Path]) -> None:
    request = ocsp.OCSPRequest.load(make_request(files, "-no_nonce"))
    cert_id = request["tbs_request"]["request_list"][0]["req_cert"]
    name_hash = bytearray(cert_id["issuer_name_hash"].native)
    name_hash[0] ^= 0x01
    cert_id["issuer_name_hash"] = bytes(name_hash)
    result = parse_ocsp_response(respond(pki, request.dump()))
    assert result.statuses[pki.seal.serial] == CertStatus("unknown")
    assert result.statuses[REVOKED_SERIAL].state == "revoked"


@pytest.mark.parametrize(
    "request_der",
    [
        b"",
        b"garbage",
        b"\x30\x00",
        b"\x30" + b"\x84\xff\xff\xff\xff",
        b"\x30\x82\xff\xff" + b"\x00" * 0x10000,
    ],
    ids=["empty", "garbage", "empty-sequence", "huge-length", "over-64KiB"],
)
def test_garbage_is_malformed_request(pki: PkiHierarchy, files: dict[str, Path], request_der: bytes) -> None:
    response = respond(pki, request_der)
    assert parse_ocsp_response(response).status == "malformed_request"
    (files["branch"].parent / "resp.der").write_bytes(response)
    out = openssl("ocsp", "-respin", str(files["branch"].parent / "resp.der"), "-resp_text", check=False)
    assert "malformedrequest" in (out.stdout + out.stderr).decode()


def test_truncated_request_is_malformed(pki: PkiHierarchy, files: dict[str, Path]) -> None:
    request = make_request(files)
    for cut in (1, 2, len(request) // 2, len(request) - 1):
        assert parse_ocsp_response(respond(pki, request[:cut])).status == "malformed_request"


def test_cert_id_count_is_bounded(pki: PkiHierarchy, files: dict[str, Path]) -> None:
    def request_with(count: int) -> bytes:
        serials = [arg for n in range(1, count + 1) for arg in ("-serial", str(n))]
        out = files["branch"].parent / "many.der"
        openssl("ocsp", "-issuer", str(files["branch"]), *serials, "-reqout", str(out))
        return out.read_bytes()

    accepted = parse_ocsp_response(respond(pki, request_with(MAX_CERT_IDS)))
    assert accepted.status == "successful"
    assert len(accepted.statuses) == MAX_CERT_IDS
    assert parse_ocsp_response(respond(pki, request_with(MAX_CERT_IDS + 1))).status == "malformed_request"


def test_error_responses(files: dict[str, Path]) -> None:
    response = ocsp_error_response("try_later")
    (files["branch"].parent / "resp.der").write_bytes(response)
    out = openssl("ocsp", "-respin", str(files["branch"].parent / "resp.der"), check=False)
    assert "trylater" in (out.stdout + out.stderr).decode()
    assert parse_ocsp_response(ocsp_error_response("internal_error")).status == "internal_error"
    with pytest.raises(ValueError):
        ocsp_error_response("successful")


def test_responder_must_be_the_ca_or_a_delegated_responder(pki: PkiHierarchy, files: dict[str, Path]) -> None:
    request = make_request(files)
    for signer in (pki.seal_signer, pki.root_signer):  # no id-kp-OCSPSigning / not issued by the CA
        with pytest.raises(CAError):
            respond_ocsp(
                request,
                issuer=pki.branch,
                responder_signer=signer,
                status_of=lambda _serial: CertStatus("good"),
                now=NOW,
            )


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"\x30\x03\x0a\x01\x00", ocsp_error_response("try_later")[:-1]],
)
def test_parse_rejects_malformed_responses(data: bytes) -> None:
    with pytest.raises(InvalidCertificateError):
        parse_ocsp_response(data)


def test_cert_status_is_validated() -> None:
    with pytest.raises(ValueError):
        CertStatus("revoked")  # no time
    with pytest.raises(ValueError):
        CertStatus("good", NOW)
    with pytest.raises(ValueError):
        CertStatus("revoked", NOW, "keyCompromise")  # asn1crypto names only
    with pytest.raises(ValueError):
        CertStatus("expired")  # type: ignore[arg-type]
    assert CertStatus("revoked", NOW, "superseded").revoked_at == NOW


@pytest.fixture(scope="module")
def openssl_request(pki: PkiHierarchy, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_request(pki.write(tmp_path_factory.mktemp("ocsp")))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_mutated_request_gets_a_parseable_response(
    pki: PkiHierarchy, openssl_request: bytes, data: st.DataObject
) -> None:
    # Hostile bytes from the network: never an exception, always a response we can read back.
    tampered = bytearray(openssl_request)
    for _ in range(data.draw(st.integers(1, 3))):
        offset = data.draw(st.integers(0, len(tampered) - 1))
        action = data.draw(st.sampled_from(["replace", "delete", "insert"]))
        if action == "delete":
            del tampered[offset]
        elif action == "insert":
            tampered.insert(offset, data.draw(st.integers(0, 255)))
        else:
            tampered[offset] = data.draw(st.integers(0, 255))
    result = parse_ocsp_response(respond(pki, bytes(tampered)))
    assert result.status in ("successful", "malformed_request")


def test_hostile_nonce_extension_is_malformed_request(pki: PkiHierarchy, openssl_request: bytes) -> None:
    # Found by fuzzing: a nonce extnValue with a private-class tag made asn1crypto raise lazily.
    request = ocsp.OCSPRequest.load(openssl_request)
    nonce = request["tbs_request"]["request_extensions"][0]
    assert nonce["extn_id"].native == "nonce"
    broken = openssl_request.replace(nonce.dump(), nonce.dump().replace(b"\x04\x12\x04\x10", b"\x04\x12\xe4\x10"))
    assert broken != openssl_request
    assert parse_ocsp_response(respond(pki, broken)).status == "malformed_request"
