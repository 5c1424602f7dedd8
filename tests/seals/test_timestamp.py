"""RFC 3161 tokens with SM2/SM3: requests made by `openssl ts -query` are read, replies are printed
by `openssl ts -reply -text`, and the token's SM2 signature checks with gmssl (not our code)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path

import pytest
from asn1crypto import tsp

from keys.oids import SM3
from keys.signer import SoftwareSigner
from keys.sm2 import SM2PrivateKey, sm3
from keys.x509 import build_certificate, make_name
from seals.errors import SealInputError
from seals.timestamp import (
    StampRequest,
    TimeStampRequestError,
    granted_reply,
    make_tokens,
    parse_reply,
    parse_request,
    parse_token,
    rejection_reply,
)
from tests.conftest import NOW, PkiHierarchy, gmssl_sm3, gmssl_verify, openssl

POLICY = "2.25.1"


@pytest.fixture(scope="module")
def tsa(pki: PkiHierarchy) -> SoftwareSigner:
    key = SM2PrivateKey.generate()
    certificate = build_certificate(
        subject=make_name("测试时间戳服务"),
        public_key=key.public_key,
        serial=0x7007,
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=365),
        issuer_signer=pki.branch_signer,
        issuer=pki.branch,
        ca=False,
        key_usage={"digital_signature", "non_repudiation"},
        extended_key_usage=("time_stamping",),
    )
    return SoftwareSigner(key, (certificate, pki.branch, pki.root))


def _stamp(tsa: SoftwareSigner, request: StampRequest, serial: int = 0x8000000000000001) -> bytes:
    [token] = make_tokens(
        tsa, [request], first_serial=serial, gen_time=NOW, policy=POLICY, accuracy=dt.timedelta(seconds=1)
    )
    return token


@pytest.mark.parametrize("digest", ["sha256", "sm3"])
def test_openssl_query_is_answered_and_reply_printed(tsa: SoftwareSigner, tmp_path: Path, digest: str) -> None:
    document = tmp_path / "doc.txt"
    document.write_bytes("电子证照 timestamp".encode())
    query = openssl("ts", "-query", "-data", str(document), f"-{digest}", "-cert").stdout
    request = parse_request(query)
    expected = (
        hashlib.sha256(document.read_bytes()).digest() if digest == "sha256" else gmssl_sm3(document.read_bytes())
    )
    assert request.hashed_message == expected
    assert request.cert_req and request.nonce is not None  # openssl sends a 64-bit nonce

    reply = tmp_path / "reply.tsr"
    reply.write_bytes(granted_reply(_stamp(tsa, request)))
    text = openssl("ts", "-reply", "-in", str(reply), "-text").stdout.decode()
    assert "Status: Granted." in text
    assert f"Policy OID: {POLICY}" in text
    assert "Serial number: 0x8000000000000001" in text
    assert f"Nonce: 0x{request.nonce:X}" in text.replace("Nonce: 0x0", "Nonce: 0x")
    assert "Accuracy: 0x01 seconds" in text
    assert expected.hex(" ").upper().split()[0] in text.upper()
    assert "测试时间戳服务" in text or "TSA: DirName:" in text


def test_token_signature_checks_with_gmssl(tsa: SoftwareSigner) -> None:
    request = StampRequest(SM3, sm3(b"signature value"), nonce=12345)
    token = parse_token(_stamp(tsa, request))
    leaf = tsa.certificate_chain[0]
    assert token.signer is not None and token.signer.der == leaf.der
    assert gmssl_verify(leaf.public_key, token.signature, token.signed_attributes_der)
    assert token.message_digest == gmssl_sm3(token.tst_info_der)  # the signed digest is of the TSTInfo
    assert token.content_type == "1.2.840.113549.1.9.16.1.4"
    assert (token.serial, token.nonce, token.policy, token.gen_time) == (0x8000000000000001, 12345, POLICY, NOW)
    assert token.imprint_matches(b"signature value") and not token.imprint_matches(b"other")
    assert token.signature_valid() and token.content_digest_matches()


def test_no_certificate_unless_asked(tsa: SoftwareSigner) -> None:
    token = parse_token(_stamp(tsa, StampRequest(SM3, bytes(32), cert_req=False)))
    assert token.certificates == () and token.signer is None and not token.signature_valid()


def test_altered_token_fails(tsa: SoftwareSigner) -> None:
    der = _stamp(tsa, StampRequest(SM3, sm3(b"x")))
    token = parse_token(der)
    # A re-dated TSTInfo: the signed digest no longer matches it.
    later = tsp.TSTInfo.load(token.tst_info_der)
    later["gen_time"] = NOW + dt.timedelta(days=400)
    moved = dataclasses.replace(token, tst_info_der=later.dump())
    assert not moved.content_digest_matches()
    # Another key re-signing the same attributes.
    other = SoftwareSigner(SM2PrivateKey.generate())
    assert not dataclasses.replace(token, signature=other.sign(token.signed_attributes_der)).signature_valid()


@pytest.mark.parametrize(
    ("request_der", "failure"),
    [
        (b"", "bad_data_format"),
        (b"\x30\x03\x02\x01\x01", "bad_data_format"),
        (
            tsp.TimeStampReq(
                {
                    "version": "v1",
                    "message_imprint": {"hash_algorithm": {"algorithm": "sha1"}, "hashed_message": bytes(20)},
                }
            ).dump(),
            "bad_alg",
        ),
        (
            tsp.TimeStampReq(
                {
                    "version": "v1",
                    "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": bytes(31)},
                }
            ).dump(),
            "bad_data_format",
        ),
        (
            tsp.TimeStampReq(
                {
                    "version": "v1",
                    "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": bytes(32)},
                    "nonce": 1 << 300,
                }
            ).dump(),
            "bad_request",
        ),
    ],
)
def test_bad_requests_name_their_failure(request_der: bytes, failure: str) -> None:
    with pytest.raises(TimeStampRequestError) as caught:
        parse_request(request_der)
    assert caught.value.failure == failure


def test_rejection_reply_prints(tmp_path: Path) -> None:
    reply = tmp_path / "rejected.tsr"
    reply.write_bytes(rejection_reply("time_not_available", "clock not synchronised"))
    text = openssl("ts", "-reply", "-in", str(reply), "-text").stdout.decode()
    assert "Status: Rejected." in text and "time source is not available" in text
    assert parse_reply(reply.read_bytes()) == ("rejection", None)


def test_garbage_token_is_an_input_error() -> None:
    with pytest.raises(SealInputError):
        parse_token(b"\x30\x00")


@pytest.mark.parametrize("nonce", [None, 0, 255, 1 << 63, (1 << 255) + 12345])
@pytest.mark.parametrize("serial", [1, 127, 128, 1 << 63])
def test_tst_info_is_what_asn1crypto_encodes(tsa: SoftwareSigner, nonce: int | None, serial: int) -> None:
    token = parse_token(_stamp(tsa, StampRequest(SM3, sm3(b"v"), nonce=nonce), serial=serial))
    parsed = tsp.TSTInfo.load(token.tst_info_der, strict=True)
    rebuilt = tsp.TSTInfo({name: parsed[name] for name, *_ in tsp.TSTInfo._fields if parsed[name].native is not None})
    assert rebuilt.dump(force=True) == token.tst_info_der
    assert (token.serial, token.nonce) == (serial, nonce)


def test_imprint_algorithm_is_echoed_as_requested(tsa: SoftwareSigner) -> None:
    # OpenSSL writes sha256 with NULL parameters: the token must carry the same bytes (RFC 3161 §2.4.2).
    query = openssl("ts", "-query", "-digest", "11" * 32, "-sha256").stdout
    request = parse_request(query)
    token = parse_token(_stamp(tsa, request))
    asked = tsp.TimeStampReq.load(query)["message_imprint"].dump()
    assert tsp.TSTInfo.load(token.tst_info_der)["message_imprint"].dump() == asked
