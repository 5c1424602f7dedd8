"""A licence's sealed files from its layout: the PDF and the OFD of the same page, each written once
with the issuing department's e-seal already in it (`seals.licence_files`, about 6 ms for both).
The phone image is not made here: `licence_images` renders it when it is first asked for."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence

from cert_authority.eseals.service import SealMaterial
from cert_authority.store.packing import Constant, FontSubset, Part
from keys.x509 import Certificate
from seals.licence_files import SealedLicence, seal_licence
from templates.fonts import FontSet
from templates.layout import PageLayout


def make_licence_files(
    layout: PageLayout,
    fonts: FontSet,
    seal: SealMaterial,
    now: dt.datetime,
    *,
    title: str,
    doc_id: str,
    custom: Mapping[str, str],
    stamper: tuple[Callable[[Sequence[bytes]], Sequence[bytes] | None], int] | None = None,
    revocation_evidence: bytes | None = None,
) -> SealedLicence:
    """The PDF and OFD of `layout`, sealed with `seal` at `now` in the template's seal box; `custom`
    goes into the OFD's CustomDatas (the record's digest: `issuing.binding`); `stamper` (the TSA's
    `licence_stamper`) puts a timestamp over each signature; `revocation_evidence` (the seal
    certificate's OCSP response) is kept in both files."""
    timestamper, room = stamper if stamper is not None else (None, 0)
    return seal_licence(
        layout,
        fonts,
        seal.signer,
        seal.seal_der,
        seal.picture_png,
        now,
        title=title,
        doc_id=doc_id,
        custom=custom,
        timestamper=timestamper,
        timestamp_room=room,
        revocation_evidence=revocation_evidence,
    )


def shared_parts(
    files: SealedLicence,
    layout: PageLayout,
    fonts: FontSet,
    seal: SealMaterial,
    *,
    tsa_chain: Sequence[Certificate] = (),
    revocation_evidence: bytes | None = None,
) -> tuple[list[Part], list[Part]]:
    """What the PDF and the OFD of `files` share with other licences, for `store.packing`: the
    PDF's constant start, the background JPEG, the seal, the certificates (hex in the PDF's
    /Contents, binary in the OFD), the OCSP response, and the font subsets (recomputed on read)."""
    certificates = [c.der for c in (*seal.signer.certificate_chain, *tsa_chain)]
    if revocation_evidence is not None:
        certificates.append(revocation_evidence)
    pdf: list[Part] = [Constant(files.pdf[: files.pdf_constant])] if files.pdf_constant else []
    ofd: list[Part] = [Constant(seal.seal_der)]
    if layout.background is not None:
        ofd.append(Constant(layout.background.data))
    # The PDF carries the certificates in its CMS, written as hex in /Contents, and the OCSP
    # response both there and as a stream of its own.
    pdf += [Constant(der, "hex") for der in certificates]
    if revocation_evidence is not None:
        pdf.append(Constant(revocation_evidence))
    ofd += [Constant(der) for der in certificates]
    for role in sorted({run.font for run in layout.runs}):
        font = fonts.get(role)
        chars = layout.characters(role)
        subset, cut = font.subset(chars), font.subset_chars(chars)
        pdf.append(FontSubset(font.path, cut, subset, "cff"))
        ofd.append(FontSubset(font.path, cut, subset, "otf"))
    return pdf, ofd
