"""Sealing PDFs (seals.pdf_seal), checked with code we did not write: qpdf checks the file, pyHanko's
reader finds the field, pyasn1-modules (RFC 5652) reads the CMS, SM3 comes from gmssl or
`cryptography`, the SM2 signature over the signed attributes is verified with gmssl and with the
OpenSSL CLI, and poppler draws the page so we can see the seal. PDFs made by other tools (Pillow,
pyHanko's own writer) are sealed as well as ours."""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import hashes
from PIL import Image, ImageDraw
from pyasn1.codec.der import decoder, encoder
from pyasn1.type import univ, useful
from pyasn1_modules import rfc5652
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PdfFileWriter

from keys.x509 import Certificate
from seals.errors import DocumentError, PictureError, SealInputError, SealSigningError
from seals.pdf_seal import finish_pdf_seal, prepare_pdf_seal, seal_pdf
from tests.conftest import NOW, SM2_ID_OPT, PkiHierarchy, gmssl_sm3, gmssl_verify, openssl, require_tool_or_skip

ROOT = Path(__file__).resolve().parents[2]
SM3_OID = "1.2.156.10197.1.401"
SM2_WITH_SM3_OID = "1.2.156.10197.1.501"
MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
SIGNING_TIME = "1.2.840.113549.1.9.5"
CONTENT_TYPE = "1.2.840.113549.1.9.3"
BOX = (140.0, 230.0, 42.0, 42.0)  # mm from the top-left of an A4 page


# --- documents made by other tools ----------------------------------------------------------------


def pillow_pdf() -> bytes:
    """An A4 page as Pillow writes it (an image page, 150 dpi)."""
    page = Image.new("RGB", (1240, 1754), "white")
    ImageDraw.Draw(page).rectangle((100, 100, 1100, 300), outline="black", width=5)
    out = io.BytesIO()
    page.save(out, "PDF", resolution=150)
    return out.getvalue()


def pyhanko_pdf() -> bytes:
    """Two US Letter pages from pyHanko's writer: xref streams, the MediaBox inherited from the
    page tree, and a CropBox smaller than the MediaBox on the second page."""
    writer = PdfFileWriter()
    pages = writer.root["/Pages"]
    pages[pdf_name("/MediaBox")] = generic.ArrayObject([generic.NumberObject(v) for v in (0, 0, 612, 792)])
    for index in range(2):
        content = generic.StreamObject(stream_data=b"0 0 1 rg 72 600 200 100 re f")
        page = generic.DictionaryObject(
            {
                pdf_name("/Type"): pdf_name("/Page"),
                pdf_name("/Contents"): writer.add_object(content),
                pdf_name("/Resources"): generic.DictionaryObject(),
            }
        )
        if index == 1:
            page[pdf_name("/CropBox")] = generic.ArrayObject([generic.NumberObject(v) for v in (36, 36, 576, 756)])
        writer.insert_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def licence_pdf() -> tuple[bytes, tuple[float, float, float, float]]:
    """Our own licence PDF (templates.pdf) and the seal box its template gives."""
    from templates.backgrounds import prepare_background
    from templates.fonts import FontSet
    from templates.layout import build_layout, sample_face
    from templates.pdf import render_pdf
    from templates.spec import LicenceTypeSpec, parse_model

    data = yaml.safe_load((ROOT / "examples" / "types" / "food-business-licence.yaml").read_text(encoding="utf-8"))
    spec = parse_model(LicenceTypeSpec, data)
    assert spec.template is not None
    fonts = FontSet.default()
    layout = build_layout(spec, spec.template, prepare_background(spec.template, {}), sample_face(spec), fonts)
    box = layout.seal
    return render_pdf(layout, fonts), (box.x, box.y, box.w, box.h)


# --- an independent check -------------------------------------------------------------------------


def _sm3(data: bytes) -> bytes:
    if len(data) <= 20_000:
        return gmssl_sm3(data)
    digest = hashes.Hash(hashes.SM3())  # gmssl is pure Python: big inputs go through OpenSSL
    digest.update(data)
    return digest.finalize()


@dataclass
class Checked:
    byte_range: tuple[int, int, int, int]
    signed_attributes: bytes  # DER SET OF, as signed
    signature: bytes
    certificates: set[bytes]
    signing_time: dt.datetime
    field_names: list[str]


def _attribute(attrs: univ.Asn1Item, oid: str) -> bytes:
    values = [a["attrValues"] for a in attrs if str(a["attrType"]) == oid]
    assert len(values) == 1 and len(values[0]) == 1, oid
    return bytes(values[0][0])


def _signer_info(data: bytes, index: int) -> tuple[tuple[int, int, int, int], univ.Asn1Item, univ.Asn1Item]:
    """The /ByteRange (found by regex) and the CMS SignedData and SignerInfo (read by pyasn1)."""
    found = list(re.finditer(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", data))
    start, first_len, second_start, second_len = (int(g) for g in found[index].groups())
    assert start == 0
    hole = data[first_len:second_start]
    assert hole[:1] == b"<" and hole[-1:] == b">"
    cms_der = bytes.fromhex(hole[1:-1].decode("ascii"))
    content_info, padding = decoder.decode(cms_der, asn1Spec=rfc5652.ContentInfo())
    assert padding.strip(b"\x00") == b""
    assert str(content_info["contentType"]) == "1.2.840.113549.1.7.2"  # signedData
    signed_data, rest = decoder.decode(bytes(content_info["content"]), asn1Spec=rfc5652.SignedData())
    assert rest == b""
    [signer_info] = signed_data["signerInfos"]
    return (start, first_len, second_start, second_len), signed_data, signer_info


def digest_matches(data: bytes, index: int = -1) -> bool:
    """messageDigest equals SM3 of the bytes the /ByteRange covers."""
    (_s, first_len, second_start, second_len), _sd, signer_info = _signer_info(data, index)
    signed = data[:first_len] + data[second_start : second_start + second_len]
    digest = decoder.decode(_attribute(signer_info["signedAttrs"], MESSAGE_DIGEST), asn1Spec=univ.OctetString())[0]
    return bytes(digest) == _sm3(signed)


def check_sealed_pdf(data: bytes, signer: Certificate, index: int = -1) -> Checked:
    """The `index`-th signature of `data` checks out; AssertionError (or a decoding error) if not."""
    fields = [s.field_name for s in PdfFileReader(io.BytesIO(data), strict=False).embedded_signatures]
    assert len(re.findall(rb"/ByteRange\s*\[", data)) == len(fields) >= 1
    byte_range, signed_data, signer_info = _signer_info(data, index)
    if index == -1:  # the last signature covers the whole file except its /Contents
        assert byte_range[2] + byte_range[3] == len(data)
    assert str(signer_info["digestAlgorithm"]["algorithm"]) == SM3_OID
    assert str(signer_info["signatureAlgorithm"]["algorithm"]) == SM2_WITH_SM3_OID
    sid = signer_info["sid"]["issuerAndSerialNumber"]
    assert int(sid["serialNumber"]) == signer.serial
    assert digest_matches(data, index), "messageDigest is SM3 of the /ByteRange"

    attrs = signer_info["signedAttrs"]
    content_type = decoder.decode(_attribute(attrs, CONTENT_TYPE), asn1Spec=univ.ObjectIdentifier())[0]
    assert str(content_type) == "1.2.840.113549.1.7.1"
    when = decoder.decode(_attribute(attrs, SIGNING_TIME), asn1Spec=useful.UTCTime())[0]
    # RFC 5652 §5.4: the signature covers the attributes DER-encoded as a SET OF (tag 0x31).
    implicit = encoder.encode(attrs)
    assert implicit[:1] == b"\xa0"
    attrs_der = b"\x31" + implicit[1:]
    signature = bytes(signer_info["signature"])
    assert gmssl_verify(signer.public_key, signature, attrs_der)
    certificates = {encoder.encode(c["certificate"]) for c in signed_data["certificates"]}
    return Checked(
        byte_range=byte_range,
        signed_attributes=attrs_der,
        signature=signature,
        certificates=certificates,
        signing_time=dt.datetime.strptime(str(when), "%y%m%d%H%M%SZ").replace(tzinfo=dt.timezone.utc),
        field_names=fields,
    )


def _qpdf_check(path: Path) -> None:
    result = subprocess.run([require_tool_or_skip("qpdf"), "--check", str(path)], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def _render(path: Path, page: int, dpi: int) -> Image.Image:
    out = path.with_suffix(f".p{page}")
    # -cropbox: draw what a viewer shows (poppler's default is the MediaBox).
    command = [require_tool_or_skip("pdftoppm"), "-cropbox", "-f", str(page + 1), "-l", str(page + 1), "-r", str(dpi)]
    subprocess.run([*command, "-png", "-singlefile", str(path), str(out)], check=True, timeout=60)
    return Image.open(out.with_suffix(out.suffix + ".png")).convert("RGB")


def _red_share(image: Image.Image, box: tuple[int, int, int, int]) -> float:
    data = image.crop(box).tobytes()
    pixels = len(data) // 3
    red = sum(1 for i in range(0, len(data), 3) if data[i] > 180 and data[i + 1] < 90 and data[i + 2] < 90)
    return red / pixels


def check_seal_shows(path: Path, page: int, box_mm: tuple[float, float, float, float]) -> None:
    """The seal's red is inside its box on the rendered page, and nowhere else."""
    dpi = 60
    image = _render(path, page, dpi)
    x, y, w, h = (round(v / 25.4 * dpi) for v in box_mm)
    assert _red_share(image, (x, y, x + w, y + h)) > 0.08
    margin = 3
    outside = image.copy()
    ImageDraw.Draw(outside).rectangle((x - margin, y - margin, x + w + margin, y + h + margin), fill="white")
    assert _red_share(outside, (0, 0, image.width, image.height)) == 0


# --- tests ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sealed(pki: PkiHierarchy, seal_picture: bytes) -> bytes:
    return seal_pdf(pillow_pdf(), pki.seal_signer, seal_picture, 0, BOX, "电子证照签章", "测试市", NOW)


def test_sealed_pdf_checks_out(pki: PkiHierarchy, sealed: bytes, tmp_path: Path) -> None:
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    _qpdf_check(path)
    checked = check_sealed_pdf(sealed, pki.seal)
    assert checked.field_names == ["ECAS_Seal_1"]
    assert checked.certificates == {pki.seal.der, pki.branch.der, pki.root.der}
    assert checked.signing_time == NOW
    # The same signature, checked by the OpenSSL CLI.
    (tmp_path / "pub.pem").write_bytes(pki.seal.public_key.to_pem())
    (tmp_path / "sig.der").write_bytes(checked.signature)
    (tmp_path / "attrs.der").write_bytes(checked.signed_attributes)
    args = ["dgst", "-sm3", "-verify", str(tmp_path / "pub.pem"), "-sigopt", SM2_ID_OPT]
    result = openssl(*args, "-signature", str(tmp_path / "sig.der"), str(tmp_path / "attrs.der"))
    assert b"Verified OK" in result.stdout
    (tmp_path / "attrs2.der").write_bytes(checked.signed_attributes[:-1] + b"\x00")
    bad = openssl(*args, "-signature", str(tmp_path / "sig.der"), str(tmp_path / "attrs2.der"), check=False)
    assert bad.returncode != 0


def test_reason_location_and_field(sealed: bytes) -> None:
    reader = PdfFileReader(io.BytesIO(sealed), strict=False)
    [signature] = reader.embedded_signatures
    assert signature.sig_object["/Reason"] == "电子证照签章"
    assert signature.sig_object["/Location"] == "测试市"
    assert signature.sig_object["/SubFilter"] == "/adbe.pkcs7.detached"
    widget = signature.sig_field
    x1, y1, x2, y2 = (float(v) for v in widget["/Rect"])
    # 140 mm from the left, 230 mm from the top of an A4 page (842 pt high), 42 mm square.
    assert (round(x1, 1), round(y2, 1)) == (round(140 / 25.4 * 72, 1), round(842 - 230 / 25.4 * 72, 1))
    assert round(x2 - x1, 1) == round(y2 - y1, 1) == round(42 / 25.4 * 72, 1)


def test_seal_picture_shows_in_its_box(sealed: bytes, tmp_path: Path) -> None:
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    check_seal_shows(path, 0, BOX)


def test_changing_a_signed_byte_is_detected(pki: PkiHierarchy, sealed: bytes) -> None:
    _start, first_len, second_start, second_len = check_sealed_pdf(sealed, pki.seal).byte_range
    assert digest_matches(sealed)
    positions = {
        "the original page": first_len // 2,
        "the seal's appearance": sealed.index(b" cm", sealed.index(b"/BackgroundGS gs")) - 1,
        "the last byte before /Contents": first_len - 1,
        "the signature's /Reason": sealed.index(b"/Reason", second_start) + 9,
        "the end of the file": second_start + second_len - 2,
    }
    for what, position in positions.items():
        assert 0 <= position < first_len or second_start <= position < second_start + second_len, what
        tampered = bytearray(sealed)
        tampered[position] ^= 0x01
        assert not digest_matches(bytes(tampered)), what


def test_staged_sealing(pki: PkiHierarchy, seal_picture: bytes) -> None:
    prepared = prepare_pdf_seal(pillow_pdf(), pki.seal_signer.certificate_chain, seal_picture, 0, BOX, now=NOW)
    assert prepared.field_name == "ECAS_Seal_1"
    signer = pki.seal_signer
    value = signer.sign_digest(signer.digest(prepared.tbs))  # as a batch or an HSM would
    sealed = finish_pdf_seal(prepared, value)
    checked = check_sealed_pdf(sealed, pki.seal)
    assert checked.signed_attributes == prepared.tbs
    assert checked.signature == value
    # The digest pyHanko computed is the messageDigest, SM3 of the /ByteRange.
    _s, first_len, second_start, second_len = checked.byte_range
    assert prepared.document_digest == _sm3(sealed[:first_len] + sealed[second_start : second_start + second_len])


def test_finish_refuses_a_wrong_signature(pki: PkiHierarchy, seal_picture: bytes) -> None:
    prepared = prepare_pdf_seal(pillow_pdf(), pki.seal_signer.certificate_chain, seal_picture, 0, BOX, now=NOW)
    with pytest.raises(SealSigningError):
        finish_pdf_seal(prepared, pki.branch_signer.sign(prepared.tbs))
    with pytest.raises(SealSigningError):
        finish_pdf_seal(prepared, b"\x30\x00")


def test_pdf_from_pyhanko_writer(pki: PkiHierarchy, seal_picture: bytes, tmp_path: Path) -> None:
    document = pyhanko_pdf()
    box = (20.0, 20.0, 40.0, 40.0)
    sealed = seal_pdf(document, pki.seal_signer, seal_picture, 1, box, now=NOW)
    path = tmp_path / "pyhanko.pdf"
    path.write_bytes(sealed)
    _qpdf_check(path)
    check_sealed_pdf(sealed, pki.seal)
    # Page 2 shows only its CropBox (0.5 inch in from each side): the box is measured from there.
    [signature] = PdfFileReader(io.BytesIO(sealed), strict=False).embedded_signatures
    x1, _y1, _x2, y2 = (float(v) for v in signature.sig_field["/Rect"])
    assert round(x1, 2) == round(36 + 20 / 25.4 * 72, 2)
    assert round(y2, 2) == round(756 - 20 / 25.4 * 72, 2)
    check_seal_shows(path, 1, box)


def test_second_seal_keeps_the_first(pki: PkiHierarchy, sealed: bytes, seal_picture: bytes, tmp_path: Path) -> None:
    twice = seal_pdf(sealed, pki.seal_signer, seal_picture, 0, (20, 20, 30, 30), now=NOW + dt.timedelta(minutes=1))
    path = tmp_path / "twice.pdf"
    path.write_bytes(twice)
    _qpdf_check(path)
    second = check_sealed_pdf(twice, pki.seal, index=-1)
    first = check_sealed_pdf(twice, pki.seal, index=0)
    assert second.field_names == ["ECAS_Seal_1", "ECAS_Seal_2"]
    # The first signature still covers exactly the first revision.
    assert first.byte_range[2] + first.byte_range[3] == len(sealed)
    assert twice.startswith(sealed)


def test_seals_our_licence_pdf(pki: PkiHierarchy, seal_picture: bytes, tmp_path: Path) -> None:
    document, box = licence_pdf()
    sealed = seal_pdf(document, pki.seal_signer, seal_picture, 0, box, now=NOW)
    path = tmp_path / "licence.pdf"
    path.write_bytes(sealed)
    _qpdf_check(path)
    check_sealed_pdf(sealed, pki.seal)
    image = _render(path, 0, 60)
    x, y, w, h = (round(v / 25.4 * 60) for v in box)
    assert _red_share(image, (x, y, x + w, y + h)) > 0.08


def test_bad_documents_and_places(pki: PkiHierarchy, seal_picture: bytes, tmp_path: Path) -> None:
    signer, document = pki.seal_signer, pillow_pdf()
    with pytest.raises(DocumentError, match="共 1 页"):
        seal_pdf(document, signer, seal_picture, 1, BOX, now=NOW)
    with pytest.raises(DocumentError, match="超出页面"):
        seal_pdf(document, signer, seal_picture, 0, (180, 10, 42, 42), now=NOW)
    with pytest.raises(DocumentError, match="不是 PDF"):
        seal_pdf(b"hello", signer, seal_picture, 0, BOX, now=NOW)
    with pytest.raises(DocumentError):
        seal_pdf(b"%PDF-1.7\n%broken", signer, seal_picture, 0, BOX, now=NOW)
    with pytest.raises(PictureError):
        seal_pdf(document, signer, b"GIF89a", 0, BOX, now=NOW)
    with pytest.raises(SealInputError):
        seal_pdf(document, signer, seal_picture, 0, (-1, 0, 42, 42), now=NOW)
    qpdf = require_tool_or_skip("qpdf")
    source = tmp_path / "plain.pdf"
    source.write_bytes(document)
    rotated, encrypted = tmp_path / "rotated.pdf", tmp_path / "encrypted.pdf"
    subprocess.run([qpdf, str(source), "--rotate=+90", str(rotated)], check=True, timeout=60)
    subprocess.run([qpdf, "--encrypt", "u", "o", "256", "--", str(source), str(encrypted)], check=True, timeout=60)
    with pytest.raises(DocumentError, match="旋转"):
        seal_pdf(rotated.read_bytes(), signer, seal_picture, 0, BOX, now=NOW)
    with pytest.raises(DocumentError, match="加密"):
        seal_pdf(encrypted.read_bytes(), signer, seal_picture, 0, BOX, now=NOW)


def test_works_inside_a_running_event_loop(pki: PkiHierarchy, seal_picture: bytes) -> None:
    # An async web handler calling the plain API: pyHanko's coroutines run on a helper thread.
    import asyncio

    async def handler() -> bytes:
        return seal_pdf(pillow_pdf(), pki.seal_signer, seal_picture, 0, BOX, now=NOW)

    check_sealed_pdf(asyncio.run(handler()), pki.seal)


def test_pyhanko_own_signing_flow_with_our_signer(pki: PkiHierarchy) -> None:
    # pyHanko's one-shot sign_pdf with its own signed attributes, signing through keys.Signer.
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    from seals.pdf_seal import Sm2CmsSigner

    writer = IncrementalPdfFileWriter(io.BytesIO(pyhanko_pdf()))
    meta = signers.PdfSignatureMetadata(field_name="Other", md_algorithm="sm3")
    signer = Sm2CmsSigner(pki.seal_signer.certificate_chain, signer=pki.seal_signer)
    out = signers.sign_pdf(writer, meta, signer=signer).getvalue()
    checked = check_sealed_pdf(out, pki.seal)
    assert checked.field_names == ["Other"]
    assert checked.certificates == {pki.seal.der, pki.branch.der, pki.root.der}
