"""QR codes: the one encoder of the project (licence faces, show tokens on screens).

zxing-cpp's encoder (C++) is used over the pure-Python `qrcode` package by measurement: a 95-character
verification link takes 0.12 ms against 6.2 ms, a 700-character show token 1.3 ms against 36.5 ms
(2-core development machine, error correction level M). `qrcode` stays in the tests as an
independent encoder."""

from __future__ import annotations

import io

import zxingcpp
from PIL import Image

__all__ = ["qr_png", "qr_svg"]

Modules = tuple[tuple[bool, ...], ...]
QUIET_MODULES = 4  # ISO/IEC 18004 quiet zone
_DARK = bytes([1] + [0] * 255)  # pixel value → 1 for a dark module (black, 0), 0 otherwise


def qr_modules(text: str) -> Modules:
    """The dark modules of `text` as a QR code (error correction level M), row by row, without the
    quiet zone. Raises ValueError when the text is longer than any QR code holds."""
    barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    image = memoryview(barcode.to_image(scale=1, add_quiet_zones=False))  # type: ignore[arg-type]
    height, width = image.shape[:2]  # type: ignore[index]
    dark = image.tobytes().translate(_DARK)  # 1 where the pixel is black, else 0: one C pass
    return tuple(tuple(map(bool, dark[row * width : (row + 1) * width])) for row in range(height))


def dark_runs(modules: Modules) -> list[tuple[int, int, int]]:
    """(row, first column, length) of each horizontal run of dark modules: few shapes to draw."""
    runs = []
    for row, line in enumerate(modules):
        col = 0
        while col < len(line):
            if line[col]:
                start = col
                while col < len(line) and line[col]:
                    col += 1
                runs.append((row, start, col - start))
            else:
                col += 1
    return runs


def qr_png(text: str, module_px: int = 6) -> bytes:
    """A PNG of the code with its quiet zone, `module_px` pixels a module (for screens)."""
    modules = qr_modules(text)
    size = len(modules) + 2 * QUIET_MODULES
    image = Image.new("1", (size, size), 1)
    pixels = image.load()
    assert pixels is not None
    for row, start, length in dark_runs(modules):
        for col in range(start, start + length):
            pixels[col + QUIET_MODULES, row + QUIET_MODULES] = 0
    out = io.BytesIO()
    image.resize((size * module_px, size * module_px), Image.Resampling.NEAREST).save(out, "PNG", optimize=True)
    return out.getvalue()


def qr_svg(text: str, label: str = "亮证二维码") -> str:
    """An inline SVG that scales crisply to any size: one path, a horizontal run per stretch of dark
    modules (a tenth of the size of one rectangle per module)."""
    modules = qr_modules(text)
    size = len(modules) + 2 * QUIET_MODULES
    path = "".join(f"M{col + QUIET_MODULES} {row + QUIET_MODULES}h{n}v1h-{n}z" for row, col, n in dark_runs(modules))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" role="img" aria-label="{label}" '
        f'shape-rendering="crispEdges"><rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{path}"/></svg>'
    )
