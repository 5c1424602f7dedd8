"""The one entry point for turning a licence type + template + face data into files.

    fonts = FontSet.default()                          # resolves the CJK fonts once per process
    background = prepare_background(template, images)  # JPEG bytes, stored with the template version
    check_fits(licence_type, template, fonts)          # worst-case values must fit their boxes
    face = LicenceFace(values=..., meta=..., photo=..., qr_url=...)
    layout = build_layout(licence_type, template, background, face, fonts)
    render_pdf(layout, fonts) / render_ofd(layout, fonts) / render_png(layout, fonts, dpi)
"""

from __future__ import annotations

from templates.backgrounds import prepare_background
from templates.fonts import FontSet
from templates.layout import LicenceFace, PageLayout, build_layout, check_fits, sample_face
from templates.ofd import render_ofd
from templates.pdf import render_pdf
from templates.png import PHONE_WIDTH_PX, PRINT_DPI, phone_dpi, render_png

__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "PHONE_WIDTH_PX",
    "PRINT_DPI",
    "FontSet",
    "LicenceFace",
    "PageLayout",
    "build_layout",
    "check_fits",
    "phone_dpi",
    "prepare_background",
    "render",
    "render_ofd",
    "render_pdf",
    "render_png",
    "sample_face",
]

FORMATS = ("pdf", "ofd", "png")
MEDIA_TYPES = {"pdf": "application/pdf", "ofd": "application/ofd", "png": "image/png"}


def render(layout: PageLayout, fonts: FontSet, fmt: str) -> bytes:
    """Render `layout` as pdf, ofd or png (phone resolution)."""
    if fmt == "pdf":
        return render_pdf(layout, fonts)
    if fmt == "ofd":
        return render_ofd(layout, fonts)
    if fmt == "png":
        return render_png(layout, fonts, dpi=phone_dpi(layout.width))
    raise ValueError(f"不支持的格式 {fmt!r}，可选：{'、'.join(FORMATS)}")
