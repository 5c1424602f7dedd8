"""PNG rendering: glyphs land where the layout put them, and a QR decoder we did not write reads
the code at phone and at print resolution."""

from __future__ import annotations

import dataclasses
import io
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from templates.fonts import FontSet
from templates.layout import PageLayout, build_layout, sample_face
from templates.png import PHONE_WIDTH_PX, PRINT_DPI, phone_dpi, render_image, render_png
from tests.conftest import require_tool
from tests.templates.template_examples import EXAMPLE_NAMES, example_spec


def example_layout(name: str, fonts: FontSet, with_background: bool = False) -> PageLayout:
    from templates.backgrounds import prepare_background

    spec = example_spec(name)
    assert spec.template is not None
    background = prepare_background(spec.template, {}) if with_background else None
    face = sample_face(spec)
    face = type(face)(face.values, face.meta, face.qr_url, photo=face.photo, watermark=None)
    return build_layout(spec, spec.template, background, face, fonts)


def zbar(png: bytes, tmp_path: Path) -> str:
    path = tmp_path / "code.png"
    path.write_bytes(png)
    result = subprocess.run(
        [require_tool("zbarimg"), "--raw", "-q", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_zbarimg_reads_the_qr_at_phone_resolution(fonts: FontSet, name: str, tmp_path: Path) -> None:
    layout = example_layout(name, fonts, with_background=True)
    png = render_png(layout, fonts, dpi=phone_dpi(layout.width))
    with Image.open(io.BytesIO(png)) as image:
        assert image.width == PHONE_WIDTH_PX
    assert zbar(png, tmp_path) == layout.qr.text


def test_zbarimg_reads_the_qr_at_print_resolution(fonts: FontSet, tmp_path: Path) -> None:
    layout = example_layout("food-business-licence", fonts, with_background=True)
    assert zbar(render_png(layout, fonts, dpi=PRINT_DPI), tmp_path) == layout.qr.text


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_ink_of_every_line_is_where_the_layout_says(fonts: FontSet, name: str) -> None:
    layout = example_layout(name, fonts)
    dpi = 200
    px = dpi / 25.4
    image = render_image(layout, fonts, dpi).convert("L")
    for run in layout.runs:
        # Look just around the run's em box: the ink starts inside the first glyph's advance and
        # ends inside the last one's (punctuation has its ink on one side), give or take 1 mm.
        margin = 0.95
        region = (
            round((run.x - margin) * px),
            round((run.baseline - 0.88 * run.size_mm - 1) * px),
            round((run.x + run.width + margin) * px),
            round((run.baseline + 0.12 * run.size_mm + 0.2) * px),
        )
        ink = Image.eval(image.crop(region), lambda v: 255 if v < 128 else 0).getbbox()
        assert ink is not None, run.text
        left_mm = region[0] / px + ink[0] / px
        right_mm = region[0] / px + ink[2] / px
        end = run.x + run.width
        assert run.x - 1 < left_mm < run.x + run.advances[0], (run.text, left_mm, run.x)
        assert end - run.advances[-1] < right_mm < end + 1, (run.text, right_mm, end)


def test_rendering_is_deterministic(fonts: FontSet) -> None:
    layout = example_layout("vocational-qualification", fonts, with_background=True)
    first = render_image(layout, fonts, 100)
    assert ImageChops.difference(first, render_image(layout, fonts, 100)).getbbox() is None


def test_the_kept_background_is_not_drawn_on(fonts: FontSet) -> None:
    """The scaled background is kept between renders: what one licence draws on its page must not
    show on the next (each render draws on its own copy), and the same layout renders the same."""
    layout = example_layout("food-business-licence", fonts, with_background=True)
    dpi = phone_dpi(layout.width)
    first = render_png(layout, fonts, dpi)
    render_png(dataclasses.replace(layout, runs=layout.runs[:1]), fonts, dpi)  # another page, same background
    assert render_png(layout, fonts, dpi) == first
