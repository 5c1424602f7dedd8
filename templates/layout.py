"""Layout: where every glyph, image and QR module goes, in mm from the top-left of the page.

The PDF, OFD and PNG renderers only draw what this module decided, so the three agree in
position by construction. Text that does not fit wraps, then shrinks down to the placement's
minimum size, then fails with a message naming the field: never silently clipped.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from templates.errors import LayoutError
from templates.fonts import Font, FontSet
from templates.images import Picture, sample_photo
from templates.layout_spec import META_FIELDS, Box, FieldPlacement, StaticText, TemplateSpec, colour_rgb
from templates.qr import Modules, dark_runs, qr_modules
from templates.spec import FieldType, LicenceTypeSpec, chinese_date
from templates.units import unbreakable_spans

__all__ = [
    "PT_MM",
    "BlockStyle",
    "LicenceFace",
    "PageLayout",
    "TextRun",
    "annotate",
    "build_layout",
    "check_glyphs",
    "make_qr",
    "text_block",
]

PT_MM = 25.4 / 72
QR_QUIET_MODULES = 2  # ISO/IEC 18004 asks for 4; the QR sits on a white square inside its box
# Closing punctuation may hang past the right edge rather than start a line (GB/T 15834 practice).
HANGING_TEXT = "，。、；：！？）》」』”’,.;:!?)"
HANGING = set(HANGING_TEXT)
WORD = re.compile(r"[A-Za-z0-9@#%&+\-_./:]+|\s+|.", re.DOTALL)
SAMPLE_CHAR = "证"  # a full-width character: the widest a CJK value usually gets


@dataclass(frozen=True)
class TextRun:
    """One line of text. `advances` are mm from each glyph's origin to the next (spacing included)."""

    text: str
    x: float
    baseline: float
    size: float  # pt
    font: str  # "serif" | "sans"
    colour: tuple[int, int, int]
    advances: tuple[float, ...]

    @property
    def size_mm(self) -> float:
        return self.size * PT_MM

    @property
    def width(self) -> float:
        return sum(self.advances)


@dataclass(frozen=True)
class PlacedImage:
    box: Box
    picture: Picture


@dataclass(frozen=True)
class QrCode:
    box: Box
    text: str
    modules: Modules  # dark modules, row by row, without the quiet zone

    @property
    def module_mm(self) -> float:
        return self.box.w / (len(self.modules) + 2 * QR_QUIET_MODULES)

    def dark_rectangles(self) -> list[tuple[float, float, float, float]]:
        """(x, y, w, h) in mm of horizontal runs of dark modules: few shapes for PDF and OFD."""
        size = self.module_mm
        origin_x = self.box.x + QR_QUIET_MODULES * size
        origin_y = self.box.y + QR_QUIET_MODULES * size
        return [
            (origin_x + col * size, origin_y + row * size, length * size, size)
            for row, col, length in dark_runs(self.modules)
        ]


@dataclass(frozen=True)
class LicenceFace:
    """What one licence prints: stored face values, metadata (already in printed form), photo, QR."""

    values: Mapping[str, str]
    meta: Mapping[str, str]
    qr_url: str
    photo: Picture | None = None
    watermark: str | None = None  # e.g. 样例 on previews


@dataclass(frozen=True)
class PageLayout:
    width: float
    height: float
    background: Picture | None
    runs: tuple[TextRun, ...]
    images: tuple[PlacedImage, ...]
    qr: QrCode
    seal: Box
    texts: Mapping[str, str] = field(default_factory=dict)  # printed value of each field, by name
    # Characters by font, asked for six times a licence (PDF, OFD, packing); not copied by replace().
    _characters: dict[str, frozenset[str]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def characters(self, font: str) -> frozenset[str]:
        known = self._characters.get(font)
        if known is None:
            known = self._characters[font] = frozenset(c for run in self.runs if run.font == font for c in run.text)
        return known


def build_layout(
    licence_type: LicenceTypeSpec,
    template: TemplateSpec,
    background: Picture | None,
    face: LicenceFace,
    fonts: FontSet,
) -> PageLayout:
    width, height = template.page.dimensions
    # The watermark goes first so that everything else is drawn over it.
    runs: list[TextRun] = _watermark(face.watermark, width, height, fonts) if face.watermark else []
    printed: dict[str, str] = {}
    for static in template.texts:
        runs += _fit(static.text, static.box, static, fonts, wrap=False, where=f"固定文字「{static.text[:10]}」")
    for placement in template.fields:
        label, value = _label_and_value(licence_type, placement, face)
        printed[placement.name] = value
        runs += _place_field(placement, label, value, fonts)
    images = []
    if template.photo is not None and face.photo is not None:
        images.append(PlacedImage(_fit_picture(template.photo.box, face.photo), face.photo))
    return PageLayout(
        width=width,
        height=height,
        background=background,
        runs=tuple(runs),
        images=tuple(images),
        qr=make_qr(face.qr_url, template.qr.box),
        seal=template.seal.box,
        texts=printed,
    )


@dataclass(frozen=True)
class BlockStyle:
    """The style of a free text block, for documents the service lays out itself (a receipt):
    wrapped inside its box, shrunk in half points down to `min_font_size` (default: no shrinking)."""

    font_size: float = 10.5
    font: str = "serif"
    align: str = "left"
    colour: str = "#1A1A1A"
    min_font_size: float | None = None
    line_spacing: float = 1.35
    letter_spacing: float = 0.0


def text_block(text: str, box: Box, fonts: FontSet, style: BlockStyle, where: str = "文字") -> list[TextRun]:
    """`text` laid out in `box` (LayoutError if it cannot fit, FontError for a missing glyph)."""
    return _fit(text, box, style, fonts, wrap=True, where=where)


def check_glyphs(
    licence_type: LicenceTypeSpec, template: TemplateSpec, values: Mapping[str, str], fonts: FontSet
) -> None:
    """Raise FontError when a printed field value has a character its font lacks: the one way a
    value can fail layout once `check_fits` has passed at registration (lengths are bounded), and
    a cheap check issuance makes before it takes a serial."""
    for placement in template.fields:
        if placement.field is None:
            continue
        item = licence_type.field(placement.field)
        stored = values.get(placement.field)
        if item is not None and stored:
            fonts.get(placement.font).check(item.printed(stored), f"字段「{item.label}」")


def check_fits(licence_type: LicenceTypeSpec, template: TemplateSpec, fonts: FontSet) -> None:
    """Prove that the longest values the schema allows fit their boxes (raises LayoutError)."""
    try:
        build_layout(licence_type, template, None, sample_face(licence_type, worst_case=True), fonts)
    except LayoutError as exc:
        raise LayoutError(
            f"按字段允许的最长内容检验版面未通过：{exc}。可为字段设置更小的 max_length，或加大框、减小 min_font_size"
        ) from None


def make_qr(text: str, box: Box) -> QrCode:
    try:
        modules = qr_modules(text)
    except ValueError:  # longer than any QR code holds
        raise LayoutError(f"二维码内容太长（{len(text)} 字符），超出二维码容量") from None
    qr = QrCode(box, text, modules)
    if qr.module_mm < 0.33:
        raise LayoutError(f"二维码内容太长（{len(text)} 字符），在 {box.w:g} mm 的框内模块小于 0.33 mm，无法可靠识读")
    return qr


def sample_face(licence_type: LicenceTypeSpec, worst_case: bool = False, today: dt.date | None = None) -> LicenceFace:
    """Sample data for previews; with `worst_case`, the longest values the schema allows."""
    today = today or dt.date.today()
    later = today + dt.timedelta(days=5 * 365)
    values: dict[str, str] = {}
    photo = None
    for item in licence_type.fields:
        if item.type is FieldType.PHOTO:
            photo = sample_photo()
        elif worst_case:
            values[item.key] = _worst_value(item.type, item.longest, item.values)
        elif item.example is not None:
            values[item.key] = item.check_value(item.example)
        else:
            values[item.key] = _sample_value(item.type, item.label, item.longest, item.values, today, later)
    serial = "W" * 32 if worst_case else "SAMPLE0001"
    identifier = f"1.2.156.3005.2.{licence_type.code}.{licence_type.issuers[0]}.{serial}.001.X"
    if worst_case:
        meta = {
            "licence_number": "W" * 32,
            "identifier": identifier,
            "issuer_name": SAMPLE_CHAR * 25,
            "issue_date": "2000年12月31日",
            "valid_from": "2000年12月31日",
            "valid_until": "2000年12月31日",
            "validity": "2000年12月31日至2000年12月31日",
        }
    else:
        meta = {
            "licence_number": "样例-0001",
            "identifier": identifier,
            "issuer_name": "演示市某某局",
            "issue_date": chinese_date(today),
            "valid_from": chinese_date(today),
            "valid_until": chinese_date(later),
            "validity": f"{chinese_date(today)}至{chinese_date(later)}",
        }
    url = "https://ecas.example.gov.cn/v/" + identifier
    return LicenceFace(values, meta, url, photo=photo, watermark=None if worst_case else "样例")


def _worst_value(kind: FieldType, longest: int, choices: list[str] | None) -> str:
    if kind is FieldType.DATE:
        return "2000-12-31"
    if kind is FieldType.DATE_RANGE:
        return "2000-12-31/2000-12-31"
    if kind is FieldType.NUMBER:
        return "8" * 20
    if kind is FieldType.ENUM:
        return max(choices or [""], key=len)
    return SAMPLE_CHAR * longest


def _sample_value(
    kind: FieldType, label: str, longest: int, choices: list[str] | None, today: dt.date, later: dt.date
) -> str:
    if kind is FieldType.DATE:
        return today.isoformat()
    if kind is FieldType.DATE_RANGE:
        return f"{today.isoformat()}/{later.isoformat()}"
    if kind is FieldType.NUMBER:
        return "100"
    if kind is FieldType.ENUM:
        return (choices or [""])[0]
    return f"示例{label}"[:longest]


def _label_and_value(licence_type: LicenceTypeSpec, placement: FieldPlacement, face: LicenceFace) -> tuple[str, str]:
    if placement.meta is not None:
        return META_FIELDS[placement.meta], face.meta.get(placement.meta, "")
    assert placement.field is not None
    item = licence_type.field(placement.field)
    if item is None:
        raise LayoutError(f"模板放置了不存在的字段 {placement.field}")
    stored = face.values.get(item.key)
    return item.label, item.printed(stored) if stored else ""


def _place_field(placement: FieldPlacement, label: str, value: str, fonts: FontSet) -> list[TextRun]:
    box = placement.box
    runs: list[TextRun] = []
    where = f"字段「{label}」"
    if placement.label_width is not None:
        label_box = Box(x=box.x, y=box.y, w=placement.label_width, h=box.h)
        label_style = placement.model_copy(update={"font": "sans", "align": "left", "min_font_size": None})
        label_runs = _fit(label, label_box, label_style, fonts, wrap=False, where=f"{where}标签")
        box = Box(x=box.x + placement.label_width, y=box.y, w=box.w - placement.label_width, h=box.h)
        # Labels sit on the first line of the value, whatever the value's height.
        runs += label_runs
    if value:
        value_runs = _fit(value, box, placement, fonts, wrap=placement.wrap, where=where)
        if runs and value_runs:
            shift = value_runs[0].baseline - runs[0].baseline
            runs = [_moved(run, shift) for run in runs]
        runs += value_runs
    return runs


def _moved(run: TextRun, down: float) -> TextRun:
    return TextRun(run.text, run.x, run.baseline + down, run.size, run.font, run.colour, run.advances)


# Laid-out text by what _fit_text reads: the text, the box, the style's values, the font and wrap.
# The template's fixed texts and labels, and values many licences share (dates, issuer,
# categories), are laid out once per process instead of once per licence (issue 24). The key holds
# plain values, not the pydantic models (comparing those costs more than the layout saves); a
# style attribute that _fit_text or _position starts reading must join `_style_key`. Keys hold
# their font, so an id is never reused.
_FITS: dict[tuple[object, ...], tuple[TextRun, ...]] = {}
_FITS_KEPT = 4096


def _style_key(style: StaticText | FieldPlacement | BlockStyle) -> tuple[object, ...]:
    return (
        isinstance(style, FieldPlacement),
        style.font_size,
        getattr(style, "min_font_size", None),
        getattr(style, "letter_spacing", 0.0),
        getattr(style, "line_spacing", 1.35),
        style.align,
        style.colour,
    )


def _fit(
    text: str, box: Box, style: StaticText | FieldPlacement | BlockStyle, fonts: FontSet, wrap: bool, where: str
) -> list[TextRun]:
    font = fonts.get(style.font)
    key = (text, box.x, box.y, box.w, box.h, _style_key(style), font, wrap)
    runs = _FITS.get(key)
    if runs is None:
        runs = tuple(_fit_text(text, box, style, font, wrap, where))
        if len(_FITS) >= _FITS_KEPT:
            _FITS.clear()  # a bound, not an eviction policy
        _FITS[key] = runs
    return list(runs)


def _fit_text(
    text: str, box: Box, style: StaticText | FieldPlacement | BlockStyle, font: Font, wrap: bool, where: str
) -> list[TextRun]:
    font.check(text, where)
    spacing = getattr(style, "letter_spacing", 0.0)
    line_spacing = getattr(style, "line_spacing", 1.35)
    smallest = getattr(style, "min_font_size", None) or (
        max(6.0, style.font_size * 0.75) if isinstance(style, FieldPlacement) else style.font_size
    )
    size = style.font_size
    while True:
        lines = _break_lines(text, font, size * PT_MM, spacing, box.w if wrap else None)
        block = _block_height(len(lines), size * PT_MM, line_spacing, font)
        widest = max((_line_width(line, font, size * PT_MM, spacing) for line in lines), default=0.0)
        fits_across = widest <= box.w + 1e-6 or (wrap and _only_hanging_overflow(lines, font, size, box))
        if block <= box.h + 1e-6 and fits_across:
            return _position(lines, box, style, font, size, spacing, line_spacing)
        if size - 0.5 < smallest - 1e-9:
            raise LayoutError(
                f"{where}内容过长：字号缩小到 {smallest:g} 磅仍放不下（{len(text)} 字，框 {box.w:g}×{box.h:g} mm）"
            )
        size -= 0.5


def _only_hanging_overflow(lines: list[str], font: Font, size: float, box: Box) -> bool:
    return all(_line_width(line.rstrip("".join(HANGING)), font, size * PT_MM, 0) <= box.w + 1e-6 for line in lines)


def _block_height(count: int, size_mm: float, line_spacing: float, font: Font) -> float:
    return size_mm * (font.ascent + font.descent) + (count - 1) * size_mm * line_spacing


def _line_width(line: str, font: Font, size_mm: float, spacing: float) -> float:
    return font.width(line) * size_mm + spacing * max(len(line) - 1, 0)


def _break_lines(text: str, font: Font, size_mm: float, spacing: float, width: float | None) -> list[str]:
    """Greedy line breaking: any CJK character may start a line, Latin words and numbers stay whole
    unless longer than the line, closing punctuation hangs rather than starting a line."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        if width is None:
            lines.append(paragraph)
            continue
        current, current_em = "", 0.0  # the line so far and its width in em, kept as it grows
        for token in _tokens(paragraph):
            token_em = font.width(token)
            length = len(current) + len(token)
            fits = (current_em + token_em) * size_mm + spacing * max(length - 1, 0) <= width + 1e-6
            if fits or not current.strip() or token in HANGING:
                current, current_em = current + token, current_em + token_em
            elif token.isspace():
                lines.append(current.rstrip())
                current, current_em = "", 0.0
            else:
                lines.append(current.rstrip())
                current, current_em = token, token_em
            # A single token wider than the line (a long number) is split by characters.
            # (Closing punctuation that hangs past the edge is no reason to split.)
            while _line_width(current.rstrip(HANGING_TEXT), font, size_mm, spacing) > width + 1e-6 and len(current) > 1:
                cut = len(current) - 1
                while cut > 1 and _line_width(current[:cut], font, size_mm, spacing) > width + 1e-6:
                    cut -= 1
                lines.append(current[:cut])
                current = current[cut:]
                current_em = font.width(current)
        lines.append(current.rstrip())
    return lines


def _tokens(paragraph: str) -> list[str]:
    """The pieces a line may break between: a Latin word or number, a space, one CJK character;
    a number with its unit and a short parenthesis are one piece (templates.units)."""
    tokens: list[str] = []
    at = 0
    for start, end in unbreakable_spans(paragraph):
        tokens += WORD.findall(paragraph[at:start])
        tokens.append(paragraph[start:end])
        at = end
    return tokens + WORD.findall(paragraph[at:])


def _position(
    lines: list[str],
    box: Box,
    style: StaticText | FieldPlacement | BlockStyle,
    font: Font,
    size: float,
    spacing: float,
    line_spacing: float,
) -> list[TextRun]:
    size_mm = size * PT_MM
    # One line is centred vertically; several start from the top of the box.
    top = box.y + (box.h - _block_height(1, size_mm, line_spacing, font)) / 2 if len(lines) == 1 else box.y
    colour = colour_rgb(style.colour)
    runs = []
    for index, line in enumerate(lines):
        if not line:
            continue
        advances = tuple(font.advance(c) * size_mm + spacing for c in line)
        advances = (*advances[:-1], advances[-1] - spacing)
        width = sum(advances)
        if style.align == "center":
            x = box.x + (box.w - width) / 2
        elif style.align == "right":
            x = box.right - width
        else:
            x = box.x
        baseline = top + font.ascent * size_mm + index * size_mm * line_spacing
        runs.append(TextRun(line, x, baseline, size, style.font, colour, advances))
    return runs


def _fit_picture(box: Box, picture: Picture) -> Box:
    """The largest box of the picture's aspect ratio, centred in `box`."""
    ratio = picture.width / picture.height
    if box.w / box.h > ratio:
        w, h = box.h * ratio, box.h
    else:
        w, h = box.w, box.w / ratio
    return Box(x=box.x + (box.w - w) / 2, y=box.y + (box.h - h) / 2, w=w, h=h)


def annotate(layout: PageLayout, text: str, fonts: FontSet, colour: str = "#C00000") -> PageLayout:
    """`layout` with `text` across the top margin (加注: who may use this copy, for what, until
    when), shrunk to fit one line of the page width less 10 mm each side."""
    font = fonts.get("sans")
    width = layout.width - 20
    size = max(6.0, min(10.0, width / max(font.width(text) * PT_MM, 1e-6) - 0.1))
    box = Box(x=10, y=2, w=width, h=size * PT_MM * 1.6)
    style = StaticText(text=text, box=box, font_size=size, font="sans", align="center", colour=colour)
    runs = _fit(text, box, style, fonts, wrap=False, where="加注文字")
    return replace(layout, runs=(*layout.runs, *runs))


def _watermark(text: str, width: float, height: float, fonts: FontSet) -> list[TextRun]:
    box = Box(x=0, y=height * 0.3, w=width, h=height * 0.4)
    size = min(96.0, height * 0.4 / PT_MM)
    style = StaticText(
        text=text, box=box, font_size=size, font="sans", align="center", colour="#F2C4C4", letter_spacing=size * PT_MM
    )
    return _fit(text, box, style, fonts, wrap=False, where="水印")
