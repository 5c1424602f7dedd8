"""Private keys in the database (store/keys_db.py), for several hosts: the key store on table
stored_key holds only the encrypted key file (OpenSSL opens it with the KEK, nothing opens it
without), never overwrites a label, keeps a host's older key files readable, rewraps in place under
a new KEK, and `ecas keys to-database` copies a host's files in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from cert_authority.settings import Settings
from cert_authority.store.db import create_db_engine
from cert_authority.store.keys_db import DatabaseKeyFiles, key_store_for
from keys.errors import KeyExistsError, KeyNotFoundError, WrongPassphraseError
from keys.keystore import KeyDirectory, SoftwareKeyStore
from tests.conftest import openssl

KEK = b"test-kek-for-stored-keys"


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = create_db_engine(settings.effective_database_url)
    yield engine
    engine.dispose()


def _stored(engine: Engine, label: str) -> bytes:
    with engine.connect() as connection:
        return bytes(connection.execute(text("SELECT content FROM stored_key WHERE label = :l"), {"l": label}).one()[0])


def test_keys_live_in_the_table_encrypted(engine: Engine, tmp_path: Path) -> None:
    store = SoftwareKeyStore(DatabaseKeyFiles(engine), KEK, iterations=1000)
    public = store.generate("seal-a")
    content = _stored(engine, "seal-a")
    assert content.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    private = store._open("seal-a").pkcs8_der()
    assert private not in content and private[-32:] not in content
    # An independent reader opens the stored value with the KEK, and only with it.
    (tmp_path / "k.pem").write_bytes(content)
    openssl("pkey", "-in", str(tmp_path / "k.pem"), "-passin", "pass:" + KEK.decode(), "-noout")
    with pytest.raises(WrongPassphraseError):
        SoftwareKeyStore(DatabaseKeyFiles(engine), b"another-kek").signer("seal-a")
    # Another process (host) signs with it: a signature its public key verifies.
    other = SoftwareKeyStore(DatabaseKeyFiles(engine), KEK)
    assert public.verify(other.signer("seal-a").sign(b"licence"), b"licence")
    with pytest.raises(KeyExistsError):
        other.generate("seal-a")  # never overwritten, whichever host asks
    assert _stored(engine, "seal-a") == content
    other.delete("seal-a")
    with pytest.raises(KeyNotFoundError):
        SoftwareKeyStore(DatabaseKeyFiles(engine), KEK).signer("seal-a")


def test_older_key_files_stay_readable_and_rewrap_in_place(engine: Engine, tmp_path: Path) -> None:
    folder = KeyDirectory(tmp_path / "keys")
    old = SoftwareKeyStore(folder, KEK, iterations=1000)
    old.generate("branch")
    store = SoftwareKeyStore(DatabaseKeyFiles(engine, folder), KEK, iterations=1000)
    store.generate("seal-b")
    assert store.labels() == ["branch", "seal-b"]
    with pytest.raises(KeyExistsError):
        store.generate("branch")  # taken in the folder: not shadowed by a new key in the table
    message = store.signer("branch").sign(b"x")
    assert old.public_key("branch").verify(message, b"x")
    # A change of KEK: each key rewritten where it is, both open under the new KEK only.
    new = SoftwareKeyStore(DatabaseKeyFiles(engine, folder), b"the-new-kek-0123", iterations=1000)
    assert [new.rewrap(label, old_passphrase=KEK) for label in new.labels()] == [True, True]
    fresh = SoftwareKeyStore(DatabaseKeyFiles(engine, folder), b"the-new-kek-0123")
    assert fresh.public_key("seal-b") == store.public_key("seal-b")
    assert fresh.public_key("branch") == old.public_key("branch")
    with pytest.raises(WrongPassphraseError):
        SoftwareKeyStore(DatabaseKeyFiles(engine, folder), KEK).signer("seal-b")


def test_the_settings_choose_the_store(settings: Settings, engine: Engine) -> None:
    store = key_store_for(settings, engine)
    expected = "database" if settings.effective_database_url.startswith("postgresql") else "local"
    assert settings.effective_file_store == expected
    assert isinstance(store.files, DatabaseKeyFiles if expected == "database" else KeyDirectory)


def test_ecas_keys_to_database(settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.cert_authority.cli_runner import fails, ok

    monkeypatch.setenv("ECAS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ECAS_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("ECAS_KEK", KEK.decode())
    if settings.effective_file_store != "database":
        fails("keys", "to-database")  # SQLite: keys stay in the host's folder
        return
    folder = KeyDirectory(settings.key_dir)
    local = SoftwareKeyStore(folder, KEK, iterations=1000)
    local.generate("root")
    local.generate("seal-c")
    assert "已复制 2 个" in ok("keys", "to-database")
    assert "已复制 0 个" in ok("keys", "to-database")  # again: nothing to do
    for label in ("root", "seal-c"):
        folder.remove(label)
    shared = SoftwareKeyStore(DatabaseKeyFiles(engine), KEK)
    assert shared.public_key("seal-c") == local.public_key("seal-c")
    SoftwareKeyStore(folder, KEK, iterations=1000).generate("seal-c")  # another key, same label
    fails("keys", "to-database")
    assert shared.public_key("seal-c") == local.public_key("seal-c")  # left as it was
    with engine.connect() as connection:
        query = text("SELECT detail_json FROM audit_event WHERE action = 'keys_to_database' ORDER BY id")
        assert connection.execute(query).scalars().all() == ['{"copied": ["root", "seal-c"]}', '{"copied": []}']
