"""Pictures people upload (base images, holder photos): checked, bounded and normalised to
baseline RGB JPEG, which PDF (DCTDecode), OFD and PNG renderers all take as it is."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageDraw, UnidentifiedImageError

from templates.errors import ImageError

__all__ = ["MAX_UPLOAD_BYTES", "Picture", "load_picture"]

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 8000×5000 scan; anything larger is refused before it is decoded
ACCEPTED_FORMATS = {"PNG", "JPEG"}
JPEG_QUALITY = 85


@dataclass(frozen=True)
class Picture:
    """A baseline RGB JPEG and its size in pixels."""

    data: bytes
    width: int
    height: int

    @classmethod
    def from_jpeg(cls, data: bytes) -> Picture:
        """Wrap JPEG bytes this package produced earlier (e.g. read back from the file store)."""
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "JPEG":
                raise ImageError("存储的图片不是 JPEG")
            return cls(data, image.width, image.height)


def load_picture(data: bytes, what: str, max_side: int) -> Picture:
    """Check an uploaded PNG/JPEG and return it as a JPEG no larger than `max_side` pixels."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(f"{what}文件过大：{len(data) / 1048576:.1f} MB，上限 {MAX_UPLOAD_BYTES // 1048576} MB")
    if not data:
        raise ImageError(f"{what}是空文件")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in ACCEPTED_FORMATS:
                raise ImageError(f"{what}格式为 {image.format}，仅支持 PNG 或 JPEG")
            # The header gives the size; refuse bombs before decoding a single pixel.
            if image.width * image.height > MAX_PIXELS:
                raise ImageError(
                    f"{what}像素过多（{image.width}×{image.height}），上限 {MAX_PIXELS // 1_000_000} 百万像素"
                )
            image.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{what}不是可识别的 PNG/JPEG 图片，或像素过多") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{what}已损坏，无法解码（{exc}）") from None
    return to_picture(image, max_side)


def to_picture(image: Image.Image, max_side: int) -> Picture:
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        flat = Image.new("RGB", image.size, (255, 255, 255))
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    elif image.mode != "RGB":
        image = image.convert("RGB")
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return Picture(out.getvalue(), image.width, image.height)


def sample_photo() -> Picture:
    """A neutral silhouette for previews: obviously not a person."""
    image = Image.new("RGB", (300, 400), (221, 228, 236))
    draw = ImageDraw.Draw(image)
    draw.ellipse((95, 70, 205, 190), fill=(160, 172, 188))
    draw.ellipse((40, 210, 260, 470), fill=(160, 172, 188))
    return to_picture(image, 400)
