"""Uploaded pictures: only real PNG/JPEG within limits get in, normalised to RGB JPEG."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from templates.backgrounds import BACKGROUND_DPI, prepare_background
from templates.errors import ImageError, SpecError
from templates.images import MAX_UPLOAD_BYTES, Picture, load_picture
from templates.layout_spec import TemplateSpec
from templates.spec import parse_model
from tests.templates.template_examples import example_data


def encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a size; no pixel data needs to exist to make a bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def test_png_with_transparency_becomes_rgb_jpeg_on_white() -> None:
    image = Image.new("RGBA", (40, 30), (255, 0, 0, 0))
    picture = load_picture(encoded(image, "PNG"), "照片", max_side=100)
    assert picture.data[:3] == b"\xff\xd8\xff"
    with Image.open(io.BytesIO(picture.data)) as decoded:
        assert decoded.mode == "RGB" and decoded.size == (40, 30)
        assert all(c > 245 for c in decoded.getpixel((20, 15)))
    assert Picture.from_jpeg(picture.data) == picture


def test_large_pictures_are_scaled_down() -> None:
    picture = load_picture(encoded(Image.new("RGB", (3000, 1000), "white"), "JPEG"), "底图", max_side=600)
    assert (picture.width, picture.height) == (600, 200)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "空文件"),
        (b"not an image at all", "不是可识别的"),
        (b"%PDF-1.7\n", "不是可识别的"),
        (encoded(Image.new("RGB", (10, 10)), "GIF"), "仅支持 PNG 或 JPEG"),
        (encoded(Image.new("RGB", (200, 200), "blue"), "JPEG")[:300], "已损坏"),
        (png_header_only(20000, 20000), "像素过多"),
        (b"\x00" * (MAX_UPLOAD_BYTES + 1), "文件过大"),
    ],
    ids=["empty", "text", "pdf", "gif", "truncated", "bomb", "too-large"],
)
def test_bad_pictures_are_refused_with_reason(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        load_picture(data, "底图", max_side=1000)


def template_with_image(name: str = "base.jpg") -> TemplateSpec:
    data = example_data("food-business-licence")["template"]
    data["background"] = {"image": name}
    return parse_model(TemplateSpec, data)


def test_uploaded_background_is_fitted_to_the_page() -> None:
    upload = encoded(Image.new("RGB", (2970, 2100), (250, 240, 230)), "JPEG")
    picture = prepare_background(template_with_image(), {"base.jpg": upload})
    assert picture.width == round(297 / 25.4 * BACKGROUND_DPI)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ({}, "没有随模板上传"),
        ({"base.jpg": encoded(Image.new("RGB", (2000, 2000)), "JPEG")}, "宽高比"),
        ({"base.jpg": encoded(Image.new("RGB", (297, 210)), "JPEG")}, "分辨率太低"),
    ],
)
def test_background_problems(images: dict[str, bytes], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        prepare_background(template_with_image(), images)


def test_generated_designs_are_deterministic() -> None:
    template = parse_model(TemplateSpec, example_data("food-business-licence")["template"])
    first = prepare_background(template, {})
    assert first == prepare_background(template, {})
    assert (first.width, first.height) == (round(297 / 25.4 * BACKGROUND_DPI), round(210 / 25.4 * BACKGROUND_DPI))
