"""Inspecting a sealed PDF (ISO 32000-1 §12.8, CMS SignedData with SM3 and SM2, as `seals` writes
it and as other SM2 PDF signers do): pyHanko's reader finds the signatures; the digest and the SM2
signature are checked here, because pyHanko's validator knows neither SM3 nor SM2."""

from __future__ import annotations

import io
import logging

from asn1crypto import cms
from pyhanko.pdf_utils.misc import PdfError

from keys.errors import KeysError
from keys.oids import SM2_SIGN, SM2_WITH_SM3, SM3
from keys.sm2 import sm3
from keys.x509 import Certificate
from seals.pdf_reader import FastHexPdfReader
from verification.evidence import FileInspection, SignatureEvidence
from verification.report import Check

log = logging.getLogger("ecas.verification")

MAX_PDF_BYTES = 50 * 1024 * 1024
_SIGNATURE_ALGORITHMS = {SM2_WITH_SM3, SM2_SIGN}


def inspect_pdf(data: bytes) -> FileInspection:
    if len(data) > MAX_PDF_BYTES:
        return _bad("file_too_large", f"PDF 文件过大（上限 {MAX_PDF_BYTES // 1048576} MB）")
    try:
        reader = FastHexPdfReader(io.BytesIO(data), strict=False)
        found = list(reader.embedded_signatures)
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError) as exc:
        return _bad("malformed_file", f"PDF 文件无法解析（{type(exc).__name__}）")
    if not found:
        return _bad("no_signature", "PDF 文件中没有电子签章")
    signatures = []
    checks = [Check.ok("file", f"PDF 文件可解析，含 {len(found)} 个签章")]
    for index, embedded in enumerate(found):
        last = index == len(found) - 1
        evidence, covers_all = _signature(data, embedded.sig_object)
        signatures.append(evidence)
        if last and not covers_all:
            checks.append(Check.invalid("file", "modified_after_signing", "签章之后文件又被追加或改动过"))
    return FileInspection("pdf", tuple(checks), tuple(signatures))


def _bad(reason: str, message: str) -> FileInspection:
    return FileInspection("pdf", (Check.invalid("file", reason, message),))


def _signature(data: bytes, sig_object: object) -> tuple[SignatureEvidence, bool]:
    try:
        byte_range = [int(v) for v in sig_object["/ByteRange"]]  # type: ignore[index]
        contents = bytes(sig_object["/Contents"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return _broken("malformed_signature", "签章字典缺少 ByteRange 或 Contents"), False
    if len(byte_range) != 4 or byte_range[0] != 0 or min(byte_range) < 0:
        return _broken("malformed_signature", "签章的 ByteRange 不合规"), False
    _, first, second_start, second_length = byte_range
    end = second_start + second_length
    if not first <= second_start <= len(data) or end > len(data):
        return _broken("malformed_signature", "签章的 ByteRange 超出文件"), False
    # Only this signature's own /Contents string ("<" hex ">") may be left out (ISO 32000-1 §12.8.1):
    # a range that leaves out anything else lets signed bytes copied from another file sit behind
    # new, unsigned content.
    if not _gap_is_contents(data, first, second_start, contents):
        return _broken("byte_range_mismatch", "签章未覆盖签名值之外的内容：ByteRange 与签名值位置不符"), False
    covered = data[:first] + data[second_start:end]
    try:
        content = cms.ContentInfo.load(contents)  # not strict: the zero padding of the hole follows
        signed = content["content"]
        if content["content_type"].native != "signed_data" or not isinstance(signed, cms.SignedData):
            raise ValueError("not SignedData")
        [signer_info] = signed["signer_infos"]
        signed_attrs = signer_info["signed_attrs"]
        digest_algorithm = signer_info["digest_algorithm"]["algorithm"].dotted
        signature_algorithm = signer_info["signature_algorithm"]["algorithm"].dotted
        signature = bytes(signer_info["signature"].native)
        certificates = tuple(Certificate.load(c.chosen.dump()) for c in signed["certificates"] or [])
        attributes = {a["type"].dotted: a["values"] for a in signed_attrs}
        message_digest = bytes(attributes["1.2.840.113549.1.9.4"][0].native)
        signing_time = attributes.get("1.2.840.113549.1.9.5")
        when = signing_time[0].native if signing_time is not None else None
        sid = signer_info["sid"]
        serial = sid.chosen["serial_number"].native if sid.name == "issuer_and_serial_number" else None
        signed_attrs_der = b"\x31" + signed_attrs.dump()[1:]  # RFC 5652 §5.4: signed as a SET OF
    except (ValueError, KeyError, TypeError, IndexError, KeysError) as exc:
        return _broken("malformed_signature", f"签章数据（CMS）无法解析（{type(exc).__name__}）"), end == len(data)
    covers_all = end == len(data)
    signer = next((c for c in certificates if c.serial == serial), None)
    checks = []
    if digest_algorithm != SM3 or signature_algorithm not in _SIGNATURE_ALGORITHMS:
        checks.append(Check.unknown("signature", "unsupported_algorithm", "签章不是 SM3/SM2 算法，无法校验"))
        return SignatureEvidence(tuple(checks), signer, certificates, when), covers_all
    if sm3(covered) == message_digest:
        checks.append(Check.ok("integrity", "文件内容与签章时一致（SM3 摘要相符）"))
    else:
        checks.append(Check.invalid("integrity", "digest_mismatch", "文件内容已被改动：SM3 摘要与签章时不符"))
    if signer is None:
        checks.append(Check.unknown("signature", "no_signer_certificate", "签章中没有签章人证书，无法校验签名"))
    elif signer.public_key.verify(signature, signed_attrs_der):
        checks.append(Check.ok("signature", f"SM2 签名有效（签章人：{signer.common_name}）"))
    else:
        checks.append(Check.invalid("signature", "bad_signature", "SM2 签名无效：签名值与签章人证书不符"))
    return SignatureEvidence(tuple(checks), signer, certificates, when), covers_all


def _gap_is_contents(data: bytes, first: int, second_start: int, contents: bytes) -> bool:
    if first == 0 or data[first : first + 1] != b"<" or data[second_start - 1 : second_start] != b">":
        return False
    try:
        written = bytes.fromhex(data[first + 1 : second_start - 1].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return False
    return written == contents


def _broken(reason: str, message: str) -> SignatureEvidence:
    return SignatureEvidence((Check.invalid("signature", reason, message),), None)
