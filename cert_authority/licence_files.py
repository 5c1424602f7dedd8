"""A licence's files from its layout: the PDF and OFD pages (the same layout), sealed with the
issuing department's e-seal, and a PNG for phones.

`make_licence_files` is the one place a licence's files are made, and `seal_licence_files` the one
place one licence is sealed: today pyHanko's general path for the PDF and `seals.ofd_seal` for the
OFD, which parse and rewrite the files just rendered. A direct path that writes each file once,
already sealed (`seals.licence_files`, in progress), can replace the body of `make_licence_files`
without touching issuance.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

from PIL import Image

from cert_authority.licence_dates import local_date
from cert_authority.seals_service import SealMaterial
from seals.box import SealBox
from seals.ofd_seal import seal_ofd
from seals.pdf_seal import seal_pdf
from templates.fonts import FontSet
from templates.layout import PageLayout
from templates.png import png_bytes, render_image
from templates.render import phone_dpi, render_ofd, render_pdf

PDF_REASON = "电子证照签章"


@dataclass(frozen=True)
class UnsealedLicence:
    layout: PageLayout
    pdf: bytes
    ofd: bytes
    png: bytes


@dataclass(frozen=True)
class SealedFiles:
    pdf: bytes
    ofd: bytes


@dataclass(frozen=True)
class LicenceFiles:
    pdf: bytes  # sealed
    ofd: bytes  # sealed
    png: bytes  # for phones, with the seal picture (no signature)


def make_licence_files(
    layout: PageLayout, fonts: FontSet, seal: SealMaterial, now: dt.datetime, *, title: str, doc_id: str
) -> LicenceFiles:
    """Render `layout` as PDF, OFD and PNG and seal the PDF and the OFD with `seal` at `now`."""
    unsealed = render_licence(layout, fonts, title=title, doc_id=doc_id, created=now, seal_picture=seal.picture_png)
    sealed = seal_licence_files(unsealed, seal, now)
    return LicenceFiles(pdf=sealed.pdf, ofd=sealed.ofd, png=unsealed.png)


def render_licence(
    layout: PageLayout,
    fonts: FontSet,
    *,
    title: str,
    doc_id: str,
    created: dt.datetime,
    seal_picture: bytes | None = None,
) -> UnsealedLicence:
    """PDF and OFD of `layout` (to be sealed), and the phone-resolution PNG with the seal picture
    drawn in the seal box (a PNG carries no signature: phones show it, verification uses the QR)."""
    pdf = render_pdf(layout, fonts, title=title, created=created)
    ofd = render_ofd(layout, fonts, doc_id=doc_id, created=local_date(created), title=title)
    dpi = phone_dpi(layout.width)
    image = render_image(layout, fonts, dpi)
    if seal_picture is not None:
        _draw_seal(image, layout, seal_picture, dpi)
    return UnsealedLicence(layout, pdf, ofd, png_bytes(image))


def _draw_seal(page: Image.Image, layout: PageLayout, picture_png: bytes, dpi: float) -> None:
    px = dpi / 25.4
    box = layout.seal
    with Image.open(io.BytesIO(picture_png)) as picture:
        seal = picture.convert("RGBA")
    # Keep the picture's proportions, centred in the (square) seal box, as the PDF appearance does.
    scale = min(box.w * px / seal.width, box.h * px / seal.height)
    size = (max(1, round(seal.width * scale)), max(1, round(seal.height * scale)))
    seal = seal.resize(size, Image.Resampling.LANCZOS)
    left = round(box.x * px + (box.w * px - size[0]) / 2)
    top = round(box.y * px + (box.h * px - size[1]) / 2)
    page.paste(seal, (left, top), seal)


def seal_licence_files(unsealed: UnsealedLicence, seal: SealMaterial, now: dt.datetime) -> SealedFiles:
    """Seal one licence's PDF and OFD on page 0 in the template's seal box with `seal`."""
    box = SealBox.of(unsealed.layout.seal)
    pdf = seal_pdf(unsealed.pdf, seal.signer, seal.picture_png, 0, box, reason=PDF_REASON, now=now)
    ofd = seal_ofd(unsealed.ofd, seal.signer, seal.seal_der, 0, box, now)
    return SealedFiles(pdf=pdf, ofd=ofd)
