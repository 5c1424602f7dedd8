"""Content-addressed file store: each file is named by its SM3 digest (hex), so storing the same
bytes twice is a no-op, a name can never point at other content, and damage is detectable.

Files live under `<data dir>/files/<first 2 hex>/<digest>`, owner-only (0600). Background images
of templates go here, and issued licence files later. The database records the digest; the file
is written first, so a crash leaves at worst an unreferenced file (harmless), never a record
without its file.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from cert_authority.errors import StorageUnavailableError, StoredFileError
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
        self._write(path, digest, data, sync=True)
        try:
            self._sync_directory(path.parent)
        except OSError as exc:
            raise _unavailable(exc) from exc
        return digest

    def put_many(self, items: Sequence[tuple[bytes, bytes | None]]) -> list[str]:
        """Store several files, each given with its SM3 digest when the caller has it already (a
        licence PDF's comes from the cached state of its constant start; `get` checks every read),
        and make them durable together: written and renamed into place first, then one syncfs(2)
        of the store's file system, where fsyncing each file and its directory cost about 1 ms
        apiece (a batch of licences writes two files per licence)."""
        if _syncfs is None:
            return [self.put(data) for data, _ in items]
        digests = []
        for data, known in items:
            digest = (known or sm3(data)).hex()
            path = self.path(digest)
            if not (path.exists() and self._intact(path, digest)):
                self._write(path, digest, data, sync=False)
            digests.append(digest)
        if digests:
            try:
                fd = os.open(self.root, os.O_RDONLY)
            except OSError as exc:
                raise _unavailable(exc) from exc
            try:
                if _syncfs(fd) != 0:
                    error = ctypes.get_errno()
                    raise _unavailable(OSError(error, f"syncfs: {os.strerror(error)}", str(self.root)))
            finally:
                os.close(fd)
        return digests

    @staticmethod
    def _write(path: Path, digest: str, data: bytes, sync: bool) -> None:
        """Write to a temporary file beside `path`, then rename: the name only ever holds a whole
        file. A full or read-only disk is StorageUnavailableError, and leaves nothing behind."""
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{digest[:8]}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:  # mkstemp creates the file 0600
                handle.write(data)
                if sync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):  # a read-only disk cannot take the unlink either
                    Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _unavailable(exc) from exc
            raise

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


def _load_syncfs() -> Callable[[int], int] | None:
    """syncfs(2) from the C library (Linux); None elsewhere, where files are fsynced one by one."""
    name = ctypes.util.find_library("c")
    try:
        function = ctypes.CDLL(name, use_errno=True).syncfs if name else None
    except (OSError, AttributeError):
        return None
    if function is not None:
        function.argtypes = [ctypes.c_int]
        function.restype = ctypes.c_int
    return function


_syncfs = _load_syncfs()


def _unavailable(exc: OSError) -> StorageUnavailableError:
    """A write that failed, as callers should hear of it (no paths: the chained OSError, in the
    log, has them)."""
    return StorageUnavailableError(f"文件存储暂不可写（{exc.strerror or exc}），本次未保存任何内容，请联系管理员")
