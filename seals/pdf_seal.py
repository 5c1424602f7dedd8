"""Sealing any PDF with an SM2 e-seal through pyHanko: a visible signature whose appearance is the
seal picture, and a detached CMS SignedData (ISO 32000-1 §12.8, /adbe.pkcs7.detached) signed with
SM2-with-SM3 over SM3 digests, as GM/T 0010 and Chinese PDF signers do:

- digestAlgorithm SM3 (1.2.156.10197.1.401); the messageDigest attribute is SM3 of the /ByteRange;
- signatureAlgorithm SM2-with-SM3 (1.2.156.10197.1.501); the signature is the DER SM2 signature of
  DER(signed attributes) with e = SM3(Z || attributes), default ID (GM/T 0009);
- the signer's certificate chain (seal certificate, branch CA, root) in `certificates`.

pyHanko knows nothing of SM2: `keys.oids` names the SM OIDs for asn1crypto (which pyHanko uses),
pyHanko's digests come from `cryptography` (`hashes.SM3`), and `Sm2CmsSigner` stands for our
`keys.Signer` in pyHanko's signing session. pyHanko adds the field and its appearance, reserves
/Contents and digests the /ByteRange; the signed attributes and the SignedData are
`seals.signed_data`'s, as for the licences `seals.licence_files` writes.

Staged like pyHanko's interrupted signing, so a batch or an HSM fits between the stages:
`prepare_pdf_seal` (field, appearance, /ByteRange digest, signed attributes; `prepared.tbs` is what
the signer signs) → `signer.digest(prepared.tbs)` / `sign_digest` → `finish_pdf_seal`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import io
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar, cast

from asn1crypto import algos
from asn1crypto import x509 as asn1_x509
from PIL import Image
from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_signer import PdfTBSDocument
from pyhanko.stamp import StaticStampStyle
from pyhanko_certvalidator.registry import SimpleCertificateStore

from keys.oids import SM2_WITH_SM3_NAME, SM3_NAME
from keys.signer import Signer
from keys.sm2 import SIGNATURE_MAX_DER
from keys.x509 import Certificate
from seals.box import MM_PER_PT, SealBox
from seals.errors import DocumentError, PictureError, SealInputError, SealSigningError
from seals.pdf_reader import FastHexPdfReader
from seals.picture import PNG_SIGNATURE, decode_seal_picture
from seals.signed_data import reserved_length, signed_attributes, signed_data

__all__ = ["seal_pdf"]

FIELD_PREFIX = "ECAS_Seal_"
MAX_PDF_BYTES = 200 * 1024 * 1024
_FIELD_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_T = TypeVar("_T")


class Sm2CmsSigner(signers.Signer):
    """pyHanko's view of an SM2 signer (SM2-with-SM3, SM3 digests, the chain in the CMS). With
    `signer` it signs through our `keys.Signer`, so it also serves pyHanko's own one-shot flows
    (`signers.sign_pdf`); with a fixed `signature` pyHanko's CMS builder wraps one made earlier
    (the tests compare what it builds with `seals.signed_data`)."""

    def __init__(
        self, chain: Sequence[Certificate], *, signer: Signer | None = None, signature: bytes | None = None
    ) -> None:
        certs = [asn1_x509.Certificate.load(c.der) for c in chain]
        # pyhanko_certvalidator leaves from_certs unannotated: its type, as its body gives it.
        store_from_certs = cast(
            Callable[[list[asn1_x509.Certificate]], SimpleCertificateStore], SimpleCertificateStore.from_certs
        )
        super().__init__(
            signing_cert=certs[0],
            cert_registry=store_from_certs(certs[1:]),
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": SM2_WITH_SM3_NAME}),
            embed_roots=True,
        )
        self.chain = tuple(chain)
        self._signer = signer
        self._signature = signature

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if digest_algorithm != SM3_NAME:
            raise SigningError(f"SM2 signs with SM3 here, not {digest_algorithm}")
        if dry_run:
            return bytes(SIGNATURE_MAX_DER)  # the largest DER SM2 signature: sizes /Contents
        if self._signature is not None:
            return self._signature
        if self._signer is None:
            raise SigningError("no signer and no signature")
        return self._signer.sign(data)


@dataclass(frozen=True)
class PreparedPdf:
    """A PDF with its signature field, appearance and a zero-filled /Contents hole, and the signed
    attributes to sign. Sign `tbs` with the seal certificate's key, then `finish_pdf_seal`."""

    document: bytes
    byte_range_digest: PreparedByteRangeDigest
    tbs: bytes  # DER(SET OF signed attributes) (RFC 5652 §5.4): what the SM2 signature covers
    certificate_chain: tuple[Certificate, ...]
    field_name: str

    @property
    def document_digest(self) -> bytes:
        """SM3 of the /ByteRange: the messageDigest attribute."""
        return bytes(self.byte_range_digest.document_digest)


def _run(coro: Awaitable[_T]) -> _T:
    """pyHanko's signing API is async; ours is plain. Inside a running event loop (an async web
    handler) the coroutine runs on a helper thread instead of failing."""

    async def main() -> _T:
        return await coro

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


@lru_cache(maxsize=8)
def _picture(png: bytes) -> Image.Image:
    """The seal picture decoded once per process (a batch seals with the same picture)."""
    return decode_seal_picture(png)


def _inherited(page: generic.PdfObject, key: str) -> Any:
    node: Any = page
    for _ in range(64):  # ISO 32000-1 §7.7.3.4: MediaBox, CropBox, Rotate inherit from /Parent
        if key in node:
            return node[key]
        if "/Parent" not in node:
            return None
        node = node["/Parent"]
    return None


def _page_geometry(writer: IncrementalPdfFileWriter, page_index: int) -> tuple[float, float, float, float]:
    """(left, bottom, width, height) in points of the page's visible area (CropBox, else MediaBox)."""
    count = int(writer.root["/Pages"]["/Count"])
    if isinstance(page_index, bool) or not isinstance(page_index, int) or not 0 <= page_index < count:
        raise DocumentError(f"页码 {page_index!r} 超出范围：文档共 {count} 页（页码从 0 起）")
    # pyHanko leaves find_page_for_modification unannotated: (page reference, resources).
    find_page = cast(
        Callable[[int], tuple[generic.Dereferenceable, generic.DictionaryObject]], writer.find_page_for_modification
    )
    page_ref, _resources = find_page(page_index)
    page = page_ref.get_object()
    rotate = _inherited(page, "/Rotate")
    if rotate is not None and int(rotate) % 360 != 0:
        raise DocumentError(f"第 {page_index} 页旋转了 {int(rotate)} 度，暂不支持在旋转的页面上盖章")
    box = _inherited(page, "/CropBox") or _inherited(page, "/MediaBox")
    if box is None or len(box) != 4:
        raise DocumentError(f"第 {page_index} 页没有页面尺寸（MediaBox）")
    x1, y1, x2, y2 = (float(v) for v in box)
    return min(x1, x2), min(y1, y2), abs(x2 - x1), abs(y2 - y1)


def _field_name(writer: IncrementalPdfFileWriter, requested: str | None) -> str:
    existing = {name for name, _value, _ref in fields.enumerate_sig_fields(writer)}
    if requested is not None:
        if not _FIELD_NAME.match(requested):
            raise SealInputError(f"签名域名称 {requested!r} 不合法（字母、数字、_.-，至多 64 个）")
        if requested in existing:
            raise DocumentError(f"文档中已有签名域 {requested}")
        return requested
    n = 1
    while f"{FIELD_PREFIX}{n}" in existing:
        n += 1
    return f"{FIELD_PREFIX}{n}"


def _open_pdf(pdf_bytes: bytes) -> IncrementalPdfFileWriter:
    if not isinstance(pdf_bytes, bytes | bytearray) or not pdf_bytes:
        raise DocumentError("PDF 文件为空")
    if len(pdf_bytes) > MAX_PDF_BYTES:
        raise DocumentError(f"PDF 文件过大（{len(pdf_bytes) / 1048576:.0f} MB）")
    if not bytes(pdf_bytes[:1024]).lstrip().startswith(b"%PDF-"):
        raise DocumentError("不是 PDF 文件")
    try:
        writer = IncrementalPdfFileWriter.from_reader(FastHexPdfReader(io.BytesIO(bytes(pdf_bytes)), strict=False))
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, OSError) as exc:
        raise DocumentError(f"PDF 文件无法解析（{exc}）") from None
    if writer.prev.encrypted:
        raise DocumentError("PDF 文件已加密，无法盖章")
    if _permits_no_change(writer.root):
        raise DocumentError("此 PDF 已由签发方认证且不允许任何修改（如电子证照），证照文件不允许再盖章")
    return writer


def _permits_no_change(root: generic.DictionaryObject) -> bool:
    """Whether the document is certified with no changes permitted (ISO 32000-1 §12.8.2.2, P=1)."""
    try:
        signature = root["/Perms"]["/DocMDP"]
        for reference in signature.get("/Reference", ()):
            if reference.get("/TransformMethod") == "/DocMDP":
                return int(reference.get("/TransformParams", {}).get("/P", 2)) == 1
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    return False


def prepare_pdf_seal(
    pdf_bytes: bytes,
    certificate_chain: Sequence[Certificate],
    picture_png: bytes,
    page_index: int,
    box_mm: SealBox | tuple[float, float, float, float],
    *,
    reason: str | None = None,
    location: str | None = None,
    now: dt.datetime | None = None,
    field_name: str | None = None,
    timestamp_room: int = 0,
) -> PreparedPdf:
    """Add a signature field showing the seal picture in `box_mm` (mm from the page's top-left) on
    page `page_index`, reserve /Contents, digest the /ByteRange with SM3 and build the signed
    attributes. `certificate_chain` is the signer's, leaf (the seal certificate) first."""
    chain = tuple(certificate_chain)
    if not chain or not all(isinstance(c, Certificate) for c in chain):
        raise SealInputError("签章人证书链不能为空（签章证书在前）")
    box = SealBox.of(box_mm)
    now = now or dt.datetime.now(dt.timezone.utc)
    if now.tzinfo is None:
        raise SealInputError("签章时间必须是带时区的时间")
    now = now.replace(microsecond=0)
    if not isinstance(picture_png, bytes) or not picture_png.startswith(PNG_SIGNATURE):
        raise PictureError("印章图片须为 PNG")
    picture = _picture(picture_png)

    writer = _open_pdf(pdf_bytes)
    try:
        left, bottom, width, height = _page_geometry(writer, page_index)
        box.check_inside(width * MM_PER_PT, height * MM_PER_PT)
        name = _field_name(writer, field_name)
        cms_signer = Sm2CmsSigner(chain)
        pdf_signer = signers.PdfSigner(
            signers.PdfSignatureMetadata(
                field_name=name,
                md_algorithm=SM3_NAME,
                reason=reason,
                location=location,
                subfilter=fields.SigSeedSubFilter.ADOBE_PKCS7_DETACHED,
            ),
            signer=cms_signer,
            stamp_style=StaticStampStyle(
                background=PdfImage(picture, name="Seal"),
                background_opacity=1.0,
                border_width=0,
                background_layout=layout.SimpleBoxLayoutRule(
                    x_align=layout.AxisAlignment.ALIGN_MID,
                    y_align=layout.AxisAlignment.ALIGN_MID,
                    margins=layout.Margins(),
                    inner_content_scaling=layout.InnerScaling.STRETCH_TO_FIT,
                ),
            ),
            new_field_spec=fields.SigFieldSpec(
                # pyHanko annotates int, and writes each coordinate as a FloatObject.
                sig_field_name=name,
                on_page=page_index,
                box=box.to_pdf_rect(height, left, bottom),  # type: ignore[arg-type]
            ),
        )
        document, digest, attributes = _run(_prepare(pdf_signer, cms_signer, writer, now, timestamp_room))
    except (PdfError, SigningError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise DocumentError(f"PDF 文件无法盖章（{exc}）") from None
    return PreparedPdf(document, digest, attributes, chain, name)


async def _prepare(
    pdf_signer: signers.PdfSigner,
    cms_signer: Sm2CmsSigner,
    writer: IncrementalPdfFileWriter,
    now: dt.datetime,
    timestamp_room: int,
) -> tuple[bytes, PreparedByteRangeDigest, bytes]:
    # PdfSigner.async_digest_doc_for_signing, step by step, to set the signing time (the
    # session's system_time: /M in the signature dictionary and the signingTime attribute).
    session = pdf_signer.init_signing_session(writer)
    session.system_time = now
    validation_info = await session.perform_presign_validation(writer)
    # pyHanko would size /Contents by building a dummy CMS (a third of the time of a seal); ours
    # knows its longest SignedData for this chain. Twice that: /Contents is written as hex.
    reserved = 2 * reserved_length(tuple(c.der for c in cms_signer.chain), timestamp_room)
    tbs_document = session.prepare_tbs_document(validation_info=validation_info, bytes_reserved=reserved)
    output = io.BytesIO()
    digest, _output = tbs_document.digest_tbs_document(output=output)
    attributes = signed_attributes(digest.document_digest, now, cms_signer.chain[0].der)
    return output.getvalue(), digest, attributes


def finish_pdf_seal(prepared: PreparedPdf, signature: bytes, timestamp: bytes | None = None) -> bytes:
    """The sealed PDF: `signature` (DER SM2 over `prepared.tbs` by the seal certificate's key),
    checked, packed into the CMS SignedData and written into the /Contents hole; `timestamp`, a
    token over `signature`, as its signature-time-stamp attribute (PAdES B-T)."""
    leaf = prepared.certificate_chain[0]
    if not isinstance(signature, bytes) or not leaf.public_key.verify(signature, prepared.tbs):
        raise SealSigningError("签章签名验证失败：签名设备返回的签名值与签章人证书不符")
    output = io.BytesIO(prepared.document)
    content = signed_data(prepared.certificate_chain, prepared.tbs, signature, timestamp)
    try:
        _run(PdfTBSDocument.async_finish_signing(output, prepared.byte_range_digest, content))
    except (PdfError, SigningError, ValueError) as exc:
        raise SealSigningError(f"签名值无法写入 PDF（{exc}）") from None
    return output.getvalue()


def seal_pdf(
    pdf_bytes: bytes,
    signer: Signer,
    picture_png: bytes,
    page_index: int,
    box_mm: SealBox | tuple[float, float, float, float],
    reason: str | None = None,
    location: str | None = None,
    now: dt.datetime | None = None,
    timestamper: Callable[[bytes], bytes | None] | None = None,
    timestamp_room: int = 0,
) -> bytes:
    """Seal a PDF in one call with `signer` (its certificate chain goes into the CMS);
    `timestamper` gives a token over the signature value (at most `timestamp_room` bytes)."""
    if not signer.certificate_chain:
        raise SealInputError("签章人的签名密钥没有证书")
    prepared = prepare_pdf_seal(
        pdf_bytes,
        signer.certificate_chain,
        picture_png,
        page_index,
        box_mm,
        reason=reason,
        location=location,
        now=now,
        timestamp_room=timestamp_room if timestamper is not None else 0,
    )
    signature = signer.sign(prepared.tbs)
    return finish_pdf_seal(prepared, signature, timestamper(signature) if timestamper is not None else None)
