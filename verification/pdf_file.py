"""Inspecting a sealed PDF (ISO 32000-1 §12.8, CMS SignedData with SM3 and SM2, as `seals` writes
it and as other SM2 PDF signers do): pyHanko's reader finds the signatures; the digest and the SM2
signature are checked here, because pyHanko's validator knows neither SM3 nor SM2.

Every signature is reported with what it covers. One that does not cover the file as it is was
followed by later revisions, and a later signature must not hide them: after a certification
signature that permits no change (DocMDP P=1, as every licence is sealed) any revision is INVALID;
after any other signature, pyHanko's difference analysis says what the revisions changed, and
anything beyond adding signatures (and, where DocMDP permits them, annotations) is INVALID.

The work per document is bounded: at most MAX_SIGNATURE_FIELDS signature fields and
MAX_REVISIONS revisions are read, and fields of signature types we do not read are skipped with
one log line per document (pyHanko logged a warning and a trace per field)."""

from __future__ import annotations

import io
import logging
from dataclasses import replace
from itertools import islice

from asn1crypto import cms
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY, ModificationLevel, SuspiciousModification
from pyhanko.sign.fields import MDPPerm, enumerate_sig_fields
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

from keys.errors import KeysError
from keys.oids import SM2_SIGN, SM2_WITH_SM3, SM3
from keys.sm2 import sm3
from keys.x509 import Certificate
from seals.pdf_reader import FastHexPdfReader
from verification.evidence import FileInspection, SignatureEvidence
from verification.report import Check, Status

log = logging.getLogger("ecas.verification")

MAX_PDF_BYTES = 50 * 1024 * 1024
MAX_SIGNATURE_FIELDS = 32
MAX_REVISIONS = 64
_SIGNATURE_ALGORITHMS = {SM2_WITH_SM3, SM2_SIGN}
SIGNATURE_TIME_STAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"  # noqa: S105  (an OID)
_SUBFILTERS = {"/adbe.pkcs7.detached", "/ETSI.CAdES.detached"}
# What revisions after a signature may do without touching what it signed, by DocMDP permission
# (none: an approval signature; other signatures and their fields may follow).
_ALLOWED_AFTER = {
    None: ModificationLevel.FORM_FILLING,
    MDPPerm.FILL_FORMS: ModificationLevel.FORM_FILLING,
    MDPPerm.ANNOTATE: ModificationLevel.ANNOTATIONS,
}
_CHANGE_NAMES = {
    ModificationLevel.NONE: "none",
    ModificationLevel.LTA_UPDATES: "validation_data_added",
    ModificationLevel.FORM_FILLING: "signatures_added",
    ModificationLevel.ANNOTATIONS: "annotations_added",
    ModificationLevel.OTHER: "content_changed",
}


def inspect_pdf(data: bytes) -> FileInspection:
    if len(data) > MAX_PDF_BYTES:
        return _bad("file_too_large", f"PDF 文件过大（上限 {MAX_PDF_BYTES // 1048576} MB）")
    try:
        reader = FastHexPdfReader(io.BytesIO(data), strict=False)
        if reader.xrefs.total_revisions > MAX_REVISIONS:
            return _bad("too_many_revisions", f"PDF 文件修订次数过多（上限 {MAX_REVISIONS} 次）")
        found = _embedded_signatures(reader)
        embedded_ocsp = _document_security_store(reader)
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError) as exc:
        return _bad("malformed_file", f"PDF 文件无法解析（{type(exc).__name__}）")
    if found is None:
        return _bad("too_many_signatures", f"PDF 文件中的签章域过多（上限 {MAX_SIGNATURE_FIELDS} 个）")
    if not found:
        return _bad("no_signature", "PDF 文件中没有电子签章")
    signatures = []
    checks = [Check.ok("file", f"PDF 文件可解析，含 {len(found)} 个签章")]
    for index, embedded in enumerate(found):
        evidence, covers_all = _signature(data, embedded.sig_object)
        evidence = replace(evidence, embedded_ocsp=embedded_ocsp)
        certified = embedded.docmdp_level is MDPPerm.NO_CHANGES
        if covers_all:
            signatures.append(replace(evidence, certified=certified))
            continue
        later, problem = _later_revisions(embedded, certified)
        signatures.append(_followed(evidence, certified, later))
        if problem is not None:
            checks.append(problem)
        elif index == len(found) - 1:
            checks.append(Check.invalid("file", "modified_after_signing", "签章之后文件又被追加或改动过"))
    return FileInspection("pdf", tuple(checks), tuple(signatures))


def _embedded_signatures(reader: FastHexPdfReader) -> list[EmbeddedPdfSignature] | None:
    """The filled signature fields we can read, in signing order; None when there are too many."""
    fields = list(islice(enumerate_sig_fields(reader, filled_status=True), MAX_SIGNATURE_FIELDS + 1))
    if len(fields) > MAX_SIGNATURE_FIELDS:
        return None
    readable, skipped = [], 0
    for name, sig_object, sig_field in fields:
        if str(sig_object.get_object().get("/SubFilter")) in _SUBFILTERS:
            readable.append(EmbeddedPdfSignature(reader, sig_field, name))
        else:
            skipped += 1
    if skipped:
        log.info("skipped %d signature field(s) of a type we do not read", skipped)
    return sorted(readable, key=lambda embedded: embedded.signed_revision)


MAX_DSS_ENTRIES = 16


def _document_security_store(reader: FastHexPdfReader) -> tuple[bytes, ...]:
    """The OCSP responses of the catalog's /DSS (ISO 32000-2 §12.8.4.3), at most MAX_DSS_ENTRIES."""
    store = reader.root.get("/DSS")
    if store is None:
        return ()
    responses = store.get_object().get("/OCSPs") or []
    return tuple(bytes(entry.get_object().data) for entry in list(responses)[:MAX_DSS_ENTRIES])


def _later_revisions(embedded: EmbeddedPdfSignature, certified: bool) -> tuple[str, Check | None]:
    """What the revisions after this signature changed, and the check that fails if that is too much."""
    if certified:
        return "revised", Check.invalid(
            "file", "modified_after_certification", "证照签章不允许此后任何修改，但文件在签章之后又有修订：文件已被改动"
        )
    try:
        # What the diff analysis starts from (pyHanko sets it while checking the digest, which it cannot for SM3).
        embedded.coverage = embedded.evaluate_signature_coverage()  # type: ignore[assignment]
        outcome = embedded.evaluate_modifications(DEFAULT_DIFF_POLICY)
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError):
        outcome = None
    if outcome is None or isinstance(outcome, SuspiciousModification):
        level = ModificationLevel.OTHER
    else:
        level = outcome.modification_level
    if level > _ALLOWED_AFTER.get(embedded.docmdp_level, ModificationLevel.FORM_FILLING):
        message = "签章之后文件内容又被改动（后来的修订改变了页面或文档内容），后来的签章不能使其有效"
        return _CHANGE_NAMES[level], Check.invalid("file", "modified_after_signing", message)
    return _CHANGE_NAMES[level], None


def _followed(evidence: SignatureEvidence, certified: bool, later: str) -> SignatureEvidence:
    """A signature later revisions followed: its integrity is of the revision it signed, not the file."""
    checks = tuple(
        Check.ok("integrity", "签章所签的文件版本未被改动（SM3 摘要相符）；此后文件另有修订，见其他检查")
        if check.name == "integrity" and check.status is Status.VALID
        else check
        for check in evidence.checks
    )
    return replace(evidence, checks=checks, covers_whole_file=False, later_changes=later, certified=certified)


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
        timestamp = _signature_timestamp(signer_info)
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
    evidence = SignatureEvidence(
        tuple(checks), signer, certificates, when, timestamp=timestamp, signature_value=signature
    )
    return evidence, covers_all


def _signature_timestamp(signer_info: cms.SignerInfo) -> bytes | None:
    """The DER token of the unsigned attribute id-aa-signatureTimeStampToken (PAdES B-T), if any."""
    for attribute in signer_info["unsigned_attrs"] or []:
        if attribute["type"].dotted == SIGNATURE_TIME_STAMP_TOKEN:
            return bytes(attribute["values"][0].dump())
    return None


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
