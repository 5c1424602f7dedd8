"""The file store's two backends (a local directory, a database table) behind one interface, and
files sealed at rest with SM4-GCM bound to their name (issue 24 stateless tier, issue 25 item 2).

Each attack is a test: a stored value altered, a sealed value swapped under another name, a value
sealed under a key this installation does not have."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from cert_authority.errors import StorageUnavailableError, StoredFileError
from cert_authority.settings import Settings
from cert_authority.store.db import create_db_engine
from cert_authority.store.filestore import (
    MAGIC,
    FileSealer,
    FileStore,
    LocalDirectory,
    RingFileKeys,
    all_names,
    convert_plain_files,
    file_store_for,
    plain_file_count,
)
from cert_authority.store.filestore_db import DatabaseFiles
from keys.datakeys import DataKeyRing
from keys.sm2 import sm3

ID_NUMBER = b"350102199005170121"
NAME = "张三丰".encode()


def licence_like(n: int = 0) -> bytes:
    """A file that shows a holder's ID number and name, as a licence PDF does."""
    return b"%PDF-1.7\n" + ID_NUMBER + b" " + NAME + bytes([n]) * 64 + b"\n%%EOF\n"


@pytest.fixture
def ring(tmp_path: Path) -> DataKeyRing:
    return DataKeyRing(tmp_path / "keys" / "data-keys.json", b"test-passphrase", iterations=1000)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = create_db_engine(settings.effective_database_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["local", "database"])
def store(request: pytest.FixtureRequest, tmp_path: Path, ring: DataKeyRing, engine: Engine) -> FileStore:
    """A sealing store on either backend (the database one on SQLite and on PostgreSQL)."""
    sealer = FileSealer(RingFileKeys(lambda: ring))
    if request.param == "local":
        return FileStore(LocalDirectory(tmp_path / "files"), sealer)
    return FileStore(DatabaseFiles(engine), sealer)


def test_files_are_sealed_at_rest_named_by_plaintext_and_deduplicated(store: FileStore) -> None:
    data = licence_like()
    name = store.put(data)
    assert name == sm3(data).hex()
    stored = store.backend.read(name)
    assert stored is not None and stored.startswith(MAGIC)
    assert ID_NUMBER not in stored and NAME not in stored and b"%PDF" not in stored
    assert store.get(name) == data and store.exists(name)
    # The same content again: the same name, the stored value left as it was (not re-sealed).
    assert store.put_many([(data, None), (licence_like(1), None), (data, None)]) == [
        name,
        sm3(licence_like(1)).hex(),
        name,
    ]
    assert store.backend.read(name) == stored
    assert sorted(all_names(store.backend)) == sorted({name, sm3(licence_like(1)).hex()})
    # Two seals of one content differ (a fresh nonce per file) and both open.
    assert store.sealer is not None
    again = store.sealer.seal(name, data)
    assert again != stored
    store.backend.write([(name, again)], replace=True)
    assert store.get(name) == data


def test_a_sealed_value_swapped_under_another_name_is_detected(store: FileStore) -> None:
    first, second = store.put(licence_like(1)), store.put(licence_like(2))
    sealed_first = store.backend.read(first)
    assert sealed_first is not None
    store.backend.write([(second, sealed_first)], replace=True)  # the name is the associated data
    with pytest.raises(StoredFileError, match="已损坏"):
        store.get(second)
    assert store.get(first) == licence_like(1)


@pytest.mark.parametrize("where", ["header", "nonce", "ciphertext", "tag"])
def test_tampering_with_a_sealed_value_is_detected_and_a_put_repairs_it(store: FileStore, where: str) -> None:
    data = licence_like()
    name = store.put(data)
    stored = bytearray(store.backend.read(name) or b"")
    offset = {"header": 3, "nonce": len(MAGIC) + 4, "ciphertext": len(MAGIC) + 20, "tag": len(stored) - 1}[where]
    stored[offset] ^= 0x01
    store.backend.write([(name, bytes(stored))], replace=True)
    with pytest.raises(StoredFileError, match="已损坏：内容与 SM3 摘要不符"):
        store.get(name)
    assert store.put(data) == name  # the damaged value is replaced
    assert store.get(name) == data


def test_a_value_sealed_under_a_key_this_installation_lacks_does_not_open(store: FileStore, tmp_path: Path) -> None:
    other = DataKeyRing(tmp_path / "other.json", b"another-passphrase", iterations=1000)
    name = sm3(licence_like()).hex()
    store.backend.write([(name, FileSealer(RingFileKeys(lambda: other)).seal(name, licence_like()))])
    with pytest.raises(StoredFileError, match="已损坏"):
        store.get(name)


def test_plain_files_from_before_encryption_still_read_and_are_converted_resumably(store: FileStore) -> None:
    plain = {sm3(licence_like(n)).hex(): licence_like(n) for n in range(7)}
    store.backend.write(list(plain.items()))  # as a store written before sealing holds them
    assert all(store.get(name) == data for name, data in plain.items())
    assert plain_file_count(store) == (7, 7)

    class Interrupted(Exception):
        pass

    def stop_after_first_batch(seen: int, sealed: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        convert_plain_files(store, batch_size=3, progress=stop_after_first_batch)
    assert plain_file_count(store) == (7, 4)  # one batch sealed and durable, the rest untouched
    steps: list[tuple[int, int]] = []
    assert convert_plain_files(store, batch_size=3, progress=lambda *step: steps.append(step)) == (7, 4)
    assert steps[-1] == (7, 4)
    assert plain_file_count(store) == (7, 0)
    for name, data in plain.items():
        stored = store.backend.read(name)
        assert stored is not None and stored.startswith(MAGIC) and ID_NUMBER not in stored
        assert store.get(name) == data
    assert convert_plain_files(store) == (7, 0)  # nothing left to do


def test_a_plain_upload_that_starts_like_a_sealed_value_is_still_itself(store: FileStore) -> None:
    trick = MAGIC + b"\x02v1" + bytes(40)
    name = store.put(trick)
    assert store.get(name) == trick
    store.backend.write([(name, trick)], replace=True)  # as a plain (pre-encryption) file
    assert store.get(name) == trick


def test_rotating_the_files_key_keeps_older_files_readable(store: FileStore, ring: DataKeyRing) -> None:
    old = store.put(licence_like(1))
    ring.rotate("files")
    new = store.put(licence_like(2))
    assert (store.backend.read(old) or b"")[len(MAGIC) + 1 : len(MAGIC) + 3] == b"v1"
    assert (store.backend.read(new) or b"")[len(MAGIC) + 1 : len(MAGIC) + 3] == b"v2"
    assert store.get(old) == licence_like(1) and store.get(new) == licence_like(2)


def test_files_are_read_and_other_names_looked_up_in_one_read(store: FileStore) -> None:
    """`get_many(..., present=...)`: what a remembered verification needs of its shared parts."""
    read, looked_up, absent = store.put(licence_like(1)), store.put(licence_like(2)), sm3(b"never stored").hex()
    assert store.get_many([read], present=[looked_up]) == {read: licence_like(1)}
    store.check_present([read, looked_up])
    with pytest.raises(StoredFileError, match=f"缺少文件 {absent}"):
        store.get_many([read], present=[looked_up, absent])
    with pytest.raises(StoredFileError, match=f"缺少文件 {absent}"):
        store.check_present([absent])
    with pytest.raises(StoredFileError, match="摘要应为"):
        store.get_many([read], present=["../not-a-digest"])


def test_a_name_only_in_the_fallback_is_there(engine: Engine, tmp_path: Path, ring: DataKeyRing) -> None:
    local = LocalDirectory(tmp_path / "files")
    old = sm3(licence_like(3)).hex()
    local.write([(old, licence_like(3))])
    store = FileStore(DatabaseFiles(engine), FileSealer(RingFileKeys(lambda: ring)), fallback=local)
    new = store.put(licence_like(4))
    assert store.get_many([new], present=[old]) == {new: licence_like(4)}
    store.check_present([old, new])


def test_database_store_reads_a_hosts_old_local_files_until_copied_in(engine: Engine, tmp_path: Path,
                                                                      ring: DataKeyRing) -> None:
    local = LocalDirectory(tmp_path / "files")
    old = {sm3(licence_like(n)).hex(): licence_like(n) for n in range(3)}
    local.write(list(old.items()))
    store = FileStore(DatabaseFiles(engine), FileSealer(RingFileKeys(lambda: ring)), fallback=local)
    assert all(store.exists(name) and store.get(name) == data for name, data in old.items())
    assert plain_file_count(store) == (3, 3)
    assert convert_plain_files(store) == (3, 3)
    assert sorted(all_names(store.backend)) == sorted(old)
    for name, data in old.items():
        stored = store.backend.read(name)
        assert stored is not None and ID_NUMBER not in stored
        assert FileStore(DatabaseFiles(engine), store.sealer).get(name) == data  # no fallback needed now


def test_the_setting_chooses_the_backend(settings: Settings, engine: Engine) -> None:
    store = file_store_for(settings, engine)
    expected = "local" if settings.effective_database_url.startswith("sqlite") else "database"
    assert settings.effective_file_store == expected
    assert isinstance(store.backend, LocalDirectory if expected == "local" else DatabaseFiles)
    chosen = settings.model_copy(update={"file_store": "database"})
    assert isinstance(file_store_for(chosen, engine).backend, DatabaseFiles)
    chosen = settings.model_copy(update={"file_store": "local"})
    assert isinstance(file_store_for(chosen, engine).backend, LocalDirectory)


@pytest.mark.unit
def test_an_unreachable_database_store_is_storage_unavailable_with_nothing_stored(ring: DataKeyRing) -> None:
    engine = create_engine("postgresql+psycopg://127.0.0.1:9/none", connect_args={"connect_timeout": 2})
    store = FileStore(DatabaseFiles(engine), FileSealer(RingFileKeys(lambda: ring)))
    with pytest.raises(StorageUnavailableError, match="文件存储（数据库）暂不可用"):
        store.put(licence_like())


def test_a_failed_database_write_leaves_nothing(engine: Engine, ring: DataKeyRing) -> None:
    store = FileStore(DatabaseFiles(engine), FileSealer(RingFileKeys(lambda: ring)))

    class Boom(Exception):
        pass

    calls = {"n": 0}

    def fail_insert(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("INSERT") and "stored_file" in statement:
            calls["n"] += 1
            raise Boom

    event.listen(engine, "before_cursor_execute", fail_insert)
    try:
        with pytest.raises(Boom):
            store.put_many([(licence_like(n), None) for n in range(3)])
    finally:
        event.remove(engine, "before_cursor_execute", fail_insert)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM stored_file")).scalar_one() == 0
    assert calls["n"] == 1


def test_a_new_file_written_within_a_transaction_is_kept_only_if_it_commits(store: FileStore, engine: Engine) -> None:
    """put_new(within=…): a store in the caller's database writes in the caller's transaction (a
    case's receipt is committed with the case's close: one commit); another store writes on its own."""
    kept, dropped = licence_like(7), licence_like(8)
    with engine.connect() as connection:
        with connection.begin() as transaction:
            store.put_new(dropped, within=connection)
            transaction.rollback()
        with connection.begin():
            name = store.put_new(kept, within=connection)
    assert store.get(name) == kept
    in_database = isinstance(store.backend, DatabaseFiles)
    assert store.exists(sm3(dropped).hex()) is not in_database  # rolled back with the transaction
