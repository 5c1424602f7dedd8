"""Content-addressed file store: each file is named by its SM3 digest (hex), so storing the same
bytes twice is a no-op, a name can never point at other content, and damage is detectable.

Files live under `<data dir>/files/<first 2 hex>/<digest>`, owner-only (0600). Background images
of templates go here, and issued licence files later. The database records the digest; the file
is written first, so a crash leaves at worst an unreferenced file (harmless), never a record
without its file.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from cert_authority.errors import StoredFileError
from keys.sm2 import sm3

DIGEST = re.compile(r"^[0-9a-f]{64}$")


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        if not DIGEST.fullmatch(digest):
            raise StoredFileError(f"文件摘要应为 64 位小写十六进制 SM3 值，收到 {digest[:80]!r}")
        return self.root / digest[:2] / digest

    def put(self, data: bytes) -> str:
        """Store `data` (atomically, fsynced) and return its SM3 digest in hex."""
        digest = sm3(data).hex()
        path = self.path(digest)
        if path.exists() and self._intact(path, digest):
            return digest
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{digest[:8]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:  # mkstemp creates the file 0600
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._sync_directory(path.parent)
        return digest

    def get(self, digest: str) -> bytes:
        """The stored bytes, checked against their digest (raises StoredFileError if missing or damaged)."""
        path = self.path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StoredFileError(f"文件库缺少文件 {digest}（{path}）") from None
        if sm3(data).hex() != digest:
            raise StoredFileError(f"文件库中的文件 {digest} 已损坏：内容与 SM3 摘要不符（{path}）")
        return data

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    @staticmethod
    def _intact(path: Path, digest: str) -> bool:
        try:
            return sm3(path.read_bytes()).hex() == digest
        except OSError:
            return False

    @staticmethod
    def _sync_directory(directory: Path) -> None:
        # The rename is durable only once the directory entry is on disk.
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
