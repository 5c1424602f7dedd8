"""Reading OFD packages we are given (GB/T 33190): the ZIP with limits against bombs and hostile
names, part paths (ST_Loc), and XML without DTDs. Shared by sealing and verification. The entries
are `templates.ofd.PackageEntry`, as `templates.ofd.write_package` (the one writer) zips them."""

from __future__ import annotations

import io
import posixpath
import xml.etree.ElementTree as ET
import zipfile
import zlib
from typing import cast

import defusedxml.ElementTree as defused
from defusedxml import DefusedXmlException

from seals.errors import DocumentError
from templates.ofd import PackageEntry

__all__ = ["child", "child_text", "children", "local_name", "parse_xml", "read_package", "resolve"]

# Limits on packages we are given: an OFD licence is a few hundred kilobytes.
MAX_PACKAGE_BYTES = 200 * 1024 * 1024
MAX_ENTRIES = 10_000
MAX_UNPACKED_BYTES = 500 * 1024 * 1024


def read_package(ofd_bytes: bytes, max_unpacked: int = MAX_UNPACKED_BYTES) -> list[PackageEntry]:
    if not isinstance(ofd_bytes, bytes | bytearray) or not ofd_bytes:
        raise DocumentError("OFD 文件为空")
    if len(ofd_bytes) > MAX_PACKAGE_BYTES:
        raise DocumentError(f"OFD 文件过大（{len(ofd_bytes) / 1048576:.0f} MB）")
    try:
        package = zipfile.ZipFile(io.BytesIO(bytes(ofd_bytes)))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError):
        raise DocumentError("不是 OFD 文件：不是有效的 ZIP 包") from None
    infos = package.infolist()
    if len(infos) > MAX_ENTRIES:
        raise DocumentError(f"OFD 包内文件过多（{len(infos)} 个）")
    # The central directory's sizes bound what reading may produce: zipfile stops at file_size
    # and checks the CRC, so a lying entry fails instead of filling memory.
    if sum(info.file_size for info in infos) > max_unpacked:
        raise DocumentError("OFD 包解压后过大")
    entries: list[PackageEntry] = []
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        check_name(name)
        if name in seen:
            raise DocumentError(f"OFD 包内文件重名：{name}")
        seen.add(name)
        if info.flag_bits & 0x1:
            raise DocumentError(f"OFD 包内文件已加密，无法签章：{name}")
        try:
            data = b"" if info.is_dir() else package.read(info)
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, OSError, EOFError) as exc:
            raise DocumentError(f"OFD 包内文件 {name} 已损坏（{exc}）") from None
        # Written back stored or deflated (the methods OFD readers know), whatever it was.
        entries.append(PackageEntry(name, data, info.date_time, info.compress_type != zipfile.ZIP_STORED))
    return entries


def check_name(name: str) -> None:
    body = name[:-1] if name.endswith("/") else name
    parts = body.split("/")
    if not body or name.startswith("/") or "\\" in name or "\x00" in name or any(p in ("", ".", "..") for p in parts):
        raise DocumentError(f"OFD 包内文件名不合法：{name!r}")


def resolve(base_dir: str, loc: str) -> str:
    """An ST_Loc (GB/T 33190 表 2: absolute from the package root when it starts with "/",
    otherwise relative to the referring file's folder) as a package path without the leading "/"."""
    loc = loc.strip()
    if not loc:
        raise DocumentError("OFD 中有空的文件路径")
    path = posixpath.normpath(loc if loc.startswith("/") else posixpath.join("/", base_dir, loc))
    if path.startswith("//"):
        path = path[1:]
    return path.lstrip("/")



def parse_xml(data: bytes, what: str) -> ET.Element:
    """An OFD part's XML, read by defusedxml with DTDs forbidden: OFD parts never carry one, and
    refusing it at the parser rules out entity expansion and external entities whatever the
    encoding (a byte search for "<!DOCTYPE" missed one written in UTF-16)."""
    try:
        root = defused.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        return cast(ET.Element, root)  # defusedxml is untyped; it returns the stdlib parser's Element
    except DefusedXmlException:
        raise DocumentError(f"{what} 含 DTD 或实体，不是合规的 OFD 文件") from None
    except ET.ParseError as exc:
        raise DocumentError(f"{what} 不是格式正确的 XML（{exc}）") from None


def local_name(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def child(parent: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in parent if local_name(c) == name), None)


def children(parent: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in parent if local_name(c) == name]


def child_text(parent: ET.Element, name: str) -> str | None:
    found = child(parent, name)
    return found.text.strip() if found is not None and found.text else None
