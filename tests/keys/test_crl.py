"""CRLs: built by us, printed by the OpenSSL CLI, signature checked by pure-Python gmssl.

OpenSSL 3.0 cannot check SM2 CRL signatures (`openssl crl -verify` fails even with -vfyopt,
SPEC.md), so gmssl is the independent signature check here.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest
from asn1crypto import core
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.crl import REASONS, Crl, RevokedEntry, build_crl, parse_reason, reason_text
from keys.errors import CAError, InvalidCertificateError
from tests.conftest import NOW, gmssl_verify, openssl

if TYPE_CHECKING:
    from tests.conftest import PkiHierarchy

OTHER_SERIAL = 0x1234


def openssl_time(value: dt.datetime) -> str:
    """A time as OpenSSL prints it (ASN1_TIME_print: day padded with a space)."""
    value = value.astimezone(dt.UTC)
    return f"{value:%b} {value.day:2d} {value:%H:%M:%S %Y} GMT"


def _crl(pki: PkiHierarchy, entries: list[RevokedEntry], crl_number: int = 7) -> bytes:
    return build_crl(
        issuer_signer=pki.branch_signer,
        issuer=pki.branch,
        entries=entries,
        crl_number=crl_number,
        this_update=NOW,
        next_update=NOW + dt.timedelta(days=7),
    )


@pytest.fixture(scope="module")
def two_revoked(pki: PkiHierarchy) -> bytes:
    return _crl(
        pki,
        [
            RevokedEntry(pki.seal.serial, NOW - dt.timedelta(hours=2), parse_reason("keyCompromise")),
            RevokedEntry(OTHER_SERIAL, NOW - dt.timedelta(days=1), parse_reason("superseded")),
        ],
    )


def test_openssl_prints_serials_reasons_number_and_next_update(pki: PkiHierarchy, two_revoked: bytes) -> None:
    text = openssl("crl", "-inform", "DER", "-text", "-noout", input=two_revoked).stdout.decode()
    assert "Version 2" in text
    assert "SM2-with-SM3" in text
    assert f"Next Update: {openssl_time(NOW + dt.timedelta(days=7))}" in text
    assert "X509v3 CRL Number:" in text
    assert text.split("X509v3 CRL Number:")[1].split()[0] == "7"
    assert "X509v3 Authority Key Identifier" in text
    # Each entry: serial in hex (as OpenSSL prints it), then its reason.
    seal_part = text.split(f"Serial Number: {pki.seal.serial_hex}")[1]
    other_part = text.split(f"Serial Number: {OTHER_SERIAL:X}")[1]
    assert seal_part.split("Serial Number:")[0].count("Key Compromise") == 1
    assert other_part.split("Serial Number:")[0].count("Superseded") == 1


def test_signature_verifies_with_gmssl(pki: PkiHierarchy, two_revoked: bytes) -> None:
    crl = Crl.load(two_revoked)
    tbs = crl.asn1["tbs_cert_list"].dump()
    assert tbs in two_revoked  # the signed bytes are the ones on the wire
    assert gmssl_verify(pki.branch.public_key, crl.asn1["signature"].native, tbs)
    assert crl.signature_valid(pki.branch.public_key)
    assert not crl.signature_valid(pki.root.public_key)


def test_load_round_trips(pki: PkiHierarchy, two_revoked: bytes) -> None:
    crl = Crl.load(two_revoked)
    assert Crl.load(crl.pem).der == two_revoked
    assert crl.pem.startswith(b"-----BEGIN X509 CRL-----")
    assert crl.crl_number == 7
    assert crl.this_update == NOW
    assert crl.next_update == NOW + dt.timedelta(days=7)
    assert crl.issuer.dump() == pki.branch.subject.dump()
    assert crl.authority_key_identifier == pki.branch.public_key.key_identifier
    assert crl.entries == [
        RevokedEntry(OTHER_SERIAL, NOW - dt.timedelta(days=1), "superseded"),
        RevokedEntry(pki.seal.serial, NOW - dt.timedelta(hours=2), "key_compromise"),
    ]
    assert crl.entry(pki.seal.serial) == RevokedEntry(pki.seal.serial, NOW - dt.timedelta(hours=2), "key_compromise")
    assert crl.entry(pki.branch.serial) is None


def test_pem_from_openssl_loads(two_revoked: bytes) -> None:
    pem = openssl("crl", "-inform", "DER", "-outform", "PEM", input=two_revoked).stdout
    assert Crl.load(pem).der == two_revoked


def test_every_single_byte_flip_is_caught(pki: PkiHierarchy, two_revoked: bytes) -> None:
    # Tamper anything (tbs, algorithm, signature, lengths) and it must not verify.
    for offset in range(len(two_revoked)):
        tampered = bytearray(two_revoked)
        tampered[offset] ^= 0x01
        try:
            crl = Crl.load(bytes(tampered))
        except InvalidCertificateError:
            continue
        assert not crl.signature_valid(pki.branch.public_key), f"flip at byte {offset} went unnoticed"


def test_unspecified_reason_is_written_as_no_reason_code(pki: PkiHierarchy) -> None:
    # RFC 5280 §5.3.1: the reasonCode extension SHOULD be absent rather than unspecified.
    der = _crl(pki, [RevokedEntry(OTHER_SERIAL, NOW, "unspecified")])
    text = openssl("crl", "-inform", "DER", "-text", "-noout", input=der).stdout.decode()
    assert "Reason Code" not in text
    crl = Crl.load(der)
    assert crl.asn1["tbs_cert_list"]["revoked_certificates"][0]["crl_entry_extensions"].native is None
    assert crl.entry(OTHER_SERIAL) == RevokedEntry(OTHER_SERIAL, NOW, "unspecified")


def test_empty_crl_has_no_revoked_list(pki: PkiHierarchy) -> None:
    # RFC 5280 §5.1.2.6: the list is absent, not an empty SEQUENCE.
    der = _crl(pki, [], crl_number=0)
    text = openssl("crl", "-inform", "DER", "-text", "-noout", input=der).stdout.decode()
    assert "No Revoked Certificates." in text
    crl = Crl.load(der)
    assert crl.entries == []
    assert crl.crl_number == 0
    assert isinstance(crl.asn1["tbs_cert_list"]["revoked_certificates"], core.Void)
    assert crl.signature_valid(pki.branch.public_key)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"\x30\x03\x02\x01\x01",
        b"-----BEGIN X509 CRL-----\nnot base64!\n-----END X509 CRL-----\n",
    ],
)
def test_malformed_input_is_rejected(data: bytes) -> None:
    with pytest.raises(InvalidCertificateError):
        Crl.load(data)


def test_truncated_and_wrong_type_are_rejected(pki: PkiHierarchy, two_revoked: bytes) -> None:
    for cut in (1, 10, len(two_revoked) // 2, len(two_revoked) - 1):
        with pytest.raises(InvalidCertificateError):
            Crl.load(two_revoked[:cut])
    with pytest.raises(InvalidCertificateError):
        Crl.load(two_revoked + b"\x00")
    with pytest.raises(InvalidCertificateError):
        Crl.load(pki.branch.der)  # a certificate is not a CRL
    with pytest.raises(InvalidCertificateError, match="X509 CRL"):
        Crl.load(pki.branch.pem)


def test_reason_names() -> None:
    assert parse_reason("keyCompromise") == "key_compromise"
    assert parse_reason("aACompromise") == "aa_compromise"
    assert len(REASONS) == 10
    assert all(reason_text(parse_reason(name)) == name for name in REASONS)
    with pytest.raises(ValueError, match="keyCompromise"):
        parse_reason("key_compromise")
    with pytest.raises(ValueError, match="valid reasons"):
        parse_reason("stolen")
    with pytest.raises(ValueError):
        RevokedEntry(1, NOW, "keyCompromise")  # asn1crypto names only


def test_build_validates_arguments(pki: PkiHierarchy) -> None:
    entry = RevokedEntry(OTHER_SERIAL, NOW, "superseded")
    common = {"entries": [entry], "crl_number": 1, "this_update": NOW}
    with pytest.raises(ValueError, match="next_update"):
        build_crl(issuer_signer=pki.branch_signer, issuer=pki.branch, next_update=NOW, **common)
    later = NOW + dt.timedelta(days=1)
    with pytest.raises(ValueError, match="does not match"):
        build_crl(issuer_signer=pki.root_signer, issuer=pki.branch, next_update=later, **common)
    with pytest.raises(CAError, match="cRLSign"):
        build_crl(issuer_signer=pki.seal_signer, issuer=pki.seal, next_update=later, **common)
    with pytest.raises(ValueError, match="more than once"):
        build_crl(
            issuer_signer=pki.branch_signer,
            issuer=pki.branch,
            entries=[entry, RevokedEntry(OTHER_SERIAL, NOW, "key_compromise")],
            crl_number=1,
            this_update=NOW,
            next_update=later,
        )
    for bad_serial in (0, -5, 1 << 160):
        with pytest.raises(ValueError, match="serial"):
            _crl(pki, [RevokedEntry(bad_serial, NOW)])
    with pytest.raises(ValueError, match="CRL number"):
        _crl(pki, [entry], crl_number=-1)
    with pytest.raises(ValueError, match="naive"):
        RevokedEntry(1, dt.datetime(2026, 1, 1), "superseded")


@settings(max_examples=20, deadline=None)
@given(
    entries=st.dictionaries(
        st.integers(min_value=1, max_value=(1 << 159) - 1),
        st.tuples(st.integers(min_value=0, max_value=10 * 365 * 86400), st.sampled_from(REASONS)),
        max_size=5,
    ),
    crl_number=st.integers(min_value=0, max_value=(1 << 159) - 1),
)
def test_round_trip_property(pki: PkiHierarchy, entries: dict[int, tuple[int, str]], crl_number: int) -> None:
    built = [
        RevokedEntry(serial, NOW - dt.timedelta(seconds=age), parse_reason(reason))
        for serial, (age, reason) in entries.items()
    ]
    crl = Crl.load(_crl(pki, built, crl_number=crl_number))
    assert crl.entries == sorted(built, key=lambda e: e.serial)
    assert crl.crl_number == crl_number
    assert crl.signature_valid(pki.branch.public_key)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_mutation_fails_load_or_signature(pki: PkiHierarchy, two_revoked: bytes, data: st.DataObject) -> None:
    # Replace, delete or insert bytes: only InvalidCertificateError or a failed check may come out.
    tampered = bytearray(two_revoked)
    for _ in range(data.draw(st.integers(1, 3))):
        offset = data.draw(st.integers(0, len(tampered) - 1))
        action = data.draw(st.sampled_from(["replace", "delete", "insert"]))
        if action == "delete":
            del tampered[offset]
        else:
            value = data.draw(st.integers(0, 255))
            if action == "insert":
                tampered.insert(offset, value)
            elif tampered[offset] != value:
                tampered[offset] = value
    if bytes(tampered) == two_revoked:
        return
    try:
        crl = Crl.load(bytes(tampered))
    except InvalidCertificateError:
        return
    assert not crl.signature_valid(pki.branch.public_key)


def test_empty_bit_string_is_invalid_not_index_error(pki: PkiHierarchy, two_revoked: bytes) -> None:
    crl = Crl.load(two_revoked)
    signature = crl.asn1["signature"].contents
    header = b"\x03" + bytes([len(signature)])
    assert two_revoked.endswith(header + signature)
    body = two_revoked[4 : -len(header + signature)] + b"\x03\x00"  # outer header is 30 82 xx xx
    with pytest.raises(InvalidCertificateError):
        Crl.load(b"\x30\x82" + len(body).to_bytes(2, "big") + body)
