"""`SoftwareKeyStore.rewrap`: old AES-256-CBC key files become SM4-CBC in place, atomically; an
interrupted run loses nothing and is finished by running it again; OpenSSL opens the result."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from keys.errors import WrongPassphraseError
from keys.keystore import SoftwareKeyStore
from keys.pkcs8 import decrypt_private_key
from keys.sm2 import SM2PrivateKey
from tests.conftest import openssl

PASS = b"test-kek-0123456789"
NEW = b"a-new-kek-after-rotation"
FAST = 2048


def _old_store(directory: Path, labels: list[str]) -> dict[str, bytes]:
    """Key files as ECAS wrote them before SM4: `openssl pkcs8 -topk8 -v2 aes-256-cbc` (the same
    format), and the public key of each."""
    directory.mkdir(mode=0o700)
    publics = {}
    for label in labels:
        plain = directory.parent / f"{label}.plain.pem"
        openssl("genpkey", "-algorithm", "SM2", "-out", str(plain))
        target = directory / f"{label}.key.pem"
        openssl(
            "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-iter", "2048", "-in", str(plain),
            "-out", str(target), "-passout", "pass:" + PASS.decode(),
        )  # fmt: skip
        target.chmod(0o600)
        publics[label] = SM2PrivateKey.from_pkcs8_der(plain.read_bytes()).public_key.to_point()
        plain.unlink()
    return publics


def test_rewrap_converts_to_sm4_and_openssl_opens_it(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    publics = _old_store(directory, ["root", "branch"])
    store = SoftwareKeyStore(directory, PASS, iterations=FAST)
    assert [store.cipher(label) for label in store.labels()] == ["aes-256-cbc", "aes-256-cbc"]
    assert [store.rewrap(label) for label in store.labels()] == [True, True]
    assert [store.rewrap(label) for label in store.labels()] == [False, False]  # nothing left to do
    for label, point in publics.items():
        path = directory / f"{label}.key.pem"
        assert store.cipher(label) == "sm4-cbc"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert SoftwareKeyStore(directory, PASS).public_key(label).to_point() == point
        # Someone else's code opens it: exactly the operator's command.
        text = openssl("pkey", "-in", str(path), "-passin", "pass:" + PASS.decode(), "-noout", "-text").stdout
        assert b"ASN1 OID: SM2" in text
        assert openssl("pkey", "-in", str(path), "-passin", "pass:wrong", "-noout", check=False).returncode != 0
    assert sorted(p.name for p in directory.iterdir()) == ["branch.key.pem", "root.key.pem"]  # no leftovers


def test_interrupted_rewrap_loses_nothing_and_can_be_repeated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "keys"
    publics = _old_store(directory, ["a", "b", "c"])
    store = SoftwareKeyStore(directory, PASS, iterations=FAST)
    real_replace = os.replace
    calls = []

    def crash_on_second(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the operator's Ctrl-C (or a crash) between write and rename
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        for label in store.labels():
            store.rewrap(label)
    monkeypatch.setattr(os, "replace", real_replace)
    # One converted, the others as they were; every key still opens; no temporary file left behind.
    assert [store.cipher(label) for label in store.labels()] == ["sm4-cbc", "aes-256-cbc", "aes-256-cbc"]
    assert sorted(p.name for p in directory.iterdir()) == ["a.key.pem", "b.key.pem", "c.key.pem"]
    fresh = SoftwareKeyStore(directory, PASS, iterations=FAST)
    assert {label: fresh.public_key(label).to_point() for label in fresh.labels()} == publics
    # Running it again finishes the job.
    assert [fresh.rewrap(label) for label in fresh.labels()] == [False, True, True]
    assert {fresh.cipher(label) for label in fresh.labels()} == {"sm4-cbc"}


def test_rewrap_under_a_new_kek_interrupted_then_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "keys"
    publics = _old_store(directory, ["a", "b"])
    store = SoftwareKeyStore(directory, NEW, iterations=FAST)
    with pytest.raises(WrongPassphraseError):  # without the old passphrase nothing is touched
        store.rewrap("a")
    assert store.rewrap("a", old_passphrase=PASS)
    # Interrupted here: "a" is under the new KEK, "b" still under the old one; both open with theirs.
    assert decrypt_private_key((directory / "a.key.pem").read_bytes(), NEW).public_key.to_point() == publics["a"]
    assert decrypt_private_key((directory / "b.key.pem").read_bytes(), PASS).public_key.to_point() == publics["b"]
    # The repeated run opens "a" with the new passphrase, "b" with the old, and converts only "b".
    assert [store.rewrap(label, old_passphrase=PASS) for label in store.labels()] == [False, True]
    with pytest.raises(WrongPassphraseError):
        decrypt_private_key((directory / "b.key.pem").read_bytes(), PASS)
