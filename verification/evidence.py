"""What a sealed file proves by itself, before any trust decision: for each signature found, whether
the signed bytes are intact, whether the SM2 signature verifies with the certificate it names, and
(OFD) whether the e-seal is sound. Trust in that certificate is `trust`'s question."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from keys.x509 import Certificate
from seals.ses import Seal
from verification.report import Check


@dataclass(frozen=True)
class SignatureEvidence:
    checks: tuple[Check, ...]  # integrity, signature and, with an e-seal, seal
    signer: Certificate | None
    certificates: tuple[Certificate, ...] = ()  # every certificate the signature carries
    signing_time: dt.datetime | None = None
    seal: Seal | None = None
    # PDF: whether the signature covers the file as it is, or later revisions followed it, and
    # what they changed (signatures_added, annotations, content_changed); certified: DocMDP.
    covers_whole_file: bool = True
    later_changes: str | None = None
    certified: bool = False
    # A time-stamp token over the signature (PAdES signature-time-stamp; GB/T 38540 timeStamp), and
    # the signature value it must cover.
    timestamp: bytes | None = None
    signature_value: bytes | None = None
    # Revocation evidence kept in the file at sealing time (DER OCSP responses): PDF /DSS /OCSPs,
    # OFD OCSP.der beside the signature (long-term validation).
    embedded_ocsp: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class FileInspection:
    format: str  # "pdf" or "ofd"
    checks: tuple[Check, ...]  # about the file as a whole: readable, signed, all of it covered
    signatures: tuple[SignatureEvidence, ...] = ()
    texts: tuple[str, ...] = field(default=())  # OFD: every TextCode, in page order
    custom_data: Mapping[str, str] = field(default_factory=dict)  # OFD: DocInfo's CustomDatas
