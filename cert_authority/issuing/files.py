"""A licence's sealed files from its layout: the PDF and the OFD of the same page, each written once
with the issuing department's e-seal already in it (`seals.licence_files`, about 6 ms for both).
The phone image is not made here: `licence_images` renders it when it is first asked for."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence

from cert_authority.eseals.service import SealMaterial
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
