"""PNG renderer: the layout drawn with Pillow (FreeType) at phone or print resolution."""

from __future__ import annotations

import functools
import hashlib
import io
import threading
from collections import OrderedDict

from PIL import Image, ImageDraw, ImageFont

from templates.fonts import FontSet
from templates.layout import PageLayout
from templates.layout_spec import Box

__all__ = ["png_bytes", "render_image"]

PHONE_WIDTH_PX = 1242  # a phone screen's width, in landscape or portrait
PRINT_DPI = 300


def phone_dpi(width_mm: float) -> float:
    return PHONE_WIDTH_PX / (width_mm / 25.4)


def render_png(layout: PageLayout, fonts: FontSet, dpi: float = PRINT_DPI) -> bytes:
    return png_bytes(render_image(layout, fonts, dpi))


def render_image(layout: PageLayout, fonts: FontSet, dpi: float) -> Image.Image:
    px = dpi / 25.4  # pixels per mm
    size = (round(layout.width * px), round(layout.height * px))
    if layout.background is not None:
        page = _background(layout.background.data, size).copy()
    else:
        page = Image.new("RGB", size, (255, 255, 255))
    for placed in layout.images:
        with Image.open(io.BytesIO(placed.picture.data)) as picture:
            left, top, right, bottom = _pixels(placed.box, px)
            resized = picture.convert("RGB").resize((right - left + 1, bottom - top + 1), Image.Resampling.LANCZOS)
            page.paste(resized, (left, top))
    draw = ImageDraw.Draw(page)
    for run in layout.runs:
        font = _font(str(fonts.get(run.font).path), round(run.size_mm * px * 4) / 4)
        # Each glyph at the x the layout chose, so PNG, PDF and OFD agree to the pixel.
        x = run.x
        for char, advance in zip(run.text, run.advances, strict=True):
            if not char.isspace():
                draw.text((x * px, run.baseline * px), char, font=font, fill=run.colour, anchor="ls")
            x += advance
    qr_box = _pixels(layout.qr.box, px)
    draw.rectangle(qr_box, fill=(255, 255, 255))
    for x, y, w, h in layout.qr.dark_rectangles():
        draw.rectangle(_pixels(Box(x=x, y=y, w=w, h=h), px), fill=(0, 0, 0))
    return page


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", optimize=False, compress_level=6)
    return out.getvalue()


def _pixels(box: Box, px: float) -> tuple[int, int, int, int]:
    # Shared edges round the same way, so adjacent QR modules leave no hairline gaps.
    return round(box.x * px), round(box.y * px), round(box.right * px) - 1, round(box.bottom * px) - 1


_BACKGROUNDS: OrderedDict[tuple[bytes, tuple[int, int]], Image.Image] = OrderedDict()
_BACKGROUNDS_LOCK = threading.Lock()
MAX_BACKGROUNDS = 8  # a type's background at one size: 6.5 MB at phone size, 26 MB for A4 at 300 dpi


def _background(data: bytes, size: tuple[int, int]) -> Image.Image:
    """The background decoded and scaled to the page, kept for the next licence of the type: the
    decoding and LANCZOS scaling were a third of a licence picture's rendering. Callers copy it."""
    key = (hashlib.sha256(data).digest(), size)
    with _BACKGROUNDS_LOCK:
        found = _BACKGROUNDS.get(key)
        if found is not None:
            _BACKGROUNDS.move_to_end(key)
            return found
    with Image.open(io.BytesIO(data)) as background:
        made = background.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    with _BACKGROUNDS_LOCK:
        _BACKGROUNDS[key] = made
        while len(_BACKGROUNDS) > MAX_BACKGROUNDS:
            _BACKGROUNDS.popitem(last=False)
    return made


@functools.lru_cache(maxsize=64)
def _font(path: str, size_px: float) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size=size_px)
