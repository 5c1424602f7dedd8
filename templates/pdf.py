"""PDF renderer: one page, written directly as bytes.

Rendering sits on the issuance hot path, so this is a small, direct PDF 1.7 writer rather than a
general PDF library: objects are byte strings with pre-assigned numbers, offsets are counted as
they are joined, and JPEGs and font subsets pass through untouched. `build_pdf` returns the objects
before they are written (`PdfBuilder`), so the sealing path (seals.licence_files) can add its
signature field, appearance and signature dictionary and write a sealed file in one pass; pyHanko
reads our output back in the tests, so a general-purpose PDF library checks it.

Text uses Type 0 fonts (Identity-H, CID-keyed CFF subsets) with a ToUnicode CMap, so it stays
selectable and searchable; each glyph sits at the x the layout chose (TJ adjustments carry the
letter spacing), so PDF, OFD and PNG agree in position.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fontTools.ttLib import TTFont

from templates.cff_subset import SubsetFont
from templates.fonts import Font, FontSet
from templates.images import Picture
from templates.layout import QR_QUIET_MODULES, PageLayout, TextRun
from templates.layout_spec import Box

__all__ = ["PT_PER_MM", "PdfFile", "build_pdf", "pdf_date", "pdf_number", "pdf_stream", "utf16_hex"]

PT_PER_MM = 72 / 25.4
HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"  # the binary comment tells transfer tools the file is binary
# Level 4 compresses page content within 2 % of level 6 in a third of the time (measured on licences).
ZLIB_LEVEL = 4
FONT_OBJECTS = 5  # Type0 font, CIDFont, descriptor, embedded CFF, ToUnicode
_DARK_RUN = re.compile(rb"\x01+")


def render_pdf(
    layout: PageLayout, fonts: FontSet, *, title: str | None = None, created: dt.datetime | None = None
) -> bytes:
    """The layout as a one-page PDF. Pass `created` for byte-identical output of the same layout."""
    return build_pdf(layout, fonts, title=title, created=created).write().data


@dataclass(frozen=True)
class PdfFile:
    """A written PDF: its bytes and where each object starts (the xref offsets)."""

    data: bytes
    offsets: dict[int, int]
    prefix: bytes  # data[:len(prefix)], the same bytes object for every file sharing the fixed objects

    def object_start(self, number: int) -> int:
        """Offset of object `number`'s body (just after "N 0 obj\\n")."""
        return self.offsets[number] + len(b"%d 0 obj\n" % number)


@dataclass(frozen=True)
class _Prefix:
    """The header and the objects every file of a template shares, written and digested once."""

    data: bytes
    offsets: tuple[int, ...]
    md5: Any  # hashlib state after `data`, copied for each file's /ID


@lru_cache(maxsize=32)
def _prefix(fixed: tuple[bytes, ...]) -> _Prefix:
    out, offsets, position = [HEADER], [], len(HEADER)
    for number, body in enumerate(fixed, start=1):
        chunk = b"%d 0 obj\n%s\nendobj\n" % (number, body)
        offsets.append(position)
        out.append(chunk)
        position += len(chunk)
    data = b"".join(out)
    return _Prefix(data, tuple(offsets), hashlib.md5(data, usedforsecurity=False))


class PdfBuilder:
    """A one-page PDF as numbered objects, open for additions until `write()`.

    Objects 1… are the `fixed` ones a caller passed, then the page background: they open the file
    as a prefix built once per process (a seal picture and a template's background are the same
    for thousands of licences). The catalog and page dictionaries are written last, so a caller
    can add entries to them (/Annots, /AcroForm) that refer to objects it added."""

    def __init__(self, fixed: tuple[bytes, ...]) -> None:
        self._prefix = _prefix(fixed)
        self.objects: dict[int, bytes] = {}
        self._next = len(fixed) + 1
        self.page_entries: list[bytes] = []
        self.catalog_entries: list[bytes] = []
        self.catalog = self.reserve()
        self.pages = self.reserve()
        self.page = self.reserve()
        self.info = self.reserve()

    def reserve(self) -> int:
        """A number for an object whose body is set later (`objects[number] = body`)."""
        number = self._next
        self._next += 1
        return number

    def add(self, body: bytes) -> int:
        number = self.reserve()
        self.objects[number] = body
        return number

    def write(self) -> PdfFile:
        """Header, numbered objects, xref table (20-byte entries) and trailer."""
        self.objects[self.catalog] = b"<< /Type /Catalog /Pages %d 0 R /Lang (zh-CN)%s >>" % (
            self.pages,
            b"".join(b" " + entry for entry in self.catalog_entries),
        )
        self.objects[self.pages] = b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % self.page
        self.objects[self.page] = b"<< /Type /Page /Parent %d 0 R %s >>" % (self.pages, b" ".join(self.page_entries))
        prefix = self._prefix
        first = len(prefix.offsets) + 1
        if sorted(self.objects) != list(range(first, self._next)):
            raise ValueError("PDF objects reserved but never set")
        out = [prefix.data]
        offsets = dict(enumerate(prefix.offsets, start=1))
        position = len(prefix.data)
        for number in range(first, self._next):
            chunk = b"%d 0 obj\n%s\nendobj\n" % (number, self.objects[number])
            offsets[number] = position
            out.append(chunk)
            position += len(chunk)
        md5 = prefix.md5.copy()
        for chunk in out[1:]:
            md5.update(chunk)
        file_id = md5.hexdigest().upper().encode()
        size = self._next
        xref = b"xref\n0 %d\n0000000000 65535 f \n" % size + b"".join(
            b"%010d 00000 n \n" % offsets[number] for number in range(1, size)
        )
        trailer = b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R /ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n" % (
            size,
            self.catalog,
            self.info,
            file_id,
            file_id,
            position,
        )
        out += (xref, trailer)
        return PdfFile(b"".join(out), offsets, prefix.data)


def build_pdf(
    layout: PageLayout,
    fonts: FontSet,
    *,
    title: str | None = None,
    created: dt.datetime | None = None,
    fixed: tuple[bytes, ...] = (),
) -> PdfBuilder:
    """The layout's page as PDF objects. `fixed` object bodies take the numbers 1, 2, … in order
    (so they may refer to each other) and open the file with the background picture."""
    # Font resource /F<i> is the i-th role here, image /Im<i> the i-th picture (from 1): one order for
    # both the resources and the content stream.
    subsets = {role: fonts.get(role).subset(layout.characters(role)) for role in sorted(_roles(layout))}
    pictures = _pictures(layout)
    background = layout.background is not None
    builder = PdfBuilder((*fixed, _background(pictures[0][1])) if background else fixed)
    font_refs, image_refs = [], []
    if background:
        image_refs.append(b"/Im1 %d 0 R" % (len(fixed) + 1))
    content = builder.reserve()
    for index, (role, subset) in enumerate(subsets.items(), start=1):
        number = builder.reserve()
        for _ in range(FONT_OBJECTS - 1):
            builder.reserve()
        builder.objects.update(_font_objects(number, fonts.get(role), subset))
        font_refs.append(b"/F%d %d 0 R" % (index, number))
    for index, (_, picture) in enumerate(pictures[1:] if background else pictures, start=len(image_refs) + 1):
        image_refs.append(b"/Im%d %d 0 R" % (index, builder.add(_jpeg(picture))))
    builder.objects[content] = pdf_stream(
        b"/Filter /FlateDecode", zlib.compress(_content(layout, subsets, pictures, fonts), ZLIB_LEVEL)
    )
    builder.objects[builder.info] = _info(title, created or dt.datetime.now(dt.timezone.utc))
    builder.page_entries += [
        b"/MediaBox [0 0 %s %s]" % (pdf_number(layout.width * PT_PER_MM), pdf_number(layout.height * PT_PER_MM)),
        b"/Resources << /Font << %s >> /XObject << %s >> >>" % (b" ".join(font_refs), b" ".join(image_refs)),
        b"/Contents %d 0 R" % content,
    ]
    return builder


def _roles(layout: PageLayout) -> set[str]:
    return {run.font for run in layout.runs}


def _pictures(layout: PageLayout) -> list[tuple[Box, Picture]]:
    """The background (the whole page) first, then photos: the PNG renderer's order."""
    pictures = [(placed.box, placed.picture) for placed in layout.images]
    if layout.background is not None:
        pictures.insert(0, (Box(x=0, y=0, w=layout.width, h=layout.height), layout.background))
    return pictures


@lru_cache(maxsize=32)
def _background(picture: Picture) -> bytes:
    """The background's image object, built once per template: the same bytes object each time
    keeps the prefix cache lookup cheap (bytes cache their hash)."""
    return _jpeg(picture)


def _jpeg(picture: Picture) -> bytes:
    """An image XObject carrying the JPEG as it is: PDF decodes baseline JPEG itself (DCTDecode)."""
    return pdf_stream(
        b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB /BitsPerComponent 8"
        b" /Filter /DCTDecode" % (picture.width, picture.height),
        picture.data,
    )


# -- page content ---------------------------------------------------------------------------------


def _content(
    layout: PageLayout, subsets: dict[str, SubsetFont], pictures: list[tuple[Box, Picture]], fonts: FontSet
) -> bytes:
    """Pictures, then text, then the QR on top, as the PNG renderer draws them."""
    parts = [_image(box, layout.height, index) for index, (box, _) in enumerate(pictures, start=1)]
    if layout.runs:
        parts.append(_text(layout.runs, layout.height, subsets, fonts))
    parts.append(_qr(layout))
    return b"\n".join(parts)


def _image(box: Box, page_height: float, index: int) -> bytes:
    w, h = box.w * PT_PER_MM, box.h * PT_PER_MM
    x, y = box.x * PT_PER_MM, (page_height - box.bottom) * PT_PER_MM
    return b"q %s 0 0 %s %s %s cm /Im%d Do Q" % (pdf_number(w), pdf_number(h), pdf_number(x), pdf_number(y), index)


def _text(runs: Iterable[TextRun], page_height: float, subsets: dict[str, SubsetFont], fonts: FontSet) -> bytes:
    """All runs in one text object; font and colour are set only when they change."""
    font_names = {role: b"/F%d" % index for index, role in enumerate(subsets, start=1)}
    parts = [b"BT"]
    font_state: tuple[str, float] | None = None
    colour: tuple[int, int, int] | None = None
    for run in runs:
        if (run.font, run.size) != font_state:
            font_state = (run.font, run.size)
            parts.append(b"%s %s Tf" % (font_names[run.font], pdf_number(run.size)))
        if run.colour != colour:
            colour = run.colour
            parts.append(b"%s %s %s rg" % tuple(pdf_number(c / 255) for c in colour))
        parts.append(_shown(run, page_height, subsets[run.font], fonts.get(run.font)))
    parts.append(b"ET")
    return b"\n".join(parts)


# Shown runs by (run, page height, font). The subset is left out of the key on purpose: a subset
# keeps the font's own CIDs and widths (templates.cff_subset), so every subset of `font` that holds
# the run's characters shows it the same. Fixed texts, labels and shared values recur on every
# licence of a template (issue 24). Keys hold their font, so an id is never reused.
_SHOWN: dict[tuple[TextRun, float, Font], bytes] = {}
_SHOWN_KEPT = 4096


def _shown(run: TextRun, page_height: float, subset: SubsetFont, font: Font) -> bytes:
    """The run placed (Tm) and shown (TJ), marked with its text when letter-spaced."""
    key = (run, page_height, font)
    shown = _SHOWN.get(key)
    if shown is None:
        x, y = run.x * PT_PER_MM, (page_height - run.baseline) * PT_PER_MM
        shown = b"1 0 0 1 %s %s Tm [%s] TJ" % (pdf_number(x), pdf_number(y), _glyphs(run, subset))
        if _letter_spaced(run, subset):
            # Text extraction would read the gaps as spaces ("食 品 经 营"); ActualText keeps the
            # title searchable as one word (ISO 32000-1 §14.9.4).
            shown = b"/Span << /ActualText <%s> >> BDC %s EMC" % (utf16_hex(run.text), shown)
        if len(_SHOWN) >= _SHOWN_KEPT:
            _SHOWN.clear()  # a bound, not an eviction policy
        _SHOWN[key] = shown
    return shown


def _letter_spaced(run: TextRun, subset: SubsetFont) -> bool:
    size = run.size_mm
    return any(
        advance - subset.widths.get(subset.cids.get(char, 0), 1000) / 1000 * size > 0.1 * size
        for char, advance in zip(run.text[:-1], run.advances[:-1], strict=True)
    )


def utf16_hex(text: str) -> bytes:
    """A text string as PDF hex: UTF-16BE with its byte order mark (ISO 32000-1 7.9.2.2)."""
    return ("\ufeff" + text).encode("utf-16-be").hex().upper().encode()


def _glyphs(run: TextRun, subset: SubsetFont) -> bytes:
    """The TJ array body: CIDs as hex, with adjustments wherever the pen drifts from the layout.

    Positions are in 1/1000 text-space units. `pen` follows what a viewer will do (including the
    rounded adjustments written), so rounding never accumulates along the line."""
    size_mm = run.size / PT_PER_MM
    out: list[bytes] = []
    hex_glyphs: list[str] = []
    pen = target = 0.0
    for char, advance in zip(run.text, run.advances, strict=True):
        cid = subset.cids.get(char)
        if cid is not None:  # only whitespace the font lacks (e.g. a tab) has no glyph
            shift = round(pen - target, 1)
            if shift:
                if hex_glyphs:
                    out.append(b"<%s>" % "".join(hex_glyphs).encode())
                    hex_glyphs = []
                out.append(pdf_number(shift))
                pen -= shift
            hex_glyphs.append(f"{cid:04X}")
            pen += subset.widths.get(cid, 1000)
        target += advance / size_mm * 1000
    if hex_glyphs:
        out.append(b"<%s>" % "".join(hex_glyphs).encode())
    return b" ".join(out)


def _qr(layout: PageLayout) -> bytes:
    """A white square for the quiet zone, then every horizontal run of dark modules as one black
    path, drawn in module units (one `cm` maps them onto the page, y down): short integers, where
    millimetre coordinates for each of a few hundred rectangles cost more than the rest of the page."""
    qr = layout.qr
    box = qr.box
    module = qr.module_mm * PT_PER_MM
    left = (box.x + QR_QUIET_MODULES * qr.module_mm) * PT_PER_MM
    top = (layout.height - box.y - QR_QUIET_MODULES * qr.module_mm) * PT_PER_MM
    parts = [b"q 1 1 1 rg", _rect(box.x, box.y, box.w, box.h, layout.height), b"f"]
    parts.append(b"%s 0 0 %s %s %s cm 0 0 0 rg" % (_n5(module), _n5(-module), _n5(left), _n5(top)))
    parts += [
        b"%d %d %d 1 re" % (match.start(), row, match.end() - match.start())
        for row, line in enumerate(qr.modules)
        for match in _DARK_RUN.finditer(bytes(line))
    ]
    parts.append(b"f Q")
    return b"\n".join(parts)


def _rect(x: float, y: float, w: float, h: float, page_height: float) -> bytes:
    m = PT_PER_MM
    return b"%s %s %s %s re" % tuple(pdf_number(v * m) for v in (x, page_height - y - h, w, h))


# -- fonts ----------------------------------------------------------------------------------------


def _font_objects(first: int, font: Font, subset: SubsetFont) -> dict[int, bytes]:
    """Type0 font, its CIDFontType0, descriptor, embedded CFF and ToUnicode: five objects from `first`."""
    type0, cid_font, descriptor, font_file, to_unicode = range(first, first + FONT_OBJECTS)
    name = _subset_tag(subset) + b"+" + _pdf_name(subset.postscript_name)
    ascent, descent, cap_height, stem_v, bbox = _descriptor_metrics(str(font.path))
    flags = 6 if font.role == "serif" else 4  # symbolic (not Standard Latin), plus serif where it is
    return {
        type0: (
            b"<< /Type /Font /Subtype /Type0 /BaseFont /%s /Encoding /Identity-H /DescendantFonts [%d 0 R]"
            b" /ToUnicode %d 0 R >>" % (name, cid_font, to_unicode)
        ),
        cid_font: (
            b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /%s"
            b" /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >>"
            b" /FontDescriptor %d 0 R /DW 1000 /W [%s] >>" % (name, descriptor, _widths(subset))
        ),
        descriptor: (
            b"<< /Type /FontDescriptor /FontName /%s /Flags %d /FontBBox [%s] /ItalicAngle 0 /Ascent %d"
            b" /Descent %d /CapHeight %d /StemV %d /FontFile3 %d 0 R >>"
            % (name, flags, bbox, ascent, descent, cap_height, stem_v, font_file)
        ),
        font_file: pdf_stream(b"/Subtype /CIDFontType0C", subset.cff),
        to_unicode: pdf_stream(b"/Filter /FlateDecode", zlib.compress(_to_unicode(subset), ZLIB_LEVEL)),
    }


def _pdf_name(text: str) -> bytes:
    """A name token: regular characters as they are, anything else as #XX (ISO 32000-1 7.3.5)."""
    return b"".join(
        bytes([b]) if 0x21 <= b <= 0x7E and b not in b"#()<>[]{}/%" else b"#%02X" % b for b in text.encode()
    )


def _subset_tag(subset: SubsetFont) -> bytes:
    """Six capital letters from the subset's content (ISO 32000-1 9.6.4): same subset, same tag."""
    digest = hashlib.sha256(subset.cff).digest()
    return bytes(65 + b % 26 for b in digest[:6])


@functools.lru_cache(maxsize=8)
def _descriptor_metrics(path: str) -> tuple[int, int, int, int, bytes]:
    """Ascent, descent, cap height, StemV and bounding box in 1/1000 em, read once per font file.

    The whole font's box bounds every subset. CFF fonts carry no StemV; it only matters when a viewer
    substitutes the font, so the usual estimate from the weight class does."""
    font = TTFont(path, lazy=True)
    scale = 1000 / font["head"].unitsPerEm
    os2, head = font["OS/2"], font["head"]
    bbox = b" ".join(b"%d" % round(v * scale) for v in (head.xMin, head.yMin, head.xMax, head.yMax))
    cap_height = getattr(os2, "sCapHeight", 0) or os2.sTypoAscender
    stem_v = round(50 + (os2.usWeightClass / 65) ** 2)
    return (
        round(os2.sTypoAscender * scale),
        round(os2.sTypoDescender * scale),
        round(cap_height * scale),
        stem_v,
        bbox,
    )


def _widths(subset: SubsetFont) -> bytes:
    """/W entries `first [w w …]` for runs of consecutive CIDs, leaving out the default 1000."""
    cids = sorted(cid for cid, width in subset.widths.items() if width != 1000)
    groups: list[list[int]] = []
    for cid in cids:
        if groups and groups[-1][-1] == cid - 1:
            groups[-1].append(cid)
        else:
            groups.append([cid])
    return b" ".join(
        b"%d [%s]" % (group[0], b" ".join(b"%d" % subset.widths[cid] for cid in group)) for group in groups
    )


def _to_unicode(subset: SubsetFont) -> bytes:
    """A ToUnicode CMap from each CID back to its character (UTF-16BE, surrogate pairs beyond the BMP)."""
    by_cid: dict[int, str] = {}
    for char, cid in sorted(subset.cids.items(), key=lambda item: (item[1], item[0])):
        by_cid.setdefault(cid, char)
    pairs = [b"<%04X> <%s>" % (cid, char.encode("utf-16-be").hex().upper().encode()) for cid, char in by_cid.items()]
    body = []
    for start in range(0, len(pairs), 100):  # at most 100 entries per block (Adobe TN 5411)
        chunk = pairs[start : start + 100]
        body.append(b"%d beginbfchar\n%s\nendbfchar" % (len(chunk), b"\n".join(chunk)))
    return (
        b"/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        b"/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        b"1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        + b"\n".join(body)
        + b"\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    )


# -- file structure -------------------------------------------------------------------------------


def _info(title: str | None, created: dt.datetime) -> bytes:
    date = pdf_date(created)
    entries = b"/Producer (ECAS) /CreationDate (%s) /ModDate (%s)" % (date, date)
    if title:
        entries = b"/Title <%s> " % utf16_hex(title) + entries
    return b"<< %s >>" % entries


def pdf_date(when: dt.datetime) -> bytes:
    """D:YYYYMMDDHHmmSS with the UTC offset (ISO 32000-1 7.9.4); naive times are taken as UTC."""
    return _pdf_date(when, when.utcoffset())


# By time and offset: equal datetimes in two time zones are one key without it, and print apart.
@lru_cache(maxsize=64)  # a batch seals at one time: the same date twice a licence
def _pdf_date(when: dt.datetime, offset: dt.timedelta | None) -> bytes:
    offset = offset or dt.timedelta(0)
    stamp = when.strftime("D:%Y%m%d%H%M%S")
    if not offset:
        return stamp.encode() + b"Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{stamp}{sign}{abs(minutes) // 60:02d}'{abs(minutes) % 60:02d}'".encode()


def pdf_stream(entries: bytes, data: bytes) -> bytes:
    """A stream object's body: the dictionary `entries` with /Length, then the data (ISO 32000-1 7.3.8)."""
    return b"<< %s /Length %d >>\nstream\n%s\nendstream" % (entries, len(data), data)


def _n5(value: float) -> bytes:
    """A PDF number with up to five decimals, for a transformation that scales small integers."""
    text = f"{value:.5f}".rstrip("0").rstrip(".")
    return b"0" if text in ("-0", "") else text.encode()


def pdf_number(value: float) -> bytes:
    """A PDF number: at most three decimals, no trailing zeros, never `-0`."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return b"0" if text in ("-0", "") else text.encode()
