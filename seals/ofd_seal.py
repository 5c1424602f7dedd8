"""Sealing an OFD package with a GB/T 38540 e-seal (GB/T 33190-2016 §18 数字签名, as ofdrw does).

What sealing adds to the package (paths as ofdrw writes them, see ../shared/vectors/):

    OFD.xml                          DocBody gains <ofd:Signatures>/Doc_0/Signs/Signatures.xml</…>
    Doc_0/Signs/Signatures.xml       §18.1 表 66: MaxSignId and one <Signature ID Type="Seal" BaseLoc>
    Doc_0/Signs/Sign_0/Seal.esl      the DER SESeal
    Doc_0/Signs/Sign_0/Signature.xml §18.2 表 67: SignedInfo (Provider, SignatureMethod,
                                     SignatureDateTime, References with one SM3 CheckValue per
                                     package part, StampAnnot with PageRef and Boundary, Seal/BaseLoc)
                                     and SignedValue
    Doc_0/Signs/Sign_0/SignedValue.dat  the DER SES_Signature: TBS dataHash = SM3(Signature.xml bytes),
                                     propertyInfo = "/Doc_0/Signs/Sign_0/Signature.xml"

Every part except Signature.xml and SignedValue.dat is referenced, OFD.xml and Signatures.xml
included (ofdrw's "WholeProtected" mode), so they are all written before the digests are taken.
Element names, attribute names and values follow ofdrw; element order follows the standard's
schema (ofdrw writes some in call order). Two choices differ from ofdrw 1.6.3 on purpose:
CheckMethod is the SM3 OID 1.2.156.10197.1.401 (ofdrw writes "SM3"; BouncyCastle's SM3 answers to
both names), and IDs use the "sNNN" form GB/T 33190 recommends (newer ofdrw does the same).
SignatureDateTime is "YYYY-MM-DD HH:MM:SS" in Beijing time, as ofdrw writes local time; the TBS
timeInfo is UTC.

Staged like the PDF path: `prepare_ofd_seal` → sign `prepared.tbs` (signer.digest / sign_digest,
one by one, in a batch or on an HSM) → `ses.assemble_signature` → `finish_ofd_seal`. The output
ZIP is byte-for-byte the same for the same inputs.
"""

from __future__ import annotations

import base64
import datetime as dt
import posixpath
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import cast

from keys.errors import KeysError
from keys.oids import SM2_WITH_SM3, SM3
from keys.signer import Signer
from keys.sm2 import sm3
from keys.x509 import Certificate
from seals.box import SealBox
from seals.errors import DocumentError, MalformedSealError, SealInputError, SealSigningError
from seals.ofd_package import child as _child
from seals.ofd_package import child_text as _text
from seals.ofd_package import children as _children
from seals.ofd_package import parse_xml as _parse
from seals.ofd_package import read_package as _read_package
from seals.ofd_package import resolve as _resolve
from seals.ses import assemble_signature, parse_seal, parse_signature, tbs_sign_bytes
from templates.ofd import PackageEntry, ZipDateTime, write_package

__all__ = ["seal_ofd"]

NS = "http://www.ofdspec.org/2016"
PROVIDER_NAME = "ECAS"
PROVIDER_COMPANY = "ECAS"
PROVIDER_VERSION = "0.1.0"
BEIJING = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
SIGNATURES_FILE = "Signatures.xml"
SIGNATURE_FILE = "Signature.xml"
SEAL_FILE = "Seal.esl"
SIGNED_VALUE_FILE = "SignedValue.dat"
ET.register_namespace("ofd", NS)
_SIGN_ID = re.compile(r"^s?(\d{1,9})$")


@dataclass(frozen=True)
class PreparedOfd:
    """An OFD with every sealing part in place but SignedValue.dat. Sign `tbs` (DER TBS_Sign)."""

    entries: tuple[PackageEntry, ...]
    signature_path: str  # package path of the new Signature.xml, without the leading "/"
    signed_value_path: str
    signature_xml: bytes
    data_hash: bytes  # SM3(signature_xml): the TBS dataHash
    tbs: bytes  # DER(TBS_Sign) to be signed by the seal's signer
    time: dt.datetime

    @property
    def property_info(self) -> str:
        return "/" + self.signature_path


# --- XML -----------------------------------------------------------------------------------------


def _el(tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.Element(f"{{{NS}}}{tag}", attrs)
    element.text = text
    return element


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{NS}}}{tag}", attrs)
    element.text = text
    return element


def _xml(root: ET.Element) -> bytes:
    # typeshed types tostring with a named encoding as Any: with "utf-8" it returns bytes.
    body = cast(bytes, ET.tostring(root, encoding="utf-8", xml_declaration=False))
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def _box(text: str | None) -> tuple[float, float, float, float] | None:
    try:
        values = [float(v) for v in (text or "").split()]
    except ValueError:
        return None
    return (values[0], values[1], values[2], values[3]) if len(values) == 4 else None


# --- sealing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Document:
    ofd_xml: ET.Element
    doc_dir: str
    page_id: str
    page_size: tuple[float, float] | None
    signatures_path: str | None  # an existing signature list, package path


def _read_document(files: dict[str, bytes], page_index: int) -> _Document:
    if "OFD.xml" not in files:
        raise DocumentError("不是 OFD 文件：缺少主入口 OFD.xml")
    ofd = _parse(files["OFD.xml"], "OFD.xml")
    body = _child(ofd, "DocBody")
    doc_root = _text(body, "DocRoot") if body is not None else None
    if body is None or not doc_root:
        raise DocumentError("OFD.xml 缺少 DocBody/DocRoot")
    doc_path = _resolve("", doc_root)
    if doc_path not in files:
        raise DocumentError(f"OFD 包内缺少文档根节点 {doc_path}")
    doc_dir = posixpath.dirname(doc_path)
    document = _parse(files[doc_path], doc_path)
    pages_el = _child(document, "Pages")
    pages = _children(pages_el, "Page") if pages_el is not None else []
    if isinstance(page_index, bool) or not isinstance(page_index, int) or not 0 <= page_index < len(pages):
        raise DocumentError(f"页码 {page_index!r} 超出范围：文档共 {len(pages)} 页（页码从 0 起）")
    page = pages[page_index]
    page_id = page.get("ID")
    if not page_id:
        raise DocumentError(f"{doc_path} 第 {page_index} 页没有 ID")
    # The page's own Area wins over the document default (GB/T 33190 §7.6 表 12, §7.7 表 16).
    size = None
    common = _child(document, "CommonData")
    area = _child(common, "PageArea") if common is not None else None
    if area is not None:
        size = _box(_text(area, "PhysicalBox"))
    base = page.get("BaseLoc")
    if base:
        content_path = _resolve(doc_dir, base)
        if content_path in files:
            own = _child(_parse(files[content_path], content_path), "Area")
            if own is not None and _box(_text(own, "PhysicalBox")):
                size = _box(_text(own, "PhysicalBox"))
    signatures = _text(body, "Signatures")
    return _Document(
        ofd_xml=ofd,
        doc_dir=doc_dir,
        page_id=page_id,
        page_size=(size[2], size[3]) if size else None,
        signatures_path=_resolve("", signatures) if signatures else None,
    )


def _existing_signatures(files: dict[str, bytes], path: str) -> tuple[ET.Element, int]:
    """The signature list and its largest ID number; refuses when an earlier signature protects
    the list itself (then no signature can be added without breaking it, as ofdrw also refuses)."""
    if path not in files:
        raise DocumentError(f"OFD.xml 指向的签名列表 {path} 不存在")
    signatures = _parse(files[path], path)
    numbers = [_sign_number(_text(signatures, "MaxSignId"))]
    for record in _children(signatures, "Signature"):
        numbers.append(_sign_number(record.get("ID")))
        base = record.get("BaseLoc")
        signature_path = _resolve(posixpath.dirname(path), base) if base else None
        if signature_path is None or signature_path not in files:
            raise DocumentError(f"签名列表中的签名文件 {base!r} 不存在")
        signed_info = _child(_parse(files[signature_path], signature_path), "SignedInfo")
        references = _child(signed_info, "References") if signed_info is not None else None
        for ref in _children(references, "Reference") if references is not None else []:
            if _resolve(posixpath.dirname(signature_path), ref.get("FileRef", "")) == path:
                raise DocumentError("文档已有签章保护了签名列表（Signatures.xml），不能再追加签章")
    return signatures, max(numbers)


def _sign_number(text: str | None) -> int:
    match = _SIGN_ID.match(text.strip()) if text else None
    return int(match.group(1)) if match else 0


def _insert_signatures(ofd_xml: bytes, signatures_loc: str) -> bytes:
    """OFD.xml with <Signatures> added to the first DocBody (GB/T 33190 §7.4 表 3, after DocRoot
    and Versions). Inserted as text so every other byte of the producer's file stays as it was."""
    match = re.search(rb"</(?:([A-Za-z_][\w.-]*):)?DocBody\s*>", ofd_xml)
    if match is None:
        raise DocumentError("OFD.xml 缺少 DocBody")
    prefix = match.group(1).decode() + ":" if match.group(1) else ""
    element = f"<{prefix}Signatures>{signatures_loc}</{prefix}Signatures>".encode()
    return ofd_xml[: match.start()] + element + ofd_xml[match.start() :]


def _signature_xml(
    *,
    signed_value_loc: str,
    seal_loc: str,
    references: list[tuple[str, bytes]],
    annot_id: str,
    page_id: str,
    box: SealBox,
    time: dt.datetime,
) -> bytes:
    root = _el("Signature")
    info = _sub(root, "SignedInfo")
    _sub(info, "Provider", ProviderName=PROVIDER_NAME, Company=PROVIDER_COMPANY, Version=PROVIDER_VERSION)
    _sub(info, "SignatureMethod", SM2_WITH_SM3)
    _sub(info, "SignatureDateTime", f"{time.astimezone(BEIJING):%Y-%m-%d %H:%M:%S}")
    refs = _sub(info, "References", CheckMethod=SM3)
    for loc, data in references:
        ref = _sub(refs, "Reference", FileRef=loc)
        _sub(ref, "CheckValue", base64.b64encode(sm3(data)).decode())
    _sub(info, "StampAnnot", ID=annot_id, PageRef=page_id, Boundary=box.ofd_boundary())
    _sub(_sub(info, "Seal"), "BaseLoc", seal_loc)
    _sub(root, "SignedValue", signed_value_loc)
    return _xml(root)


def package_time(now: dt.datetime) -> ZipDateTime:
    """The timestamp of the parts sealing adds: the signing time in Beijing, as ZIP keeps it."""
    local = now.astimezone(BEIJING)
    return (max(local.year, 1980), local.month, local.day, local.hour, local.minute, local.second // 2 * 2)


def prepare_ofd_seal(
    ofd_bytes: bytes,
    seal_der: bytes,
    page_index: int,
    box_mm: SealBox | tuple[float, float, float, float],
    now: dt.datetime,
) -> PreparedOfd:
    """Add every sealing part but the signature value; `prepared.tbs` is what the signer signs."""
    box = SealBox.of(box_mm)
    if not isinstance(now, dt.datetime) or now.tzinfo is None:
        raise SealInputError("签章时间必须是带时区的时间")
    now = now.replace(microsecond=0)
    try:
        parse_seal(seal_der)
    except MalformedSealError as exc:
        raise SealInputError(f"印章数据无效：{exc}") from None

    entries = _read_package(ofd_bytes)
    files = {e.name: e.data for e in entries if not e.is_dir}
    document = _read_document(files, page_index)
    if document.page_size is not None:
        box.check_inside(*document.page_size)

    stamp = package_time(now)
    new_entries: list[PackageEntry] = []
    if document.signatures_path is None:
        signatures_path = posixpath.join(document.doc_dir, "Signs", SIGNATURES_FILE)
        if signatures_path in files:
            raise DocumentError(f"OFD 包内已有 {signatures_path}，但 OFD.xml 未登记")
        signatures, max_id = _el("Signatures"), 0
        ofd_xml = _insert_signatures(files["OFD.xml"], "/" + signatures_path)
        entries = [replace(e, data=ofd_xml) if e.name == "OFD.xml" else e for e in entries]
    else:
        signatures_path = document.signatures_path
        signatures, max_id = _existing_signatures(files, signatures_path)

    signs_dir = posixpath.dirname(signatures_path)
    index = 0
    while any(name.startswith(f"{signs_dir}/Sign_{index}/") for name in files):
        index += 1
    sign_dir = f"{signs_dir}/Sign_{index}"
    signature_path = f"{sign_dir}/{SIGNATURE_FILE}"
    seal_path = f"{sign_dir}/{SEAL_FILE}"
    signed_value_path = f"{sign_dir}/{SIGNED_VALUE_FILE}"
    sign_id, annot_id = f"s{max_id + 1:03d}", f"s{max_id + 2:03d}"

    # Signatures.xml (GB/T 33190 §18.1 表 66: MaxSignId first, then the Signature records).
    for old in _children(signatures, "MaxSignId"):
        signatures.remove(old)
    max_el = _el("MaxSignId", annot_id)
    signatures.insert(0, max_el)
    _sub(signatures, "Signature", ID=sign_id, Type="Seal", BaseLoc="/" + signature_path)
    signatures_xml = _xml(signatures)
    if document.signatures_path is None:
        new_entries.append(PackageEntry(signatures_path, signatures_xml, stamp, deflated=True))
    else:
        entries = [replace(e, data=signatures_xml) if e.name == signatures_path else e for e in entries]
    new_entries.append(PackageEntry(seal_path, bytes(seal_der), stamp, deflated=False))

    protected = [e for e in [*entries, *new_entries] if not e.is_dir]
    signature_xml = _signature_xml(
        signed_value_loc="/" + signed_value_path,
        seal_loc="/" + seal_path,
        references=[("/" + e.name, e.data) for e in protected],
        annot_id=annot_id,
        page_id=document.page_id,
        box=box,
        time=now,
    )
    new_entries.append(PackageEntry(signature_path, signature_xml, stamp, deflated=True))
    data_hash = sm3(signature_xml)
    return PreparedOfd(
        entries=(*entries, *new_entries),
        signature_path=signature_path,
        signed_value_path=signed_value_path,
        signature_xml=signature_xml,
        data_hash=data_hash,
        tbs=tbs_sign_bytes(seal_der, data_hash, "/" + signature_path, now),
        time=now,
    )


def finish_ofd_seal(prepared: PreparedOfd, signature_der: bytes) -> bytes:
    """The sealed OFD: `prepared` plus SignedValue.dat = `signature_der`, a DER SES_Signature over
    exactly `prepared.tbs` (see `ses.assemble_signature`), checked before it is written."""
    try:
        signature = parse_signature(signature_der)
    except MalformedSealError as exc:
        raise SealInputError(f"签章数据无效：{exc}") from None
    if signature.tbs_der != prepared.tbs:
        raise SealInputError("签章数据不是对本文档待签数据（TBS_Sign）的签名")
    try:
        cert = Certificate.load(signature.signer_certificate)
    except KeysError as exc:
        raise SealInputError(f"签章人证书无效：{exc}") from None
    if not signature.seal.lists_certificate(cert.der):
        raise SealInputError("签章人证书不在印章的证书列表中")
    if not cert.public_key.verify(signature.signature, signature.tbs_der):
        raise SealSigningError("签章签名验证失败：签名值与签章人证书不符")
    stamp = package_time(prepared.time)
    entry = PackageEntry(prepared.signed_value_path, bytes(signature_der), stamp, deflated=False)
    return write_package([*prepared.entries, entry])


def seal_ofd(
    ofd_bytes: bytes,
    signer: Signer,
    seal_der: bytes,
    page_index: int,
    box: SealBox | tuple[float, float, float, float],
    now: dt.datetime,
    timestamper: Callable[[bytes], bytes | None] | None = None,
) -> bytes:
    """Seal an OFD in one call: `signer` must hold a certificate the seal lists; `timestamper`
    gives a token over the signature value, the SES_Signature's timeStamp (GB/T 38540)."""
    if not signer.certificate_chain:
        raise SealInputError("签章人的签名密钥没有证书")
    prepared = prepare_ofd_seal(ofd_bytes, seal_der, page_index, box, now)
    certificate = signer.certificate_chain[0].der
    signature = signer.sign(prepared.tbs)
    timestamp = timestamper(signature) if timestamper is not None else None
    return finish_ofd_seal(prepared, assemble_signature(prepared.tbs, certificate, signature, timestamp))
