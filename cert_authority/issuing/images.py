"""A licence's phone image (PNG): rendered on first request from its stored record, then kept.

Issuing writes only the sealed PDF and OFD, the legal files: rendering and compressing a 1242-pixel
PNG cost about 150 ms, ten times all the rest of issuing a licence, for an image most licences never
need (it is what a phone shows; it carries no signature, verification goes through the QR code).
The image is laid out from the record with the licence's own template version (`licence_layouts`),
so it shows what the sealed files show, with the seal picture in the seal box.
"""

from __future__ import annotations

from PIL import Image
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from cert_authority.issuing.layouts import LicenceLayouts
from cert_authority.store.filestore import FileStore
from cert_authority.store.models import LicenceRow, SealRow
from seals.picture import decode_seal_picture
from templates.fonts import FontSet
from templates.layout import PageLayout
from templates.png import png_bytes, render_image
from templates.render import phone_dpi


class LicenceImages:
    def __init__(self, engine: Engine, filestore: FileStore, layouts: LicenceLayouts) -> None:
        self.engine = engine
        self.filestore = filestore
        self.layouts = layouts

    def png(self, row: LicenceRow) -> bytes:
        """The licence's PNG, rendered and stored the first time (the same bytes every time after)."""
        if row.png_sm3 is not None:
            return self.filestore.get(row.png_sm3)
        with Session(self.engine) as session:
            seal = session.get(SealRow, row.seal_id)
        assert seal is not None  # a licence row references its seal
        layout = self.layouts.of_record(row)
        data = licence_png(layout, self.layouts.registry.fonts, self.filestore.get(seal.picture_sm3))
        digest = self.filestore.put(data)
        with Session(self.engine) as session:
            # Two first requests at once render the same bytes; either may record them.
            session.exec(
                update(LicenceRow)
                .where(col(LicenceRow.id) == row.id)
                .where(col(LicenceRow.png_sm3).is_(None))
                .values(png_sm3=digest)
            )
            session.commit()
        return data


def licence_png(layout: PageLayout, fonts: FontSet, seal_picture_png: bytes) -> bytes:
    """`layout` at phone resolution with the seal picture drawn in the seal box."""
    dpi = phone_dpi(layout.width)
    image = render_image(layout, fonts, dpi)
    _draw_seal(image, layout, seal_picture_png, dpi)
    return png_bytes(image)


def _draw_seal(page: Image.Image, layout: PageLayout, picture_png: bytes, dpi: float) -> None:
    px = dpi / 25.4
    box = layout.seal
    seal = decode_seal_picture(picture_png)
    # Keep the picture's proportions, centred in the (square) seal box, as the PDF appearance does.
    scale = min(box.w * px / seal.width, box.h * px / seal.height)
    size = (max(1, round(seal.width * scale)), max(1, round(seal.height * scale)))
    seal = seal.resize(size, Image.Resampling.LANCZOS)
    left = round(box.x * px + (box.w * px - size[0]) / 2)
    top = round(box.y * px + (box.h * px - size[1]) / 2)
    page.paste(seal, (left, top), seal)
