"""Sealing OFD packages (seals.ofd_seal), checked with code we did not write: zipfile and lxml read
the package, SM3 comes from gmssl (pure Python) or `cryptography`, the SES structures are read with
the pyasn1 spec in ses_asn1.py, SM2 signatures are checked with gmssl, and ofdrw's sealed file
(../shared/vectors/ofd) shows the structure to match. The verifier is a later issue: the small
`check_sealed_ofd` below is this test's own, independent of seals/."""

from __future__ import annotations

import base64
import datetime as dt
import io
import posixpath
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import hashes
from lxml import etree

from keys.x509 import Certificate
from seals.errors import DocumentError, SealInputError, SealSigningError
from seals.ofd_seal import finish_ofd_seal, prepare_ofd_seal, seal_ofd
from seals.ses import assemble_signature
from tests.conftest import NOW, PkiHierarchy, gmssl_sm3, gmssl_verify, ofd_vector
from tests.seals import ses_asn1

NS = "http://www.ofdspec.org/2016"
Q = f"{{{NS}}}"
ROOT = Path(__file__).resolve().parents[2]
BOX = (150.0, 230.5, 42.0, 42.0)
SM3_OID = "1.2.156.10197.1.401"
BEIJING = dt.timezone(dt.timedelta(hours=8))


# --- documents to seal ----------------------------------------------------------------------------


def _zip(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        for name, data in parts.items():
            package.writestr(name, data)
    return out.getvalue()


def _xml(body: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode()


def plain_ofd() -> bytes:
    """A two-page OFD written by hand here (GB/T 33190 §7), pages with IDs 2 and 7."""
    pages = "".join(f'<ofd:Page ID="{pid}" BaseLoc="Pages/Page_{i}/Content.xml"/>' for i, pid in enumerate((2, 7)))
    parts = {
        "OFD.xml": _xml(
            f'<ofd:OFD xmlns:ofd="{NS}" Version="1.0" DocType="OFD"><ofd:DocBody><ofd:DocInfo>'
            "<ofd:DocID>6a1b2c3d4e5f60718293a4b5c6d7e8f9</ofd:DocID><ofd:CreationDate>2025-03-01</ofd:CreationDate>"
            "</ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>"
        ),
        "Doc_0/Document.xml": _xml(
            f'<ofd:Document xmlns:ofd="{NS}"><ofd:CommonData><ofd:MaxUnitID>9</ofd:MaxUnitID><ofd:PageArea>'
            "<ofd:PhysicalBox>0 0 210 297</ofd:PhysicalBox></ofd:PageArea><ofd:PublicRes>PublicRes.xml"
            f"</ofd:PublicRes></ofd:CommonData><ofd:Pages>{pages}</ofd:Pages></ofd:Document>"
        ),
        "Doc_0/PublicRes.xml": _xml(
            f'<ofd:Res xmlns:ofd="{NS}" BaseLoc="Res"><ofd:Fonts><ofd:Font ID="1" FontName="宋体"/>'
            "</ofd:Fonts></ofd:Res>"
        ),
    }
    for i, (layer, text) in enumerate(((3, 4), (8, 9))):
        parts[f"Doc_0/Pages/Page_{i}/Content.xml"] = _xml(
            f'<ofd:Page xmlns:ofd="{NS}"><ofd:Content><ofd:Layer ID="{layer}"><ofd:TextObject ID="{text}" '
            f'Boundary="20 20 100 10" Font="1" Size="5"><ofd:TextCode X="0" Y="5" DeltaX="g 3 5">'
            f"第{i + 1}页</ofd:TextCode>"
            "</ofd:TextObject></ofd:Layer></ofd:Content></ofd:Page>"
        )
    return _zip(parts)


def _vector(name: str) -> dict[str, bytes]:
    with zipfile.ZipFile(ofd_vector(name)) as package:
        return {n: package.read(n) for n in package.namelist() if not n.endswith("/")}


def ofdrw_unsigned() -> bytes:
    """ofdrw's document before it was sealed: the vector without its signature parts."""
    parts = {n: d for n, d in _vector("allprotected.ofd").items() if "/Signs/" not in n}
    parts["OFD.xml"] = re.sub(rb"<ofd:Signatures>.*?</ofd:Signatures>", b"", parts["OFD.xml"])
    return _zip(parts)


def licence_ofd() -> tuple[bytes, tuple[float, float, float, float]]:
    """Our own licence OFD (templates.ofd) and the seal box its template gives."""
    from templates.backgrounds import prepare_background
    from templates.fonts import FontSet
    from templates.layout import build_layout, sample_face
    from templates.ofd import render_ofd
    from templates.spec import LicenceTypeSpec, parse_model

    data = yaml.safe_load((ROOT / "examples" / "types" / "food-business-licence.yaml").read_text(encoding="utf-8"))
    spec = parse_model(LicenceTypeSpec, data)
    assert spec.template is not None
    fonts = FontSet.default()
    layout = build_layout(spec, spec.template, prepare_background(spec.template, {}), sample_face(spec), fonts)
    box = layout.seal  # where the template puts the seal, mm from the top-left
    return render_ofd(layout, fonts, doc_id="0" * 32, created=dt.date(2025, 3, 1)), (box.x, box.y, box.w, box.h)


# --- an independent check -------------------------------------------------------------------------


def _sm3(data: bytes) -> bytes:
    # gmssl is pure Python (0.4 s per 100 KB): fonts and pictures go through `cryptography`.
    if len(data) <= 20_000:
        return gmssl_sm3(data)
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def _resolve(base: str, loc: str) -> str:
    return posixpath.normpath(loc if loc.startswith("/") else posixpath.join("/", base, loc)).lstrip("/")


@dataclass
class Sealed:
    parts: dict[str, bytes]
    signature_path: str
    signature: etree._Element  # Signature.xml root
    tbs: ses_asn1.TBSSign
    signer: Certificate


def check_sealed_ofd(data: bytes, index: int = -1) -> Sealed:
    """Check the package and the `index`-th seal in it; AssertionError (or a decoding error) when
    anything does not hold."""
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        assert package.testzip() is None
        parts = {n: package.read(n) for n in package.namelist() if not n.endswith("/")}
    trees = {n: etree.fromstring(d) for n, d in parts.items() if n.endswith(".xml")}  # well-formed
    signatures_loc = trees["OFD.xml"].findtext(f"{Q}DocBody/{Q}Signatures")
    assert signatures_loc
    signatures_path = _resolve("", signatures_loc)
    records = trees[signatures_path].findall(f"{Q}Signature")
    record = records[index]
    if record.get("Type") == "Sign":
        raise AssertionError("not a seal")
    signature_path = _resolve(posixpath.dirname(signatures_path), record.get("BaseLoc", ""))
    signature = trees[signature_path]
    info = signature.find(f"{Q}SignedInfo")
    assert info is not None
    refs = info.find(f"{Q}References")
    assert refs is not None
    assert refs.get("CheckMethod") in (SM3_OID, "SM3")
    base = posixpath.dirname(signature_path)
    signed_value_path = _resolve(base, signature.findtext(f"{Q}SignedValue", ""))
    covered = set()
    for ref in refs.findall(f"{Q}Reference"):
        path = _resolve(base, ref.get("FileRef", ""))
        assert base64.b64decode(ref.findtext(f"{Q}CheckValue", "")) == _sm3(parts[path]), path
        covered.add(path)
    assert covered == set(parts) - {signature_path, signed_value_path}, "every part but the signature's own"
    seal_path = _resolve(base, info.findtext(f"{Q}Seal/{Q}BaseLoc", ""))

    outer = ses_asn1.decode(parts[signed_value_path], ses_asn1.SESSignature())
    tbs_der = bytes(outer["toSign"])
    tbs = ses_asn1.decode(tbs_der, ses_asn1.TBSSign())
    assert int(tbs["version"]) == 4
    assert ses_asn1.bits(tbs["dataHash"]) == _sm3(parts[signature_path])
    assert str(tbs["propertyInfo"]) == "/" + signature_path
    assert bytes(tbs["eseal"]) == parts[seal_path]
    signer = Certificate.load(bytes(outer["cert"]))
    assert gmssl_verify(signer.public_key, ses_asn1.bits(outer["signature"]), tbs_der)
    seal = ses_asn1.decode(parts[seal_path], ses_asn1.SESeal())
    listed = ses_asn1.decode(bytes(seal["eSealInfo"]["property"]["certList"]), ses_asn1.CertInfoList())
    assert signer.der in [bytes(c) for c in listed]
    maker = Certificate.load(bytes(seal["cert"]))
    assert gmssl_verify(maker.public_key, ses_asn1.bits(seal["signedValue"]), ses_asn1.encode(seal["eSealInfo"]))
    return Sealed(parts, signature_path, signature, tbs, signer)


def _replace(data: bytes, name: str, content: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        parts = {n: package.read(n) for n in package.namelist()}
    parts[name] = content
    return _zip(parts)


# --- tests ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sealed(pki: PkiHierarchy, eseal: bytes) -> bytes:
    return seal_ofd(plain_ofd(), pki.seal_signer, eseal, 1, BOX, NOW)


def test_sealed_package_checks_out(pki: PkiHierarchy, eseal: bytes, sealed: bytes) -> None:
    result = check_sealed_ofd(sealed)
    assert result.signer.der == pki.seal.der
    assert result.parts["Doc_0/Signs/Sign_0/Seal.esl"] == eseal
    assert result.signature_path == "Doc_0/Signs/Sign_0/Signature.xml"
    # TBS timeInfo is UTC; SignatureDateTime is Beijing time in ofdrw's format.
    assert str(result.tbs["timeInfo"]) == f"{NOW:%Y%m%d%H%M%S}Z"
    info = result.signature.find(f"{Q}SignedInfo")
    assert info is not None
    assert info.findtext(f"{Q}SignatureDateTime") == f"{NOW.astimezone(BEIJING):%Y-%m-%d %H:%M:%S}"
    assert info.findtext(f"{Q}SignatureMethod") == "1.2.156.10197.1.501"
    provider = info.find(f"{Q}Provider")
    assert provider is not None and provider.get("ProviderName") == "ECAS"
    annot = info.find(f"{Q}StampAnnot")
    assert annot is not None
    assert annot.get("PageRef") == "7"  # the ID of page index 1, not its index
    assert annot.get("Boundary") == "150 230.5 42 42"
    signatures = etree.fromstring(result.parts["Doc_0/Signs/Signatures.xml"])
    [record] = signatures.findall(f"{Q}Signature")
    assert (record.get("ID"), record.get("Type"), record.get("BaseLoc")) == (
        "s001",
        "Seal",
        "/Doc_0/Signs/Sign_0/Signature.xml",
    )
    assert signatures.findtext(f"{Q}MaxSignId") == annot.get("ID") == "s002"
    ofd = etree.fromstring(result.parts["OFD.xml"])
    assert ofd.findtext(f"{Q}DocBody/{Q}Signatures") == "/Doc_0/Signs/Signatures.xml"


def test_original_parts_are_kept(sealed: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(plain_ofd())) as original, zipfile.ZipFile(io.BytesIO(sealed)) as result:
        for name in original.namelist():
            if name != "OFD.xml":
                assert result.read(name) == original.read(name)
        # OFD.xml: the producer's bytes with one element added.
        before, after = original.read("OFD.xml"), result.read("OFD.xml")
        added = b"<ofd:Signatures>/Doc_0/Signs/Signatures.xml</ofd:Signatures>"
        assert after.replace(added, b"") == before


def test_folders_methods_and_times_of_a_given_package_are_kept(pki: PkiHierarchy, eseal: bytes) -> None:
    """The package is written again by templates.ofd.write_package (the one OFD writer): folder
    entries, each part's timestamp and stored/deflated stay as the producer wrote them."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(plain_ofd())) as original:
        parts = {n: original.read(n) for n in original.namelist()}
    with zipfile.ZipFile(out, "w") as package:
        for folder in ("Doc_0/", "Doc_0/Pages/", "Doc_0/Res/"):
            package.writestr(zipfile.ZipInfo(folder, date_time=(2024, 5, 6, 7, 8, 10)), b"")
        for index, (name, data) in enumerate(parts.items()):
            info = zipfile.ZipInfo(name, date_time=(2024, 5, 6, 7, 8, 2 * index))
            info.compress_type = zipfile.ZIP_STORED if index % 2 else zipfile.ZIP_DEFLATED
            package.writestr(info, data)
        package.writestr("Doc_0/Res/图片.bin", bytes(range(256)) * 200)  # a UTF-8 name, a large part
    given = out.getvalue()
    sealed = seal_ofd(given, pki.seal_signer, eseal, 0, BOX, NOW)
    check_sealed_ofd(sealed)
    with zipfile.ZipFile(io.BytesIO(given)) as before, zipfile.ZipFile(io.BytesIO(sealed)) as after:
        assert after.testzip() is None
        kept = {i.filename: i for i in after.infolist()}
        for info in before.infolist():
            again = kept[info.filename]
            assert (again.date_time, again.compress_type, again.is_dir()) == (
                info.date_time,
                info.compress_type,
                info.is_dir(),
            )
            if info.filename != "OFD.xml":
                assert after.read(info.filename) == before.read(info.filename)
        added = [n for n in kept if n not in before.namelist()]
        signs = ("Signatures.xml", "Sign_0/Seal.esl", "Sign_0/Signature.xml", "Sign_0/SignedValue.dat")
        assert added == [f"Doc_0/Signs/{n}" for n in signs]


def test_changing_any_byte_is_detected(sealed: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(sealed)) as package:
        names = [n for n in package.namelist() if not n.endswith("/")]
        contents = {n: package.read(n) for n in names}
    assert len(names) == 9
    for name in names:
        data = contents[name]
        for position in (0, len(data) // 2, len(data) - 1):
            tampered = bytearray(data)
            tampered[position] ^= 0x01
            # Any failure is a detection: a digest mismatch, a broken path, undecodable DER.
            with pytest.raises(Exception):  # noqa: B017
                check_sealed_ofd(_replace(sealed, name, bytes(tampered)))


@pytest.mark.interop
def test_structure_matches_ofdrw(sealed: bytes) -> None:
    theirs = _vector("allprotected.ofd")
    with zipfile.ZipFile(io.BytesIO(sealed)) as package:
        ours = {n: package.read(n) for n in package.namelist()}
    signs = {n for n in ours if "/Signs/" in n}
    assert signs == {n for n in theirs if "/Signs/" in n}

    def shape(xml: bytes) -> set[tuple[str, tuple[str, ...]]]:
        root = etree.fromstring(xml)
        return {(_path(e), tuple(sorted(e.attrib))) for e in root.iter()}

    for name in ("Doc_0/Signs/Signatures.xml", "Doc_0/Signs/Sign_0/Signature.xml"):
        assert shape(ours[name]) == shape(theirs[name]), name
    # Same reference list: every part, both lists and the seal included, with absolute paths.
    refs = {
        e.get("FileRef")
        for e in etree.fromstring(theirs["Doc_0/Signs/Sign_0/Signature.xml"]).iter(f"{Q}Reference")
    }
    ours_refs = {
        e.get("FileRef") for e in etree.fromstring(ours["Doc_0/Signs/Sign_0/Signature.xml"]).iter(f"{Q}Reference")
    }
    assert {"/OFD.xml", "/Doc_0/Signs/Signatures.xml", "/Doc_0/Signs/Sign_0/Seal.esl"} <= refs & ours_refs
    for text in (theirs, ours):
        stamp = etree.fromstring(text["Doc_0/Signs/Sign_0/Signature.xml"]).findtext(f".//{Q}SignatureDateTime")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", stamp or "")


def _path(element: etree._Element) -> str:
    names = []
    while element is not None:
        names.append(etree.QName(element).localname)
        element = element.getparent()
    return "/".join(reversed(names))


def test_staged_sealing_is_deterministic(pki: PkiHierarchy, eseal: bytes) -> None:
    document = plain_ofd()
    first = prepare_ofd_seal(document, eseal, 0, BOX, NOW)
    second = prepare_ofd_seal(document, eseal, 0, BOX, NOW)
    assert first.tbs == second.tbs and first.signature_xml == second.signature_xml
    assert first.data_hash == _sm3(first.signature_xml)
    signer = pki.seal_signer
    value = signer.sign_digest(signer.digest(first.tbs))  # as a batch or an HSM would
    signature = assemble_signature(first.tbs, pki.seal.der, value)
    out = finish_ofd_seal(first, signature)
    assert out == finish_ofd_seal(second, signature)  # byte for byte
    check_sealed_ofd(out)


def test_finish_refuses_a_foreign_signature(pki: PkiHierarchy, eseal: bytes, sealed: bytes) -> None:
    prepared = prepare_ofd_seal(plain_ofd(), eseal, 0, BOX, NOW)
    other = prepare_ofd_seal(plain_ofd(), eseal, 1, BOX, NOW)
    signature = assemble_signature(other.tbs, pki.seal.der, pki.seal_signer.sign(other.tbs))
    with pytest.raises(SealInputError, match="待签数据"):
        finish_ofd_seal(prepared, signature)
    # A signature value by another key, packed without our checks: refused before it is written.
    good = ses_asn1.decode(
        assemble_signature(prepared.tbs, pki.seal.der, pki.seal_signer.sign(prepared.tbs)), ses_asn1.SESSignature()
    )
    forged = pki.branch_signer.sign(prepared.tbs)
    good["signature"] = good.componentType["signature"].asn1Object.clone(hexValue=forged.hex())
    with pytest.raises(SealSigningError):
        finish_ofd_seal(prepared, ses_asn1.encode(good))


def test_bad_documents_and_places(pki: PkiHierarchy, eseal: bytes, sealed: bytes) -> None:
    signer, doc = pki.seal_signer, plain_ofd()
    with pytest.raises(DocumentError, match="共 2 页"):
        seal_ofd(doc, signer, eseal, 2, BOX, NOW)
    with pytest.raises(DocumentError, match="超出页面"):
        seal_ofd(doc, signer, eseal, 0, (180, 10, 42, 42), NOW)
    with pytest.raises(DocumentError, match="ZIP"):
        seal_ofd(b"PK\x03\x04 not really", signer, eseal, 0, BOX, NOW)
    with pytest.raises(DocumentError, match=r"OFD\.xml"):
        seal_ofd(_zip({"a.xml": b"<a/>"}), signer, eseal, 0, BOX, NOW)
    with pytest.raises(DocumentError, match="文件名"):
        seal_ofd(_replace(doc, "../evil.xml", b"<a/>"), signer, eseal, 0, BOX, NOW)
    bomb = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>'
    with pytest.raises(DocumentError, match="DTD"):
        seal_ofd(_replace(doc, "OFD.xml", bomb), signer, eseal, 0, BOX, NOW)
    with pytest.raises(DocumentError, match="XML"):
        seal_ofd(_replace(doc, "Doc_0/Document.xml", b"<ofd:Document"), signer, eseal, 0, BOX, NOW)
    # Our seal protects Signatures.xml (as ofdrw's does): no second seal can be added after it.
    with pytest.raises(DocumentError, match="不能再追加"):
        seal_ofd(sealed, signer, eseal, 0, BOX, NOW)
    with pytest.raises(SealInputError):
        seal_ofd(doc, signer, b"not a seal", 0, BOX, NOW)
    with pytest.raises(SealInputError, match="不在印章"):
        seal_ofd(doc, pki.branch_signer, eseal, 0, BOX, NOW)


@pytest.mark.interop
def test_seals_ofdrw_document(pki: PkiHierarchy, eseal: bytes) -> None:
    sealed = seal_ofd(ofdrw_unsigned(), pki.seal_signer, eseal, 0, (50, 50, 40, 40), NOW)
    result = check_sealed_ofd(sealed)
    annot = result.signature.find(f".//{Q}StampAnnot")
    assert annot is not None and annot.get("PageRef") == "1"
    # The OFD.xml we wrote is byte for byte the one ofdrw wrote when it sealed the same document.
    assert result.parts["OFD.xml"] == _vector("allprotected.ofd")["OFD.xml"]


@pytest.mark.interop
def test_adds_a_seal_next_to_ofdrw_digital_signature(pki: PkiHierarchy, eseal: bytes) -> None:
    theirs = _vector("DigitalSign.ofd")
    sealed = seal_ofd(_zip(theirs), pki.seal_signer, eseal, 0, BOX, NOW)
    result = check_sealed_ofd(sealed, index=1)
    assert result.signature_path == "Doc_0/Signs/Sign_1/Signature.xml"
    signatures = etree.fromstring(result.parts["Doc_0/Signs/Signatures.xml"])
    assert [r.get("ID") for r in signatures.findall(f"{Q}Signature")] == ["s001", "s002"]
    assert signatures.findtext(f"{Q}MaxSignId") == "s003"
    # Their signature's references still hold: we changed nothing it protects.
    signature = etree.fromstring(result.parts["Doc_0/Signs/Sign_0/Signature.xml"])
    for ref in signature.iter(f"{Q}Reference"):
        part = result.parts[_resolve("", ref.get("FileRef", ""))]
        assert base64.b64decode(ref.findtext(f"{Q}CheckValue", "")) == _sm3(part)
    assert result.parts["Doc_0/Signs/Sign_0/SignedValue.dat"] == theirs["Doc_0/Signs/Sign_0/SignedValue.dat"]


def test_seals_our_licence_ofd(pki: PkiHierarchy, eseal: bytes) -> None:
    document, box = licence_ofd()
    sealed = seal_ofd(document, pki.seal_signer, eseal, 0, box, NOW)
    result = check_sealed_ofd(sealed)
    annot = result.signature.find(f".//{Q}StampAnnot")
    assert annot is not None
    assert [float(v) for v in (annot.get("Boundary") or "").split()] == list(box)
