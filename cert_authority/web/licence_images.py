"""Licence pictures for the pages: small WebP thumbnails for lists (a licence PNG is 400–600 KB),
and, for a licence that is no longer valid, every picture marked across with its status (已吊销) so
that no clean image of it is offered. Derived pictures are cached on disk by the PNG's digest
(written whole, then renamed: safe with several workers); the PNG itself stays the stored one.
A cached picture shows a holder's face data, so it is sealed like the file store's files (SM4-GCM,
the data key `files`, bound to its cache name); an entry that does not open is drawn again. The
cache is per host and disposable: a new host starts with none."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from starlette.datastructures import State

from cert_authority.store.filestore import FileSealer
from cert_authority.store.packing import warm_fonts
from templates.fonts import FontSet

log = logging.getLogger("ecas.web")
THUMB_WIDTH = 360  # CSS shows 112 px (phone at 3x) up to a 360 px card
WEBP_QUALITY = 78
WEBP_METHOD = 2  # 0 fast … 6 small: 4 took 3x as long for 3 % fewer bytes on a licence thumbnail
MARKS = {"revoked": "已吊销", "cancelled": "已注销", "expired": "已过期", "superseded": "已变更"}
MARK_RED = (179, 38, 30)


def pictures_for(state: State) -> LicencePictures:
    """The app's picture maker. The fonts are the registry's, loaded when a mark is first drawn
    (loading them took 1-2 s: a thumbnail of a valid licence needs none)."""
    found: LicencePictures | None = getattr(state, "licence_pictures", None)
    if found is None:
        registry = state.registry
        found = LicencePictures(
            state.settings.data_dir / "cache" / "pictures", lambda: registry.fonts, registry.filestore.sealer
        )
        state.licence_pictures = found
    return found


def warm_pictures(state: State) -> None:
    """What the first licence picture of a fresh server would otherwise wait for (1-2 s on two
    busy cores): the registry's fonts and Pillow's PNG and WebP codecs; and what the first read of
    a packed licence file would (the font files parsed for cutting subsets). No database access: the
    warm-up never competes with the first requests for a lock. Run in a background thread as the
    server starts; a failure only means the first picture is slower."""
    try:
        fonts = state.registry.fonts
        warm_fonts(fonts.get(role).path for role in ("serif", "sans"))  # for reading packed files
        sample = Image.new("RGB", (64, 64), (255, 255, 255))
        for kind in ("PNG", "WEBP"):
            out = io.BytesIO()
            sample.save(out, kind)
            with Image.open(io.BytesIO(out.getvalue())) as opened:
                opened.load()
    except Exception:
        log.warning("warming the licence pictures failed; the first one will be slower", exc_info=True)


class LicencePictures:
    def __init__(self, cache_dir: Path, fonts: Callable[[], FontSet], sealer: FileSealer | None = None) -> None:
        self.cache_dir = cache_dir
        self._fonts = fonts
        self.sealer = sealer

    @property
    def fonts(self) -> FontSet:
        return self._fonts()

    def thumbnail(self, png: bytes, status: str) -> bytes:
        """A WebP of the licence face, THUMB_WIDTH wide, marked when the licence is not valid."""
        mark = MARKS.get(status)
        return self._cached(png, f"thumb-{THUMB_WIDTH}-{status if mark else 'clean'}.webp",
                            lambda: self._webp(png, THUMB_WIDTH, mark))

    def full(self, png: bytes, status: str) -> tuple[bytes, str]:
        """The full picture and its media type: the stored PNG while valid, a marked WebP after."""
        mark = MARKS.get(status)
        if mark is None:
            return png, "image/png"
        return self._cached(png, f"full-{status}.webp", lambda: self._webp(png, None, mark)), "image/webp"

    def _webp(self, png: bytes, width: int | None, mark: str | None) -> bytes:
        with Image.open(io.BytesIO(png)) as opened:
            image = opened.convert("RGB")
        if width is not None and image.width > width:
            # A box-filter halving first (as fast as a copy), then LANCZOS for the last step: the
            # same picture at a third of the time of LANCZOS from the full size.
            factor = image.width // (2 * width)
            if factor > 1:
                image = image.reduce(factor)
            image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
        if mark is not None:
            image = self._marked(image, mark)
        out = io.BytesIO()
        image.save(out, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
        return out.getvalue()

    def _marked(self, image: Image.Image, mark: str) -> Image.Image:
        """A red frame and the status across the middle, large, at an angle: a screenshot of it can
        not pass for a valid licence."""
        size = max(image.width // 6, 16)
        font = ImageFont.truetype(str(self.fonts.sans.path), size)
        stamp = Image.new("RGBA", (size * len(mark) + size, size * 2), (0, 0, 0, 0))
        draw = ImageDraw.Draw(stamp)
        draw.rounded_rectangle((2, 2, stamp.width - 3, stamp.height - 3), radius=size // 4,
                               outline=(*MARK_RED, 230), width=max(size // 10, 2), fill=(255, 255, 255, 150))
        draw.text((stamp.width / 2, stamp.height / 2), mark, font=font, fill=(*MARK_RED, 235), anchor="mm")
        stamp = stamp.rotate(20, expand=True, resample=Image.Resampling.BICUBIC)
        framed = image.convert("RGBA")
        ImageDraw.Draw(framed).rectangle((0, 0, framed.width - 1, framed.height - 1), outline=MARK_RED,
                                         width=max(image.width // 60, 3))
        framed.alpha_composite(stamp, ((framed.width - stamp.width) // 2, (framed.height - stamp.height) // 2))
        return framed.convert("RGB")

    def _cached(self, png: bytes, name: str, make: Callable[[], bytes]) -> bytes:
        entry = f"{hashlib.sha256(png).hexdigest()}-{name}"
        path = self.cache_dir / entry
        try:
            stored = path.read_bytes()
        except FileNotFoundError:
            pass
        else:
            opened = stored if self.sealer is None else self.sealer.open(f"cache/{entry}", stored)
            if opened is not None:
                return opened
        data = make()
        self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle, temporary = tempfile.mkstemp(dir=self.cache_dir, prefix=".part-")
        with os.fdopen(handle, "wb") as out:
            out.write(data if self.sealer is None else self.sealer.seal(f"cache/{entry}", data))
        os.replace(temporary, path)
        return data
