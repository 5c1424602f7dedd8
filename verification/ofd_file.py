"""Inspecting a sealed OFD (GB/T 33190 §18, GB/T 38540): every signature in the list, the SM3
check value of every part it references, its SES_Signature (dataHash = SM3 of Signature.xml, the SM2
signature by the certificate it carries) and the e-seal inside it (signed by its maker, listing the
signer, valid at signing time). Parts no signature protects are reported: changing them would go
unnoticed. Reads ofdrw's files as well as ours (../shared/vectors/)."""

from __future__ import annotations

import base64
import binascii
import posixpath
import xml.etree.ElementTree as ET

from keys.errors import KeysError
from keys.oids import SM2_SIGN, SM2_WITH_SM3, SM3
from keys.sm2 import sm3
from keys.x509 import Certificate
from seals.errors import SealError
from seals.ofd_package import child, child_text, children, local_name, parse_xml, read_package, resolve
from seals.ses import SealSignature, parse_signature
from verification.eseal import check_seal_made, seal_maker
from verification.evidence import FileInspection, SignatureEvidence
from verification.report import Check, Status

__all__ = ["inspect_ofd"]

_SM3_NAMES = {SM3, "SM3", "sm3"}
# What a package may unpack to when we only check it (sealing accepts larger documents): a licence
# is a few hundred kilobytes, and 50 MB bounds the memory a hostile upload can take.
MAX_UNPACKED_BYTES = 50 * 1024 * 1024
_SIGNATURE_ALGORITHMS = {SM2_WITH_SM3, SM2_SIGN}
EVIDENCE_FILE = "OCSP.der"  # the signer's OCSP response at sealing time, beside Signature.xml (LTV)


def inspect_ofd(data: bytes) -> FileInspection:
    try:
        files = {e.name: e.data for e in read_package(data, MAX_UNPACKED_BYTES) if not e.is_dir}
        signatures_path = _signatures_path(files)
        texts = _texts(files)
        custom = _custom_data(files)
    except SealError as exc:
        return FileInspection("ofd", (Check.invalid("file", "malformed_file", str(exc)),))
    if signatures_path is None:
        return FileInspection("ofd", (Check.invalid("file", "no_signature", "OFD 文件中没有电子签章"),), texts=texts)
    try:
        records = _signature_records(files, signatures_path)
    except SealError as exc:
        return FileInspection("ofd", (Check.invalid("file", "malformed_file", str(exc)),), texts=texts)
    if not records:
        return FileInspection("ofd", (Check.invalid("file", "no_signature", "签名列表为空"),), texts=texts)
    checks = [Check.ok("file", f"OFD 文件可解析，含 {len(records)} 个签章")]
    signatures, protected, own_parts = [], set(), set()
    for kind, signature_path in records:
        evidence, referenced, value_path = _signature(files, kind, signature_path)
        signatures.append(evidence)
        protected |= referenced
        own_parts |= {signature_path, value_path} if value_path else {signature_path}
    unprotected = sorted(set(files) - protected - own_parts)
    if unprotected:
        listed = "、".join(unprotected[:5])
        checks.append(Check.unknown("file", "unprotected_parts", f"有文件不受签章保护，无法确认未被改动：{listed}"))
    return FileInspection("ofd", tuple(checks), tuple(signatures), texts, custom)


def _signatures_path(files: dict[str, bytes]) -> str | None:
    if "OFD.xml" not in files:
        raise SealError("不是 OFD 文件：缺少主入口 OFD.xml")
    body = child(parse_xml(files["OFD.xml"], "OFD.xml"), "DocBody")
    location = child_text(body, "Signatures") if body is not None else None
    return resolve("", location) if location else None


def _signature_records(files: dict[str, bytes], path: str) -> list[tuple[str, str]]:
    if path not in files:
        raise SealError(f"OFD.xml 指向的签名列表 {path} 不存在")
    records = []
    for record in children(parse_xml(files[path], path), "Signature"):
        base = record.get("BaseLoc")
        if not base:
            raise SealError("签名列表中有签名没有 BaseLoc")
        records.append((record.get("Type", "Seal"), resolve(posixpath.dirname(path), base)))
    return records


def _signature(files: dict[str, bytes], kind: str, path: str) -> tuple[SignatureEvidence, set[str], str | None]:
    """The evidence for one signature, the parts it protects, and its SignedValue path."""
    if path not in files:
        return _broken("malformed_signature", f"签名文件 {path} 不存在"), set(), None
    try:
        root = parse_xml(files[path], path)
    except SealError as exc:
        return _broken("malformed_signature", str(exc)), set(), None
    folder = posixpath.dirname(path)
    info = child(root, "SignedInfo")
    value_loc = child_text(root, "SignedValue")
    if info is None or not value_loc:
        return _broken("malformed_signature", f"{path} 缺少 SignedInfo 或 SignedValue"), set(), None
    value_path = resolve(folder, value_loc)
    integrity, referenced = _references(files, info, folder)
    if value_path not in files:
        return (
            SignatureEvidence((integrity, Check.invalid("signature", "malformed_signature", "签名值文件不存在")), None),
            referenced,
            value_path,
        )
    if kind != "Seal":
        # A plain digital signature (GB/T 35275): a bare SM2 value, no certificate to check it with.
        unknown = Check.unknown(
            "signature", "no_signer_certificate", "普通数字签名（非电子签章），文件中没有签名人证书，无法校验"
        )
        return SignatureEvidence((integrity, unknown), None), referenced, value_path
    try:
        ses = parse_signature(files[value_path])
        signer = Certificate.load(ses.signer_certificate)
    except (SealError, KeysError, ValueError) as exc:
        broken = Check.invalid("signature", "malformed_signature", f"签章数据（SES_Signature）无法解析：{exc}")
        return SignatureEvidence((integrity, broken), None), referenced, value_path
    checks = [
        integrity,
        _data_hash(ses, files[path], path),
        _signed(ses, signer),
        *_seal(ses, signer, files, info, folder),
    ]
    maker = seal_maker(ses.seal)
    certificates = (signer, maker) if maker is not None else (signer,)
    ocsp = files.get(posixpath.join(folder, EVIDENCE_FILE))
    evidence = SignatureEvidence(
        tuple(checks),
        signer,
        certificates,
        ses.time,
        ses.seal,
        timestamp=ses.timestamp,
        signature_value=ses.signature,
        embedded_ocsp=(ocsp,) if ocsp is not None else (),
    )
    return evidence, referenced, value_path


def _references(files: dict[str, bytes], info: ET.Element, folder: str) -> tuple[Check, set[str]]:
    references = child(info, "References")
    if references is None:
        return Check.invalid("integrity", "malformed_signature", "签名没有引用任何文件"), set()
    method = (references.get("CheckMethod") or "").strip()
    if method not in _SM3_NAMES:
        return Check.unknown("integrity", "unsupported_algorithm", f"不支持的摘要算法 {method!r}"), set()
    referenced, changed, missing = set(), [], []
    for reference in children(references, "Reference"):
        part = resolve(folder, reference.get("FileRef", ""))
        referenced.add(part)
        expected = child_text(reference, "CheckValue") or ""
        if part not in files:
            missing.append(part)
            continue
        try:
            matches = base64.b64decode(expected, validate=True) == sm3(files[part])
        except (binascii.Error, ValueError):
            matches = False
        if not matches:
            changed.append(part)
    if missing:
        return Check.invalid("integrity", "missing_part", f"签章保护的文件缺失：{'、'.join(missing[:5])}"), referenced
    if changed:
        return Check.invalid("integrity", "digest_mismatch", f"文件内容已被改动：{'、'.join(changed[:5])}"), referenced
    return Check.ok("integrity", f"签章保护的 {len(referenced)} 个文件均未改动（SM3 相符）"), referenced


def _data_hash(ses: SealSignature, signature_xml: bytes, path: str) -> Check:
    if ses.data_hash != sm3(signature_xml):
        return Check.invalid("integrity", "digest_mismatch", f"{path} 已被改动：与签章签署的摘要不符")
    return Check.ok("integrity", "签名描述文件与签章时一致")


def _signed(ses: SealSignature, signer: Certificate) -> Check:
    if ses.signature_algorithm not in _SIGNATURE_ALGORITHMS:
        return Check.unknown("signature", "unsupported_algorithm", f"不支持的签名算法 {ses.signature_algorithm}")
    if not signer.public_key.verify(ses.signature, ses.tbs_der):
        return Check.invalid("signature", "bad_signature", "SM2 签名无效：签名值与签章人证书不符")
    return Check.ok("signature", f"SM2 签名有效（签章人：{signer.common_name}）")


def _seal(
    ses: SealSignature, signer: Certificate, files: dict[str, bytes], info: ET.Element, folder: str
) -> list[Check]:
    seal = ses.seal
    made = check_seal_made(seal)
    if made.status is not Status.VALID:
        return [made]
    if not seal.lists_certificate(signer.der):
        return [Check.invalid("seal", "signer_not_in_seal", f"签章人证书不在印章「{seal.name}」的证书列表中")]
    if not seal.valid_at(ses.time):
        return [Check.invalid("seal", "seal_not_valid", f"签章时间不在印章「{seal.name}」的有效期内")]
    seal_element = child(info, "Seal")
    location = child_text(seal_element, "BaseLoc") if seal_element is not None else None
    if location:
        stored = files.get(resolve(folder, location))
        if stored is not None and stored != seal.der:
            return [Check.invalid("seal", "seal_mismatch", "包内印章文件与签章中的印章不一致")]
    return [Check.ok("seal", f"印章「{seal.name}」（{seal.es_id}）由制章者签名，签章时在有效期内")]


def _custom_data(files: dict[str, bytes]) -> dict[str, str]:
    """DocInfo's CustomDatas of OFD.xml, by name (GB/T 33190 表 5)."""
    body = child(parse_xml(files["OFD.xml"], "OFD.xml"), "DocBody")
    info = child(body, "DocInfo") if body is not None else None
    datas = child(info, "CustomDatas") if info is not None else None
    if datas is None:
        return {}
    return {data.get("Name", ""): data.text or "" for data in children(datas, "CustomData")}


def _texts(files: dict[str, bytes]) -> tuple[str, ...]:
    """Every TextCode of every page, in order (what the licence shows)."""
    body = child(parse_xml(files["OFD.xml"], "OFD.xml"), "DocBody")
    root = child_text(body, "DocRoot") if body is not None else None
    if not root or resolve("", root) not in files:
        return ()
    document_path = resolve("", root)
    pages = child(parse_xml(files[document_path], document_path), "Pages")
    texts: list[str] = []
    for page in children(pages, "Page") if pages is not None else []:
        content_path = resolve(posixpath.dirname(document_path), page.get("BaseLoc", ""))
        if content_path in files:
            for element in parse_xml(files[content_path], content_path).iter():
                if local_name(element) == "TextCode" and element.text:
                    texts.append(element.text)
    return tuple(texts)


def _broken(reason: str, message: str) -> SignatureEvidence:
    return SignatureEvidence((Check.invalid("signature", reason, message),), None)
