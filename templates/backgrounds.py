"""Base images (底图): an uploaded picture, or a built-in generated design in the style of printed
licences (tinted paper, guilloche rosette and bands, double border). No state emblem: that is
not ours to draw."""

from __future__ import annotations

import math
from collections.abc import Mapping

from PIL import Image, ImageDraw

from templates.errors import SpecError
from templates.images import Picture, load_picture, to_picture
from templates.layout_spec import TemplateSpec

BACKGROUND_DPI = 150  # enough for print-quality guilloche at licence sizes, small enough to embed
SUPERSAMPLE = 2  # draw at 2× and downsample: anti-aliased hairlines

# paper, pattern, border
PALETTES: Mapping[str, tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]] = {
    "green": ((246, 250, 242), (196, 222, 186), (74, 128, 78)),
    "blue": ((243, 247, 252), (190, 210, 234), (48, 92, 150)),
    "red": ((252, 246, 242), (236, 200, 190), (160, 52, 44)),
    "gold": ((252, 249, 238), (232, 214, 166), (150, 112, 40)),
}


def prepare_background(template: TemplateSpec, images: Mapping[str, bytes]) -> Picture:
    """The template's base image as a JPEG covering the page at BACKGROUND_DPI."""
    width, height = template.page.dimensions
    size = (round(width / 25.4 * BACKGROUND_DPI), round(height / 25.4 * BACKGROUND_DPI))
    if template.background.design is not None:
        return generate_design(template.background.design, width, height)
    name = template.background.image
    assert name is not None
    if name not in images:
        raise SpecError([f"background.image 指向的底图文件 {name} 没有随模板上传"])
    picture = load_picture(images[name], f"底图 {name} ", max_side=max(size))
    ratio = picture.width / picture.height
    if abs(ratio - width / height) > 0.03 * (width / height):
        raise SpecError(
            [f"底图 {name} 的宽高比 {ratio:.3f} 与页面 {width:g}×{height:g} mm（{width / height:.3f}）不符，"
             "会被拉伸变形"]
        )
    if picture.width < size[0] // 2:
        raise SpecError([f"底图 {name} 分辨率太低：{picture.width} 像素宽，至少需要 {size[0] // 2} 像素"])
    return picture


def generate_design(design: str, width_mm: float, height_mm: float) -> Picture:
    paper, pattern, border = PALETTES[design]
    scale = BACKGROUND_DPI / 25.4 * SUPERSAMPLE  # pixels per mm on the drawing canvas
    size = (round(width_mm * scale), round(height_mm * scale))
    image = Image.new("RGB", size, paper)
    draw = ImageDraw.Draw(image)
    _bands(draw, size, scale, pattern)
    _rosette(draw, (size[0] / 2, size[1] / 2), min(size) * 0.36, scale, pattern)
    _border(draw, size, scale, border, pattern)
    final = image.resize((round(width_mm / 25.4 * BACKGROUND_DPI), round(height_mm / 25.4 * BACKGROUND_DPI)),
                         Image.Resampling.LANCZOS)
    return to_picture(final, max(final.size))


def _rosette(draw: ImageDraw.ImageDraw, centre: tuple[float, float], radius: float, scale: float,
             colour: tuple[int, int, int]) -> None:
    """Overlaid hypotrochoids, the classic guilloche rosette of banknotes and certificates."""
    cx, cy = centre
    line = max(1, round(0.12 * scale))
    for layer in range(3):
        big, small = 7 + layer * 2, 3 + layer
        offset = radius * (0.35 + 0.12 * layer)
        r_outer = radius * (0.62 - 0.12 * layer)
        points = []
        steps = 2400
        for i in range(steps + 1):
            t = 2 * math.pi * small * i / steps
            k = (big - small) / small
            x = (r_outer * (big - small) / big) * math.cos(t) + offset * math.cos(k * t)
            y = (r_outer * (big - small) / big) * math.sin(t) - offset * math.sin(k * t)
            points.append((cx + x, cy + y))
        draw.line(points, fill=colour, width=line, joint="curve")


def _bands(draw: ImageDraw.ImageDraw, size: tuple[int, int], scale: float, colour: tuple[int, int, int]) -> None:
    """Interlaced sine waves along the top and bottom edges."""
    width, height = size
    line = max(1, round(0.1 * scale))
    amplitude = 2.2 * scale
    for edge in (14 * scale, height - 14 * scale):
        for phase in range(6):
            points = [
                (x, edge + amplitude * math.sin(x / (6 * scale) + phase * math.pi / 3))
                for x in range(round(12 * scale), round(width - 12 * scale), 2)
            ]
            draw.line(points, fill=colour, width=line)


def _border(draw: ImageDraw.ImageDraw, size: tuple[int, int], scale: float, colour: tuple[int, int, int],
            pattern: tuple[int, int, int]) -> None:
    width, height = size
    outer, inner = 6 * scale, 8.5 * scale
    draw.rectangle((outer, outer, width - outer, height - outer), outline=colour, width=round(1.1 * scale))
    draw.rectangle((inner, inner, width - inner, height - inner), outline=colour, width=max(1, round(0.3 * scale)))
    # Corner ornaments: small rosettes just inside each corner of the inner frame.
    gap = 7 * scale
    corners = ((inner + gap, inner + gap), (width - inner - gap, inner + gap),
               (inner + gap, height - inner - gap), (width - inner - gap, height - inner - gap))
    for centre in corners:
        _rosette(draw, centre, 5 * scale, scale, colour)
