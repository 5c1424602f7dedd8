"""On PostgreSQL the data-key ring is one row every host shares (store/data_keys.py): two hosts
that each made their own ring would seal files and personal data the other cannot open."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

from cert_authority.settings import Settings
from cert_authority.store.data_keys import DatabaseRingStorage, ring_storage
from cert_authority.store.db import create_db_engine
from keys.datakeys import DataKeyRing

PASSPHRASE = b"test-passphrase"


def _host_ring(settings: Settings, data_dir: Path) -> DataKeyRing:
    """The ring as a host with its own data directory opens it (no process-wide cache)."""
    storage = DatabaseRingStorage(settings.effective_database_url, data_dir / "keys" / "data-keys.json")
    return DataKeyRing(storage, PASSPHRASE, iterations=1000)


ON_POSTGRES = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_one_host_on_sqlite_keeps_the_ring_in_its_data_directory(settings: Settings) -> None:
    assert ring_storage(settings) == settings.data_keys_path.resolve()  # one host: the file, as before


@ON_POSTGRES
def test_hosts_starting_at_once_make_one_ring_and_see_each_others_rotations(settings: Settings,
                                                                            tmp_path: Path) -> None:
    hosts = [_host_ring(settings, tmp_path / f"host{n}") for n in range(4)]
    with ThreadPoolExecutor(4) as pool:  # every host's first use at the same moment
        first = list(pool.map(lambda ring: ring.current("files"), hosts))
    assert len({(key.version, key.secret) for key in first}) == 1  # one v1, not one per host
    rotated = hosts[0].rotate("files")
    assert rotated.version == 2
    assert hosts[3].get("files", 2).secret == rotated.secret  # read from the row on demand
    assert not any((tmp_path / f"host{n}" / "keys").exists() for n in range(4))  # nothing on the hosts
    engine = create_db_engine(settings.effective_database_url)
    with engine.connect() as connection:
        document = connection.execute(text("SELECT document FROM data_key_ring")).scalar_one()
    engine.dispose()
    assert rotated.secret.hex() not in document and "wrapped" in document  # wrapped under the KEK only


@ON_POSTGRES
def test_a_hosts_existing_ring_file_is_imported_once(settings: Settings, tmp_path: Path) -> None:
    legacy = tmp_path / "old" / "keys" / "data-keys.json"
    before = DataKeyRing(legacy, PASSPHRASE, iterations=1000).current("pii")
    imported = _host_ring(settings, tmp_path / "old").get("pii", before.version)
    assert imported.secret == before.secret
    other = _host_ring(settings, tmp_path / "new")  # another host, no file of its own
    assert other.current("pii").secret == before.secret
