"""Encrypted PKCS#8 (keys.pkcs8): interoperability with OpenSSL, wrong passphrase, corrupt files."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import pem
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys.errors import InvalidKeyError, WrongPassphraseError
from keys.pkcs8 import DEFAULT_ITERATIONS, MAX_ITERATIONS, decrypt_private_key, encrypt_private_key, key_file_cipher
from keys.sm2 import SM2PrivateKey
from tests.conftest import openssl

PASS = b"correct horse battery staple"
FAST = 2048  # iterations for tests that do not check the default


@pytest.fixture(scope="module")
def key() -> SM2PrivateKey:
    return SM2PrivateKey.generate()


@pytest.fixture(scope="module")
def encrypted(key: SM2PrivateKey) -> bytes:
    return encrypt_private_key(key, PASS, iterations=FAST)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pkcs8")


def _der(pem_bytes: bytes) -> bytes:
    return pem.unarmor(pem_bytes)[2]


def _with_iterations(encrypted: bytes, iterations: int) -> bytes:
    info = asn1_keys.EncryptedPrivateKeyInfo.load(_der(encrypted))
    params = info["encryption_algorithm"]["parameters"]["key_derivation_func"]["parameters"]
    params["iteration_count"] = iterations
    return pem.armor("ENCRYPTED PRIVATE KEY", info.dump(force=True))


def test_round_trip(key: SM2PrivateKey, encrypted: bytes) -> None:
    assert encrypted.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    opened = decrypt_private_key(encrypted, PASS)
    assert opened.public_key == key.public_key
    assert key.public_key.verify(opened.sign(b"x"), b"x")
    # DER input is accepted too.
    assert decrypt_private_key(_der(encrypted), PASS).public_key == key.public_key


def test_default_parameters_are_pbes2_pbkdf2_sha256_sm4_cbc(key: SM2PrivateKey) -> None:
    data = encrypt_private_key(key, PASS)
    info = asn1_keys.EncryptedPrivateKeyInfo.load(_der(data))
    algorithm = info["encryption_algorithm"]
    assert algorithm["algorithm"].native == "pbes2"
    kdf = algorithm["parameters"]["key_derivation_func"]
    assert kdf["algorithm"].native == "pbkdf2"
    assert kdf["parameters"]["iteration_count"].native == DEFAULT_ITERATIONS
    assert kdf["parameters"]["prf"]["algorithm"].native == "sha256"
    assert len(kdf["parameters"]["salt"].native) >= 16
    assert algorithm["parameters"]["encryption_scheme"]["algorithm"].dotted == "1.2.156.10197.1.104.2"  # SM4-CBC
    assert key_file_cipher(data) == "sm4-cbc"
    assert decrypt_private_key(data, PASS).public_key == key.public_key


def test_openssl_names_the_cipher_sm4_cbc(encrypted: bytes, work: Path) -> None:
    path = work / "parse.pem"
    path.write_bytes(encrypted)
    parsed = openssl("asn1parse", "-in", str(path)).stdout.decode()
    assert ":sm4-cbc" in parsed and ":hmacWithSHA256" in parsed and "aes" not in parsed.lower()


def test_salt_and_iv_are_fresh(key: SM2PrivateKey, encrypted: bytes) -> None:
    assert encrypt_private_key(key, PASS, iterations=FAST) != encrypted


def test_openssl_reads_our_file(key: SM2PrivateKey, encrypted: bytes, work: Path) -> None:
    path = work / "ours.pem"
    path.write_bytes(encrypted)
    pub = openssl("pkey", "-in", str(path), "-passin", "pass:" + PASS.decode(), "-pubout").stdout
    assert pub == key.public_key.to_pem()
    wrong = openssl("pkey", "-in", str(path), "-passin", "pass:wrong", "-pubout", check=False)
    assert wrong.returncode != 0


@pytest.mark.parametrize("cipher", ["sm4-cbc", "aes-256-cbc"])
def test_we_read_openssl_encrypted_file(work: Path, cipher: str) -> None:
    plain = work / "plain.pem"
    enc = work / "openssl_enc.pem"
    openssl("genpkey", "-algorithm", "SM2", "-out", str(plain))
    openssl(
        "pkcs8", "-topk8", "-v2", cipher, "-in", str(plain), "-out", str(enc),
        "-passout", "pass:s3cret",
    )  # fmt: skip
    assert key_file_cipher(enc.read_bytes()) == cipher
    assert enc.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    opened = decrypt_private_key(enc.read_bytes(), b"s3cret")
    expected = SM2PrivateKey.from_pkcs8_der(plain.read_bytes())
    assert opened.public_key == expected.public_key
    with pytest.raises(WrongPassphraseError):
        decrypt_private_key(enc.read_bytes(), b"s3cret!")


def test_unsupported_openssl_cipher_rejected(work: Path) -> None:
    plain = work / "plain2.pem"
    enc = work / "openssl_aes128.pem"
    openssl("genpkey", "-algorithm", "SM2", "-out", str(plain))
    openssl(
        "pkcs8", "-topk8", "-v2", "aes-128-cbc", "-in", str(plain), "-out", str(enc),
        "-passout", "pass:s3cret",
    )  # fmt: skip
    with pytest.raises(InvalidKeyError, match="cipher"):
        decrypt_private_key(enc.read_bytes(), b"s3cret")


@pytest.mark.parametrize("passphrase", [b"wrong", b"", PASS + b" ", PASS[:-1], PASS.upper()])
def test_wrong_passphrase(encrypted: bytes, passphrase: bytes) -> None:
    with pytest.raises(WrongPassphraseError):
        decrypt_private_key(encrypted, passphrase)


def test_empty_passphrase_refused_when_encrypting(key: SM2PrivateKey) -> None:
    with pytest.raises(ValueError):
        encrypt_private_key(key, b"")


@pytest.mark.parametrize("iterations", [0, -1, MAX_ITERATIONS + 1, 2**40])
def test_absurd_iteration_count_rejected(encrypted: bytes, iterations: int) -> None:
    with pytest.raises(InvalidKeyError, match="iteration"):
        decrypt_private_key(_with_iterations(encrypted, iterations), PASS)


def test_plaintext_key_material_not_in_file(key: SM2PrivateKey, encrypted: bytes) -> None:
    scalar = key._d.to_bytes(32, "big")
    der = _der(encrypted)
    for blob in (encrypted, der, base64.b64decode(b"".join(encrypted.splitlines()[1:-1]))):
        assert scalar not in blob
        assert scalar[:8] not in blob
        assert scalar.hex().encode() not in blob.lower()
        assert key.pkcs8_der() not in blob
    assert base64.b64encode(scalar)[:16] not in encrypted


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nnot base64!!\n-----END ENCRYPTED PRIVATE KEY-----\n",
        b"-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n",
    ],
)
def test_malformed_input_rejected(data: bytes) -> None:
    with pytest.raises(InvalidKeyError):
        decrypt_private_key(data, PASS)


def test_truncated_file_rejected(encrypted: bytes) -> None:
    der = _der(encrypted)
    for cut in range(0, len(der), 7):
        with pytest.raises((InvalidKeyError, WrongPassphraseError)):
            decrypt_private_key(der[:cut], PASS)
    lines = encrypted.splitlines(keepends=True)
    for keep in range(1, len(lines)):
        with pytest.raises((InvalidKeyError, WrongPassphraseError)):
            decrypt_private_key(b"".join(lines[:keep]), PASS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupted_file_only_raises_key_errors(encrypted: bytes, data: st.DataObject) -> None:
    der = bytearray(_der(encrypted))
    position = data.draw(st.integers(0, len(der) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != der[position]))
    der[position] = value
    try:
        opened = decrypt_private_key(bytes(der), PASS)
    except (InvalidKeyError, WrongPassphraseError):
        return
    # Only bytes that do not change the key may be altered without an error (e.g. the last block's
    # padding cannot be; a flipped salt or IV byte garbles the plaintext). Whatever opens must be
    # the same key.
    assert opened.public_key == decrypt_private_key(_der(encrypted), PASS).public_key


def test_iv_of_wrong_type_rejected(encrypted: bytes) -> None:
    der = _der(encrypted)
    info = asn1_keys.EncryptedPrivateKeyInfo.load(der)
    iv = info["encryption_algorithm"]["parameters"]["encryption_scheme"]["parameters"].parse().native
    header = b"\x04\x10" + iv
    assert der.count(header) == 1
    with pytest.raises(InvalidKeyError):
        decrypt_private_key(der.replace(header, b"\x0b\x10" + iv), PASS)


def test_ciphertext_tamper_detected(encrypted: bytes) -> None:
    der = bytearray(_der(encrypted))
    der[-20] ^= 0x01  # inside the last-but-one block of ciphertext
    with pytest.raises((WrongPassphraseError, InvalidKeyError)):
        decrypt_private_key(bytes(der), PASS)
