"""Licence files stored packed: what every licence of a template repeats is stored once.

A sealed licence PDF is some 160 KB and its OFD some 225 KB, but measured byte for byte (food
business licence, one seal) nearly all of it repeats from licence to licence:

| bytes | what | in |
|---|---|---|
| 120 KB | the PDF's constant start: the seal picture and the template background objects | PDF |
| 96 KB | the background JPEG (stored, not deflated, in the ZIP) | OFD |
| 2 × 40 KB | the e-seal (SES_Seal, with its picture): Seal.esl, and again inside SignedValue.dat | OFD |
| 28 + 35 KB | font subsets (CFF in the PDF; the same CFF in an OpenType wrapper in the OFD) | both |
| 1.5 KB each | certificates (binary in the OFD, hex in the PDF's /Contents) and the OCSP response | both |

What is left per licence is the page content, the signed attributes, the signature values and the
timestamps: some 12 KB for each file before compression.

So a sealed file is stored as a *manifest*: the file's length and SM3, and a list of segments,
each either literal bytes (all literals together, deflated, follow the list), a reference to a
*constant* (any byte string stored once in the file store under its own SM3: the PDF's constant
start, the JPEG, the seal, a certificate, maybe written as hex), or a *font subset* given by the
SM3 of the whole font file (also stored once) and its characters. Reading puts the segments back
together and checks the result against the SM3 the database records for the file, so a damaged or
missing part is a StoredFileError, never a different file.

Font subsets are recomputed, not stored, because they differ with every holder's name and address
and would alone be 60 KB a licence; `templates.cff_subset` is our own deterministic code (a
known-answer test pins its output). The whole font file is stored in the file store when a subset
of it is first packed, so a licence stays readable after the configured fonts change.

The store keeps its interface (`FileStore.put`, `put_many`, `get`, `exists`); this module only
uses those. Which files are packed is in the `packed_file` table (file SM3 → manifest SM3), written
after the manifest and constants are durable and before the licence record: a crash leaves at worst
an unused manifest. A file without a `packed_file` row is read as it was stored (every licence
issued before packing).
"""

from __future__ import annotations

import enum
import functools
import json
import struct
import threading
import time
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import Insert

from cert_authority.errors import StoredFileError
from cert_authority.store.filestore import FileStore
from cert_authority.store.models import PackedFileRow
from cert_authority.store.reading import reader
from keys.sm2 import sm3
from templates.fonts import SubsetFont, subsetter_from_bytes

__all__ = ["Constant", "FontSubset", "PackedFiles", "Part", "packed_size", "warm_fonts"]

MAGIC = b"ECAS-PACK-1\n"
# Parts shorter than this stay literal: a reference costs some 80 bytes of manifest.
MIN_PART = 256
ZLIB_LEVEL = 6
_CONSTANT_CACHE_BYTES = 64 * 1024 * 1024  # constants read back, kept per process (checked once)
_PACKED = PackedFileRow.__table__  # type: ignore[attr-defined]


class NotRead(enum.Enum):
    """A file's manifest name not read yet (where None means read: the file is stored whole)."""

    NOT_READ = "not read"


NOT_READ = NotRead.NOT_READ


@dataclass(frozen=True)
class Constant:
    """Bytes that recur in many files (stored once), looked for as they are or (`form="hex"`) as
    their lowercase hex, the way a PDF's /Contents carries a certificate."""

    data: bytes
    form: Literal["raw", "hex"] = "raw"


@dataclass(frozen=True)
class FontSubset:
    """`subset`, cut by `templates.cff_subset.CffSubsetter` from the font file at `path` for
    `chars` (`templates.fonts.Font.subset_chars`), looked for as OpenType (`otf`, as in an OFD) or
    as its bare CFF table (`cff`, as in a PDF)."""

    path: Path
    chars: frozenset[str]
    subset: SubsetFont
    form: Literal["cff", "otf"]


Part = Constant | FontSubset


class PackedFiles:
    """The file store with licence files packed (see the module docstring). Files stored plain
    read as before; `get` returns the exact bytes that were put, or raises StoredFileError."""

    def __init__(self, store: FileStore, engine: Engine) -> None:
        self.store = store
        self.engine = engine

    # --- reading ---------------------------------------------------------------------------------

    def get(self, digest: str) -> bytes:
        manifest = self._manifest_name(digest)
        if manifest is None:
            return self.store.get(digest)
        data, shared = self._unpack(digest, self.store.get(manifest))
        _intact(digest, manifest, shared)
        return data

    def check_intact(self, digest: str, manifest: str | NotRead | None = NOT_READ) -> None:
        """Raise StoredFileError unless the store still rebuilds the file `digest`, as `get` would.
        `manifest`: its manifest's name if the caller read it already (None: not packed).

        For a packed file whose manifest this process has rebuilt and checked before, only the
        manifest is read (the store checks its SM3), and the shared parts it names are looked up,
        not read: its literals and references are then the ones that rebuilt `digest`. The parts'
        contents are read again, in that same read, when this process last did so more than
        `PART_RECHECK_SECONDS` ago (a few hundred KB, shared by every licence of a template). So a
        check after the first costs one read, not a rebuild and the SM3 of the whole file, and a
        part damaged in the store is found within that time."""
        self.check_all_intact([digest], None if isinstance(manifest, NotRead) else {digest: manifest})

    def check_all_intact(self, digests: Sequence[str], manifests: Mapping[str, str | None] | None = None) -> None:
        """`check_intact` of several files in two reads in all: their manifests' names (unless the
        caller read them with the record: `manifests`, None for a file stored whole), then the
        manifests (or the files stored whole) with the shared parts they name looked up; a third
        the first time this process sees a manifest, for the parts only it names."""
        named = self._manifest_names(digests) if manifests is None else manifests
        packed = {digest: manifest for digest, manifest in named.items() if manifest is not None}
        parts = {key: _INTACT.get(key) for key in packed.items()}
        shared = set().union(*(known for known in parts.values() if known is not None))
        due = _parts_due(shared)
        files = [packed.get(digest, digest) for digest in digests]
        stored = self.store.get_many([*files, *due], present=sorted(shared - set(due)))
        _parts_read(due)
        for (digest, manifest), known in parts.items():
            if known is None:  # first seen by this process: rebuilt, and its parts looked up now
                _, named_parts = self._unpack(digest, stored[manifest])
                self.store.check_present(sorted(named_parts))
                _intact(digest, manifest, named_parts)

    def exists(self, digest: str) -> bool:
        return self.store.exists(self.stored_name(digest))

    def stored_name(self, digest: str) -> str:
        """The name of what the store keeps for this file: its manifest if packed, else the file."""
        manifest = self._manifest_name(digest)
        return manifest if manifest is not None else digest

    def stored_size(self, digest: str) -> int:
        """Bytes this file adds to the store: its manifest if packed, else the file."""
        return len(self.store.get(self.stored_name(digest)))

    def shared_parts(self, digest: str) -> set[str]:
        """The names of the constants and font files a packed file refers to (none if stored whole)."""
        manifest = self._manifest_name(digest)
        if manifest is None:
            return set()
        header, _ = _read_manifest(digest, self.store.get(manifest))
        return set(_shared(header))

    def _manifest_name(self, digest: str) -> str | None:
        with reader(self.engine).connect() as connection:
            return connection.execute(select(_PACKED.c.manifest_sm3).where(_PACKED.c.sm3 == digest)).scalar()

    def _manifest_names(self, digests: Sequence[str]) -> dict[str, str]:
        """The manifest of each of these files that is stored packed."""
        with reader(self.engine).connect() as connection:
            rows = connection.execute(select(_PACKED.c.sm3, _PACKED.c.manifest_sm3).where(_PACKED.c.sm3.in_(digests)))
            return {digest: manifest for digest, manifest in rows}

    def _unpack(self, digest: str, manifest: bytes) -> tuple[bytes, frozenset[str]]:
        """The file a manifest rebuilds, and the shared parts it names."""
        header, literals = _read_manifest(digest, manifest)
        if header.get("sm3") != digest:
            raise StoredFileError(f"文件库中文件 {digest} 的打包清单属于另一文件，无法还原")
        out: list[bytes] = []
        position = 0
        try:
            for segment in header["segments"]:
                kind = segment[0]
                if kind == "lit":
                    out.append(literals[position : position + segment[1]])
                    position += segment[1]
                elif kind == "const":
                    data = self._constant(segment[1])
                    out.append(data.hex().encode() if segment[2] == "hex" else data)
                elif kind in ("cff", "otf"):
                    subset = _derive(self, segment[1], frozenset(segment[2]))
                    out.append(subset.cff if kind == "cff" else subset.otf)
                else:
                    raise StoredFileError(f"文件库中文件 {digest} 的打包清单含未知片段类型 {kind!r}")
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise StoredFileError(f"文件库中文件 {digest} 的打包清单已损坏（{exc!r}）") from None
        data = b"".join(out)
        if len(data) != header.get("size") or sm3(data).hex() != digest:
            raise StoredFileError(f"文件库中文件 {digest} 还原后与记录的 SM3 摘要不符：打包清单或共用部分已损坏")
        return data, _shared(header)

    def _constant(self, digest: str) -> bytes:
        with _LOCK:
            data = _CONSTANTS.get(digest)
            if data is not None:
                _CONSTANTS.move_to_end(digest)
                return data
        data = self.store.get(digest)  # checked against its SM3
        _remember(digest, data)
        return data

    # --- writing ---------------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        return self.store.put(data)

    def put_many(self, items: Sequence[tuple[bytes, bytes | None]]) -> list[str]:
        return self.store.put_many(items)

    def warm_up(self, font_paths: Iterable[Path]) -> None:
        """Read and hash the font files and parse them for cutting, as the first licence would."""
        for path in font_paths:
            name, _ = _font(self, path)
            _derive(self, name, frozenset(" "))

    def put_packed(self, items: Sequence[tuple[bytes, bytes | None, Sequence[Part]]]) -> list[str]:
        """Store files just made (each with its SM3 if known, and the parts it may share with other
        files) packed, durable together with their manifests' records in one transaction, and return
        their SM3 names. A file with no parts, or that packing would not shrink, is stored as it is.

        Sealed files (given with their parts) are new, a fresh signature each, and the constants are
        written when this process has not seen them stored: so nothing is read first for them
        (`FileStore.put_new_many`). A file given without parts (a licence photo) may be stored
        already, perhaps damaged since: it goes through `FileStore.put_many`, which repairs it."""
        blobs: list[tuple[bytes, bytes | None]] = []
        as_is: list[tuple[bytes, bytes | None]] = []
        shared: set[str] = set()
        names: list[str] = []
        packed: list[dict[str, object]] = []
        for data, known, parts in items:
            digest = (known or sm3(data)).hex()
            names.append(digest)
            if not parts:
                as_is.append((data, bytes.fromhex(digest)))
                continue
            manifest, new = _pack(self, data, digest, parts)
            if manifest is None:  # packing would not shrink it: still a sealed file, new
                blobs.append((data, bytes.fromhex(digest)))
                continue
            for blob, name in new:  # a constant first met in this batch is written once
                if name is not None and name.hex() not in shared:
                    shared.add(name.hex())
                    blobs.append((blob, name))
            manifest_sm3 = sm3(manifest)
            blobs.append((manifest, manifest_sm3))
            packed.append({"sm3": digest, "manifest_sm3": manifest_sm3.hex(), "size": len(data)})
        if as_is:
            self.store.put_many(as_is)  # durable before the records that name them
        with self.engine.begin() as connection:
            self.store.put_new_many(blobs, within=connection)  # a store elsewhere: durable first
            if packed:
                connection.execute(_record(self.engine.dialect.name), packed)
        _known(self).update(shared)
        return names


@functools.lru_cache(maxsize=2)
def _record(dialect: str) -> Insert:
    """The packed-file rows' INSERT, run with the rows as parameters: a multi-row .values([...]) is
    not cached by SQLAlchemy, so it was compiled again for every licence. A file packed twice (the
    same bytes stored again) keeps its first manifest."""
    if dialect == "postgresql":
        return postgresql_insert(_PACKED).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite_insert(_PACKED).on_conflict_do_nothing()
    return insert(_PACKED)  # pragma: no cover - the two databases we run on are above


def warm_fonts(font_paths: Iterable[Path]) -> None:
    """Read, hash and parse the configured font files for cutting subsets, without the database or
    the store: what a server's first read of a packed file would otherwise do (for a font file of
    10 MB, read from the store, opened and hashed: a few hundred ms, under every request that
    arrives meanwhile)."""
    for path in font_paths:
        known = _FONTS.get(path)
        if known is None:
            data = path.read_bytes()
            known = _FONTS[path] = (sm3(data).hex(), data)
        with _font_lock(known[0]):
            if known[0] not in _SUBSETTERS:
                _SUBSETTERS[known[0]] = subsetter_from_bytes(known[1])


def packed_size(files: PackedFiles, digests: Iterable[str]) -> int:
    """What `digests` add to the store, constants not counted (they are shared)."""
    return sum(files.stored_size(digest) for digest in digests)


# --- the manifest ------------------------------------------------------------------------------
# MAGIC, then deflate(4-byte big-endian length of the JSON header, the header, the literals).
# Header: {"size": n, "sm3": hex, "segments": [["lit", n] | ["const", sm3, "raw"|"hex"] |
#          ["cff"|"otf", font file sm3, characters]]}


def _read_manifest(digest: str, manifest: bytes) -> tuple[dict[str, Any], bytes]:
    if not manifest.startswith(MAGIC):
        raise StoredFileError(f"文件库中文件 {digest} 的打包清单格式不对，无法还原")
    try:
        body = zlib.decompress(manifest[len(MAGIC) :])
        (length,) = struct.unpack(">I", body[:4])
        header = json.loads(body[4 : 4 + length])
        if not isinstance(header, dict) or not isinstance(header.get("segments"), list):
            raise ValueError("header")
    except (zlib.error, struct.error, ValueError, UnicodeDecodeError) as exc:
        raise StoredFileError(f"文件库中文件 {digest} 的打包清单已损坏（{exc}）") from None
    return header, body[4 + length :]


def _shared(header: dict[str, Any]) -> frozenset[str]:
    """The names of the constants and font files a manifest refers to."""
    return frozenset(str(s[1]) for s in header["segments"] if isinstance(s, list) and s[0] != "lit")


@dataclass(frozen=True)
class _Found:
    start: int
    end: int
    segment: list[object]


def _pack(
    files: PackedFiles, data: bytes, digest: str, parts: Sequence[Part]
) -> tuple[bytes | None, list[tuple[bytes, bytes | None]]]:
    """The manifest of `data` and the constants (and font files) to store with it; None when
    packing would not make it smaller."""
    candidates: list[tuple[bytes, list[object], tuple[bytes, bytes | None] | None]] = []
    blob: tuple[bytes, bytes | None] | None
    for part in parts:
        if isinstance(part, Constant):
            name = _digest_of(part.data)
            blob = None if _present(files, name) else (part.data, bytes.fromhex(name))
            needle = part.data.hex().encode() if part.form == "hex" else part.data
            candidates.append((needle, ["const", name, part.form], blob))
        else:
            font_sm3, font_blob = _font(files, part.path)
            if not _cut_alike(files, font_sm3, part):
                continue  # reading would not cut the same bytes: they stay literal
            chars = "".join(sorted(part.chars))
            needle = part.subset.cff if part.form == "cff" else part.subset.otf
            candidates.append((needle, [part.form, font_sm3, chars], font_blob))
    found: list[_Found] = []
    needed: dict[bytes, tuple[bytes, bytes | None]] = {}
    # Longest first, so a constant inside a larger one (the CFF inside its OpenType) loses to it.
    for needle, segment, blob in sorted(candidates, key=lambda c: -len(c[0])):
        if len(needle) < MIN_PART:
            continue
        start = _find(data, needle, 0)
        while start >= 0:
            end = start + len(needle)
            if not any(f.start < end and start < f.end for f in found):
                found.append(_Found(start, end, segment))
                if blob is not None:
                    needed[blob[1] or b""] = blob
            start = _find(data, needle, end)
    if not found:
        return None, []
    found.sort(key=lambda f: f.start)
    segments: list[object] = []
    literals: list[bytes] = []
    position = 0
    for item in found:
        if item.start > position:
            segments.append(["lit", item.start - position])
            literals.append(data[position : item.start])
        segments.append(item.segment)
        position = item.end
    if position < len(data):
        segments.append(["lit", len(data) - position])
        literals.append(data[position:])
    header = json.dumps({"size": len(data), "sm3": digest, "segments": segments}, ensure_ascii=False).encode()
    manifest = MAGIC + zlib.compress(struct.pack(">I", len(header)) + header + b"".join(literals), ZLIB_LEVEL)
    if len(manifest) >= len(data):
        return None, []
    return manifest, list(needed.values())


def _find(data: bytes, needle: bytes, start: int) -> int:
    """`data.find(needle, start)`, by the needle's first bytes then a compare: bytes.find prepares
    the whole needle on every call (a 120 KB PDF start, a 96 KB picture), this does not."""
    head = needle[:64]
    at = data.find(head, start)
    while at >= 0 and not data.startswith(needle, at):
        at = data.find(head, at + 1)
    return at


# --- per-process caches --------------------------------------------------------------------------

_LOCK = threading.Lock()
_CONSTANTS: OrderedDict[str, bytes] = OrderedDict()  # constant SM3 → bytes, read and checked
_CONSTANTS_SIZE = [0]
_DIGESTS: dict[bytes, str] = {}  # constant bytes → SM3 hex (bytes cache their hash)
# Per store object: the constants and font files it is known to have.
_STORED: weakref.WeakKeyDictionary[FileStore, set[str]] = weakref.WeakKeyDictionary()
_FONTS: dict[Path, tuple[str, bytes]] = {}  # font file → (SM3 hex, bytes)
_SUBSETTERS: dict[str, Callable[[frozenset[str]], SubsetFont]] = {}
_ALIKE: dict[str, bool] = {}  # font SM3 → its subsets cut from bytes equal those cut from its path
_SUBSETS: OrderedDict[tuple[str, frozenset[str]], SubsetFont] = OrderedDict()


# (file SM3, manifest SM3) rebuilt and checked in this process → the shared parts it names
_INTACT: dict[tuple[str, str], frozenset[str]] = {}
_INTACT_KEPT = 100_000
# Shared part → when (time.monotonic) this process last read it from the store and found it intact.
_PARTS_READ: dict[str, float] = {}
PART_RECHECK_SECONDS = 300.0


def _parts_due(shared: set[str]) -> list[str]:
    """The shared parts a remembered check reads whole this time: those not read for a while. Not
    the configured font files: this process cuts subsets from its own copies (some MB each)."""
    now = time.monotonic()
    fonts = {name for name, _ in _FONTS.values()}
    return sorted(n for n in shared - fonts if now - _PARTS_READ.get(n, -PART_RECHECK_SECONDS) >= PART_RECHECK_SECONDS)


def _parts_read(names: list[str]) -> None:
    now = time.monotonic()
    with _LOCK:
        _PARTS_READ.update(dict.fromkeys(names, now))


def _intact(digest: str, manifest: str, shared: frozenset[str]) -> None:
    with _LOCK:
        if len(_INTACT) >= _INTACT_KEPT:
            _INTACT.clear()  # simply start again: a bound, not an eviction policy
        _INTACT[(digest, manifest)] = shared


_FONT_LOCKS: dict[str, threading.Lock] = {}


def _font_lock(font_sm3: str) -> threading.Lock:
    with _LOCK:
        return _FONT_LOCKS.setdefault(font_sm3, threading.Lock())


def _digest_of(data: bytes) -> str:
    name = _DIGESTS.get(data)
    if name is None:
        name = sm3(data).hex()
        with _LOCK:
            if len(_DIGESTS) > 256:
                _DIGESTS.clear()
            _DIGESTS[data] = name
    return name


def _remember(digest: str, data: bytes) -> None:
    with _LOCK:
        if digest in _CONSTANTS:
            return
        _CONSTANTS[digest] = data
        _CONSTANTS_SIZE[0] += len(data)
        while _CONSTANTS_SIZE[0] > _CONSTANT_CACHE_BYTES and len(_CONSTANTS) > 1:
            _, dropped = _CONSTANTS.popitem(last=False)
            _CONSTANTS_SIZE[0] -= len(dropped)


def _known(files: PackedFiles) -> set[str]:
    with _LOCK:
        known = _STORED.get(files.store)
        if known is None:
            known = _STORED[files.store] = set()
        return known


def _present(files: PackedFiles, name: str) -> bool:
    """Whether the store has the constant `name` (asked once per store and process: constants are
    never deleted)."""
    known = _known(files)
    if name in known:
        return True
    if files.store.exists(name):
        known.add(name)
        return True
    return False


def _font(files: PackedFiles, path: Path) -> tuple[str, tuple[bytes, bytes | None] | None]:
    """The SM3 of a font file, and the file to store if the store does not have it yet."""
    known = _FONTS.get(path)
    if known is None:
        data = path.read_bytes()
        known = _FONTS[path] = (sm3(data).hex(), data)
    name, data = known
    return name, None if _present(files, name) else (data, bytes.fromhex(name))


def _cut_alike(files: PackedFiles, font_sm3: str, part: FontSubset) -> bool:
    """Whether reading, which cuts subsets from the font file's bytes, cuts what the renderer cut
    from its path: checked on the first subset of each font in this process."""
    alike = _ALIKE.get(font_sm3)
    if alike is None:
        derived = _derive(files, font_sm3, part.chars)
        alike = _ALIKE[font_sm3] = derived.cff == part.subset.cff and derived.otf == part.subset.otf
    return alike


def _derive(files: PackedFiles, font_sm3: str, chars: frozenset[str]) -> SubsetFont:
    """The subset of the font file `font_sm3` for `chars`, cut as `templates.fonts.Font` cuts it."""
    key = (font_sm3, chars)
    with _LOCK:
        subset = _SUBSETS.get(key)
    if subset is not None:
        return subset
    subsetter = _SUBSETTERS.get(font_sm3)
    if subsetter is None:
        with _font_lock(font_sm3):  # one reader per font: the requests arriving meanwhile wait for it
            subsetter = _SUBSETTERS.get(font_sm3)
            if subsetter is None:
                local = next((data for name, data in _FONTS.values() if name == font_sm3), None)
                source = local if local is not None else files._constant(font_sm3)
                subsetter = _SUBSETTERS[font_sm3] = subsetter_from_bytes(source)
    subset = subsetter(chars)
    with _LOCK:
        _SUBSETS[key] = subset
        if len(_SUBSETS) > 256:
            _SUBSETS.popitem(last=False)
    return subset
