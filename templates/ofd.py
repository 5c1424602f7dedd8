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
Content.xml). Sealing later adds Doc_0/Signs/… and rebuilds OFD.xml with `ofd_xml(..., signatures=…)`.
Output is byte-for-byte deterministic for a given layout, DocID and creation date.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import io
import re
import uuid
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

from fontTools.ttLib import TTFont

from templates.fonts import Font, FontSet
from templates.layout import PageLayout, TextRun
from templates.layout_spec import Box

NS = "http://www.ofdspec.org/2016"
CREATOR = "ECAS"
OFD_XML = "OFD.xml"
DOC_DIR = "Doc_0"
DOC_ROOT = f"{DOC_DIR}/Document.xml"
PUBLIC_RES = "PublicRes.xml"
DOCUMENT_RES = "DocumentRes.xml"
RES_DIR = "Res"
PAGE_CONTENT = "Pages/Page_0/Content.xml"
# Glyphs may reach a little outside the em box (accents, brackets): text Boundaries get this margin,
# in em, on every side so that the clip at the Boundary never cuts a glyph.
TEXT_MARGIN_EM = 0.25
# Characters XML 1.0 cannot carry at all.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
# In TextCode a character XML cannot carry becomes a plain space (input validation already refuses
# control characters; this keeps the XML well-formed whatever reaches the renderer).
_NOT_TEXT = re.compile(r"[\x00-\x1f\x7f\ufffe\uffff\ud800-\udfff]")
_FIXED_TIME = (0, 0, 0)

ET.register_namespace("ofd", NS)


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
    ids = _Ids()
    page_id, layer_id = ids.next(), ids.next()
    files: dict[str, bytes] = {}  # fonts and pictures under Doc_0/Res
    font_ids, public_res = _add_fonts(layout, fonts, ids, files)
    media_ids, document_res = _add_pictures(layout, ids, files)
    content = _content(layout, fonts, font_ids, media_ids, layer_id, ids)
    listed = {PUBLIC_RES: public_res, DOCUMENT_RES: document_res}
    resources = {name: xml for name, xml in listed.items() if xml is not None}  # no empty lists
    parts = {
        OFD_XML: ofd_xml(doc_id or uuid.uuid4().hex, created, title),
        DOC_ROOT: _document(layout, page_id, ids.last, resources),
        **{f"{DOC_DIR}/{name}": xml for name, xml in resources.items()},
        f"{DOC_DIR}/{PAGE_CONTENT}": content,
        **files,
    }
    return write_package(parts, created)


def ofd_xml(doc_id: str, created: dt.date, title: str | None = None, signatures: str | None = None) -> bytes:
    """OFD.xml, the package entry; `signatures` is the absolute path of Signatures.xml once sealed."""
    root = _el("OFD", Version="1.0", DocType="OFD")
    body = _sub(root, "DocBody")
    info = _sub(body, "DocInfo")
    _sub(info, "DocID", doc_id)
    if title:
        _sub(info, "Title", _XML_ILLEGAL.sub("", title))
    _sub(info, "CreationDate", f"{created.year:04d}-{created.month:02d}-{created.day:02d}")
    _sub(info, "Creator", CREATOR)
    _sub(info, "CreatorVersion", _version())
    _sub(body, "DocRoot", DOC_ROOT)
    if signatures:
        _sub(body, "Signatures", signatures)
    return _xml(root)


@lru_cache(maxsize=1)
def _version() -> str:
    try:
        return importlib.metadata.version("ecas")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def write_package(parts: Mapping[str, bytes], created: dt.date) -> bytes:
    """A deterministic ZIP: parts in the given order, fixed timestamps and attributes; XML deflated,
    fonts and JPEGs (already compressed) stored."""
    out = io.BytesIO()
    stamp = (max(created.year, 1980), created.month, created.day, *_FIXED_TIME)
    with zipfile.ZipFile(out, "w") as package:
        for name, data in parts.items():
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.create_system = 0
            info.external_attr = 0
            info.compress_type = zipfile.ZIP_DEFLATED if name.endswith(".xml") else zipfile.ZIP_STORED
            package.writestr(info, data)
    return out.getvalue()


class _Ids:
    """Object identifiers (ST_ID): unique in the document, counted from 1; MaxUnitID is the last."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last += 1
        return self.last


def _el(tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.Element(f"{{{NS}}}{tag}", attrs)
    element.text = text
    return element


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{NS}}}{tag}", attrs)
    element.text = text
    return element


def _xml(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def _num(value: float) -> str:
    """Compact decimal: at most 3 places, no trailing zeros, no "-0"."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _nums(*values: float) -> str:
    return " ".join(_num(v) for v in values)


def _add_fonts(
    layout: PageLayout, fonts: FontSet, ids: _Ids, files: dict[str, bytes]
) -> tuple[dict[str, int], bytes | None]:
    """Embed a subset of each font the page uses; PublicRes.xml lists them."""
    res = _el("Res", BaseLoc=RES_DIR)
    listing = _sub(res, "Fonts")
    font_ids: dict[str, int] = {}
    for role in sorted({run.font for run in layout.runs}):
        font = fonts.get(role)
        font_id = font_ids[role] = ids.next()
        file_name = f"font_{font_id}.otf"
        files[f"{DOC_DIR}/{RES_DIR}/{file_name}"] = font.subset(layout.characters(role)).otf
        attrs = {"ID": str(font_id), "FontName": font.postscript_name, "FamilyName": _family_name(font.path)}
        if role == "serif":
            attrs["Serif"] = "true"
        entry = _sub(listing, "Font", **attrs)
        _sub(entry, "FontFile", file_name)
    return font_ids, _xml(res) if font_ids else None


@lru_cache(maxsize=16)
def _family_name(path: Path) -> str:
    name = TTFont(str(path), lazy=True)["name"]
    return str(name.getDebugName(16) or name.getDebugName(1) or path.stem)


def _add_pictures(layout: PageLayout, ids: _Ids, files: dict[str, bytes]) -> tuple[list[int], bytes | None]:
    """The background (if any) then each placed picture, as JPEG MultiMedia in DocumentRes.xml."""
    res = _el("Res", BaseLoc=RES_DIR)
    listing = _sub(res, "MultiMedias")
    pictures = [layout.background] if layout.background is not None else []
    pictures += [placed.picture for placed in layout.images]
    media_ids = []
    for picture in pictures:
        media_id = ids.next()
        file_name = f"image_{media_id}.jpg"
        files[f"{DOC_DIR}/{RES_DIR}/{file_name}"] = picture.data
        entry = _sub(listing, "MultiMedia", ID=str(media_id), Type="Image", Format="JPEG")
        _sub(entry, "MediaFile", file_name)
        media_ids.append(media_id)
    return media_ids, _xml(res) if media_ids else None


def _document(layout: PageLayout, page_id: int, max_unit_id: int, resources: Mapping[str, bytes]) -> bytes:
    root = _el("Document")
    common = _sub(root, "CommonData")
    _sub(common, "MaxUnitID", str(max_unit_id))
    area = _sub(common, "PageArea")
    _sub(area, "PhysicalBox", _nums(0, 0, layout.width, layout.height))
    for name in (PUBLIC_RES, DOCUMENT_RES):  # the schema's order
        if name in resources:
            _sub(common, name.removesuffix(".xml"), name)
    pages = _sub(root, "Pages")
    _sub(pages, "Page", ID=str(page_id), BaseLoc=PAGE_CONTENT)
    return _xml(root)


def _content(
    layout: PageLayout, fonts: FontSet, font_ids: dict[str, int], media_ids: list[int], layer_id: int, ids: _Ids
) -> bytes:
    """Drawing order as in the PNG renderer: background, pictures, text, then the QR code on top."""
    page = _el("Page")
    layer = _sub(_sub(page, "Content"), "Layer", ID=str(layer_id))
    boxes = [Box(x=0, y=0, w=layout.width, h=layout.height)] if layout.background is not None else []
    boxes += [placed.box for placed in layout.images]
    for box, media_id in zip(boxes, media_ids, strict=True):
        _image(layer, box, media_id, ids.next())
    for run in layout.runs:
        _text(layer, run, fonts.get(run.font), font_ids[run.font], ids.next())
    _qr(layer, layout, ids)
    return _xml(page)


def _image(layer: ET.Element, box: Box, media_id: int, object_id: int) -> None:
    _sub(
        layer,
        "ImageObject",
        ID=str(object_id),
        Boundary=_nums(box.x, box.y, box.w, box.h),
        CTM=_nums(box.w, 0, 0, box.h, 0, 0),
        ResourceID=str(media_id),
    )


def _text(layer: ET.Element, run: TextRun, font: Font, font_id: int, object_id: int) -> None:
    size = run.size_mm
    margin = TEXT_MARGIN_EM * size
    top = run.baseline - font.ascent * size - margin
    height = (font.ascent + font.descent) * size + 2 * margin
    text = _sub(
        layer,
        "TextObject",
        ID=str(object_id),
        Boundary=_nums(run.x - margin, top, run.width + 2 * margin, height),
        Font=str(font_id),
        Size=_num(size),
    )
    _sub(text, "FillColor", Value=" ".join(str(c) for c in run.colour))
    attrs = {"X": _num(margin), "Y": _num(run.baseline - top)}
    if len(run.advances) > 1:
        attrs["DeltaX"] = _delta(run.advances[:-1])
    _sub(text, "TextCode", _NOT_TEXT.sub(" ", run.text), **attrs)


def _delta(advances: Iterable[float]) -> str:
    """DeltaX with repeats folded into "g count value" (11.3): CJK runs are mostly one advance."""
    values = [_num(a) for a in advances]
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


def _qr(layer: ET.Element, layout: PageLayout, ids: _Ids) -> None:
    """A white square under the code, then all dark modules as one filled path."""
    box = layout.qr.box
    boundary = _nums(box.x, box.y, box.w, box.h)
    white = _path(layer, ids.next(), boundary, "255 255 255")
    _sub(white, "AbbreviatedData", _rect(0, 0, box.w, box.h))
    black = _path(layer, ids.next(), boundary, "0 0 0")
    data = " ".join(_rect(x - box.x, y - box.y, w, h) for x, y, w, h in layout.qr.dark_rectangles())
    _sub(black, "AbbreviatedData", data)


def _path(layer: ET.Element, object_id: int, boundary: str, colour: str) -> ET.Element:
    path = _sub(layer, "PathObject", ID=str(object_id), Boundary=boundary, Stroke="false", Fill="true")
    _sub(path, "FillColor", Value=colour)
    return path


def _rect(x: float, y: float, w: float, h: float) -> str:
    right, bottom = _num(x + w), _num(y + h)
    left, top = _num(x), _num(y)
    return f"M {left} {top} L {right} {top} L {right} {bottom} L {left} {bottom} C"
