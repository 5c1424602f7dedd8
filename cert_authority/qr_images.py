"""Show tokens as QR codes for screens, drawn with the `qrcode` package (one image per holder per
minute: not the issuance hot path, where templates.layout uses zxing-cpp)."""

from __future__ import annotations

import base64
import io

import qrcode
import qrcode.constants


def _code(text: str) -> qrcode.QRCode:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=6, border=4)
    code.add_data(text)
    code.make(fit=True)
    return code


def qr_png_base64(text: str) -> str:
    out = io.BytesIO()
    _code(text).make_image().save(out)
    return base64.b64encode(out.getvalue()).decode()


def qr_svg(text: str, label: str = "亮证二维码") -> str:
    """An inline SVG that scales crisply to any size: one path, a horizontal run per stretch of
    dark modules (a tenth of the size of one rectangle per module)."""
    matrix = _code(text).get_matrix()
    runs = []
    for y, row in enumerate(matrix):
        x = 0
        while x < len(row):
            if row[x]:
                start = x
                while x < len(row) and row[x]:
                    x += 1
                runs.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    size = len(matrix)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" role="img" aria-label="{label}" '
        f'shape-rendering="crispEdges"><rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(runs)}"/></svg>'
    )
