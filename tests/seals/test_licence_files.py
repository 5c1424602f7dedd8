"""Sealed licence files written in one pass (seals.licence_files), checked with code we did not write:
qpdf checks the PDF, pyHanko's reader finds the signature and checks what its /ByteRange covers,
pyasn1-modules (RFC 5652) reads the CMS, SM2 is verified by gmssl and the OpenSSL CLI, poppler
extracts the text and draws the page, zbar reads the QR, easyofd reads the OFD; the OFD checker and
the PDF checker are those of test_ofd_seal.py and test_pdf_seal.py. The general sealers
(seals.pdf_seal, seals.ofd_seal) seal the same licence for comparison."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from lxml import etree
from PIL import ImageChops, ImageDraw
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import SignatureCoverageLevel

from seals import licence_files
from seals.box import SealBox
from seals.errors import DocumentError, PictureError, SealInputError, SealSigningError
from seals.licence_files import (
    digests,
    finish_licence,
    messages,
    prepare_licence,
    seal_licence,
    seal_page_pdf,
)
from templates.backgrounds import prepare_background
from templates.fonts import FontSet
from templates.images import Picture
from templates.layout import LicenceFace, PageLayout, build_layout, sample_face
from templates.ofd import render_ofd
from templates.pdf import render_pdf
from templates.spec import LicenceTypeSpec, parse_model
from tests.conftest import NOW, SM2_ID_OPT, PkiHierarchy, gmssl_verify, openssl, require_tool_or_skip
from tests.seals import ses_asn1
from tests.seals.test_ofd_seal import Q, _replace, check_sealed_ofd
from tests.seals.test_pdf_seal import _qpdf_check, _red_share, _render, _sm3, check_sealed_pdf, digest_matches

ROOT = Path(__file__).resolve().parents[2]
FOOD = ROOT / "examples" / "types" / "food-business-licence.yaml"
BEIJING = dt.timezone(dt.timedelta(hours=8))
DOC_ID = "0123456789abcdef0123456789abcdef"
TITLE = "食品经营许可证"
NAMES = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面"
    "而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把"
    "性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质"
)


# --- licences ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Food:
    spec: LicenceTypeSpec
    fonts: FontSet
    background: Picture | None  # one per type, as issuance keeps it with the template version

    def layout(self, index: int = 0) -> PageLayout:
        """The food licence with the index-th operator name (every name needs new font subsets)."""
        assert self.spec.template is not None
        face = sample_face(self.spec, today=NOW.date())
        name = NAMES[index * 7 % 200 : index * 7 % 200 + 10] + "有限公司"
        values = {**face.values, "operator_name": name}
        face = LicenceFace(values, face.meta, face.qr_url, watermark=face.watermark)
        return build_layout(self.spec, self.spec.template, self.background, face, self.fonts)


@pytest.fixture(scope="module")
def food(fonts: FontSet) -> Food:
    spec = parse_model(LicenceTypeSpec, yaml.safe_load(FOOD.read_text(encoding="utf-8")))
    assert spec.template is not None
    return Food(spec, fonts, prepare_background(spec.template, {}))


@dataclass(frozen=True)
class Sealed:
    layout: PageLayout
    pdf: bytes
    ofd: bytes
    dir: Path


@pytest.fixture(scope="module")
def sealed(
    food: Food, pki: PkiHierarchy, eseal: bytes, seal_picture: bytes, tmp_path_factory: pytest.TempPathFactory
) -> Sealed:
    layout = food.layout()
    result = seal_licence(layout, food.fonts, pki.seal_signer, eseal, seal_picture, NOW, title=TITLE, doc_id=DOC_ID)
    directory = tmp_path_factory.mktemp("licence")
    (directory / "sealed.pdf").write_bytes(result.pdf)
    (directory / "sealed.ofd").write_bytes(result.ofd)
    (directory / "plain.pdf").write_bytes(render_pdf(layout, food.fonts, title=TITLE, created=NOW))
    return Sealed(layout, result.pdf, result.ofd, directory)


def _box_px(layout: PageLayout, dpi: int) -> tuple[int, int, int, int]:
    box = layout.seal
    x, y, w, h = (round(v / 25.4 * dpi) for v in (box.x, box.y, box.w, box.h))
    return x, y, x + w, y + h


# --- the PDF -------------------------------------------------------------------------------------


def test_pdf_passes_qpdf_and_the_cms_checks(pki: PkiHierarchy, sealed: Sealed) -> None:
    path = sealed.dir / "sealed.pdf"
    _qpdf_check(path)
    checked = check_sealed_pdf(sealed.pdf, pki.seal)  # digest, algorithms, signer, gmssl over the attributes
    assert checked.field_names == ["ECAS_Seal_1"]
    assert checked.certificates == {pki.seal.der, pki.branch.der, pki.root.der}
    assert checked.signing_time == NOW
    # The signature over the DER signed attributes, checked by the OpenSSL CLI too.
    (sealed.dir / "pub.pem").write_bytes(pki.seal.public_key.to_pem())
    (sealed.dir / "sig.der").write_bytes(checked.signature)
    (sealed.dir / "attrs.der").write_bytes(checked.signed_attributes)
    args = ["dgst", "-sm3", "-verify", str(sealed.dir / "pub.pem"), "-sigopt", SM2_ID_OPT]
    result = openssl(*args, "-signature", str(sealed.dir / "sig.der"), str(sealed.dir / "attrs.der"))
    assert b"Verified OK" in result.stdout
    (sealed.dir / "attrs2.der").write_bytes(checked.signed_attributes[:-1] + b"\x00")
    bad = openssl(*args, "-signature", str(sealed.dir / "sig.der"), str(sealed.dir / "attrs2.der"), check=False)
    assert bad.returncode != 0


def test_pyhanko_finds_the_signature_and_its_coverage(pki: PkiHierarchy, sealed: Sealed) -> None:
    reader = PdfFileReader(io.BytesIO(sealed.pdf), strict=True)
    [signature] = reader.embedded_signatures
    assert signature.field_name == "ECAS_Seal_1"
    sig = signature.sig_object
    assert (sig["/Type"], sig["/Filter"], sig["/SubFilter"]) == ("/Sig", "/Adobe.PPKLite", "/adbe.pkcs7.detached")
    assert sig["/Name"] == pki.seal.common_name
    assert str(sig["/M"]).startswith(NOW.strftime("D:%Y%m%d%H%M%S"))
    assert reader.root["/AcroForm"]["/SigFlags"] == 3
    signature.compute_integrity_info()
    assert signature.coverage == SignatureCoverageLevel.ENTIRE_FILE
    # pyHanko cannot verify SM2, but it digests the /ByteRange with SM3 itself: the messageDigest.
    start, first, second, second_len = (int(v) for v in sig["/ByteRange"])
    assert (start, second + second_len) == (0, len(sealed.pdf))
    assert signature.compute_digest() == _sm3(sealed.pdf[:first] + sealed.pdf[second:])
    assert digest_matches(sealed.pdf)
    # The widget sits at the template's seal box (mm from the top-left → points from the bottom-left).
    widget = signature.sig_field
    assert widget["/FT"] == "/Sig" and widget["/Subtype"] == "/Widget"
    box, height = sealed.layout.seal, sealed.layout.height
    expected = (box.x, height - box.bottom, box.right, height - box.y)
    assert [float(v) for v in widget["/Rect"]] == pytest.approx([v / 25.4 * 72 for v in expected], abs=0.002)
    page = reader.root["/Pages"]["/Kids"][0]
    assert [a.get_object()["/T"] for a in page["/Annots"]] == ["ECAS_Seal_1"]


def test_pdf_page_is_the_rendered_page_plus_the_seal(sealed: Sealed) -> None:
    pdftotext = require_tool_or_skip("pdftotext")

    def text(path: Path) -> str:
        command = [pdftotext, "-layout", "-enc", "UTF-8", str(path), "-"]
        return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout

    sealed_text = text(sealed.dir / "sealed.pdf")
    assert sealed_text == text(sealed.dir / "plain.pdf")
    assert sealed.layout.texts["operator_name"] in sealed_text.replace(" ", "")
    dpi = 60
    ours, plain = _render(sealed.dir / "sealed.pdf", 0, dpi), _render(sealed.dir / "plain.pdf", 0, dpi)
    x1, y1, x2, y2 = _box_px(sealed.layout, dpi)
    assert _red_share(ours, (x1, y1, x2, y2)) > 0.08
    assert _red_share(plain, (x1, y1, x2, y2)) == 0
    # Outside the seal box, pixel for pixel what render_pdf draws.
    for image in (ours, plain):
        ImageDraw.Draw(image).rectangle((x1 - 1, y1 - 1, x2 + 1, y2 + 1), fill="white")
    assert ImageChops.difference(ours, plain).getbbox() is None


def test_zbarimg_reads_the_qr_of_the_sealed_pdf(sealed: Sealed) -> None:
    zbarimg = require_tool_or_skip("zbarimg")
    image = _render(sealed.dir / "sealed.pdf", 0, 150)
    path = sealed.dir / "page150.png"
    image.save(path)
    result = subprocess.run([zbarimg, "--raw", "-q", str(path)], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == sealed.layout.qr.text


def test_one_flipped_byte_in_the_covered_ranges_breaks_the_digest(pki: PkiHierarchy, sealed: Sealed) -> None:
    data = sealed.pdf
    _start, first, second, second_len = check_sealed_pdf(data, pki.seal).byte_range
    positions = {
        "the header": 9,
        "the seal picture": data.index(b"/SMask") + 40,
        "the page background": data.index(b"/DCTDecode") + 200,
        "the page content": data.index(b"/FlateDecode", data.index(b"/Type /Catalog")) + 30,
        "the widget's /Rect": data.index(b"/Rect [") + 8,
        "the signature's /M": data.index(b"/M (D:") + 8,
        "the /ByteRange": data.index(b"/ByteRange [") + 14,
        "the last byte before /Contents": first - 1,
        "the first byte after /Contents": second,
        "the xref": data.rindex(b"xref") + 8,
        "the end of the file": second + second_len - 2,
    }
    for what, position in positions.items():
        assert 0 <= position < first or second <= position < second + second_len, what
        tampered = bytearray(data)
        tampered[position] ^= 0x01
        assert not _digest_ok(bytes(tampered)), what
    assert digest_matches(data)


def _digest_ok(data: bytes) -> bool:
    try:
        return digest_matches(data)
    except Exception:  # a flipped /ByteRange digit no longer parses: also a detection
        return False


# --- the OFD -------------------------------------------------------------------------------------


def test_ofd_passes_the_ofd_seal_checks(pki: PkiHierarchy, eseal: bytes, sealed: Sealed) -> None:
    result = check_sealed_ofd(sealed.ofd)  # ZIP, XML, every SM3 reference, TBS, gmssl on SES_Signature
    assert result.signer.der == pki.seal.der
    assert result.signature_path == "Doc_0/Signs/Sign_0/Signature.xml"
    assert result.parts["Doc_0/Signs/Sign_0/Seal.esl"] == eseal
    assert str(result.tbs["timeInfo"]) == f"{NOW:%Y%m%d%H%M%S}Z"
    info = result.signature.find(f"{Q}SignedInfo")
    assert info is not None
    assert info.findtext(f"{Q}SignatureDateTime") == f"{NOW.astimezone(BEIJING):%Y-%m-%d %H:%M:%S}"
    annot = info.find(f"{Q}StampAnnot")
    assert annot is not None
    box = sealed.layout.seal
    assert [float(v) for v in (annot.get("Boundary") or "").split()] == [box.x, box.y, box.w, box.h]
    document = etree.fromstring(result.parts["Doc_0/Document.xml"])
    assert annot.get("PageRef") == document.find(f"{Q}Pages/{Q}Page").get("ID")  # type: ignore[union-attr]
    outer = ses_asn1.decode(result.parts["Doc_0/Signs/Sign_0/SignedValue.dat"], ses_asn1.SESSignature())
    assert gmssl_verify(pki.seal.public_key, ses_asn1.bits(outer["signature"]), bytes(outer["toSign"]))
    with zipfile.ZipFile(io.BytesIO(sealed.ofd)) as package:
        assert package.testzip() is None
        assert package.namelist()[0] == "OFD.xml"


def test_one_flipped_byte_in_any_ofd_part_is_detected(sealed: Sealed) -> None:
    with zipfile.ZipFile(io.BytesIO(sealed.ofd)) as package:
        contents = {n: package.read(n) for n in package.namelist()}
    assert len(contents) == 12
    for name, data in contents.items():
        for position in (0, len(data) // 2, len(data) - 1):
            tampered = bytearray(data)
            tampered[position] ^= 0x01
            with pytest.raises(Exception):  # noqa: B017 - a digest mismatch, a broken path, undecodable DER
                check_sealed_ofd(_replace(sealed.ofd, name, bytes(tampered)))


def test_easyofd_reads_the_sealed_ofd(sealed: Sealed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import easyofd

    monkeypatch.chdir(tmp_path)  # it unpacks into the working directory
    reader = easyofd.OFD()
    reader.read(sealed.ofd, fmt="binary")
    document = reader.data[0]
    assert document["default_page_size"] == pytest.approx([0, 0, sealed.layout.width, sealed.layout.height])
    cells = document["page_info"][0]["text_list"]
    assert [cell["text"] for cell in cells] == [run.text for run in sealed.layout.runs]


# --- the same as the general sealers -------------------------------------------------------------


def _prepare(
    food: Food, pki: PkiHierarchy, eseal: bytes, picture: bytes, layout: PageLayout
) -> licence_files.PreparedLicence:
    return prepare_licence(
        layout,
        food.fonts,
        signer_chain=pki.seal_signer.certificate_chain,
        seal_der=eseal,
        seal_picture_png=picture,
        now=NOW,
        title=TITLE,
        doc_id=DOC_ID,
    )


def test_ofd_equals_what_ofd_seal_makes_of_the_rendered_ofd(
    food: Food, pki: PkiHierarchy, eseal: bytes, seal_picture: bytes, sealed: Sealed
) -> None:
    from seals.ofd_seal import finish_ofd_seal, prepare_ofd_seal
    from seals.ses import assemble_signature

    box = sealed.layout.seal
    created = NOW.astimezone(BEIJING).date()
    rendered = render_ofd(sealed.layout, food.fonts, doc_id=DOC_ID, created=created, title=TITLE)
    theirs = prepare_ofd_seal(rendered, eseal, 0, (box.x, box.y, box.w, box.h), NOW)
    ours = _prepare(food, pki, eseal, seal_picture, sealed.layout)
    # Every part byte for byte, in the same order: the same references, Signature.xml and TBS_Sign.
    assert [(e.name, e.data) for e in theirs.entries] == list(ours.ofd_parts)
    assert dict(ours.ofd_parts)["Doc_0/Signs/Sign_0/Signature.xml"] == theirs.signature_xml
    assert (ours.ofd_data_hash, ours.ofd_tbs) == (theirs.data_hash, theirs.tbs)
    # And the same SES_Signature once signed.
    signer = pki.seal_signer
    value = signer.sign(ours.ofd_tbs)
    sealed_ours = finish_licence(ours, signer.sign(ours.pdf_signed_attributes), value)
    sealed_theirs = finish_ofd_seal(theirs, assemble_signature(theirs.tbs, pki.seal.der, value))
    with zipfile.ZipFile(io.BytesIO(sealed_ours.ofd)) as a, zipfile.ZipFile(io.BytesIO(sealed_theirs)) as b:
        assert a.namelist() == b.namelist()
        assert all(a.read(n) == b.read(n) for n in a.namelist())


def test_cms_and_tbs_are_encoded_as_the_general_path_encodes_them(
    food: Food, pki: PkiHierarchy, eseal: bytes, seal_picture: bytes, sealed: Sealed
) -> None:
    from seals.ses import assemble_signature, tbs_sign_bytes
    from seals.signed_data import signed_attributes, signed_data

    prepared = _prepare(food, pki, eseal, seal_picture, sealed.layout)
    assert prepared.pdf_signed_attributes == signed_attributes(prepared.pdf_digest, NOW, pki.seal.der)
    tbs = tbs_sign_bytes(eseal, prepared.ofd_data_hash, "/Doc_0/Signs/Sign_0/Signature.xml", NOW)
    assert prepared.ofd_tbs == tbs
    signature = pki.seal_signer.sign(prepared.pdf_signed_attributes)
    value = pki.seal_signer.sign(prepared.ofd_tbs)
    done = finish_licence(prepared, signature, value)
    # The PDF carries the SignedData seals.signed_data builds (as seals.pdf_seal's files do) ...
    contents = signed_data(pki.seal_signer.certificate_chain, prepared.pdf_signed_attributes, signature).hex()
    start, _end = prepared.pdf_hole
    assert done.pdf[start : start + len(contents)].decode() == contents
    # ... and the OFD's SignedValue.dat is what ses.assemble_signature packs.
    with zipfile.ZipFile(io.BytesIO(done.ofd)) as package:
        signed_value = package.read("Doc_0/Signs/Sign_0/SignedValue.dat")
    assert signed_value == assemble_signature(prepared.ofd_tbs, pki.seal.der, value)


# --- staging, determinism, refusals --------------------------------------------------------------


def test_staged_sealing_signs_digests_in_a_batch(
    food: Food, pki: PkiHierarchy, eseal: bytes, seal_picture: bytes, sealed: Sealed
) -> None:
    signer = pki.seal_signer
    batch = [_prepare(food, pki, eseal, seal_picture, food.layout(i)) for i in range(1, 4)]
    messages_and_digests = [(messages(p), digests(p, signer)) for p in batch]
    for (pdf_message, ofd_message), (e_pdf, e_ofd) in messages_and_digests:
        assert (e_pdf, e_ofd) == (signer.digest(pdf_message), signer.digest(ofd_message))
    signatures = [(signer.sign_digest(e_pdf), signer.sign_digest(e_ofd)) for _, (e_pdf, e_ofd) in messages_and_digests]
    for prepared, (pdf_signature, ofd_signature) in zip(batch, signatures, strict=True):
        done = finish_licence(prepared, pdf_signature, ofd_signature)
        checked = check_sealed_pdf(done.pdf, pki.seal)
        assert checked.signed_attributes == prepared.pdf_signed_attributes
        assert checked.byte_range == prepared.pdf_byte_range
        check_sealed_ofd(done.ofd)


def test_same_inputs_same_bytes(food: Food, pki: PkiHierarchy, eseal: bytes, seal_picture: bytes) -> None:
    layout = food.layout(5)
    first, second = (_prepare(food, pki, eseal, seal_picture, layout) for _ in range(2))
    assert first == second
    signatures = (pki.seal_signer.sign(first.pdf_signed_attributes), pki.seal_signer.sign(first.ofd_tbs))
    assert finish_licence(first, *signatures) == finish_licence(second, *signatures)


def test_finish_refuses_signatures_that_do_not_verify(
    food: Food, pki: PkiHierarchy, eseal: bytes, seal_picture: bytes, sealed: Sealed
) -> None:
    prepared = _prepare(food, pki, eseal, seal_picture, sealed.layout)
    good_pdf = pki.seal_signer.sign(prepared.pdf_signed_attributes)
    good_ofd = pki.seal_signer.sign(prepared.ofd_tbs)
    with pytest.raises(SealSigningError):
        finish_licence(prepared, pki.branch_signer.sign(prepared.pdf_signed_attributes), good_ofd)
    with pytest.raises(SealSigningError):
        finish_licence(prepared, good_pdf, good_pdf)  # the right key, the wrong message
    with pytest.raises(SealSigningError):
        finish_licence(prepared, b"\x30\x00", good_ofd)


def test_refusals(food: Food, pki: PkiHierarchy, eseal: bytes, seal_picture: bytes, sealed: Sealed) -> None:
    layout = sealed.layout
    with pytest.raises(SealInputError, match="不在印章"):
        seal_licence(layout, food.fonts, pki.branch_signer, eseal, seal_picture, NOW)
    with pytest.raises(SealInputError, match="有效期"):
        seal_licence(layout, food.fonts, pki.seal_signer, eseal, seal_picture, NOW + dt.timedelta(days=400))
    with pytest.raises(SealInputError, match="时区"):
        seal_licence(layout, food.fonts, pki.seal_signer, eseal, seal_picture, NOW.replace(tzinfo=None))
    with pytest.raises(SealInputError):
        seal_licence(layout, food.fonts, pki.seal_signer, b"not a seal", seal_picture, NOW)
    with pytest.raises(PictureError):
        seal_licence(layout, food.fonts, pki.seal_signer, eseal, b"GIF89a", NOW)
    with pytest.raises(SealInputError, match="证书链"):
        prepare_licence(layout, food.fonts, signer_chain=[], seal_der=eseal, seal_picture_png=seal_picture, now=NOW)


# --- a page written sealed (annotated copies, receipts) ---------------------------------------------


def test_a_page_written_sealed_is_read_by_qpdf_pyhanko_gmssl_and_poppler(
    food: Food, pki: PkiHierarchy, seal_picture: bytes, tmp_path: Path
) -> None:
    layout = food.layout(3)
    box = SealBox(x=layout.width - 48, y=layout.height - 48, w=38, h=38)
    signer = pki.seal_signer
    pdf = seal_page_pdf(layout, food.fonts, signer, seal_picture, box, NOW, title="加注件", reason="加注件：检查")
    path = tmp_path / "page.pdf"
    path.write_bytes(pdf)
    _qpdf_check(path)
    checked = check_sealed_pdf(pdf, pki.seal)  # digest, algorithms, signer; gmssl over the attributes
    assert checked.field_names == ["ECAS_Seal_1"] and checked.signing_time == NOW
    reader = PdfFileReader(io.BytesIO(pdf), strict=True)
    [signature] = reader.embedded_signatures
    assert signature.sig_object["/Reason"] == "加注件：检查"
    assert signature.docmdp_level is not None  # certified: nothing may be added afterwards
    signature.compute_integrity_info()
    assert signature.coverage == SignatureCoverageLevel.ENTIRE_FILE
    expected = (box.x, layout.height - box.y - box.h, box.x + box.w, layout.height - box.y)
    assert [float(v) for v in signature.sig_field["/Rect"]] == pytest.approx(
        [v / 25.4 * 72 for v in expected], abs=0.002
    )
    # The same text as the page rendered plain.
    (tmp_path / "plain.pdf").write_bytes(render_pdf(layout, food.fonts, title="加注件", created=NOW))
    pdftotext = require_tool_or_skip("pdftotext")
    texts = [
        subprocess.run([pdftotext, "-layout", str(tmp_path / name), "-"], capture_output=True, check=True).stdout
        for name in ("page.pdf", "plain.pdf")
    ]
    assert texts[0] == texts[1] and layout.texts["operator_name"].encode() in texts[0].replace(b" ", b"")
    # One flipped byte anywhere signed breaks the digest.
    for position in (9, pdf.index(b"/Reason") + 12, len(pdf) - 3):
        tampered = bytearray(pdf)
        tampered[position] ^= 0x01
        assert not _digest_ok(bytes(tampered))


def test_a_page_written_sealed_refuses_bad_input(food: Food, pki: PkiHierarchy, seal_picture: bytes) -> None:
    layout = food.layout()
    box = SealBox(x=10, y=10, w=30, h=30)
    with pytest.raises(SealInputError, match="时区"):
        seal_page_pdf(layout, food.fonts, pki.seal_signer, seal_picture, box, NOW.replace(tzinfo=None))
    with pytest.raises(SealInputError, match="有效期"):
        seal_page_pdf(layout, food.fonts, pki.seal_signer, seal_picture, box, NOW + dt.timedelta(days=4000))
    with pytest.raises(SealInputError, match="证书"):
        seal_page_pdf(layout, food.fonts, pki.seal_signer.with_chain(()), seal_picture, box, NOW)
    with pytest.raises(DocumentError):
        seal_page_pdf(layout, food.fonts, pki.seal_signer, seal_picture, SealBox(x=layout.width, y=0, w=30, h=30), NOW)
    with pytest.raises(PictureError):
        seal_page_pdf(layout, food.fonts, pki.seal_signer, b"GIF89a", box, NOW)
