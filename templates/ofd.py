"""OFD renderer: one licence page as an OFD package (GB/T 33190-2016, namespace ofdspec.org/2016).

What it writes, by clause of GB/T 33190-2016:
- the package: a ZIP container whose entry point is OFD.xml (主入口, 图 3 / 表 3): DocBody with DocInfo
  (DocID, Title, CreationDate, Creator, CreatorVersion, in the schema's order) and DocRoot;
- Doc_0/Document.xml (文档根节点, 图 5–7): CommonData (MaxUnitID, PageArea/PhysicalBox, PublicRes,
  DocumentRes) and the page list;
- resources (7.9, 图 20–21): PublicRes.xml lists the fonts (11.1 字形, 表 44), each with its embedded
  OpenType subset as FontFile; DocumentRes.xml lists the JPEG pictures as MultiMedia of Type Image;
- Doc_0/Pages/Page_0/Content.xml (7.7 页对象, 表 16): one Layer of graphic units (8.5, 表 34) whose
  Boundary is in page mm from the top-left corner and clips what they draw: ImageObjects (10 图像,
  CTM mapping the unit square onto the box), TextObjects (11.2 文字对象; 11.3 文字定位: TextCode X/Y
  is the first glyph's origin on the baseline, DeltaX the advances between glyphs, Size in mm) and
  PathObjects (9.1, AbbreviatedData 表 36) for the QR code, colours as "r g b" in the default RGB space
  (8.3.2).

Part names follow ofdrw's (OFD.xml, Doc_0/Document.xml, Doc_0/PublicRes.xml, Doc_0/Pages/Page_0/
Content.xml). `ofd_parts` returns the parts before they are zipped, so the sealing path
(seals.licence_files) adds Doc_0/Signs/… and OFD.xml's Signatures entry and zips once.
`write_package` is the one OFD package writer: sealing (seals.ofd_seal, seals.licence_files) zips
with it too.
Output is byte-for-byte deterministic for a given layout, DocID and creation date.

The XML is written as text (escaped as ElementTree escapes) and the ZIP by a small writer of our
own: both sit on the issuance hot path, where ElementTree and zipfile cost more than the content.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import re
import struct
import uuid
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fontTools.ttLib import TTFont

from templates.fonts import Font, FontSet
from templates.layout import QR_QUIET_MODULES, PageLayout, TextRun
from templates.layout_spec import Box

__all__ = ["DOC_DIR", "PackageEntry", "ZipDateTime", "ofd_numbers", "ofd_parts", "package_entries", "write_package"]

NS = "http://www.ofdspec.org/2016"
CREATOR = "ECAS"
OFD_XML = "OFD.xml"
DOC_DIR = "Doc_0"
DOC_ROOT = f"{DOC_DIR}/Document.xml"
PUBLIC_RES = "PublicRes.xml"
DOCUMENT_RES = "DocumentRes.xml"
RES_DIR = "Res"
PAGE_CONTENT = "Pages/Page_0/Content.xml"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
# Glyphs may reach a little outside the em box (accents, brackets): text Boundaries get this margin,
# in em, on every side so that the clip at the Boundary never cuts a glyph.
TEXT_MARGIN_EM = 0.25
# Characters XML 1.0 cannot carry at all.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
# In TextCode a character XML cannot carry becomes a plain space (input validation already refuses
# control characters; this keeps the XML well-formed whatever reaches the renderer).
_NOT_TEXT = re.compile(r"[\x00-\x1f\x7f\ufffe\uffff\ud800-\udfff]")
_FIXED_TIME = (0, 0, 0)
_DARK_RUN = re.compile(rb"\x01+")
# Level 1: a licence's Content.xml (30 KB, mostly the QR path) deflates to 6.6 KB in 0.2 ms, where
# level 6 gives 5.7 KB in 0.7 ms (measured); the package is some 140 KB of fonts and pictures anyway.
ZLIB_LEVEL = 1
# Stored parts at least this large (pictures, seals) keep their CRC-32 for the next package.
_CRC_CACHE_MIN = 32 * 1024


def render_ofd(
    layout: PageLayout,
    fonts: FontSet,
    *,
    doc_id: str | None = None,
    created: dt.date | None = None,
    title: str | None = None,
) -> bytes:
    """The layout as a one-page OFD package (bytes of the ZIP file)."""
    created = created or dt.date.today()
    parts = ofd_parts(layout, fonts, doc_id=doc_id, created=created, title=title)
    return write_package(package_entries(parts, midnight(created)))


def ofd_parts(
    layout: PageLayout,
    fonts: FontSet,
    *,
    doc_id: str | None = None,
    created: dt.date | None = None,
    title: str | None = None,
    signatures: str | None = None,
    custom: Mapping[str, str] | None = None,
) -> dict[str, bytes]:
    """The package's parts, in package order, before they are zipped: OFD.xml first (with
    `signatures`, the absolute path of Signatures.xml, when the caller adds a seal), then the
    document, its resource lists, the page and the font and picture files."""
    created = created or dt.date.today()
    ids = _Ids()
    page_id, layer_id = ids.next(), ids.next()
    files: dict[str, bytes] = {}  # fonts and pictures under Doc_0/Res
    font_ids, public_res = _add_fonts(layout, fonts, ids, files)
    media_ids, document_res = _add_pictures(layout, ids, files)
    content = _content(layout, fonts, font_ids, media_ids, layer_id, ids)
    listed = {PUBLIC_RES: public_res, DOCUMENT_RES: document_res}
    resources = {name: xml for name, xml in listed.items() if xml is not None}  # no empty lists
    return {
        OFD_XML: ofd_xml(doc_id or uuid.uuid4().hex, created, title, signatures, custom),
        DOC_ROOT: _document(layout, page_id, ids.last, resources),
        **{f"{DOC_DIR}/{name}": xml for name, xml in resources.items()},
        f"{DOC_DIR}/{PAGE_CONTENT}": content,
        **files,
    }


def ofd_xml(
    doc_id: str,
    created: dt.date,
    title: str | None = None,
    signatures: str | None = None,
    custom: Mapping[str, str] | None = None,
) -> bytes:
    """OFD.xml, the package entry; `signatures` is the absolute path of Signatures.xml once sealed;
    `custom` goes into DocInfo's CustomDatas (GB/T 33190 表 5: name and value, last in DocInfo)."""
    info = [_leaf("DocID", doc_id)]
    if title:
        info.append(_leaf("Title", _XML_ILLEGAL.sub("", title)))
    info += [
        _leaf("CreationDate", f"{created.year:04d}-{created.month:02d}-{created.day:02d}"),
        _leaf("Creator", CREATOR),
        _leaf("CreatorVersion", _version()),
    ]
    if custom:
        datas = "".join(
            f'<ofd:CustomData Name="{_attr(name)}">{_text(value)}</ofd:CustomData>' for name, value in custom.items()
        )
        info.append(f"<ofd:CustomDatas>{datas}</ofd:CustomDatas>")
    body = f"<ofd:DocInfo>{''.join(info)}</ofd:DocInfo>{_leaf('DocRoot', DOC_ROOT)}"
    if signatures:
        body += _leaf("Signatures", signatures)
    return _part("OFD", f"<ofd:DocBody>{body}</ofd:DocBody>", Version="1.0", DocType="OFD")


@lru_cache(maxsize=1)
def _version() -> str:
    try:
        return importlib.metadata.version("ecas")
    except importlib.metadata.PackageNotFoundError:
        return "0"


# -- the ZIP container ----------------------------------------------------------------------------

ZipDateTime = tuple[int, int, int, int, int, int]  # year, month, day, hour, minute, second (as zipfile)


@dataclass(frozen=True)
class PackageEntry:
    """One file of an OFD package as it is zipped (a folder when the name ends in "/")."""

    name: str
    data: bytes
    date_time: ZipDateTime
    deflated: bool  # False: stored as it is

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


def package_entries(
    parts: Mapping[str, bytes] | Iterable[tuple[str, bytes]], date_time: ZipDateTime
) -> list[PackageEntry]:
    """Parts by name, in the given order, all with one timestamp: XML deflated, fonts, JPEGs and
    other binary parts (already compressed) stored."""
    items = parts.items() if isinstance(parts, Mapping) else parts
    return [PackageEntry(name, data, date_time, name.endswith(".xml")) for name, data in items]


def midnight(created: dt.date) -> ZipDateTime:
    """The timestamp of a package rendered on `created`."""
    return (created.year, created.month, created.day, *_FIXED_TIME)


def write_package(entries: Iterable[PackageEntry]) -> bytes:
    """The OFD package (GB/T 33190 §7.1: a ZIP container) of `entries`, in their order: a
    deterministic ZIP (PKWARE APPNOTE 6.3) without extra fields, XML deflated at ZLIB_LEVEL. What
    zipfile writes, without its per-entry overhead; the one OFD writer (rendering, sealing)."""
    out: list[bytes] = []
    directory: list[bytes] = []
    position = 0
    for entry in entries:
        year, month, day, hour, minute, second = entry.date_time
        dos_time = hour << 11 | minute << 5 | second // 2
        dos_date = (max(year, 1980) - 1980) << 9 | month << 5 | day
        encoded = entry.name.encode("utf-8")
        flags = 0 if encoded.isascii() else 0x800  # bit 11: the name is UTF-8
        data = entry.data
        if entry.deflated and not entry.is_dir:
            method, version = 8, 20
            packer = zlib.compressobj(ZLIB_LEVEL, zlib.DEFLATED, -15)
            stored = packer.compress(data) + packer.flush()
            crc = zlib.crc32(data)
        else:
            method, version, stored = 0, 10, data
            crc = _crc_cached(data) if len(data) >= _CRC_CACHE_MIN else zlib.crc32(data)
        # External attributes: MS-DOS's directory bit, and the Unix mode zipfile gives a folder.
        attributes = 0o40775 << 16 | 0x10 if entry.is_dir else 0
        fields = struct.pack(
            "<HHHHHIIIHH", version, flags, method, dos_time, dos_date, crc, len(stored), len(data), len(encoded), 0
        )
        out += (b"PK\x03\x04", fields, encoded, stored)
        directory.append(
            b"PK\x01\x02"
            + struct.pack("<H", 20)
            + fields
            + struct.pack("<HHHII", 0, 0, 0, attributes, position)
            + encoded
        )
        position += 30 + len(encoded) + len(stored)
    central = b"".join(directory)
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, len(directory), len(directory), len(central), position, 0)
    return b"".join(out) + central + end


@lru_cache(maxsize=32)
def _crc_cached(data: bytes) -> int:
    return zlib.crc32(data)


# -- XML as text ----------------------------------------------------------------------------------


def _text(value: str) -> str:
    """Character data escaped as ElementTree escapes it."""
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    return value


def _attr(value: str) -> str:
    """An attribute value escaped as ElementTree escapes it (line ends and tabs as references)."""
    value = _text(value)
    if '"' in value:
        value = value.replace('"', "&quot;")
    if "\r" in value:
        value = value.replace("\r", "&#13;")
    if "\n" in value:
        value = value.replace("\n", "&#10;")
    if "\t" in value:
        value = value.replace("\t", "&#09;")
    return value


def _attrs(attrs: Mapping[str, str]) -> str:
    return "".join(f' {name}="{_attr(value)}"' for name, value in attrs.items())


def _leaf(tag: str, text: str | None = None, **attrs: str) -> str:
    if text:
        return f"<ofd:{tag}{_attrs(attrs)}>{_text(text)}</ofd:{tag}>"
    return f"<ofd:{tag}{_attrs(attrs)} />"


def _part(tag: str, inner: str, **attrs: str) -> bytes:
    """A whole XML part: declaration, then the root element declaring the ofd namespace."""
    return f'{XML_DECLARATION}<ofd:{tag} xmlns:ofd="{NS}"{_attrs(attrs)}>{inner}</ofd:{tag}>'.encode()


class _Ids:
    """Object identifiers (ST_ID): unique in the document, counted from 1; MaxUnitID is the last."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last += 1
        return self.last


@lru_cache(maxsize=16384)  # a page repeats its advances, sizes and QR edges: some 500 numbers a licence
def ofd_number(value: float) -> str:
    """A number in OFD (ST_Box, ST_Pos, ...): at most 3 places, no trailing zeros, no "-0"."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def ofd_numbers(*values: float) -> str:
    return " ".join(ofd_number(v) for v in values)


# -- resources ------------------------------------------------------------------------------------


def _add_fonts(
    layout: PageLayout, fonts: FontSet, ids: _Ids, files: dict[str, bytes]
) -> tuple[dict[str, int], bytes | None]:
    """Embed a subset of each font the page uses; PublicRes.xml lists them."""
    font_ids: dict[str, int] = {}
    entries = []
    for role in sorted({run.font for run in layout.runs}):
        font = fonts.get(role)
        font_id = font_ids[role] = ids.next()
        file_name = f"font_{font_id}.otf"
        files[f"{DOC_DIR}/{RES_DIR}/{file_name}"] = font.subset(layout.characters(role)).otf
        attrs = {"ID": str(font_id), "FontName": font.postscript_name, "FamilyName": _family_name(font.path)}
        if role == "serif":
            attrs["Serif"] = "true"
        entries.append(f"<ofd:Font{_attrs(attrs)}>{_leaf('FontFile', file_name)}</ofd:Font>")
    if not font_ids:
        return font_ids, None
    return font_ids, _part("Res", f"<ofd:Fonts>{''.join(entries)}</ofd:Fonts>", BaseLoc=RES_DIR)


@lru_cache(maxsize=16)
def _family_name(path: Path) -> str:
    name = TTFont(str(path), lazy=True)["name"]
    return str(name.getDebugName(16) or name.getDebugName(1) or path.stem)


def _add_pictures(layout: PageLayout, ids: _Ids, files: dict[str, bytes]) -> tuple[list[int], bytes | None]:
    """The background (if any) then each placed picture, as JPEG MultiMedia in DocumentRes.xml."""
    pictures = [layout.background] if layout.background is not None else []
    pictures += [placed.picture for placed in layout.images]
    media_ids = []
    entries = []
    for picture in pictures:
        media_id = ids.next()
        file_name = f"image_{media_id}.jpg"
        files[f"{DOC_DIR}/{RES_DIR}/{file_name}"] = picture.data
        entries.append(
            f'<ofd:MultiMedia ID="{media_id}" Type="Image" Format="JPEG">{_leaf("MediaFile", file_name)}'
            "</ofd:MultiMedia>"
        )
        media_ids.append(media_id)
    if not media_ids:
        return media_ids, None
    return media_ids, _part("Res", f"<ofd:MultiMedias>{''.join(entries)}</ofd:MultiMedias>", BaseLoc=RES_DIR)


def _document(layout: PageLayout, page_id: int, max_unit_id: int, resources: Mapping[str, bytes]) -> bytes:
    common = [
        _leaf("MaxUnitID", str(max_unit_id)),
        f"<ofd:PageArea>{_leaf('PhysicalBox', ofd_numbers(0, 0, layout.width, layout.height))}</ofd:PageArea>",
    ]
    for name in (PUBLIC_RES, DOCUMENT_RES):  # the schema's order
        if name in resources:
            common.append(_leaf(name.removesuffix(".xml"), name))
    pages = _leaf("Page", ID=str(page_id), BaseLoc=PAGE_CONTENT)
    return _part("Document", f"<ofd:CommonData>{''.join(common)}</ofd:CommonData><ofd:Pages>{pages}</ofd:Pages>")


# -- the page -------------------------------------------------------------------------------------


def _content(
    layout: PageLayout, fonts: FontSet, font_ids: dict[str, int], media_ids: list[int], layer_id: int, ids: _Ids
) -> bytes:
    """Drawing order as in the PNG renderer: background, pictures, text, then the QR code on top."""
    objects: list[str] = []
    boxes = [Box(x=0, y=0, w=layout.width, h=layout.height)] if layout.background is not None else []
    boxes += [placed.box for placed in layout.images]
    for box, media_id in zip(boxes, media_ids, strict=True):
        objects.append(_image(box, media_id, ids.next()))
    for run in layout.runs:
        objects.append(_text_object(run, fonts.get(run.font), font_ids[run.font], ids.next()))
    objects += _qr(layout, ids)
    layer = f'<ofd:Layer ID="{layer_id}">{"".join(objects)}</ofd:Layer>'
    return _part("Page", f"<ofd:Content>{layer}</ofd:Content>")


def _image(box: Box, media_id: int, object_id: int) -> str:
    return _leaf(
        "ImageObject",
        ID=str(object_id),
        Boundary=ofd_numbers(box.x, box.y, box.w, box.h),
        CTM=ofd_numbers(box.w, 0, 0, box.h, 0, 0),
        ResourceID=str(media_id),
    )


def _text_object(run: TextRun, font: Font, font_id: int, object_id: int) -> str:
    return f'<ofd:TextObject ID="{object_id}"{_text_body(run, font, font_id)}'


@lru_cache(maxsize=4096)  # fixed texts, labels and shared values: the same runs on every licence
def _text_body(run: TextRun, font: Font, font_id: int) -> str:
    """A TextObject after its ID: a pure function of the run, its font and the font's ID."""
    size = run.size_mm
    margin = TEXT_MARGIN_EM * size
    top = run.baseline - font.ascent * size - margin
    height = (font.ascent + font.descent) * size + 2 * margin
    boundary = ofd_numbers(run.x - margin, top, run.width + 2 * margin, height)
    colour = " ".join(str(c) for c in run.colour)
    delta = f' DeltaX="{_delta(run.advances[:-1])}"' if len(run.advances) > 1 else ""
    text = _text(_NOT_TEXT.sub(" ", run.text))
    code = f'<ofd:TextCode X="{ofd_number(margin)}" Y="{ofd_number(run.baseline - top)}"{delta}>{text}'
    return (
        f' Boundary="{boundary}" Font="{font_id}" Size="{ofd_number(size)}">'
        f'<ofd:FillColor Value="{colour}" />{code}</ofd:TextCode></ofd:TextObject>'
    )


def _delta(advances: Iterable[float]) -> str:
    """DeltaX with repeats folded into "g count value" (11.3): CJK runs are mostly one advance."""
    values = [ofd_number(a) for a in advances]
    out: list[str] = []
    start = 0
    while start < len(values):
        end = start
        while end < len(values) and values[end] == values[start]:
            end += 1
        count = end - start
        out += ["g", str(count), values[start]] if count > 2 else values[start:end]
        start = end
    return " ".join(out)


def _qr(layout: PageLayout, ids: _Ids) -> list[str]:
    """A white square under the code, then all dark modules (horizontal runs, as
    `QrCode.dark_rectangles` gives them) as one filled path, in mm from the code's box."""
    qr = layout.qr
    box = qr.box
    boundary = ofd_numbers(box.x, box.y, box.w, box.h)
    white = _path(ids.next(), boundary, "255 255 255", _rect(0, 0, box.w, box.h))
    size = qr.module_mm
    origin_x = box.x + QR_QUIET_MODULES * size
    origin_y = box.y + QR_QUIET_MODULES * size
    # Coordinates of module edges, each formatted once (a few dozen values serve every rectangle).
    columns = len(qr.modules[0]) + 1 if qr.modules else 0
    xs = [ofd_number(origin_x + column * size - box.x) for column in range(columns)]
    ys = [ofd_number(origin_y + row * size - box.y) for row in range(len(qr.modules) + 1)]
    rects = [
        f"M {xs[match.start()]} {ys[row]} L {xs[match.end()]} {ys[row]} L {xs[match.end()]} {ys[row + 1]}"
        f" L {xs[match.start()]} {ys[row + 1]} C"
        for row, line in enumerate(qr.modules)
        for match in _DARK_RUN.finditer(bytes(line))
    ]
    black = _path(ids.next(), boundary, "0 0 0", " ".join(rects))
    return [white, black]


def _path(object_id: int, boundary: str, colour: str, data: str) -> str:
    return (
        f'<ofd:PathObject ID="{object_id}" Boundary="{boundary}" Stroke="false" Fill="true">'
        f'<ofd:FillColor Value="{colour}" />{_leaf("AbbreviatedData", data)}</ofd:PathObject>'
    )


def _rect(x: float, y: float, w: float, h: float) -> str:
    right, bottom = ofd_number(x + w), ofd_number(y + h)
    left, top = ofd_number(x), ofd_number(y)
    return f"M {left} {top} L {right} {top} L {right} {bottom} L {left} {bottom} C"
