"""PDF renderer: one page, written directly as bytes.

Rendering sits on the issuance hot path, so this is a small, direct PDF 1.7 writer rather than a
general PDF library: objects are byte strings with pre-assigned numbers, offsets are counted as
they are joined, and JPEGs and font subsets pass through untouched. pyHanko still seals the file
(as an incremental update) and reads it back, so a general-purpose PDF library checks our output.

Text uses Type 0 fonts (Identity-H, CID-keyed CFF subsets) with a ToUnicode CMap, so it stays
selectable and searchable; each glyph sits at the x the layout chose (TJ adjustments carry the
letter spacing), so PDF, OFD and PNG agree in position.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import zlib
from collections.abc import Iterable

from fontTools.ttLib import TTFont

from templates.fonts import Font, FontSet, SubsetFont
from templates.images import Picture
from templates.layout import PageLayout, TextRun
from templates.layout_spec import Box

PT_PER_MM = 72 / 25.4
HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"  # the binary comment tells transfer tools the file is binary
ZLIB_LEVEL = 6
# Object numbers fixed by position; fonts and images follow from FIRST_FREE on.
CATALOG, PAGES, PAGE, CONTENT, INFO, FIRST_FREE = 1, 2, 3, 4, 5, 6
FONT_OBJECTS = 5  # Type0 font, CIDFont, descriptor, embedded CFF, ToUnicode


def render_pdf(
    layout: PageLayout, fonts: FontSet, *, title: str | None = None, created: dt.datetime | None = None
) -> bytes:
    """The layout as a one-page PDF. Pass `created` for byte-identical output of the same layout."""
    # Font resource /F<i> is the i-th role here, image /Im<i> the i-th picture (from 1): one order for
    # both the resources and the content stream.
    subsets = {role: fonts.get(role).subset(layout.characters(role)) for role in sorted(_roles(layout))}
    pictures = _pictures(layout)
    objects: dict[int, bytes] = {}
    number = FIRST_FREE
    font_refs, image_refs = [], []
    for index, (role, subset) in enumerate(subsets.items(), start=1):
        objects.update(_font_objects(number, fonts.get(role), subset))
        font_refs.append(b"/F%d %d 0 R" % (index, number))
        number += FONT_OBJECTS
    for index, (_, picture) in enumerate(pictures, start=1):
        objects[number] = _jpeg(picture)
        image_refs.append(b"/Im%d %d 0 R" % (index, number))
        number += 1
    content = _content(layout, subsets, pictures)
    objects[CATALOG] = b"<< /Type /Catalog /Pages %d 0 R /Lang (zh-CN) >>" % PAGES
    objects[PAGES] = b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % PAGE
    objects[PAGE] = (
        b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %s %s] /Resources << /Font << %s >> /XObject << %s >> >>"
        b" /Contents %d 0 R >>"
        % (PAGES, _n(layout.width * PT_PER_MM), _n(layout.height * PT_PER_MM), b" ".join(font_refs),
           b" ".join(image_refs), CONTENT)
    )
    objects[CONTENT] = _stream(b"/Filter /FlateDecode", zlib.compress(content, ZLIB_LEVEL))
    objects[INFO] = _info(title, created or dt.datetime.now(dt.timezone.utc))
    return _assemble(objects)


def _roles(layout: PageLayout) -> set[str]:
    return {run.font for run in layout.runs}


def _pictures(layout: PageLayout) -> list[tuple[Box, Picture]]:
    """The background (the whole page) first, then photos: the PNG renderer's order."""
    pictures = [(placed.box, placed.picture) for placed in layout.images]
    if layout.background is not None:
        pictures.insert(0, (Box(x=0, y=0, w=layout.width, h=layout.height), layout.background))
    return pictures


def _jpeg(picture: Picture) -> bytes:
    """An image XObject carrying the JPEG as it is: PDF decodes baseline JPEG itself (DCTDecode)."""
    return _stream(
        b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB /BitsPerComponent 8"
        b" /Filter /DCTDecode" % (picture.width, picture.height),
        picture.data,
    )


# -- page content ---------------------------------------------------------------------------------


def _content(layout: PageLayout, subsets: dict[str, SubsetFont], pictures: list[tuple[Box, Picture]]) -> bytes:
    """Pictures, then text, then the QR on top, as the PNG renderer draws them."""
    parts = [_image(box, layout.height, index) for index, (box, _) in enumerate(pictures, start=1)]
    if layout.runs:
        parts.append(_text(layout.runs, layout.height, subsets))
    parts.append(_qr(layout))
    return b"\n".join(parts)


def _image(box: Box, page_height: float, index: int) -> bytes:
    w, h = box.w * PT_PER_MM, box.h * PT_PER_MM
    x, y = box.x * PT_PER_MM, (page_height - box.bottom) * PT_PER_MM
    return b"q %s 0 0 %s %s %s cm /Im%d Do Q" % (_n(w), _n(h), _n(x), _n(y), index)


def _text(runs: Iterable[TextRun], page_height: float, subsets: dict[str, SubsetFont]) -> bytes:
    """All runs in one text object; font and colour are set only when they change."""
    font_names = {role: b"/F%d" % index for index, role in enumerate(subsets, start=1)}
    parts = [b"BT"]
    font_state: tuple[str, float] | None = None
    colour: tuple[int, int, int] | None = None
    for run in runs:
        if (run.font, run.size) != font_state:
            font_state = (run.font, run.size)
            parts.append(b"%s %s Tf" % (font_names[run.font], _n(run.size)))
        if run.colour != colour:
            colour = run.colour
            parts.append(b"%s %s %s rg" % tuple(_n(c / 255) for c in colour))
        x, y = run.x * PT_PER_MM, (page_height - run.baseline) * PT_PER_MM
        show = b"1 0 0 1 %s %s Tm [%s] TJ" % (_n(x), _n(y), _glyphs(run, subsets[run.font]))
        if _letter_spaced(run, subsets[run.font]):
            # Text extraction would read the gaps as spaces ("食 品 经 营"); ActualText keeps the
            # title searchable as one word (ISO 32000-1 §14.9.4).
            show = b"/Span << /ActualText <%s> >> BDC %s EMC" % (_utf16_hex(run.text), show)
        parts.append(show)
    parts.append(b"ET")
    return b"\n".join(parts)


def _letter_spaced(run: TextRun, subset: SubsetFont) -> bool:
    size = run.size_mm
    return any(
        advance - subset.widths.get(subset.cids.get(char, 0), 1000) / 1000 * size > 0.1 * size
        for char, advance in zip(run.text[:-1], run.advances[:-1], strict=True)
    )


def _utf16_hex(text: str) -> bytes:
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
                out.append(_n(shift))
                pen -= shift
            hex_glyphs.append(f"{cid:04X}")
            pen += subset.widths.get(cid, 1000)
        target += advance / size_mm * 1000
    if hex_glyphs:
        out.append(b"<%s>" % "".join(hex_glyphs).encode())
    return b" ".join(out)


def _qr(layout: PageLayout) -> bytes:
    """A white square for the quiet zone, then every dark run of modules as one black path."""
    h = layout.height
    qr = layout.qr
    parts = [b"q 1 1 1 rg", _rect(qr.box.x, qr.box.y, qr.box.w, qr.box.h, h), b"f 0 0 0 rg"]
    parts += [_rect(x, y, w, rh, h) for x, y, w, rh in qr.dark_rectangles()]
    parts.append(b"f Q")
    return b"\n".join(parts)


def _rect(x: float, y: float, w: float, h: float, page_height: float) -> bytes:
    m = PT_PER_MM
    return b"%s %s %s %s re" % (_n(x * m), _n((page_height - y - h) * m), _n(w * m), _n(h * m))


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
        font_file: _stream(b"/Subtype /CIDFontType0C", subset.cff),
        to_unicode: _stream(b"/Filter /FlateDecode", zlib.compress(_to_unicode(subset), ZLIB_LEVEL)),
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
    date = _pdf_date(created)
    entries = b"/Producer (ECAS) /CreationDate (%s) /ModDate (%s)" % (date, date)
    if title:
        entries = b"/Title <%s> " % _utf16_hex(title) + entries
    return b"<< %s >>" % entries


def _pdf_date(when: dt.datetime) -> bytes:
    """D:YYYYMMDDHHmmSS with the UTC offset (ISO 32000-1 7.9.4); naive times are taken as UTC."""
    offset = when.utcoffset() or dt.timedelta(0)
    stamp = when.strftime("D:%Y%m%d%H%M%S")
    if not offset:
        return stamp.encode() + b"Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{stamp}{sign}{abs(minutes) // 60:02d}'{abs(minutes) % 60:02d}'".encode()


def _stream(entries: bytes, data: bytes) -> bytes:
    return b"<< %s /Length %d >>\nstream\n%s\nendstream" % (entries, len(data), data)


def _assemble(objects: dict[int, bytes]) -> bytes:
    """Header, numbered objects, xref table (20-byte entries) and trailer."""
    out = [HEADER]
    offsets = []
    position = len(HEADER)
    for number in range(1, len(objects) + 1):
        chunk = b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
        offsets.append(position)
        out.append(chunk)
        position += len(chunk)
    body = b"".join(out)
    file_id = hashlib.md5(body, usedforsecurity=False).hexdigest().upper().encode()
    xref = b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1) + b"".join(
        b"%010d 00000 n \n" % offset for offset in offsets
    )
    trailer = b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R /ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        CATALOG,
        INFO,
        file_id,
        file_id,
        position,
    )
    return body + xref + trailer


def _n(value: float) -> bytes:
    """A PDF number: at most three decimals, no trailing zeros, never `-0`."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return b"0" if text in ("-0", "") else text.encode()
