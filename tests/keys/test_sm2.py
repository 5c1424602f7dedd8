"""SM2/SM3 (keys.sm2): known-answer vector, cross-checks with OpenSSL and gmssl, bad input."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import algos
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.errors import InvalidKeyError
from keys.sm2 import DEFAULT_ID, N, SM2PrivateKey, SM2PublicKey, der_to_raw, raw_to_der, sm3
from tests.conftest import SM2_ID_OPT, gmssl_sm2, gmssl_verify, openssl

# SPEC.md "SM2 / SM3": recommended curve, ID 1234567812345678, message "message digest".
KAT_D = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
KAT_XA = 0x09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020
KAT_YA = 0xCCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13
KAT_K = "59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21"
KAT_R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
KAT_S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA
KAT_MSG = b"message digest"
KAT_SIG = raw_to_der(KAT_R.to_bytes(32, "big") + KAT_S.to_bytes(32, "big"))

MESSAGE = "电子证照 e-licence ".encode() * 20


@pytest.fixture(scope="module")
def key() -> SM2PrivateKey:
    return SM2PrivateKey.generate()


@pytest.fixture(scope="module")
def signature(key: SM2PrivateKey) -> bytes:
    return key.sign(MESSAGE)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sm2")


@pytest.fixture(scope="module")
def openssl_key(work: Path) -> Path:
    path = work / "ossl_key.pem"
    openssl("genpkey", "-algorithm", "SM2", "-out", str(path))
    return path


# --- known-answer vector -------------------------------------------------------------------------


def test_kat_private_key_derives_public_point() -> None:
    key = SM2PrivateKey(KAT_D)
    assert (key.public_key.x, key.public_key.y) == (KAT_XA, KAT_YA)


def test_kat_signature_verifies() -> None:
    public = SM2PublicKey(KAT_XA, KAT_YA)
    assert public.verify(KAT_SIG, KAT_MSG)
    assert public.verify(KAT_SIG, KAT_MSG, DEFAULT_ID)


def test_kat_signature_fails_for_other_message_or_id() -> None:
    public = SM2PublicKey(KAT_XA, KAT_YA)
    assert not public.verify(KAT_SIG, b"message digesT")
    assert not public.verify(KAT_SIG, KAT_MSG + b"\x00")
    assert not public.verify(KAT_SIG, KAT_MSG, signer_id=b"1234567812345679")
    assert not public.verify(KAT_SIG, KAT_MSG, signer_id=b"ALICE123@YAHOO.COM")


def test_kat_gmssl_with_fixed_k_reproduces_r_s() -> None:
    """An independent implementation computes the same Z and e, so the same (r, s) for fixed k."""
    public = SM2PublicKey(KAT_XA, KAT_YA)
    raw = gmssl_sm2(public, KAT_D).sign_with_sm3(KAT_MSG, random_hex_str=KAT_K.lower())
    assert raw == f"{KAT_R:064x}{KAT_S:064x}"
    assert gmssl_verify(public, KAT_SIG, KAT_MSG)


def test_z_and_digest_match_definition() -> None:
    public = SM2PublicKey(KAT_XA, KAT_YA)
    from keys.sm2 import GX, GY, A, B

    z = sm3(
        (128).to_bytes(2, "big") + DEFAULT_ID + b"".join(v.to_bytes(32, "big") for v in (A, B, GX, GY, KAT_XA, KAT_YA))
    )
    assert public.z() == z
    assert public.digest(KAT_MSG) == sm3(z + KAT_MSG)
    assert public.z(b"other") != z


def test_sm3_known_answer() -> None:
    # GB/T 32905 example 1
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


# --- cross-checks with gmssl and OpenSSL ---------------------------------------------------------


def test_our_signature_verifies_with_gmssl(key: SM2PrivateKey, signature: bytes) -> None:
    assert key.public_key.verify(signature, MESSAGE)
    assert gmssl_verify(key.public_key, signature, MESSAGE)
    assert not gmssl_verify(key.public_key, signature, MESSAGE + b"x")


def test_our_signature_verifies_with_openssl(key: SM2PrivateKey, signature: bytes, work: Path) -> None:
    (work / "pub.pem").write_bytes(key.public_key.to_pem())
    (work / "sig.der").write_bytes(signature)
    (work / "msg").write_bytes(MESSAGE)
    args = ["dgst", "-sm3", "-verify", str(work / "pub.pem"), "-signature", str(work / "sig.der")]
    result = openssl(*args, "-sigopt", SM2_ID_OPT, str(work / "msg"))
    assert b"Verified OK" in result.stdout
    # Without the SM2 ID OpenSSL hashes a different Z: the signature must not verify.
    (work / "msg2").write_bytes(MESSAGE + b"!")
    bad = openssl(*args, "-sigopt", SM2_ID_OPT, str(work / "msg2"), check=False)
    assert bad.returncode != 0


def test_openssl_signature_verifies_with_ours(openssl_key: Path, work: Path) -> None:
    private = SM2PrivateKey.from_pkcs8_der(openssl_key.read_bytes())
    pub_pem = openssl("pkey", "-in", str(openssl_key), "-pubout").stdout
    public = SM2PublicKey.from_der(pub_pem)
    assert public == private.public_key
    (work / "omsg").write_bytes(MESSAGE)
    sig = openssl("dgst", "-sm3", "-sign", str(openssl_key), "-sigopt", SM2_ID_OPT, str(work / "omsg")).stdout
    assert public.verify(sig, MESSAGE)
    assert not public.verify(sig, MESSAGE[:-1])
    assert not public.verify(sig, MESSAGE, signer_id=b"another-id")


def _key_whose_x_starts_with_04() -> SM2PrivateKey:
    """A key gmssl's constructor would mangle (it strips leading "0" and "4" characters): 1 in 256."""
    while True:
        key = SM2PrivateKey.generate()
        if key.public_key.x >> 248 == 0x04:
            return key


@pytest.mark.parametrize("make_key", [SM2PrivateKey.generate, _key_whose_x_starts_with_04])
def test_gmssl_signature_verifies_with_ours(make_key: Any) -> None:
    key = make_key()
    raw_hex = gmssl_sm2(key.public_key, key._d).sign_with_sm3(MESSAGE)
    sig = raw_to_der(bytes.fromhex(raw_hex))
    assert key.public_key.verify(sig, MESSAGE)
    assert not key.public_key.verify(sig, MESSAGE + b"!")
    assert gmssl_verify(key.public_key, sig, MESSAGE)


def test_custom_signer_id(key: SM2PrivateKey, work: Path) -> None:
    other_id = b"ecas@example.cn"
    sig = key.sign(MESSAGE, signer_id=other_id)
    assert key.public_key.verify(sig, MESSAGE, signer_id=other_id)
    assert not key.public_key.verify(sig, MESSAGE)  # default ID differs
    assert key.public_key.z(other_id) != key.public_key.z()
    (work / "pub_c.pem").write_bytes(key.public_key.to_pem())
    (work / "sig_c.der").write_bytes(sig)
    (work / "msg_c").write_bytes(MESSAGE)
    args = ["dgst", "-sm3", "-verify", str(work / "pub_c.pem"), "-signature", str(work / "sig_c.der")]
    ok = openssl(*args, "-sigopt", "distid:" + other_id.decode(), str(work / "msg_c"))
    assert b"Verified OK" in ok.stdout
    default = openssl(*args, "-sigopt", SM2_ID_OPT, str(work / "msg_c"), check=False)
    assert default.returncode != 0


def test_staged_signing_equals_one_shot(key: SM2PrivateKey) -> None:
    e = key.public_key.digest(MESSAGE)
    sig = key.sign_digest(e)
    assert key.public_key.verify(sig, MESSAGE)
    assert key.public_key.verify_digest(sig, e)
    with pytest.raises(ValueError):
        key.sign_digest(e[:31])
    assert not key.public_key.verify_digest(sig, e[:31])


def test_signatures_are_randomised(key: SM2PrivateKey) -> None:
    assert key.sign(MESSAGE) != key.sign(MESSAGE)


# --- DER <-> raw ---------------------------------------------------------------------------------


@settings(max_examples=200)
@given(r=st.integers(1, N - 1), s=st.integers(1, N - 1))
def test_der_raw_round_trip(r: int, s: int) -> None:
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    der = raw_to_der(raw)
    parsed = algos.DSASignature.load(der)
    assert (parsed["r"].native, parsed["s"].native) == (r, s)
    assert der_to_raw(der) == raw
    assert raw_to_der(der_to_raw(der)) == der


def test_der_to_raw_of_real_signature(signature: bytes) -> None:
    raw = der_to_raw(signature)
    assert len(raw) == 64
    assert raw_to_der(raw) == signature


@pytest.mark.parametrize("length", [0, 32, 63, 65, 72])
def test_raw_to_der_rejects_bad_length(length: int) -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        raw_to_der(b"\x01" * length)


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"garbage",
        b"\x30\x00",
        b"\x30\x03\x02\x01\x01",  # s missing
        KAT_SIG + b"\x00",  # trailing data
        KAT_SIG[:-1],  # truncated
        raw_to_der(b"\x00" * 32 + b"\x01" * 32),  # r = 0
        algos.DSASignature({"r": 1, "s": N}).dump(),  # s = n
    ],
)
def test_der_to_raw_rejects_garbage(garbage: bytes) -> None:
    with pytest.raises(ValueError):
        der_to_raw(garbage)


@settings(max_examples=100)
@given(st.binary(max_size=80))
def test_der_to_raw_only_raises_value_error(data: bytes) -> None:
    try:
        raw = der_to_raw(data)
    except ValueError:
        return
    assert len(raw) == 64


# --- tampering -----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_flipping_any_signature_bit_fails(key: SM2PrivateKey, signature: bytes, data: st.DataObject) -> None:
    bit = data.draw(st.integers(0, len(signature) * 8 - 1))
    tampered = bytearray(signature)
    tampered[bit // 8] ^= 1 << (bit % 8)
    assert not key.public_key.verify(bytes(tampered), MESSAGE)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_flipping_any_message_bit_fails(key: SM2PrivateKey, signature: bytes, data: st.DataObject) -> None:
    bit = data.draw(st.integers(0, len(MESSAGE) * 8 - 1))
    tampered = bytearray(MESSAGE)
    tampered[bit // 8] ^= 1 << (bit % 8)
    assert not key.public_key.verify(signature, bytes(tampered))


def test_verify_rejects_empty_and_oversized_signatures(key: SM2PrivateKey, signature: bytes) -> None:
    assert not key.public_key.verify(b"", MESSAGE)
    assert not key.public_key.verify(signature + b"\x00", MESSAGE)
    assert not key.public_key.verify(b"\x30" * 200, MESSAGE)


def test_signature_of_other_key_fails(signature: bytes) -> None:
    assert not SM2PrivateKey.generate().public_key.verify(signature, MESSAGE)


# --- bad keys ------------------------------------------------------------------------------------


def test_p256_key_rejected(work: Path) -> None:
    path = work / "p256.pem"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
    with pytest.raises(InvalidKeyError, match=r"secp256r1|prime256v1|P-256"):
        SM2PrivateKey.from_pkcs8_der(path.read_bytes())
    pub = openssl("pkey", "-in", str(path), "-pubout").stdout
    with pytest.raises(InvalidKeyError, match=r"secp256r1|prime256v1|P-256"):
        SM2PublicKey.from_der(pub)


def test_rsa_key_rejected(work: Path) -> None:
    path = work / "rsa.pem"
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", str(path))
    with pytest.raises(InvalidKeyError, match="RSA"):
        SM2PrivateKey.from_pkcs8_der(path.read_bytes())
    pub = openssl("pkey", "-in", str(path), "-pubout").stdout
    with pytest.raises(InvalidKeyError, match="RSA"):
        SM2PublicKey.from_der(pub)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a key",
        b"\x30\x03\x02\x01\x00",
        b"-----BEGIN PUBLIC KEY-----\n!!!not base64!!!\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN PUBLIC KEY-----\nMIIB\n",  # no END line
        b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",  # wrong type
    ],
)
def test_malformed_public_key_rejected(data: bytes) -> None:
    with pytest.raises(InvalidKeyError):
        SM2PublicKey.from_der(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a key",
        b"\x30\x03\x02\x01\x00",
        b"-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n",  # wrong type
    ],
)
def test_malformed_private_key_rejected(data: bytes) -> None:
    with pytest.raises(InvalidKeyError):
        SM2PrivateKey.from_pkcs8_der(data)


def test_truncated_der_rejected(key: SM2PrivateKey) -> None:
    der = key.public_key.to_der()
    for cut in (1, 10, len(der) // 2, len(der) - 1):
        with pytest.raises(InvalidKeyError):
            SM2PublicKey.from_der(der[:cut])
    pkcs8 = key.pkcs8_der()
    for cut in (1, 10, len(pkcs8) // 2, len(pkcs8) - 1):
        with pytest.raises(InvalidKeyError):
            SM2PrivateKey.from_pkcs8_der(pkcs8[:cut])


def test_point_not_on_curve_rejected() -> None:
    with pytest.raises(InvalidKeyError):
        SM2PublicKey(KAT_XA, KAT_YA + 1)
    with pytest.raises(InvalidKeyError):
        SM2PublicKey.from_point(b"\x04" + KAT_XA.to_bytes(32, "big") + (KAT_YA ^ 1).to_bytes(32, "big"))
    good = SM2PublicKey(KAT_XA, KAT_YA).to_der()
    bad = good[:-1] + bytes([good[-1] ^ 1])  # last byte of y
    with pytest.raises(InvalidKeyError):
        SM2PublicKey.from_der(bad)


def test_bad_point_encoding_rejected() -> None:
    with pytest.raises(InvalidKeyError):
        SM2PublicKey.from_point(b"\x05" + b"\x01" * 64)
    with pytest.raises(InvalidKeyError):
        SM2PublicKey.from_point(b"\x04" * 10)


@pytest.mark.parametrize("d", [0, -1, N - 1, N, N + 1, 2**256])
def test_out_of_range_private_scalar_rejected(d: int) -> None:
    with pytest.raises(InvalidKeyError, match="range"):
        SM2PrivateKey(d)


def test_mismatched_public_key_in_pkcs8_rejected(key: SM2PrivateKey) -> None:
    from asn1crypto import keys as asn1_keys

    info = asn1_keys.PrivateKeyInfo.load(key.pkcs8_der())
    ec = info["private_key"].parsed
    other = SM2PrivateKey.generate().public_key.to_point()
    forged = asn1_keys.ECPrivateKey(
        {"version": "ecPrivkeyVer1", "private_key": ec["private_key"].native, "public_key": other}
    )
    info2 = asn1_keys.PrivateKeyInfo(
        {"version": 0, "private_key_algorithm": info["private_key_algorithm"], "private_key": forged}
    )
    with pytest.raises(InvalidKeyError, match="does not match"):
        SM2PrivateKey.from_pkcs8_der(info2.dump())


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"\xa1\x44\x03\x42", b"\x04\x44\x03\x42"),  # [1] publicKey tag garbled: unknown element
        (b"\xa1\x44\x03\x42", b"\xa1\x44\x03\x01"),  # publicKey present but empty
        (b"\xa1\x44\x03\x42", b"\xa1\x44\x03\x00"),  # BIT STRING without its unused-bits byte
    ],
)
def test_pkcs8_public_key_check_cannot_be_skipped(key: SM2PrivateKey, old: bytes, new: bytes) -> None:
    """The stored public key guards against a garbled scalar (CBC has no MAC): hiding it must fail."""
    der = key.pkcs8_der()
    assert der.count(old) == 1
    with pytest.raises(InvalidKeyError):
        SM2PrivateKey.from_pkcs8_der(der.replace(old, new))


def test_pkcs8_without_public_key_accepted(key: SM2PrivateKey) -> None:
    """RFC 5915 makes the public key optional (some tools omit it)."""
    assert SM2PrivateKey.from_pkcs8_der(key._pkcs8(with_public=None)).public_key == key.public_key


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_corrupted_key_encodings_raise_invalid_key_error(key: SM2PrivateKey, data: st.DataObject) -> None:
    for der, load in (
        (key.pkcs8_der(), SM2PrivateKey.from_pkcs8_der),
        (key.public_key.to_der(), SM2PublicKey.from_der),
    ):
        position = data.draw(st.integers(0, len(der) - 1))
        value = data.draw(st.integers(0, 255).filter(lambda v, p=position, d=der: v != d[p]))
        corrupted = bytearray(der)
        corrupted[position] = value
        try:
            loaded = load(bytes(corrupted))
        except InvalidKeyError:
            continue
        # A change that still loads must not have changed the key.
        public = loaded.public_key if isinstance(loaded, SM2PrivateKey) else loaded
        assert public == key.public_key


# --- encodings -----------------------------------------------------------------------------------


def test_public_key_pem_der_round_trip(key: SM2PrivateKey) -> None:
    public = key.public_key
    assert SM2PublicKey.from_der(public.to_der()) == public
    assert SM2PublicKey.from_pem(public.to_pem()) == public
    assert SM2PublicKey.from_point(public.to_point()) == public
    assert SM2PublicKey.from_point(public.to_point()[1:]) == public
    assert hash(SM2PublicKey.from_der(public.to_der())) == hash(public)
    assert public.to_pem().startswith(b"-----BEGIN PUBLIC KEY-----")


def test_private_key_pkcs8_round_trip(key: SM2PrivateKey) -> None:
    again = SM2PrivateKey.from_pkcs8_der(key.pkcs8_der())
    assert again.public_key == key.public_key
    assert key.public_key.verify(again.sign(MESSAGE), MESSAGE)


def test_compressed_point_accepted(key: SM2PrivateKey) -> None:
    from asn1crypto import keys as asn1_keys

    public = key.public_key
    compressed_point = bytes([2 + (public.y & 1)]) + public.x.to_bytes(32, "big")
    info = asn1_keys.PublicKeyInfo.load(public.to_der())
    compressed = asn1_keys.PublicKeyInfo({"algorithm": info["algorithm"], "public_key": compressed_point}).dump()
    assert SM2PublicKey.from_der(compressed) == public
    wrong_parity = bytes([3 - (public.y & 1)]) + compressed_point[1:]
    flipped = asn1_keys.PublicKeyInfo({"algorithm": info["algorithm"], "public_key": wrong_parity}).dump()
    assert SM2PublicKey.from_der(flipped) != public
    # x with no point on the curve
    rejected = 0
    for x in range(1, 20):
        point = b"\x02" + x.to_bytes(32, "big")
        spki = asn1_keys.PublicKeyInfo({"algorithm": info["algorithm"], "public_key": point}).dump()
        try:
            SM2PublicKey.from_der(spki)
        except InvalidKeyError:
            rejected += 1
    assert rejected > 0


def test_openssl_compressed_public_key_accepted(key: SM2PrivateKey, work: Path) -> None:
    (work / "pub_u.pem").write_bytes(key.public_key.to_pem())
    compressed = openssl(
        "ec", "-pubin", "-in", str(work / "pub_u.pem"), "-conv_form", "compressed", "-pubout",
        "-outform", "DER",
    ).stdout  # fmt: skip
    assert len(compressed) == len(key.public_key.to_der()) - 32
    assert SM2PublicKey.from_der(compressed) == key.public_key


def test_openssl_reads_our_public_key_as_sm2(key: SM2PrivateKey, work: Path) -> None:
    (work / "pub_t.pem").write_bytes(key.public_key.to_pem())
    text = openssl("pkey", "-pubin", "-in", str(work / "pub_t.pem"), "-text", "-noout").stdout.decode()
    assert "ASN1 OID: SM2" in text
    assert f"{key.public_key.x:064x}"[:2] in text.replace(":", "")
    # And OpenSSL's DER of it is byte-identical to ours.
    der = openssl("pkey", "-pubin", "-in", str(work / "pub_t.pem"), "-outform", "DER").stdout
    assert der == key.public_key.to_der()


# --- secrecy -------------------------------------------------------------------------------------


def test_private_key_repr_hides_scalar() -> None:
    key = SM2PrivateKey(KAT_D)
    for text in (repr(key), str(key)):
        assert f"{KAT_D:x}" not in text.lower()
        assert f"{KAT_D:x}"[:16] not in text.lower()
        assert str(KAT_D) not in text


def test_private_key_not_picklable(key: SM2PrivateKey) -> None:
    with pytest.raises(TypeError):
        pickle.dumps(key)
    with pytest.raises(TypeError):
        pickle.dumps(key, protocol=pickle.HIGHEST_PROTOCOL)
    # What may travel between processes is the public key (or a key store label).
    assert SM2PublicKey.from_der(key.public_key.to_der()) == key.public_key
