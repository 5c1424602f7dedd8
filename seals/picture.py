"""Seal pictures (印模): the red round official seal drawn from a department's name, and uploaded
seal pictures checked before they go into an SES_Seal (GB/T 38540 SES_ESPictrueInfo).

The drawn seal follows the layout of Chinese official seals (国务院《国家行政机关和企业事业单位
社会团体印章管理的规定》: round, a five-pointed star in the centre, the organisation's name along
the upper arc from left to right, in simplified characters; a special-purpose seal (专用章) adds its
purpose on a straight line below the star). Everything is drawn as one coverage mask at three times
the output resolution and reduced with an area filter, so edges are smooth; the ink colour is a
flat red and the background is transparent, so the picture can sit on any document.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageChops, ImageDraw, ImageFont, UnidentifiedImageError

from seals.errors import PictureError
from templates.errors import TemplateError
from templates.fonts import FontSet

__all__ = [
    "MAX_UPLOAD_BYTES",
    "PictureFingerprint",
    "decode_seal_picture",
    "generate_round_seal",
    "load_seal_picture",
    "picture_fingerprint",
]

SEAL_RED = (230, 0, 0)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_DIAMETER_MM = 20.0
MAX_DIAMETER_MM = 80.0
MAX_NAME_CHARS = 32
MAX_PURPOSE_CHARS = 14
SUPERSAMPLE = 3

# Uploaded pictures: a seal picture is small; anything bigger is refused before it is decoded.
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
MAX_SIDE_PX = 2048
MIN_SIDE_PX = 32

# Proportions of the diameter D, after 42 mm seals of state organs (边宽 about 1.2 mm, star about
# 14 mm across, name characters about 6.5 mm high).
RING_WIDTH = 0.029
EDGE_MARGIN = 0.006  # keeps the anti-aliased ring inside the picture
NAME_GAP = 0.022  # between the ring and the top of the name characters
NAME_HEIGHT = 0.145
NAME_MIN_ASPECT = 0.5  # the narrowest name character, width / height
NAME_MAX_ASPECT = 0.95
NAME_SPACING = 0.72  # a character's width as a share of its arc step, at its feet
NAME_MAX_SPAN = 290.0
NAME_MAX_SPAN_WITH_PURPOSE = 235.0
STAR_RADIUS = 0.165
PURPOSE_HEIGHT = 0.085
PURPOSE_CENTRE = 0.295  # below the centre
STROKE = 0.024  # extra stroke weight for the name and purpose, relative to the character height


def generate_round_seal(
    name: str,
    purpose: str | None,
    diameter_mm: float = 42,
    *,
    px_per_mm: int = 12,
    color: tuple[int, int, int] = SEAL_RED,
    font: str = "serif",
    fonts: FontSet | None = None,
) -> bytes:
    """The round red official seal of `name` (e.g. 测试市市场监督管理局) as a PNG with transparency.

    `purpose` (e.g. 电子证照专用章) is written on a straight line below the star; None for a plain
    official seal (公章). `px_per_mm` is the output resolution (12 ≈ 300 dpi), `font` the packaged
    font role (serif ≈ 宋体, the face official seals use; sans ≈ 黑体).
    """
    name = _clean(name, "印章名称", MAX_NAME_CHARS)
    purpose = _clean(purpose, "印章用途", MAX_PURPOSE_CHARS) if purpose is not None else None
    if not isinstance(diameter_mm, int | float) or not MIN_DIAMETER_MM <= diameter_mm <= MAX_DIAMETER_MM:
        raise PictureError(f"印章直径须在 {MIN_DIAMETER_MM:g}–{MAX_DIAMETER_MM:g} 毫米之间，收到 {diameter_mm!r}")
    if not 4 <= px_per_mm <= 40:
        raise PictureError(f"印章分辨率须在 4–40 像素/毫米之间，收到 {px_per_mm!r}")
    try:
        font_file = (fonts or FontSet.default()).get(font)
        font_file.check(name + (purpose or ""), "印章文字")
    except TemplateError as exc:
        raise PictureError(str(exc)) from None

    scale = px_per_mm * SUPERSAMPLE  # pixels per mm while drawing
    size = round(diameter_mm * px_per_mm) * SUPERSAMPLE
    mask = Image.new("L", (size, size), 0)
    centre = size / 2
    d = diameter_mm * scale
    font_path = str(font_file.path)

    _draw_ring(mask, centre, d)
    _draw_star(mask, centre, centre, STAR_RADIUS * d)
    _draw_name(mask, name, centre, d, font_path, has_purpose=bool(purpose))
    if purpose:
        _draw_purpose(mask, purpose, centre, d, font_path)

    mask = mask.reduce(SUPERSAMPLE)  # area average: the anti-aliasing
    picture = Image.new("RGBA", mask.size, (*color, 0))
    picture.putalpha(mask)
    out = io.BytesIO()
    dpi = px_per_mm * 25.4
    picture.save(out, "PNG", optimize=True, dpi=(dpi, dpi))
    return out.getvalue()


def _clean(text: str | None, what: str, limit: int) -> str:
    if not isinstance(text, str):
        raise PictureError(f"{what}必须是文字")
    text = "".join(text.split())  # seals carry no spaces
    if not text:
        raise PictureError(f"{what}不能为空")
    if len(text) > limit:
        raise PictureError(f"{what}过长：{len(text)} 个字，上限 {limit} 个字")
    return text


def _draw_ring(mask: Image.Image, centre: float, d: float) -> None:
    outer = d / 2 - EDGE_MARGIN * d
    width = max(1, round(RING_WIDTH * d))
    ImageDraw.Draw(mask).ellipse(
        (centre - outer, centre - outer, centre + outer, centre + outer), outline=255, width=width
    )


def _draw_star(mask: Image.Image, cx: float, cy: float, radius: float) -> None:
    # A regular five-pointed star, one point up: inner radius = R · sin 18° / sin 126°.
    inner = radius * math.sin(math.radians(18)) / math.sin(math.radians(126))
    points = []
    for k in range(10):
        r = radius if k % 2 == 0 else inner
        angle = math.radians(-90 + 36 * k)
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    ImageDraw.Draw(mask).polygon(points, fill=255)


@lru_cache(maxsize=16)
def _font(path: str, size_px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size_px)


def _glyph(char: str, font_path: str, height_px: float, width_px: float) -> Image.Image:
    """One character on a coverage tile: an em of `height_px`, condensed to `width_px` wide as
    seal lettering is. The whole em is scaled, not the inked part, so 一 stays a thin stroke."""
    size = max(8, round(height_px))
    stroke = max(1, round(STROKE * size))
    pad = 2 * stroke
    tile = Image.new("L", (size + 2 * pad, size + 2 * pad), 0)
    # anchor "mm": the middle of the em box, which for a CJK face is the middle of the glyph.
    ImageDraw.Draw(tile).text(
        (tile.width / 2, tile.height / 2),
        char,
        font=_font(font_path, size),
        fill=255,
        anchor="mm",
        stroke_width=stroke,
        stroke_fill=255,
    )
    condensed = max(1, round(tile.width * width_px / height_px))
    return tile.resize((condensed, tile.height), Image.Resampling.LANCZOS)


def _stamp(mask: Image.Image, tile: Image.Image, cx: float, cy: float) -> None:
    """Add `tile`'s coverage to `mask`, centred on (cx, cy)."""
    left, top = round(cx - tile.width / 2), round(cy - tile.height / 2)
    box = (left, top, left + tile.width, top + tile.height)
    mask.paste(ImageChops.lighter(mask.crop(box), tile), box)


def _draw_name(mask: Image.Image, name: str, centre: float, d: float, font_path: str, *, has_purpose: bool) -> None:
    n = len(name)
    inner = d / 2 - EDGE_MARGIN * d - RING_WIDTH * d
    height = NAME_HEIGHT * d
    # The name spans more of the circle the longer it is: about 100° for three characters, 235° for
    # ten; at most 235° when a purpose line sits between its ends, 290° on a plain official seal.
    limit = NAME_MAX_SPAN_WITH_PURPOSE if has_purpose else NAME_MAX_SPAN
    span = math.radians(min(limit, 24.0 * n + 24.0)) if n > 1 else 0.0
    step = span / (n - 1) if n > 1 else 0.0
    for _ in range(12):  # condense, then shrink, the characters until neighbours do not touch
        radius = inner - NAME_GAP * d - height / 2
        # Measured at the characters' feet, where the arc is shortest.
        room = NAME_SPACING * step * (radius - height / 2) if n > 1 else height
        width = min(NAME_MAX_ASPECT * height, room)
        if width >= NAME_MIN_ASPECT * height:
            break
        height *= 0.92
    for i, char in enumerate(name):
        theta = -span / 2 + i * step  # clockwise from the top
        tile = _glyph(char, font_path, height, width)
        # The character's top points away from the centre.
        tile = tile.rotate(-math.degrees(theta), resample=Image.Resampling.BICUBIC, expand=True)
        _stamp(mask, tile, centre + radius * math.sin(theta), centre - radius * math.cos(theta))


def _draw_purpose(mask: Image.Image, purpose: str, centre: float, d: float, font_path: str) -> None:
    height = PURPOSE_HEIGHT * d
    cy = centre + PURPOSE_CENTRE * d
    inner = d / 2 - EDGE_MARGIN * d - RING_WIDTH * d
    # The line must stay inside the ring at its lower edge, with a margin of one stroke.
    half_chord = math.sqrt(max(0.0, inner**2 - (cy - centre + height / 2) ** 2))
    available = 2 * (half_chord - 0.05 * d)
    pitch = min(height * 0.95, available / len(purpose))
    width = pitch * 0.9
    x = centre - pitch * (len(purpose) - 1) / 2
    for char in purpose:
        _stamp(mask, _glyph(char, font_path, height, width), x, cy)
        x += pitch


def load_seal_picture(data: bytes) -> tuple[bytes, int, int]:
    """Check an uploaded seal picture and return it as a clean RGBA PNG with its size in pixels.

    Only PNG is accepted (it carries transparency). A picture without an alpha channel (a scan on
    white paper) gets one: white becomes transparent, ink stays opaque (alpha = 255 − the darkest
    channel), so the seal does not cover the text under it. Ancillary chunks are dropped.
    """
    if not isinstance(data, bytes | bytearray):
        raise PictureError("印章图片必须是 PNG 文件内容")
    if len(data) > MAX_UPLOAD_BYTES:
        raise PictureError(f"印章图片过大：{len(data) / 1048576:.1f} MB，上限 {MAX_UPLOAD_BYTES // 1048576} MB")
    if not data.startswith(PNG_SIGNATURE):
        raise PictureError("印章图片不是 PNG 文件")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(bytes(data)), formats=["PNG"])
            # The header gives the size: refuse large pictures before decoding a single pixel.
            if max(image.size) > MAX_SIDE_PX or min(image.size) < MIN_SIDE_PX:
                raise PictureError(
                    f"印章图片尺寸 {image.width}×{image.height} 像素不合适，"
                    f"边长须在 {MIN_SIDE_PX}–{MAX_SIDE_PX} 像素之间"
                )
            image.load()
    except PictureError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PictureError("印章图片不是可识别的 PNG 图片，或像素过多") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise PictureError(f"印章图片已损坏，无法解码（{exc}）") from None

    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    rgba = image.convert("RGBA")
    if not has_alpha:
        darkest = ImageChops.darker(ImageChops.darker(rgba.getchannel("R"), rgba.getchannel("G")), rgba.getchannel("B"))
        rgba.putalpha(ImageChops.invert(darkest))
    if rgba.getchannel("A").getbbox() is None:
        raise PictureError("印章图片是全透明（或全白）的，没有印章内容")
    out = io.BytesIO()
    rgba.save(out, "PNG", optimize=True)
    return out.getvalue(), rgba.width, rgba.height


def decode_seal_picture(png: bytes) -> Image.Image:
    """A registered seal picture (as `load_seal_picture` stored it) decoded to RGBA for drawing; its
    size is checked from the header first, so a hostile file is refused before any pixel is read."""
    width, height = png_size(png)
    if not (MIN_SIDE_PX <= width <= MAX_SIDE_PX and MIN_SIDE_PX <= height <= MAX_SIDE_PX):
        raise PictureError(f"印章图片尺寸 {width}×{height} 像素不合适")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(png), formats=["PNG"])
            image.load()
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
    ):
        raise PictureError("印章图片无法解码") from None
    return image.convert("RGBA")


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR, without decoding it."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise PictureError("印章图片不是 PNG 文件")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# --- resemblance (印模比对) ------------------------------------------------------------------------
#
# A department may only file its own seal picture. Two pictures "resemble" when one is the other
# re-saved, moved, scaled or lightly recompressed. Both hashes look at the ink only (alpha times
# darkness, so a copy on an opaque white background is the same ink), cropped to its bounding box
# (moving the seal on the canvas changes nothing) and scaled to a fixed grid (nor does its size).
#
# - `coarse`: a 64-bit dHash (9×8 grid, one bit per horizontal gradient). Cheap to compare; every
#   copy we made lies within 3 bits, so candidates are pictures within COARSE_DISTANCE. It cannot
#   decide alone: generated seals share ring, star and purpose line, and two departments whose
#   names differ in a few characters (公安局, 司法局) have the same 64 bits.
# - `mask`: the ink on an 80×80 grid, one bit per cell. A copy differs from its original only
#   along edges, spread thinly over the whole picture; another department's seal differs where
#   its name differs, in a block. So the distance is the largest Hamming distance inside any
#   10×10 window. Measured (tests/seals/test_picture_fingerprint.py keeps the evidence): copies
#   re-saved on white, shifted, scaled 0.5–1.2× or saved as JPEG (quality 70) differ in at most 11
#   cells of a window; generated seals of 40 departments (pairs differing in one character of
#   their names included) in at least 31. A picture resembles another at LOCAL_DISTANCE (20) or less.
#   Not caught: a copy rotated by a degree or more, or with a part cut away; the administrator who
#   approves the filing sees the picture.
FINGERPRINT_VERSION = "v1"
COARSE_DISTANCE = 12
LOCAL_DISTANCE = 20
_MASK_SIDE = 80
_MASK_INK = 96  # a cell is ink when its mean coverage is over 96/255
_WINDOW = 10
_BOX_INK = 64  # what counts as ink when finding the bounding box


@dataclass(frozen=True)
class PictureFingerprint:
    """The perceptual hashes of a seal picture's ink (see above)."""

    coarse: int  # 64 bits
    mask: int  # _MASK_SIDE² bits, row by row from the top-left

    def to_text(self) -> str:
        """`v1:<16 hex digits>:<base64 of the mask>`, as stored beside a seal."""
        mask = self.mask.to_bytes(_MASK_SIDE * _MASK_SIDE // 8, "big")
        return f"{FINGERPRINT_VERSION}:{self.coarse:016x}:{base64.b64encode(mask).decode()}"

    @classmethod
    def from_text(cls, text: str) -> PictureFingerprint | None:
        """None for another version or a damaged value: the caller computes it again."""
        try:
            version, coarse, mask = text.split(":")
            if version != FINGERPRINT_VERSION or len(coarse) != 16:
                return None
            data = base64.b64decode(mask, validate=True)
        except (ValueError, binascii.Error):
            return None
        if len(data) != _MASK_SIDE * _MASK_SIDE // 8:
            return None
        return cls(int(coarse, 16), int.from_bytes(data, "big"))

    def coarse_distance(self, other: PictureFingerprint) -> int:
        return (self.coarse ^ other.coarse).bit_count()

    def local_distance(self, other: PictureFingerprint) -> int:
        """The largest number of differing mask cells inside any _WINDOW×_WINDOW window."""
        diff = self.mask ^ other.mask
        if not diff:
            return 0
        row_mask = (1 << _MASK_SIDE) - 1
        window_mask = (1 << _WINDOW) - 1
        span = _MASK_SIDE - _WINDOW + 1
        # Per row, the differing cells in each run of _WINDOW columns; then sliding sums down.
        runs = []
        for y in range(_MASK_SIDE):
            row = (diff >> (_MASK_SIDE * (_MASK_SIDE - 1 - y))) & row_mask
            runs.append([((row >> x) & window_mask).bit_count() for x in range(span)] if row else [0] * span)
        best = 0
        for x in range(span):
            total = sum(runs[y][x] for y in range(_WINDOW))
            best = max(best, total)
            for y in range(_WINDOW, _MASK_SIDE):
                total += runs[y][x] - runs[y - _WINDOW][x]
                best = max(best, total)
        return best

    def resembles(self, other: PictureFingerprint) -> bool:
        return (
            self.coarse_distance(other) <= COARSE_DISTANCE and self.local_distance(other) <= LOCAL_DISTANCE
        )


def picture_fingerprint(png: bytes) -> PictureFingerprint:
    """The fingerprint of a seal picture (PNG; PictureError if it cannot be read)."""
    image = decode_seal_picture(png)
    darkest = ImageChops.darker(ImageChops.darker(image.getchannel("R"), image.getchannel("G")), image.getchannel("B"))
    ink = ImageChops.multiply(image.getchannel("A"), ImageChops.invert(darkest))
    box = ink.point(lambda v: 255 if v > _BOX_INK else 0).getbbox()
    if box is None:
        raise PictureError("印章图片没有印章内容（全透明或全白）")
    ink = ink.crop(box)
    gradient = ink.resize((9, 8), Image.Resampling.BOX).tobytes()  # one byte a cell ('L')
    coarse = 0
    for y in range(8):
        for x in range(8):
            coarse = coarse << 1 | (gradient[y * 9 + x + 1] > gradient[y * 9 + x])
    mask = 0
    for value in ink.resize((_MASK_SIDE, _MASK_SIDE), Image.Resampling.BOX).tobytes():
        mask = mask << 1 | (value > _MASK_INK)
    return PictureFingerprint(coarse, mask)
