"""The data directory and the SQLite database hold ID numbers and face data: they are created
0700 and 0600 whatever the umask lets through (they were 0755 and 0644 under the usual 022)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy import text

from cert_authority.settings import Settings
from cert_authority.store.db import open_database


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_dir_and_database_are_private(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        data = tmp_path / "new" / "var"
        engine = open_database(Settings(data_dir=data))
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE probe (x INTEGER)"))
            connection.execute(text("INSERT INTO probe VALUES (1)"))
        assert _mode(data) == 0o700
        assert _mode(data / "ecas.db") == 0o600
        wal = data / "ecas.db-wal"
        assert wal.exists() and _mode(wal) == 0o600
        engine.dispose()
    finally:
        os.umask(previous)
