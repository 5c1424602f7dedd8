"""Seal pictures (seals.picture): the drawn round seal is a transparent PNG with a red ring, star,
name and purpose where a real seal has them; uploaded pictures are checked and bounded."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from seals.errors import PictureError, SealError
from seals.picture import generate_round_seal, load_seal_picture, png_size

NAME = "测试市市场监督管理局"
PURPOSE = "电子证照专用章"


def _image(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image.convert("RGBA")


def _pixels(image: Image.Image) -> list[tuple[int, int, int, int]]:
    data = image.convert("RGBA").tobytes()
    return [(data[i], data[i + 1], data[i + 2], data[i + 3]) for i in range(0, len(data), 4)]


def _ink(image: Image.Image, box: tuple[float, float, float, float]) -> float:
    """Share of clearly red, opaque pixels in a box given as fractions of the picture."""
    w, h = image.size
    region = image.crop((round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)))
    pixels = _pixels(region)
    red = sum(1 for r, g, b, a in pixels if a > 160 and r > 180 and g < 80 and b < 80)
    return red / len(pixels)


def _alpha(image: Image.Image, x: float, y: float) -> int:
    return image.getpixel((round(x * (image.width - 1)), round(y * (image.height - 1))))[3]


def test_round_seal_looks_like_a_seal(seal_picture: bytes) -> None:
    image = _image(seal_picture)
    assert image.size == (504, 504)  # 42 mm at 12 px/mm
    dpi = Image.open(io.BytesIO(seal_picture)).info["dpi"]
    assert round(dpi[0]) == round(12 * 25.4)
    # Transparent outside the circle and inside it between the shapes.
    for x, y in ((0, 0), (1, 0), (0, 1), (1, 1), (0.5, 0.28), (0.3, 0.55)):
        assert _alpha(image, x, y) == 0, (x, y)
    # The ring: opaque at the four extremes of the circle.
    for x, y in ((0.5, 0.012), (0.5, 0.988), (0.012, 0.5), (0.988, 0.5)):
        assert _alpha(image, x, y) > 200, (x, y)
    # Every opaque pixel is the seal red.
    colours = {(r, g, b) for r, g, b, a in _pixels(image) if a > 0}
    assert colours == {(230, 0, 0)}
    # The star in the centre, a point straight up: solid at the centre and just under the top point.
    assert _ink(image, (0.47, 0.47, 0.53, 0.53)) > 0.95
    assert _alpha(image, 0.5, 0.5 - 0.14) > 200
    assert _alpha(image, 0.5 - 0.14, 0.5 - 0.14) == 0  # between two points
    # The name along the upper arc: ink in the band under the ring, on the top and both sides.
    for band in ((0.4, 0.06, 0.6, 0.2), (0.05, 0.35, 0.2, 0.55), (0.8, 0.35, 0.95, 0.55)):
        assert _ink(image, band) > 0.1, band
    # The purpose on a horizontal line below the star.
    assert _ink(image, (0.25, 0.75, 0.75, 0.83)) > 0.1


def test_purpose_line_only_when_given() -> None:
    with_purpose = _image(generate_round_seal(NAME, PURPOSE))
    plain = _image(generate_round_seal(NAME, None))
    band = (0.3, 0.74, 0.7, 0.84)
    assert _ink(with_purpose, band) > 0.1
    assert _ink(plain, band) < 0.01


def test_name_follows_the_arc_left_to_right() -> None:
    # The name reads clockwise from the lower left (自左而右环行): a dense 国 written first lands
    # at the lower left, written last at the lower right; the ring is the same in both.
    first = _image(generate_round_seal("国一一一一一一一一一", None))
    last = _image(generate_round_seal("一一一一一一一一一国", None))
    lower_left, lower_right = (0.05, 0.6, 0.25, 0.8), (0.75, 0.6, 0.95, 0.8)
    assert _ink(first, lower_left) > _ink(last, lower_left) + 0.05
    assert _ink(last, lower_right) > _ink(first, lower_right) + 0.05


def test_sizes_and_fonts() -> None:
    big = _image(generate_round_seal(NAME, PURPOSE, 58, px_per_mm=10, font="sans"))
    assert big.size == (580, 580)
    # Long names are condensed and still stay inside the ring.
    long_name = "中华人民共和国国家市场监督管理总局行政审批"
    image = _image(generate_round_seal(long_name, PURPOSE))
    assert _alpha(image, 0.5, 0.5) > 200
    assert generate_round_seal(NAME, PURPOSE) == generate_round_seal(NAME, PURPOSE)  # deterministic


@pytest.mark.parametrize(
    ("name", "purpose", "diameter", "message"),
    [
        ("", None, 42, "不能为空"),
        ("   ", None, 42, "不能为空"),
        ("测" * 33, None, 42, "过长"),
        (NAME, "专" * 15, 42, "过长"),
        (NAME, None, 10, "直径"),
        (NAME, None, 100, "直径"),
        ("测试\U0001f600局", None, 42, r"U\+1F600"),
    ],
)
def test_bad_input(name: str, purpose: str | None, diameter: float, message: str) -> None:
    with pytest.raises(PictureError, match=message) as info:
        generate_round_seal(name, purpose, diameter)
    assert isinstance(info.value, ValueError) and isinstance(info.value, SealError)


# --- uploaded pictures ----------------------------------------------------------------------------


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_load_keeps_a_transparent_seal(seal_picture: bytes) -> None:
    png, width, height = load_seal_picture(seal_picture)
    assert (width, height) == (504, 504) == png_size(png)
    assert _image(png).tobytes() == _image(seal_picture).tobytes()


def test_load_makes_white_transparent() -> None:
    scan = Image.new("RGB", (200, 200), (255, 255, 255))
    for x in range(60, 140):
        for y in range(60, 140):
            scan.putpixel((x, y), (220, 10, 10))
    png, width, height = load_seal_picture(_png(scan))
    image = _image(png)
    assert (width, height) == (200, 200)
    assert image.getpixel((5, 5))[3] == 0
    assert image.getpixel((100, 100)) == (220, 10, 10, 245)


def test_load_drops_ancillary_chunks(seal_picture: bytes) -> None:
    text = _chunk(b"tEXt", b"Comment\x00secret")
    tagged = seal_picture[:33] + text + seal_picture[33:]
    png, _w, _h = load_seal_picture(tagged)
    assert b"secret" not in png


def test_load_refuses_what_is_not_a_seal_picture() -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (100, 100), "red").save(jpeg, "JPEG")
    cases = {
        "JPEG": jpeg.getvalue(),
        "text": b"hello",
        "empty": b"",
        "truncated": _png(Image.new("RGB", (100, 100), "red"))[:60],
        "too small": _png(Image.new("RGBA", (8, 8), "red")),
        "blank": _png(Image.new("RGBA", (100, 100), (0, 0, 0, 0))),
        "white": _png(Image.new("RGB", (100, 100), "white")),
        "too large file": b"\x89PNG\r\n\x1a\n" + bytes(3 * 1024 * 1024),
    }
    for what, data in cases.items():
        with pytest.raises(PictureError):
            load_seal_picture(data)
        assert what


def _claimed(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height pixels, with a tiny IDAT."""
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return png + _chunk(b"IEND", b"")


def test_load_refuses_a_bomb_before_decoding_it() -> None:
    # Decoding 50000×50000 RGBA would allocate 10 GB: Pillow's bomb check refuses it when it
    # reads the header; 3000×3000 passes Pillow and is refused by our size limit, also unread.
    with pytest.raises(PictureError, match="像素过多"):
        load_seal_picture(_claimed(50_000, 50_000))
    with pytest.raises(PictureError, match="3000×3000"):
        load_seal_picture(_claimed(3000, 3000))
