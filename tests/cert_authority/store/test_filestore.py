"""The content-addressed file store: named by SM3, written atomically, checked when read."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from gmssl import sm3 as gmssl_sm3

from cert_authority.errors import StoredFileError
from cert_authority.store.filestore import FileStore

pytestmark = pytest.mark.unit  # files only, no database


def test_put_names_files_by_sm3_and_get_returns_them(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "files")
    data = b"background image bytes" * 1000
    digest = store.put(data)
    # Cross-checked with gmssl's SM3, an implementation we did not write.
    assert digest == gmssl_sm3.sm3_hash(list(data))
    assert store.get(digest) == data
    path = store.path(digest)
    assert path == tmp_path / "files" / digest[:2] / digest
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [digest]  # no temporary files left behind


def test_put_is_idempotent_and_repairs_a_damaged_copy(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    digest = store.put(b"same")
    mtime = store.path(digest).stat().st_mtime_ns
    assert store.put(b"same") == digest
    assert store.path(digest).stat().st_mtime_ns == mtime  # not rewritten
    store.path(digest).write_bytes(b"tampered")
    with pytest.raises(StoredFileError, match="已损坏：内容与 SM3 摘要不符"):
        store.get(digest)
    assert store.put(b"same") == digest
    assert store.get(digest) == b"same"


def test_missing_files_and_bad_names_are_clear_errors(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    digest = store.put(b"x")
    store.path(digest).unlink()
    assert not store.exists(digest)
    with pytest.raises(StoredFileError, match=f"文件库缺少文件 {digest}"):
        store.get(digest)
    for bad in ("../../etc/passwd", digest.upper(), digest[:-1], ""):
        with pytest.raises(StoredFileError, match="64 位小写十六进制"):
            store.get(bad)
