"""Sealed licence files straight from a layout: the issuance hot path.

`seals.pdf_seal` and `seals.ofd_seal` seal any department's document: they parse it, add the seal and
write it again (pyHanko's incremental update, a re-zipped OFD). For the licences we render ourselves
that is wasted work, so this module writes each file once, already carrying its seal:

- PDF: the page as `templates.pdf.build_pdf` draws it, plus the seal picture (an image with its
  alpha as /SMask) in the appearance of a signature widget at the template's seal box, /AcroForm
  with /SigFlags 3 and the field ECAS_Seal_1, and the signature dictionary (/adbe.pkcs7.detached, a
  certification signature permitting no change: DocMDP P=1, /Perms in the catalog)
  whose /Contents hole and /ByteRange are placed by offset. The CMS is `seals.signed_data`'s, as
  for `seals.pdf_seal`.
- OFD: the parts `templates.ofd.ofd_parts` writes, OFD.xml naming the signature list, and the parts
  `seals.ofd_seal` adds (Signatures.xml, Sign_0/Seal.esl, Sign_0/Signature.xml with an SM3
  reference to every part and the StampAnnot, Sign_0/SignedValue.dat), zipped once by
  `templates.ofd.write_package`. TBS_Sign and SES_Signature are `seals.ses`'s encodings.

`seal_page_pdf` writes the PDF alone the same way, for pages the authority lays out and seals with
its own service key (annotated copies, reuse receipts): no OFD, no SES_Seal, one SM2 signature.

Staged like pyHanko's signing (../shared/DESIGN.md), so a batch signs many licences in one pass of
the signer and an HSM fits later:

    prepared = prepare_licence(layout, fonts, signer_chain=..., seal_der=..., seal_picture_png=..., now=...)
    e_pdf, e_ofd = digests(prepared, signer)     # or messages(prepared) for a signer that hashes
    sealed = finish_licence(prepared, signer.sign_digest(e_pdf), signer.sign_digest(e_ofd))

What is the same for every licence of a template and seal is built once per process: the seal
picture's image objects and appearance, the file prefix they form with the page background (and its
SM3 state, so each PDF digest only reads the licence's own bytes), the checked seal, Signatures.xml,
and the SM3 state of the constant start of TBS_Sign (which carries the whole seal, picture
included); the CMS, TBS_Sign and SES_Signature encodings are kept per shape (`seals.der_shapes`).
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from cryptography.hazmat.primitives import hashes
from PIL import Image

from keys.oids import SM2_WITH_SM3, SM3
from keys.signer import Signer
from keys.sm2 import SIGNATURE_MAX_DER
from keys.x509 import Certificate
from seals.box import SealBox
from seals.errors import MalformedSealError, PictureError, SealInputError, SealSigningError
from seals.ofd_seal import (
    BEIJING,
    NS,
    PROVIDER_COMPANY,
    PROVIDER_NAME,
    PROVIDER_VERSION,
    SEAL_FILE,
    SIGNATURE_FILE,
    SIGNATURES_FILE,
    SIGNED_VALUE_FILE,
    package_time,
)
from seals.picture import decode_seal_picture
from seals.ses import Seal, encode_signature, encode_tbs_sign, parse_seal, tbs_sign_constant_prefix
from seals.signed_data import reserved_length, signed_attributes, signed_data
from templates.fonts import FontSet
from templates.layout import PageLayout
from templates.ofd import DOC_DIR, ofd_parts, package_entries, write_package
from templates.pdf import PT_PER_MM, PdfFile, build_pdf, pdf_date, pdf_number, pdf_stream, utf16_hex

__all__ = ["SealedLicence", "seal_licence", "seal_page_pdf"]

FIELD_NAME = "ECAS_Seal_1"  # the first field name seals.pdf_seal gives (without importing pyHanko)
SIGNS_DIR = f"{DOC_DIR}/Signs"
SIGNATURES_PATH = f"{SIGNS_DIR}/{SIGNATURES_FILE}"
SIGN_DIR = f"{SIGNS_DIR}/Sign_0"
SIGNATURE_PATH = f"{SIGN_DIR}/{SIGNATURE_FILE}"
SEAL_PATH = f"{SIGN_DIR}/{SEAL_FILE}"
SIGNED_VALUE_PATH = f"{SIGN_DIR}/{SIGNED_VALUE_FILE}"
EVIDENCE_FILE = "OCSP.der"  # the seal certificate's OCSP response at sealing time, beside the signature
EVIDENCE_PATH = f"{SIGN_DIR}/{EVIDENCE_FILE}"
SIGN_ID, ANNOT_ID = "s001", "s002"
# /ByteRange [0 a b c], written over a placeholder of fixed width once the offsets are known.
BYTE_RANGE_WIDTH = 40
# Parts at least this large (pictures, the seal) keep their SM3 for the next licence.
_SM3_CACHE_MIN = 32 * 1024
PROPERTY_INFO = "/" + SIGNATURE_PATH  # TBS_Sign.propertyInfo: the signed Signature.xml
SM3_LENGTH = 32  # TBS_Sign.dataHash: SM3 of Signature.xml
# SM3 states after Z and TBS_Sign's constant start, per signer (Z) and seal: (that start, state).
_TBS_STATES: dict[tuple[bytes, bytes], tuple[bytes, Any]] = {}
_MAX_TBS_STATES = 16

# Object numbers of the seal's fixed PDF objects (templates.pdf gives fixed objects 1, 2, …).
_SEAL_IMAGE, _SEAL_MASK, _SEAL_APPEARANCE = 1, 2, 3


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedLicence:
    """Both files of one licence with everything but the two signature values.

    Sign `pdf_signed_attributes` (DER SET OF signed attributes, RFC 5652 §5.4) and `ofd_tbs`
    (DER TBS_Sign, GB/T 38540) with the seal certificate's key, then `finish_licence`."""

    pdf: bytes  # the whole PDF with /ByteRange filled in and a zero-filled /Contents hole
    pdf_hole: tuple[int, int]  # [start, end) of the hex digits between < and >
    pdf_byte_range: tuple[int, int, int, int]
    pdf_digest: bytes  # SM3 of the /ByteRange: the messageDigest attribute
    pdf_prefix: tuple[int, Any]  # length of the constant start of the PDF, and its SM3 state
    pdf_signed_attributes: bytes
    ofd_parts: tuple[tuple[str, bytes], ...]  # every part but SignedValue.dat, in package order
    ofd_data_hash: bytes  # SM3(Signature.xml)
    ofd_tbs: bytes
    certificate_chain: tuple[Certificate, ...]
    seal_der: bytes
    time: dt.datetime  # the signing time, whole seconds, UTC


@dataclass(frozen=True)
class SealedLicence:
    pdf: bytes
    ofd: bytes
    pdf_sm3: bytes  # SM3 of the whole PDF, from the cached state of its constant start
    # Length of that constant start (seal picture and page background objects): the same bytes in
    # every PDF of this template and seal, so a store can keep them once.
    pdf_constant: int = 0


# --- staged API ----------------------------------------------------------------------------------


def prepare_licence(
    layout: PageLayout,
    fonts: FontSet,
    *,
    signer_chain: Sequence[Certificate],
    seal_der: bytes,
    seal_picture_png: bytes,
    now: dt.datetime,
    title: str | None = None,
    doc_id: str | None = None,
    custom: Mapping[str, str] | None = None,
    timestamp_room: int = 0,
    revocation_evidence: bytes | None = None,
) -> PreparedLicence:
    """Write the licence's PDF and OFD with every sealing part in place but the signature values.

    `signer_chain` is the seal certificate first, then its issuers (all go into the CMS);
    `seal_der` the SES_Seal listing that certificate; the seal sits at `layout.seal` on the page.
    `doc_id` is the OFD DocID (a fresh UUID when None); `custom`, the OFD's CustomDatas (sealed with
    the rest: the authority binds its record of the licence to the file this way);
    `timestamp_room`, the bytes a time-stamp token may take (reserved in the PDF signature);
    `revocation_evidence`, the seal certificate's DER OCSP response from sealing time, kept in the
    files for long-term validation: the PDF's document security store (/DSS /OCSPs, ISO 32000-2
    §12.8.4.3) and the OFD part Doc_0/Signs/Sign_0/OCSP.der (EVIDENCE_FILE), both signed with the rest."""
    chain = tuple(signer_chain)
    if not chain or not all(isinstance(c, Certificate) for c in chain):
        raise SealInputError("签章人证书链不能为空（签章证书在前）")
    if not isinstance(now, dt.datetime) or now.tzinfo is None:
        raise SealInputError("签章时间必须是带时区的时间")
    now = now.astimezone(dt.timezone.utc).replace(microsecond=0)
    seal = _checked_seal(seal_der, chain[0].der)
    if not seal.valid_at(now):
        raise SealInputError(
            f"印章「{seal.name}」在签章时间 {now:%Y-%m-%d %H:%M:%S}Z 不在有效期内"
            f"（{seal.valid_start:%Y-%m-%d} 至 {seal.valid_end:%Y-%m-%d}）"
        )
    now = _signing_time(now, chain[0].der)
    box = SealBox.of(layout.seal)
    box.check_inside(layout.width, layout.height)

    pdf_file, hole, byte_range, pdf_digest, pdf_prefix = _write_pdf(
        layout, fonts, chain, seal_picture_png, box, now, title, None, timestamp_room, revocation_evidence
    )
    attributes = signed_attributes(pdf_digest, now, chain[0].der)
    parts, data_hash, tbs = _ofd(layout, fonts, seal_der, box, now, title, doc_id, custom, revocation_evidence)
    return PreparedLicence(
        pdf=pdf_file,
        pdf_hole=hole,
        pdf_byte_range=byte_range,
        pdf_digest=pdf_digest,
        pdf_prefix=pdf_prefix,
        pdf_signed_attributes=attributes,
        ofd_parts=parts,
        ofd_data_hash=data_hash,
        ofd_tbs=tbs,
        certificate_chain=chain,
        seal_der=bytes(seal_der),
        time=now,
    )


def messages(prepared: PreparedLicence) -> tuple[bytes, bytes]:
    """What the seal certificate's key signs: (PDF signed attributes, OFD TBS_Sign), both DER."""
    return prepared.pdf_signed_attributes, prepared.ofd_tbs


def digests(prepared: PreparedLicence, signer: Signer) -> tuple[bytes, bytes]:
    """e = SM3(Z || message) of both messages for `signer` (as `signer.digest` gives them); the
    constant start of TBS_Sign (the whole seal) is hashed once per seal and key."""
    z = signer.public_key.z(signer.signer_id)
    return _digests(prepared, z)


def finish_licence(
    prepared: PreparedLicence,
    pdf_signature: bytes,
    ofd_signature: bytes,
    *,
    verify: bool = True,
    timestamps: tuple[bytes, bytes] | None = None,
) -> SealedLicence:
    """The sealed files: `pdf_signature` and `ofd_signature` are the DER SM2 signatures (r, s) of
    `messages(prepared)` by the seal certificate's key (default ID). With `verify` both are checked
    first, so a faulty signing device never yields a sealed file (about 0.6 ms each).

    `timestamps`: DER RFC 3161 tokens over the two signature values (the DER SM2 signatures as they
    stand in the files: the SignerInfo's signature OCTET STRING, RFC 3161 App. A; the SES_Signature's
    signature BIT STRING without its unused-bits octet, GB/T 38540), written as the PDF SignerInfo's unsigned attribute
    id-aa-signatureTimeStampToken (PAdES B-T) and the SES_Signature's timeStamp (GB/T 38540)."""
    leaf = prepared.certificate_chain[0]
    for signature in (pdf_signature, ofd_signature):
        if not isinstance(signature, bytes) or not 8 <= len(signature) <= SIGNATURE_MAX_DER:
            raise SealSigningError("签章签名值不是 DER 编码的 SM2 签名")
    if verify:
        e_pdf, e_ofd = _digests(prepared, leaf.public_key.z())
        if not (
            leaf.public_key.verify_digest(pdf_signature, e_pdf) and leaf.public_key.verify_digest(ofd_signature, e_ofd)
        ):
            raise SealSigningError("签章签名验证失败：签名设备返回的签名值与签章人证书不符")

    pdf_stamp, ofd_stamp = timestamps if timestamps is not None else (None, None)
    cms = signed_data(prepared.certificate_chain, prepared.pdf_signed_attributes, pdf_signature, pdf_stamp)
    contents = cms.hex().encode()
    start, end = prepared.pdf_hole
    if len(contents) > end - start:
        raise SealSigningError("签名数据超出预留空间")
    pdf = prepared.pdf[:start] + contents + prepared.pdf[start + len(contents) :]

    ses_signature = encode_signature(prepared.ofd_tbs, leaf.der, ofd_signature, ofd_stamp)
    parts = [*prepared.ofd_parts, (SIGNED_VALUE_PATH, ses_signature)]
    ofd = write_package(package_entries(parts, package_time(prepared.time)))
    prefix_length, prefix_state = prepared.pdf_prefix
    whole = prefix_state.copy()
    whole.update(memoryview(pdf)[prefix_length:])
    return SealedLicence(pdf=pdf, ofd=ofd, pdf_sm3=whole.finalize(), pdf_constant=prefix_length)


def seal_licence(
    layout: PageLayout,
    fonts: FontSet,
    signer: Signer,
    seal_der: bytes,
    seal_picture_png: bytes,
    now: dt.datetime,
    *,
    title: str | None = None,
    doc_id: str | None = None,
    custom: Mapping[str, str] | None = None,
    verify: bool = True,
    timestamper: Callable[[Sequence[bytes]], Sequence[bytes] | None] | None = None,
    timestamp_room: int = 0,
    revocation_evidence: bytes | None = None,
) -> SealedLicence:
    """Both sealed files of one licence in one call; `signer` holds the seal certificate's key
    and chain (seal certificate first). `timestamper` turns the two signature values into two
    time-stamp tokens (or None: no timestamp), each at most `timestamp_room` bytes;
    `revocation_evidence` as for `prepare_licence`."""
    if not signer.certificate_chain:
        raise SealInputError("签章人的签名密钥没有证书")
    prepared = prepare_licence(
        layout,
        fonts,
        signer_chain=signer.certificate_chain,
        seal_der=seal_der,
        seal_picture_png=seal_picture_png,
        now=now,
        title=title,
        doc_id=doc_id,
        custom=custom,
        timestamp_room=timestamp_room if timestamper is not None else 0,
        revocation_evidence=revocation_evidence,
    )
    e_pdf, e_ofd = digests(prepared, signer)
    pdf_signature, ofd_signature = signer.sign_digest(e_pdf), signer.sign_digest(e_ofd)
    tokens = timestamper((pdf_signature, ofd_signature)) if timestamper is not None else None
    stamps = (tokens[0], tokens[1]) if tokens is not None else None
    return finish_licence(prepared, pdf_signature, ofd_signature, verify=verify, timestamps=stamps)


def seal_page_pdf(
    layout: PageLayout,
    fonts: FontSet,
    signer: Signer,
    seal_picture_png: bytes,
    box: SealBox,
    now: dt.datetime,
    *,
    title: str | None = None,
    reason: str | None = None,
    timestamper: Callable[[bytes], bytes | None] | None = None,
    timestamp_room: int = 0,
) -> bytes:
    """A one-page PDF written already sealed, as a licence's PDF is (certified, no change
    permitted), with the seal picture at `box` (mm from the top left); `signer` holds the key and
    its chain (leaf first). About a fifth of the time of rendering, then sealing with
    `seals.pdf_seal` (pyHanko's incremental update), which parses the file back. `timestamper`
    gives a token over the signature value (at most `timestamp_room` bytes), as for `seal_pdf`."""
    chain = tuple(signer.certificate_chain)
    if not chain:
        raise SealInputError("签章人的签名密钥没有证书")
    now = _signing_time(now, chain[0].der)
    box = SealBox.of(box)
    box.check_inside(layout.width, layout.height)
    room = timestamp_room if timestamper is not None else 0
    pdf, (start, end), _, digest, _ = _write_pdf(
        layout, fonts, chain, seal_picture_png, box, now, title, reason, room, None
    )
    attributes = signed_attributes(digest, now, chain[0].der)
    e = signer.digest(attributes)
    signature = signer.sign_digest(e)
    if not chain[0].public_key.verify_digest(signature, e):
        raise SealSigningError("签章签名验证失败：签名设备返回的签名值与签章人证书不符")
    timestamp = timestamper(signature) if timestamper is not None else None
    contents = signed_data(chain, attributes, signature, timestamp).hex().encode()
    if len(contents) > end - start:
        raise SealSigningError("签名数据超出预留空间")
    return pdf[:start] + contents + pdf[start + len(contents) :]


def _signing_time(now: dt.datetime, leaf_der: bytes) -> dt.datetime:
    """`now` in whole seconds, UTC, checked to fall within the signer's certificate."""
    if not isinstance(now, dt.datetime) or now.tzinfo is None:
        raise SealInputError("签章时间必须是带时区的时间")
    now = now.astimezone(dt.timezone.utc).replace(microsecond=0)
    common_name, not_before, not_after = _leaf_facts(leaf_der)
    if not not_before <= now <= not_after:
        raise SealInputError(
            f"签章证书「{common_name}」在签章时间 {now:%Y-%m-%d %H:%M:%S}Z 不在有效期内"
            f"（{not_before:%Y-%m-%d} 至 {not_after:%Y-%m-%d}）"
        )
    return now


def _digests(prepared: PreparedLicence, z: bytes) -> tuple[bytes, bytes]:
    pdf = hashes.Hash(hashes.SM3())
    pdf.update(z)
    pdf.update(prepared.pdf_signed_attributes)
    return pdf.finalize(), _tbs_digest(z, prepared.ofd_tbs, prepared.seal_der)


def _tbs_digest(z: bytes, tbs: bytes, seal_der: bytes) -> bytes:
    """SM3(Z || TBS_Sign), from the kept state after Z and the TBS's constant start (the seal)."""
    known = _TBS_STATES.get((z, seal_der))
    if known is None:
        prefix = tbs_sign_constant_prefix(seal_der, SM3_LENGTH, PROPERTY_INFO)
        if prefix is not None:
            state = hashes.Hash(hashes.SM3())
            state.update(z)
            state.update(prefix)
            if len(_TBS_STATES) >= _MAX_TBS_STATES:
                _TBS_STATES.clear()
            known = _TBS_STATES[(z, seal_der)] = (prefix, state)
    digest = hashes.Hash(hashes.SM3())
    if known is not None and tbs.startswith(known[0]):
        digest = known[1].copy()
        digest.update(memoryview(tbs)[len(known[0]) :])
    else:
        digest.update(z)
        digest.update(tbs)
    return digest.finalize()


# --- the checked seal ----------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _checked_seal(seal_der: bytes, leaf_der: bytes) -> Seal:
    """The seal decoded once per process, and checked to list the signer's certificate."""
    try:
        seal = parse_seal(seal_der)
    except MalformedSealError as exc:
        raise SealInputError(f"印章数据无效：{exc}") from None
    if not seal.lists_certificate(leaf_der):
        raise SealInputError(f"签章人证书不在印章「{seal.name}」的证书列表中")
    return seal


@lru_cache(maxsize=16)
def _leaf_facts(leaf_der: bytes) -> tuple[str, dt.datetime, dt.datetime]:
    """The seal certificate's name and validity, read once per certificate (asn1crypto decodes
    them on every access)."""
    leaf = Certificate.load(leaf_der)
    return leaf.common_name, leaf.not_before, leaf.not_after


# --- PDF -----------------------------------------------------------------------------------------

DOCMDP_NO_CHANGES = (
    b" /Reference [<< /Type /SigRef /TransformMethod /DocMDP"
    b" /TransformParams << /Type /TransformParams /P 1 /V /1.2 >> >>]"
)


def _write_pdf(
    layout: PageLayout,
    fonts: FontSet,
    chain: tuple[Certificate, ...],
    picture_png: bytes,
    box: SealBox,
    now: dt.datetime,
    title: str | None,
    reason: str | None,
    timestamp_room: int,
    revocation_evidence: bytes | None,
) -> tuple[bytes, tuple[int, int], tuple[int, int, int, int], bytes, tuple[int, Any]]:
    page_height = layout.height * PT_PER_MM
    x1, y1, x2, y2 = box.to_pdf_rect(page_height)
    builder = build_pdf(layout, fonts, title=title, created=now, fixed=_seal_objects(picture_png, x2 - x1, y2 - y1))
    if revocation_evidence is not None:  # long-term validation: the status at sealing time travels along
        response, store = builder.reserve(), builder.reserve()
        builder.objects[response] = pdf_stream(b"", revocation_evidence)
        builder.objects[store] = b"<< /OCSPs [%d 0 R] >>" % response
        builder.catalog_entries.append(b"/DSS %d 0 R" % store)
    widget = builder.reserve()
    signature = builder.reserve()  # last: the second range is only the xref and trailer
    rect = b" ".join(pdf_number(v) for v in (x1, y1, x2, y2))
    builder.objects[widget] = (
        b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (%s) /F 132 /Rect [%s] /P %d 0 R"
        b" /AP << /N %d 0 R >> /V %d 0 R >>" % (FIELD_NAME.encode(), rect, builder.page, _SEAL_APPEARANCE, signature)
    )
    # Everything up to /ByteRange, the placeholder, then the hole: offsets follow from the lengths.
    # A certification signature forbidding any change (ISO 32000-1 §12.8.2.2, DocMDP P=1): a licence
    # is final as issued, so a revision after it, whatever is signed later, makes it INVALID.
    head = (
        b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /adbe.pkcs7.detached /Name <%s> /M (%s)%s%s /ByteRange "
        % (
            utf16_hex(_leaf_facts(chain[0].der)[0]),
            pdf_date(now),
            b" /Reason <%s>" % utf16_hex(reason) if reason else b"",
            DOCMDP_NO_CHANGES,
        )
    )
    reserved = 2 * reserved_length(tuple(c.der for c in chain), timestamp_room)
    between = b" /Contents <"
    builder.objects[signature] = head + b" " * BYTE_RANGE_WIDTH + between + b"0" * reserved + b"> >>"
    builder.page_entries.append(b"/Annots [%d 0 R]" % widget)
    builder.catalog_entries.append(b"/AcroForm << /Fields [%d 0 R] /SigFlags 3 >>" % widget)
    builder.catalog_entries.append(b"/Perms << /DocMDP %d 0 R >>" % signature)
    written: PdfFile = builder.write()

    byte_range_at = written.object_start(signature) + len(head)
    hole_start = byte_range_at + BYTE_RANGE_WIDTH + len(between) - 1  # the "<"
    hole_end = hole_start + reserved + 2  # after the ">"
    byte_range = (0, hole_start, hole_end, len(written.data) - hole_end)
    data = bytearray(written.data)
    data[byte_range_at : byte_range_at + BYTE_RANGE_WIDTH] = b"[%d %d %d %d]" % byte_range + b" " * (
        BYTE_RANGE_WIDTH - len(b"[%d %d %d %d]" % byte_range)
    )
    view = memoryview(data)
    prefix_state = _prefix_state(written.prefix)  # the seal objects and background: hashed once
    digest = prefix_state.copy()
    digest.update(view[len(written.prefix) : hole_start])
    digest.update(view[hole_end:])
    prefix = (len(written.prefix), prefix_state)
    return bytes(data), (hole_start + 1, hole_end - 1), byte_range, digest.finalize(), prefix


@lru_cache(maxsize=32)
def _prefix_state(prefix: bytes) -> Any:
    """SM3 state after the file's constant prefix (header, seal objects, background)."""
    state = hashes.Hash(hashes.SM3())
    state.update(prefix)
    return state


@lru_cache(maxsize=16)
def _seal_objects(picture_png: bytes, width_pt: float, height_pt: float) -> tuple[bytes, bytes, bytes]:
    """The seal picture as an RGB image with its alpha as a soft mask (ISO 32000-1 §11.6.5.3), and
    the appearance stream drawing it over the widget's whole box (stretched, as pdf_seal draws it)."""
    image = _decode_picture(picture_png)
    rgb = image.convert("RGB").tobytes()
    alpha = image.getchannel("A").tobytes()
    common = b"/Type /XObject /Subtype /Image /Width %d /Height %d /BitsPerComponent 8 /Filter /FlateDecode" % (
        image.width,
        image.height,
    )
    picture = pdf_stream(common + b" /ColorSpace /DeviceRGB /SMask %d 0 R" % _SEAL_MASK, _deflate(rgb))
    mask = pdf_stream(common + b" /ColorSpace /DeviceGray", _deflate(alpha))
    w, h = pdf_number(width_pt), pdf_number(height_pt)
    appearance = pdf_stream(
        b"/Type /XObject /Subtype /Form /BBox [0 0 %s %s] /Resources << /XObject << /Seal %d 0 R >> >>"
        % (w, h, _SEAL_IMAGE),
        b"q %s 0 0 %s 0 0 cm /Seal Do Q" % (w, h),
    )
    return picture, mask, appearance


def _decode_picture(png: bytes) -> Image.Image:
    if not isinstance(png, bytes):
        raise PictureError("印章图片须为 PNG")
    return decode_seal_picture(png)


def _deflate(data: bytes) -> bytes:
    return zlib.compress(data, 9)  # once per seal picture: the smallest file wins


# --- OFD -----------------------------------------------------------------------------------------


def _ofd(
    layout: PageLayout,
    fonts: FontSet,
    seal_der: bytes,
    box: SealBox,
    now: dt.datetime,
    title: str | None,
    doc_id: str | None,
    custom: Mapping[str, str] | None,
    revocation_evidence: bytes | None,
) -> tuple[tuple[tuple[str, bytes], ...], bytes, bytes]:
    """The package parts but SignedValue.dat, SM3(Signature.xml) and DER(TBS_Sign)."""
    local = now.astimezone(BEIJING)
    parts = ofd_parts(
        layout,
        fonts,
        doc_id=doc_id or uuid.uuid4().hex,
        created=local.date(),
        title=title,
        signatures="/" + SIGNATURES_PATH,
        custom=custom,
    )
    parts[SIGNATURES_PATH] = _signatures_xml()
    parts[SEAL_PATH] = bytes(seal_der)
    if revocation_evidence is not None:
        parts[EVIDENCE_PATH] = bytes(revocation_evidence)
    references = "".join(
        f'<ofd:Reference FileRef="/{name}"><ofd:CheckValue>{base64.b64encode(_sm3_part(data)).decode()}'
        "</ofd:CheckValue></ofd:Reference>"
        for name, data in parts.items()
    )
    # As seals.ofd_seal writes it (ElementTree's serialisation, the schema's element order).
    signature_xml = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ofd:Signature xmlns:ofd="{NS}"><ofd:SignedInfo>'
        f'<ofd:Provider ProviderName="{PROVIDER_NAME}" Company="{PROVIDER_COMPANY}" Version="{PROVIDER_VERSION}" />'
        f"<ofd:SignatureMethod>{SM2_WITH_SM3}</ofd:SignatureMethod>"
        f"<ofd:SignatureDateTime>{local:%Y-%m-%d %H:%M:%S}</ofd:SignatureDateTime>"
        f'<ofd:References CheckMethod="{SM3}">{references}</ofd:References>'
        f'<ofd:StampAnnot ID="{ANNOT_ID}" PageRef="1" Boundary="{box.ofd_boundary()}" />'
        f"<ofd:Seal><ofd:BaseLoc>/{SEAL_PATH}</ofd:BaseLoc></ofd:Seal></ofd:SignedInfo>"
        f"<ofd:SignedValue>/{SIGNED_VALUE_PATH}</ofd:SignedValue></ofd:Signature>"
    ).encode()
    parts[SIGNATURE_PATH] = signature_xml
    data_hash = _sm3(signature_xml)
    return tuple(parts.items()), data_hash, encode_tbs_sign(seal_der, data_hash, PROPERTY_INFO, now)


@lru_cache(maxsize=1)
def _signatures_xml() -> bytes:
    """Signatures.xml (GB/T 33190 §18.1 表 66) with our one seal, as seals.ofd_seal writes it."""
    q = f"{{{NS}}}"
    root = ET.Element(q + "Signatures")
    ET.SubElement(root, q + "MaxSignId").text = ANNOT_ID
    ET.SubElement(root, q + "Signature", {"ID": SIGN_ID, "Type": "Seal", "BaseLoc": "/" + SIGNATURE_PATH})
    # typeshed types tostring with a named encoding as Any: with "utf-8" it returns bytes.
    body = cast(bytes, ET.tostring(root, encoding="utf-8", xml_declaration=False))
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def _sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def _sm3_part(data: bytes) -> bytes:
    return _sm3_cached(data) if len(data) >= _SM3_CACHE_MIN else _sm3(data)


@lru_cache(maxsize=32)
def _sm3_cached(data: bytes) -> bytes:
    return _sm3(data)
