"""SoftwareKeyStore (keys.keystore): encrypted 0600 files in a 0700 directory, never overwritten."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from keys import keystore
from keys.errors import KeyExistsError, KeyNotFoundError, WrongPassphraseError
from keys.keystore import SoftwareKeyStore
from keys.signer import Signer
from keys.sm2 import SM2PublicKey
from tests.conftest import gmssl_verify

PASS = b"test-kek-0123456789"
FAST = 2048  # PBKDF2 iterations: the format is tested in test_pkcs8, here speed matters


def _store(directory: Path, passphrase: bytes = PASS) -> SoftwareKeyStore:
    return SoftwareKeyStore(directory, passphrase, iterations=FAST)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "keys"


def test_generate_writes_private_encrypted_file(directory: Path) -> None:
    public = _store(directory).generate("seal-1")
    assert isinstance(public, SM2PublicKey)
    files = list(directory.iterdir())
    assert [f.name for f in files] == ["seal-1.key.pem"]
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    content = files[0].read_bytes()
    assert content.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert b"BEGIN PRIVATE KEY" not in content


def test_other_store_object_opens_and_signs(directory: Path) -> None:
    public = _store(directory).generate("root")
    other = _store(directory)
    assert other.exists("root")
    assert other.public_key("root") == public
    signer = other.signer("root")
    assert isinstance(signer, Signer)
    message = "营业执照".encode()
    signature = signer.sign(message)
    assert public.verify(signature, message)
    assert gmssl_verify(public, signature, message)


def test_signer_with_custom_id(directory: Path) -> None:
    store = _store(directory)
    public = store.generate("custom")
    signer = store.signer("custom", signer_id=b"ecas-id")
    assert signer.signer_id == b"ecas-id"
    signature = signer.sign(b"m")
    assert public.verify(signature, b"m", signer_id=b"ecas-id")
    assert not public.verify(signature, b"m")


def test_wrong_passphrase(directory: Path) -> None:
    _store(directory).generate("k")
    wrong = _store(directory, b"not the kek")
    with pytest.raises(WrongPassphraseError):
        wrong.signer("k")
    with pytest.raises(WrongPassphraseError):
        wrong.public_key("k")


def test_existing_label_is_never_overwritten(directory: Path) -> None:
    store = _store(directory)
    first = store.generate("dup")
    path = directory / "dup.key.pem"
    before = path.read_bytes()
    with pytest.raises(KeyExistsError, match="dup"):
        store.generate("dup")
    with pytest.raises(KeyExistsError):
        _store(directory).generate("dup")
    assert path.read_bytes() == before
    assert _store(directory).public_key("dup") == first
    assert sorted(p.name for p in directory.iterdir()) == ["dup.key.pem"]


def test_concurrent_generate_same_label(directory: Path) -> None:
    """Threads of one process racing for one label: one wins, the rest get KeyExistsError."""
    store = _store(directory)
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def run() -> None:
        barrier.wait()
        try:
            store.generate("race")
            outcomes.append("ok")
        except KeyExistsError:
            outcomes.append("exists")
        except Exception as exc:  # reported below
            outcomes.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["exists"] * 5 + ["ok"]
    assert sorted(p.name for p in directory.iterdir()) == ["race.key.pem"]


def test_a_burst_of_first_uses_decrypts_the_key_once(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new worker's first requests arrive together: one decrypts (PBKDF2), the others wait for it."""
    _store(directory).generate("service")
    store = _store(directory)
    decrypted: list[str] = []
    real_decrypt = keystore.decrypt_private_key

    def counting_decrypt(data: bytes, passphrase: bytes) -> object:
        decrypted.append("once")
        return real_decrypt(data, passphrase)

    monkeypatch.setattr(keystore, "decrypt_private_key", counting_decrypt)
    barrier = threading.Barrier(8)
    public_keys: list[SM2PublicKey] = []

    def first_use() -> None:
        barrier.wait()
        public_keys.append(store.signer("service").public_key)

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(public_keys) == 8 and len(set(public_keys)) == 1
    assert decrypted == ["once"]


@pytest.mark.parametrize(
    "label",
    ["../x", "", "Upper", "ROOT", "a/b", ".hidden", "-dash", "x" * 101, "sp ace", "中文", "a\x00", "abc\n"],
)
def test_bad_labels_rejected(directory: Path, label: str) -> None:
    store = _store(directory)
    with pytest.raises(ValueError):
        store.generate(label)
    with pytest.raises(ValueError):
        store.signer(label)
    with pytest.raises(ValueError):
        store.exists(label)
    assert not directory.exists() or not any(directory.iterdir())
    assert not (directory.parent / "x.key.pem").exists()


@pytest.mark.parametrize("label", ["a", "seal-91350100m000100y43", "root.2026", "b_1", "x" * 100])
def test_good_labels_accepted(directory: Path, label: str) -> None:
    store = _store(directory)
    store.generate(label)
    assert store.exists(label)


def test_missing_label(directory: Path) -> None:
    store = _store(directory)
    assert not store.exists("nope")
    with pytest.raises(KeyNotFoundError, match="nope"):
        store.signer("nope")
    with pytest.raises(KeyNotFoundError):
        store.public_key("nope")


def test_delete(directory: Path) -> None:
    store = _store(directory)
    store.generate("gone")
    store.delete("gone")
    assert not store.exists("gone")
    with pytest.raises(KeyNotFoundError):
        store.signer("gone")
    store.delete("gone")  # idempotent


def test_repr_hides_passphrase(directory: Path) -> None:
    store = _store(directory)
    assert PASS.decode() not in repr(store)
    assert PASS.decode() not in str(store)
    assert str(PASS) not in repr(store)


def test_empty_passphrase_refused(directory: Path) -> None:
    with pytest.raises(ValueError):
        SoftwareKeyStore(directory, b"")


def test_no_leftover_temp_files(directory: Path) -> None:
    store = _store(directory)
    for label in ("a", "b", "c"):
        store.generate(label)
    with pytest.raises(KeyExistsError):
        store.generate("a")
    assert sorted(p.name for p in directory.iterdir()) == ["a.key.pem", "b.key.pem", "c.key.pem"]


def test_default_iterations_file_opens(directory: Path) -> None:
    """The production setting (600k PBKDF2 iterations) round-trips too."""
    public = SoftwareKeyStore(directory, PASS).generate("prod")
    assert _store(directory).public_key("prod") == public
